"""Suite `shapes`: the paper's models on this CPU (docs/BENCHMARKS.md, "The paper's models
on this CPU").

Transformer-XL base on WikiText-103 (configs/txl_wt103_base.flags: 151M parameters with the
267,735-word vocabulary, adaptive softmax 20,000 / 40,000 / 200,000, tied) and the enwik8
model (configs/txl_enwik8_base.flags), each trained for `shape_steps` steps (one per loop
call; the first, which traces, is not timed) by a fresh par-train on a dataset built from
`corpus` at the config's shape (train: the corpus's train split; valid and test: its first
400 valid lines, so that the final evaluations stay short); seconds per step, tokens/s, peak
RSS, and the exact parameters and FLOPs per token of `--print_config`.
"""

import json
import shutil
import time
from pathlib import Path

from par.bench import measure
from par.errors import ParError


def paper_models(wt103_batch=60):
  """(name, flagfile, build_data.py flags) of the paper's two models at their shapes, the
  WikiText-103 one at `wt103_batch` lanes (Transformer-XL's 60 by default)."""
  return (
    (
      f"Transformer-XL base, WikiText-103 shape (batch {wt103_batch} x 150, memory 150)",
      "configs/txl_wt103_base.flags",
      ["--tokenizer=word", f"--batch_size={wt103_batch}", "--seq_len=150"],
    ),
    (
      "Transformer-XL enwik8 (batch 22 x 512, memory 512)",
      "configs/txl_enwik8_base.flags",
      ["--tokenizer=char", "--batch_size=22", "--seq_len=512"],
    ),
  )


def train_command(flagfile, data, run_dir, steps):
  """par-train of a paper model for `steps` steps, one call each, evaluated only at the end."""
  return measure.command(
    "train",
    f"--flagfile={flagfile}",
    f"--data_dir={data}",
    f"--model_dir={run_dir}",
    f"--train_steps={steps}",
    "--steps_per_loop=1",
    "--log_every=1",
    f"--checkpoint_every={steps}",
    "--eval_every=0",
    "--plot_every=0",
  )


def short_evaluations(corpus, work):
  """work/corpus: `corpus`'s train split (linked) with its first 400 valid lines as valid and
  test, so that a run's final evaluations stay short."""
  corpus = Path(corpus)
  if not corpus.is_dir():
    raise ParError(f"--corpus {corpus} does not exist: make it with par-make-corpus")
  small = work / "corpus"
  small.mkdir()
  (small / "train.txt").symlink_to((corpus / "train.txt").resolve())
  head = "".join((corpus / "valid.txt").read_text(encoding="utf-8").splitlines(True)[:400])
  for split in ("valid", "test"):
    (small / f"{split}.txt").write_text(head, encoding="utf-8")
  return small


def run(work, options):
  from par import runs as run_files
  from par.data import records

  small = short_evaluations(options.corpus, work)
  rows = []
  for name, flagfile, build_flags in paper_models():
    data = work / "data"
    build_wall, build_rss = measure.run_measured(
      measure.command("build_data", f"--input={small}", f"--output_dir={data}") + build_flags
    )
    meta = records.load_meta(data)
    counted = measure.printed_config(data, f"--flagfile={flagfile}")
    steps = options.shape_steps
    run_dir = work / "run"
    start = time.perf_counter()
    _, rss = measure.run_case(train_command(flagfile, data, run_dir, steps))
    wall = time.perf_counter() - start
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    speed = results["train_tokens_per_second"]
    tokens = meta.batch_size * meta.seq_len
    rows.append(
      (
        name,
        f"{counted['parameters']:,} parameters, {counted['flops_per_token'] / 1e6:,.0f} MFLOP "
        f"per token forward; vocabulary {meta.vocab_size:,}",
      )
    )
    rows.append(
      (
        f"  train, {steps} steps ({steps - 1} timed)",
        f"{tokens / speed:.1f} s per step, {speed:,.0f} tok/s, peak RSS {rss:,.0f} MiB "
        f"(whole run {wall:.0f} s with tracing and two one-record evaluations)",
      )
    )
    rows.append(
      (
        "  build of its dataset",
        f"{build_wall:.0f} s, peak RSS {build_rss:,.0f} MiB",
      )
    )
    shutil.rmtree(data)
    shutil.rmtree(run_dir)
  return rows

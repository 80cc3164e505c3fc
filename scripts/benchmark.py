"""Measures the targets the issues name; prints a markdown table for docs/BENCHMARKS.md.

  python scripts/benchmark.py --suite=data --text_dir=../shared/data/wt2-small
  python scripts/benchmark.py --suite=train --text_dir=../shared/data/wt2-small
  python scripts/benchmark.py --suite=cuts
  python scripts/benchmark.py --suite=blocks
  python scripts/benchmark.py --suite=scale --corpus=data/zipf-wt103
  python scripts/benchmark.py --suite=memory
  python scripts/benchmark.py --suite=speed
  python scripts/benchmark.py --suite=jobs        # two one-thread trainings against one
  python scripts/benchmark.py --suite=profile --profile_dir=profile

Suite `speed`: the base SuperNet (soft, d_ffn 1024 and 512), single_path and the fixed pattern
the soft search derives, each trained for --train_steps steps, as a share of its matmul bound
(`_bound`: the step's matmuls at the model's shapes, timed in a loop the graph optimiser
cannot fold).

Suite `profile`: a TensorBoard profiler trace (--profile_dir) of --profile_steps steps of the
base SuperNet (configs/base_model.flags, on --data_dir or a dataset built from --text_dir), and
the step's split (forward, backward, optimizer, input, host/idle) and top ops read from it.

Suite `shapes` (the paper's models on this CPU): Transformer-XL base on WikiText-103
(configs/txl_wt103_base.flags: 151M parameters with the 267,735-word vocabulary, adaptive
softmax 20,000 / 40,000 / 200,000, tied) and the enwik8 model (configs/txl_enwik8_base.flags),
each trained for --shape_steps steps (one per loop call; the first, which traces, is not timed)
by a fresh scripts/train.py on a dataset built from --corpus at the config's shape (train: the
corpus's train split; valid and test: its first 400 valid lines, so that the final evaluations
stay short); seconds per step, tokens/s, peak RSS, and the exact parameters and FLOPs per token
of `--print_config`.

Suite `blocks` (where attention is the slow block): at the base width (configs/base_model.flags:
d_model 128, 4 heads, d_ffn 1024), the forward time of one attention and one feed-forward
block (`costs.measure_latency`: compiled, memory full, median of 20 after a warm-up) at
segments + memory of 32 + 16 (batch 32), 128 + 128 (batch 10, the study of docs/RESULTS.md)
and 256 + 256 (batch 5), against their forward FLOPs per token (`costs.block_costs`).

Suite `scale` (the build at WikiText-103's size): on --corpus, a directory of split files
(made first by scripts/make_corpus.py with its defaults if it does not exist: 103M words,
539 MB), a fresh `scripts/build_data.py` per tokenizer, each to a new directory: word at
Transformer-XL's WikiText-103 shape (batch 60, seq_len 150), SentencePiece (32,000 pieces,
trained on --input_sentence_size lines) at the same shape, and bytes (char) at the enwik8
shape (batch 22, seq_len 512); wall seconds, peak RSS, tokens and vocabulary of each.

Suite `data` (the dataset build of par/data/build.py):
- build: the whole `scripts/build_data.py` run, tokenizer training and TensorFlow's import
  included, as a fresh process (wall seconds and peak RSS), --repeats times;
- pipeline: in one process, tokenize + context-batch + write (what the build does after
  training the tokenizer) against a bare sentencepiece encode of the same lines, alternated
  --repeats times; the ratio of medians is the figure;
- memory: peak RSS of a build whose train split is the text repeated 2, 8 and 32 times (with
  the tokenizer given, so that only the pipeline grows), and the increment per MiB of text.

Suite `train` (scripts/train.py as users run it, each case a fresh process):
- the base configuration (configs/base_model.flags) for --train_steps steps on a dataset
  built from --text_dir (vocabulary --vocab_size), in sampling modes soft, hard and
  single_path, soft with TensorFlow's default thread pools, the reference implementation's
  config (d_ffn 512) in soft mode, and the pattern the soft run derived, trained as a fixed
  model; train tokens/s (batch x seq_len per step, the first loop call, which traces, left
  out) and the process's peak RSS;
- evaluation tokens/s on the valid split of the soft run's SuperNet (eval_mode argmax and
  expected) and of its derived fixed model (weights copied): after a tracing call, three
  rounds alternating the three models, the best round of each;
- a 2048 x 2048 float32 matmul in TensorFlow's default thread pools: the machine's rate, to
  which training is compared by FLOP count (3 x forward FLOPs per token, par.search.costs,
  with the train split's tail shares); and a matmul of the base model's feed-forward shape,
  [1024, 128] x [128, 1024], which bounds what the model's own matmuls can reach.

Suite `cuts` (par/cutoffs.py): the exact solver on Zipfian counts (exponent 1, 10^8 tokens
drawn) for N = 12,000 with K = 3 and N = 267,735 (WikiText-103's vocabulary) with K = 4 and
auto, in both cost models, --repeats times; and the whole scripts/optimal_cuts.py process on
a file of the 267,735 counts.

Machines here are shared and noisy: compare figures from one run, not across runs.
"""

import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

from par import cli

_SUITE = flags.DEFINE_enum(
  "suite",
  "data",
  [
    "data",
    "train",
    "speed",
    "jobs",
    "cuts",
    "scale",
    "shapes",
    "blocks",
    "memory",
    "eval_case",
    "matmul_case",
    "bound_case",
    "profile",
  ],
  "What to measure (the *_case suites are the train suite's subprocesses).",
)
_TEXT_DIR = flags.DEFINE_string(
  "text_dir",
  str(Path(__file__).resolve().parents[2] / "shared" / "data" / "wt2-small"),
  "Split files for the data suite.",
)
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 7000, "Vocabulary for the data suite.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Repetitions of each timing (data and cuts suites).")
_TRAIN_STEPS = flags.DEFINE_integer(
  "train_steps",
  150,
  "Steps per training case (train suite); the first 50 (one loop call) are not timed.",
)
_CORPUS = flags.DEFINE_string(
  "corpus", "data/zipf-wt103", "scale: split files; made by scripts/make_corpus.py if missing."
)
_INPUT_SENTENCE_SIZE = flags.DEFINE_integer(
  "input_sentence_size", 100_000, "scale: lines SentencePiece trains on."
)
_SHAPE_STEPS = flags.DEFINE_integer("shape_steps", 3, "shapes: training steps per model.")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "eval_case: the run directory to evaluate.")
_SHAPES_JSON = flags.DEFINE_string(
  "shapes", None, 'bound_case: {"m,k,n": count} of a step\'s forward matmuls, as JSON.'
)

_BOUND_DTYPE = flags.DEFINE_enum(
  "bound_dtype", "float32", ["float32", "bfloat16"], "bound_case: the products' dtype."
)
_PROFILE_STEPS = flags.DEFINE_integer("profile_steps", 10, "profile: training steps traced.")
_PROFILE_DIR = flags.DEFINE_string(
  "profile_dir",
  "profile",
  "profile: the TensorBoard log directory the trace is written to (tensorboard --logdir=DIR, "
  "Profile tab); created, and refused if it already holds a trace.",
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir", None, "profile: a built dataset (default: one built from --text_dir)."
)

ROOT = Path(__file__).resolve().parents[1]


def _run_measured(command):
  """Runs a command; returns (wall seconds, peak RSS in MiB) of that process alone."""
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  stderr = process.stderr.read().decode()
  process.stderr.close()
  if os.waitstatus_to_exitcode(status) != 0:
    raise cli.ParError(f"{' '.join(command)} failed: {stderr.strip().splitlines()[-1]}")
  return wall, usage.ru_maxrss / 1024


def _build_command(text, output, *extra):
  return [
    sys.executable,
    "scripts/build_data.py",
    f"--input={text}",
    f"--output_dir={output}",
    f"--vocab_size={_VOCAB_SIZE.value}",
    "--overwrite",
    *extra,
  ]


def _printed_config(flagfile, data, *extra):
  """The JSON `scripts/train.py --print_config` prints for a flagfile on a dataset."""
  printed = subprocess.run(
    [sys.executable, "scripts/train.py", f"--flagfile={flagfile}", f"--data_dir={data}"]
    + ["--print_config", *extra],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(printed.stdout)


def _training_command(data, steps):
  """scripts/train.py on base_model.flags for `steps` steps, timed after its first loop call
  of 50, one log line and one checkpoint at the end, no figures."""
  return [
    sys.executable,
    "scripts/train.py",
    "--flagfile=configs/base_model.flags",
    f"--data_dir={data}",
    f"--train_steps={steps}",
    "--steps_per_loop=50",
    f"--log_every={steps}",
    f"--checkpoint_every={steps}",
    "--plot_every=0",
  ]


def _best_seconds(function, *args):
  """The fastest of five calls of a tf.function, after one that traces it."""
  function(*args).numpy()
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    function(*args).numpy()
    best = min(best, time.perf_counter() - start)
  return best


def _median(values):
  return statistics.median(values)


def _cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _timed(function):
  """Runs function(); returns (wall seconds, CPU seconds of this process, all threads)."""
  wall, cpu = time.perf_counter(), _cpu_seconds()
  function()
  return time.perf_counter() - wall, _cpu_seconds() - cpu


def data_suite(work):
  # Imported after cli.import_tensorflow(), which hides TensorFlow's start-up notices.
  import sentencepiece as spm

  from par.config import DataConfig
  from par.data import records
  from par.data import text as text_lib
  from par.data import tokenizer

  text_dir = Path(_TEXT_DIR.value)
  if not text_dir.is_dir():
    raise cli.ParError(f"--text_dir {text_dir} does not exist")
  rows = []

  # 1. The whole build, as a user runs it.
  builds = [_run_measured(_build_command(text_dir, work / "ds")) for _ in range(_REPEATS.value)]
  walls = [w for w, _ in builds]
  rows.append(
    (
      "whole build, wall s (median; min-max)",
      f"{_median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
    )
  )
  rows.append(("whole build, peak RSS MiB", f"{max(m for _, m in builds):.0f}"))

  # 2. Tokenize + batch + write against a bare sentencepiece encode, same lines, same process.
  config = DataConfig(vocab_size=_VOCAB_SIZE.value)
  texts = [text_lib.read_text(p) for p in text_lib.find_split_files(text_dir).values()]
  model = (work / "ds" / records.TOKENIZER_FILE).read_bytes()
  processor = spm.SentencePieceProcessor(model_proto=model)
  ours_tokenizer = tokenizer.Tokenizer(model)  # Built once, as `processor` is.
  ours_tokenizer.tokenize(["warm up"])

  def bare_encode():
    for text in texts:
      processor.encode(text.lines)

  def pipeline(directory):
    for j, text in enumerate(texts):
      stream = ours_tokenizer.tokenize(text.lines)
      windows, _, _ = records.context_batch(stream, config.batch_size, config.seq_len)
      records.write_split(windows, directory, f"split{j}", 1)

  bare, ours = [], []
  for i in range(_REPEATS.value):
    bare.append(_timed(bare_encode))
    ours.append(_timed(lambda i=i: pipeline(work / f"pipeline{i}")))
  tokens = sum(len(ours_tokenizer.tokenize(t.lines)) for t in texts)
  bare_wall, ours_wall = _median([w for w, _ in bare]), _median([w for w, _ in ours])
  rows.append(
    (
      "bare sentencepiece encode, wall s / CPU s (medians)",
      f"{bare_wall:.3f} / {_median([c for _, c in bare]):.3f}",
    )
  )
  rows.append(
    (
      "tokenize + batch + write, wall s / CPU s (medians)",
      f"{ours_wall:.3f} / {_median([c for _, c in ours]):.3f}",
    )
  )
  rows.append(("wall ratio, same run (target <= 3)", f"{ours_wall / bare_wall:.2f}"))
  rows.append(("tokens/s, tokenize + batch + write", f"{tokens / ours_wall:,.0f}"))

  # 3. Memory against split size, tokenizer given.
  raw = text_lib.find_split_files(text_dir)["train"].read_bytes()
  previous = None
  for copies in (2, 8, 32):
    path = work / f"x{copies}.txt"
    path.write_bytes(raw * copies)
    _, rss = _run_measured(
      _build_command(
        path, work / f"m{copies}", f"--sp_model={work / 'ds' / records.TOKENIZER_FILE}"
      )
    )
    size = len(raw) * copies / 2**20
    step = (
      ""
      if previous is None
      else f", +{(rss - previous[1]) / (size - previous[0]):.0f} MiB per MiB of text"
    )
    rows.append((f"peak RSS, train = {size:.1f} MiB of text", f"{rss:.0f} MiB{step}"))
    previous = (size, rss)
  return rows


_TRAIN_CASES = (  # name, extra flags of scripts/train.py
  ("soft", ["--sampling=soft"]),
  (
    "soft, TensorFlow's default threads",
    ["--sampling=soft", "--inter_op_threads=0", "--intra_op_threads=0"],
  ),
  ("hard", ["--sampling=hard"]),
  ("single_path", ["--sampling=single_path"]),
  ("soft, d_ffn 512 (reference config)", ["--sampling=soft", "--d_ffn=512"]),
)


def _run_case(command):
  """Runs a command; returns (its last stdout line as JSON or None, peak RSS MiB)."""
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
  process.stdout.close()
  process.stderr.close()
  if os.waitstatus_to_exitcode(status) != 0:
    raise cli.ParError(f"{' '.join(map(str, command))} failed: {stderr.strip().splitlines()[-1]}")
  lines = stdout.strip().splitlines()
  try:
    value = json.loads(lines[-1]) if lines else None
  except ValueError:
    value = None
  return value, usage.ru_maxrss / 1024


def _tail_shares(data_dir, cutoffs, vocab_size):
  """Share of train targets in each tail cluster of the adaptive softmax."""
  from par.data import records

  counts, _ = records.target_counts(data_dir, "train")
  bounds = list(cutoffs) + [vocab_size]
  return [counts[a:b].sum() / counts.sum() for a, b in zip(bounds[:-1], bounds[1:])]


def train_suite(work):
  from par import runs as run_files
  from par.search.costs import model_cost

  data = work / "data"
  _run_measured(_build_command(_TEXT_DIR.value, data))
  steps = _TRAIN_STEPS.value
  common = _training_command(data, steps)
  rows, runs = [], {}

  matmul, _ = _run_case([sys.executable, "scripts/benchmark.py", "--suite=matmul_case"])
  rate = matmul["square"]
  rows.append(("2048² float32 matmul, TensorFlow default threads", f"{rate / 1e9:.1f} GFLOP/s"))
  rows.append(
    (
      "[1024, 128] x [128, 1024] matmul (the base FFN's shape), same threads",
      f"{matmul['ffn_shaped'] / 1e9:.1f} GFLOP/s = {matmul['ffn_shaped'] / rate:.0%} "
      "of the 2048² rate",
    )
  )

  for name, extra in _TRAIN_CASES:
    run_dir = work / f"run{len(runs)}"
    _, rss = _run_case(common + [f"--model_dir={run_dir}"] + extra)
    runs[name] = (run_dir, rss)
  soft_dir = runs["soft"][0]
  pattern = json.loads((soft_dir / run_files.RESULTS_FILE).read_text())["pattern"]
  name = f"fixed {pattern} (derived by the soft run)"
  run_dir = work / f"run{len(runs)}"
  _, rss = _run_case(common + [f"--model_dir={run_dir}", f"--architecture={pattern}"])
  runs[name] = (run_dir, rss)

  speeds = {}
  for name, (run_dir, rss) in runs.items():
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    run = run_files.read_run(run_dir)
    config, meta = run.config, run.dataset
    shares = _tail_shares(data, config.model.cutoffs, config.model.vocab_size)
    pattern_of_cost = config.model.architecture or None
    flops = model_cost(
      config.model,
      pattern_of_cost,
      seq_len=meta["seq_len"],
      batch_size=meta["batch_size"],
      tail_shares=shares,
    )["total"].flops
    if config.model.sampling == "single_path" and not config.model.architecture:
      flops = None  # Depends on the sampled branches.
    speed = results["train_tokens_per_second"]
    speeds[name] = speed
    fraction = (
      ""
      if flops is None
      else (f", {3 * flops * speed / 1e9:.1f} GFLOP/s = {3 * flops * speed / rate:.0%} of matmul")
    )
    rows.append((f"train {name}", f"{speed:,.0f} tok/s{fraction}, peak RSS {rss:.0f} MiB"))
  rows.append(("single_path / soft, same run", f"{speeds['single_path'] / speeds['soft']:.2f}"))
  rows.append(
    (
      "auto / TensorFlow's default threads (soft), same run",
      f"{speeds['soft'] / speeds[_TRAIN_CASES[1][0]]:.2f}",
    )
  )

  evaluated, rss = _run_case(
    [sys.executable, "scripts/benchmark.py", "--suite=eval_case", f"--run_dir={soft_dir}"]
  )
  for name, speed in evaluated.items():
    rows.append((f"eval {name}", f"{speed:,.0f} tok/s"))
  fixed = next(v for k, v in evaluated.items() if k.startswith("fixed"))
  rows.append(
    (
      "eval fixed / SuperNet expected, same run",
      f"{fixed / evaluated['SuperNet, eval_mode expected']:.2f}",
    )
  )
  rows.append(
    (
      "eval fixed / SuperNet argmax, same run",
      f"{fixed / evaluated['SuperNet, eval_mode argmax']:.2f}",
    )
  )
  return rows


def _zipf_counts(n, tokens, seed=0):
  """Token counts of a Zipfian (exponent 1) vocabulary of n ids, `tokens` tokens drawn."""
  import numpy as np

  weights = 1.0 / np.arange(1, n + 1)
  return np.random.default_rng(seed).multinomial(tokens, weights / weights.sum())


def cuts_suite(work):
  from par import cutoffs

  rows = []
  cases = [
    ("N = 12,000, K = 3", 12_000, 3),
    ("N = 267,735, K = 4", 267_735, 4),
    ("N = 267,735, auto K <= 6", 267_735, "auto"),
  ]
  for name, n, clusters in cases:
    counts = _zipf_counts(n, 100_000_000)
    for model in (cutoffs.grave_cost(128, 4), cutoffs.simple_cost()):
      times = []
      for _ in range(_REPEATS.value):
        start = time.perf_counter()
        best, _ = cutoffs.solve(counts, model, clusters, max_clusters=6)
        times.append(time.perf_counter() - start)
      rows.append(
        (
          f"solve, Zipfian {name}, {model.name} cost, s (median; max)",
          f"{_median(times):.3f} ({max(times):.3f}); {best.clusters} clusters, "
          f"cutoffs {list(best.cutoffs)}, speed-up {best.speedup:.1f}x",
        )
      )
  # The whole script, as a user runs it, on WikiText-103's vocabulary size.
  values = work / "counts.txt"
  values.write_text("\n".join(str(c) for c in _zipf_counts(267_735, 100_000_000)) + "\n")
  walls = [
    _run_measured(
      [sys.executable, "scripts/optimal_cuts.py", f"--filename={values}", "--clusters=4"]
    )[0]
    for _ in range(_REPEATS.value)
  ]
  rows.append(
    (
      "scripts/optimal_cuts.py --filename (267,735 counts) --clusters=4, wall s (median; max)",
      f"{_median(walls):.2f} ({max(walls):.2f})",
    )
  )
  return rows


_SCALE_CASES = (  # name, flags of scripts/build_data.py
  ("word, batch 60 x seq_len 150", ["--tokenizer=word", "--batch_size=60", "--seq_len=150"]),
  (
    "sentencepiece 32,000, batch 60 x seq_len 150",
    ["--vocab_size=32000", "--batch_size=60", "--seq_len=150"],
  ),
  (
    "char (bytes), batch 22 x seq_len 512",
    ["--tokenizer=char", "--batch_size=22", "--seq_len=512"],
  ),
)


def scale_suite(work):
  from par.data import records

  corpus = Path(_CORPUS.value)
  rows = []
  if not corpus.exists():
    wall, rss = _run_measured([sys.executable, "scripts/make_corpus.py", f"--output={corpus}"])
    rows.append(("scripts/make_corpus.py (defaults)", f"{wall:.1f} s, peak RSS {rss:.0f} MiB"))
  size = sum(p.stat().st_size for p in corpus.glob("*.txt")) / 2**20
  rows.append(("corpus", f"{corpus}: {size:,.0f} MiB of text"))
  for name, extra in _SCALE_CASES:
    if "--tokenizer" not in " ".join(extra):
      extra = [*extra, f"--input_sentence_size={_INPUT_SENTENCE_SIZE.value}"]
    output = work / name.split(",")[0].split()[0]
    command = [
      sys.executable,
      "scripts/build_data.py",
      f"--input={corpus}",
      f"--output_dir={output}",
      *extra,
    ]
    wall, rss = _run_measured(command)
    meta = records.load_meta(output)
    tokens = sum(split.tokens for split in meta.splits.values())
    rows.append(
      (
        f"build {name}{' (' + extra[-1] + ')' if 'input_sentence' in extra[-1] else ''}",
        f"{wall:.1f} s wall, peak RSS {rss:,.0f} MiB; {tokens:,} tokens, {meta.vocab_size:,} ids",
      )
    )
    shutil.rmtree(output)
  return rows


_SHAPES = (  # name, flagfile, build_data.py flags
  (
    "Transformer-XL base, WikiText-103 shape (batch 60 x 150, memory 150)",
    "configs/txl_wt103_base.flags",
    ["--tokenizer=word", "--batch_size=60", "--seq_len=150"],
  ),
  (
    "Transformer-XL enwik8 (batch 22 x 512, memory 512)",
    "configs/txl_enwik8_base.flags",
    ["--tokenizer=char", "--batch_size=22", "--seq_len=512"],
  ),
)


def shapes_suite(work):
  from par import runs as run_files
  from par.data import records

  corpus = Path(_CORPUS.value)
  if not corpus.is_dir():
    raise cli.ParError(f"--corpus {corpus} does not exist: make it with scripts/make_corpus.py")
  small = work / "corpus"
  small.mkdir()
  (small / "train.txt").symlink_to((corpus / "train.txt").resolve())
  head = "".join((corpus / "valid.txt").read_text(encoding="utf-8").splitlines(True)[:400])
  for split in ("valid", "test"):
    (small / f"{split}.txt").write_text(head, encoding="utf-8")
  rows = []
  for name, flagfile, build_flags in _SHAPES:
    data = work / "data"
    build_wall, build_rss = _run_measured(
      [sys.executable, "scripts/build_data.py", f"--input={small}", f"--output_dir={data}"]
      + build_flags
    )
    meta = records.load_meta(data)
    counted = _printed_config(flagfile, data)
    steps = _SHAPE_STEPS.value
    run_dir = work / "run"
    start = time.perf_counter()
    _, rss = _run_case(
      [
        sys.executable,
        "scripts/train.py",
        f"--flagfile={flagfile}",
        f"--data_dir={data}",
        f"--model_dir={run_dir}",
        f"--train_steps={steps}",
        "--steps_per_loop=1",
        "--log_every=1",
        f"--checkpoint_every={steps}",
        "--eval_every=0",
        "--plot_every=0",
      ]
    )
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


_MEMORY_SHAPES = (  # (name, flags, dataset batch, seq_len): the estimate set against the peak
  ("base SuperNet, 32 x 32, memory 16", ["--flagfile=configs/base_model.flags"], 32, 32),
  (
    "fixed sfsfsf, d 256, d_ffn 1024, 16 x 128, memory 128",
    [
      "--flagfile=configs/base_model.flags",
      "--architecture=sfsfsf",
      "--d_model=256",
      "--mem_len=128",
    ],
    16,
    128,
  ),
  (
    "SuperNet, d 256, 8 heads, 32 x 128, memory 256",
    [
      "--flagfile=configs/base_model.flags",
      "--d_model=256",
      "--n_heads=8",
      "--mem_len=256",
    ],
    32,
    128,
  ),
)


def memory_suite(work):
  """--print_config's memory estimate against the measured peak RSS of three training steps,
  less the peak of a process that only starts TensorFlow (the runtime's own share)."""
  _, baseline = _run_case(
    [sys.executable, "-c", "from par import cli; cli.import_tensorflow(); import keras"]
  )
  rows = [("TensorFlow's runtime alone (subtracted below)", f"peak RSS {baseline:,.0f} MiB")]
  for name, model_flags, batch, seq_len in _MEMORY_SHAPES:
    data = work / f"data-{batch}-{seq_len}"
    if not data.is_dir():
      subprocess.run(
        [sys.executable, "scripts/build_data.py", f"--input={_TEXT_DIR.value}"]
        + [f"--output_dir={data}", "--vocab_size=7000", f"--batch_size={batch}"]
        + [f"--seq_len={seq_len}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
      )
    common = [sys.executable, "scripts/train.py", *model_flags, f"--data_dir={data}"]
    printed = subprocess.run(
      common + ["--print_config"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    estimate = json.loads(printed.stdout)["memory_mib_per_replica"]
    run_dir = work / "run"
    _, rss = _run_case(
      common + [f"--model_dir={run_dir}", "--train_steps=3", "--steps_per_loop=1", "--plot_every=0"]
    )
    shutil.rmtree(run_dir)
    measured = rss - baseline
    rows.append(
      (
        name,
        f"estimate {estimate['total']:,.0f} MiB (activations {estimate['activations']:,.0f}); "
        f"measured {rss:,.0f} MiB peak, {measured:,.0f} above the runtime: estimate / measured "
        f"{estimate['total'] / measured:.2f}",
      )
    )
  return rows


def blocks_suite(work):
  """Forward time and FLOPs of attention against feed-forward at three segment lengths."""
  del work
  from par.config import ModelConfig
  from par.search import costs

  rows = []
  for seq_len, mem_len, batch in ((32, 16, 32), (128, 128, 10), (256, 256, 5)):
    config = ModelConfig(d_model=128, n_heads=4, d_ffn=1024, mem_len=mem_len, vocab_size=1000)
    s, f, _ = costs.measure_latency(config, batch, seq_len)
    flops = costs.block_costs(config, seq_len, batch)
    shape = f"{seq_len} + {mem_len}, batch {batch}"
    tokens = batch * seq_len
    rows += [
      (f"{shape}: attention / feed-forward ms", f"{s * 1e3:.2f} / {f * 1e3:.2f}"),
      (f"{shape}: µs per token", f"{s / tokens * 1e6:.2f} / {f / tokens * 1e6:.2f}"),
      (
        f"{shape}: attention ÷ feed-forward in time, in FLOPs",
        f"{s / f:.2f}, {flops['s'].flops / flops['f'].flops:.2f}",
      ),
    ]
  # Transformer-XL base (WikiText-103): d 410, 10 heads of 41, d_inner 2100, 150 + 150,
  # its training batch of 60; forward, and forward with backward (dropout 0.1 on).
  config = ModelConfig(
    d_model=410, n_heads=10, d_ffn=2100, mem_len=150, vocab_size=1000, dropout=0.1
  )
  flops = costs.block_costs(config, 150, 60)
  ratio = flops["s"].flops / flops["f"].flops
  for backward in (False, True):
    s, f, _ = costs.measure_latency(config, 60, 150, repeats=5, backward=backward)
    what = "forward + backward" if backward else "forward"
    rows += [
      (
        f"Transformer-XL base, 150 + 150, batch 60, {what}: attention / feed-forward ms",
        f"{s * 1e3:.0f} / {f * 1e3:.0f}",
      ),
      (
        f"Transformer-XL base, {what}: attention ÷ feed-forward in time, in FLOPs",
        f"{s / f:.2f}, {ratio:.2f}",
      ),
    ]
  rows.append(
    (
      "Transformer-XL base: forward MFLOP per token, attention / feed-forward",
      f"{flops['s'].flops / 1e6:.2f} / {flops['f'].flops / 1e6:.2f}",
    )
  )
  return rows


_SPEED_CASES = (  # name, extra flags of scripts/train.py (base_model.flags first)
  ("soft, d_ffn 1024", ["--sampling=soft"]),
  ("soft, d_ffn 512 (the reference's base_model.sh)", ["--sampling=soft", "--d_ffn=512"]),
  ("single_path, d_ffn 1024", ["--sampling=single_path"]),
  # 16-bit matmuls: the bound is measured in bfloat16 too (AMX on the reference machine).
  ("soft, d_ffn 1024, mixed_bfloat16", ["--sampling=soft", "--mixed_precision=mixed_bfloat16"]),
)


def _bound(data, model_flags):
  """(tokens per step, the step's matmul-bound seconds): its forward matmuls at the model's
  shapes (costs.step_matmuls, the data's tail shares), three times over for the backward
  pass, each at the rate measured for its shape in a subprocess with training's threads."""
  from par.config import ModelConfig
  from par.data import records
  from par.search import costs

  printed = _printed_config("configs/base_model.flags", data, *model_flags)
  model = ModelConfig.from_dict(printed["model"])
  meta = records.load_meta(data)
  shares = _tail_shares(data, model.cutoffs, model.vocab_size)
  products = costs.step_matmuls(
    model,
    model.architecture or None,
    seq_len=meta.seq_len,
    batch_size=meta.batch_size,
    tail_shares=shares,
  )
  shapes = json.dumps({",".join(map(str, key)): count for key, count in products.items()})
  dtype = "bfloat16" if printed["mixed_precision"] == "mixed_bfloat16" else "float32"
  seconds, _ = _run_case(
    [sys.executable, "scripts/benchmark.py", "--suite=bound_case", f"--shapes={shapes}"]
    + [f"--bound_dtype={dtype}"]
  )
  return meta.batch_size * meta.seq_len, seconds["step"]


def bound_case(shapes, dtype="float32"):
  """Prints {"step": seconds}: 3 · Σ count · (time of one product of that shape), each time
  the best of five runs of many products kept in a loop (each adds the loop index, so the
  graph optimiser cannot fold them), two independent chains at once, as training's threads
  run them (one thread per op, one op per core); products in `dtype` (the compute dtype of
  the run's precision policy)."""
  import tensorflow as tf

  cli.configure_threads()
  dtype = tf.as_dtype(dtype)

  unrolled = 4  # products per chain and loop iteration: the loop's own cost spread thin

  @tf.function
  def chains(a, b, c, d, times):
    one, two = tf.zeros([], dtype), tf.zeros([], dtype)
    for i in tf.range(times):
      for j in range(unrolled):
        step = tf.cast(i * unrolled + j, dtype)
        one += tf.reduce_sum(tf.matmul(a + step, b)[..., :1, :1])
        two += tf.reduce_sum(tf.matmul(c + step, d)[..., :1, :1])
    return one + two

  total = 0.0
  for key, count in json.loads(shapes).items():
    m, k, n = map(int, key.split(","))
    batch = [count] if count > 1 and m * k * n < 1 << 18 else []  # small ones batched, as run
    flops = 2 * m * k * n * (batch[0] if batch else 1)
    times = max(4, min(2000, int(2e9 / flops)))
    args = [
      tf.cast(tf.random.normal(batch + shape), dtype) for shape in ([m, k], [k, n], [m, k], [k, n])
    ]
    times = max(1, times // unrolled)
    seconds = _best_seconds(chains, *args, tf.constant(times)) / (2 * unrolled * times)
    total += 3 * seconds * (1 if batch else count)
  print(json.dumps({"step": total}))


def speed_suite(work):
  """Training speed as a share of its matmul bound (`_bound`), for the base SuperNet at two
  feed-forward widths, single_path, mixed_bfloat16 (against a bfloat16 bound), and the fixed
  pattern the soft search derives."""
  from par import runs as run_files

  data = work / "data"
  _run_measured(_build_command(_TEXT_DIR.value, data))
  steps = _TRAIN_STEPS.value
  common = _training_command(data, steps)
  cases = list(_SPEED_CASES)
  rows, speeds = [], {}
  while cases:
    name, extra = cases.pop(0)
    run_dir = work / f"run{len(speeds)}"
    _run_case(common + [f"--model_dir={run_dir}", *extra])
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    speed = speeds[name] = results["train_tokens_per_second"]
    if name == "soft, d_ffn 1024":
      pattern = results["pattern"]
      cases.append((f"fixed {pattern} (the soft search's)", [f"--architecture={pattern}"]))
    if name.startswith("single_path"):
      rows.append((f"train {name}", f"{speed:,.0f} tok/s (its branches are sampled: no bound)"))
      continue
    tokens, seconds = _bound(data, extra)
    bound = tokens / seconds
    rows.append(
      (f"train {name}", f"{speed:,.0f} tok/s; bound {bound:,.0f} tok/s: {speed / bound:.0%}")
    )
  soft = speeds["soft, d_ffn 1024"]
  rows.append(("single_path / soft, same run", f"{speeds['single_path, d_ffn 1024'] / soft:.2f}"))
  bfloat16 = speeds["soft, d_ffn 1024, mixed_bfloat16"]
  rows.append(("mixed_bfloat16 / float32 soft, same run", f"{bfloat16 / soft:.2f}"))
  return rows


def jobs_suite(work, rounds=2):
  """One two-thread training against two one-thread trainings at once (`par-pipeline
  --jobs=2`), alternated `rounds` times: the base SuperNet's tokens/s for the machine."""
  from par import runs as run_files

  data = work / "data"
  _run_measured(_build_command(_TEXT_DIR.value, data))
  common = _training_command(data, _TRAIN_STEPS.value)
  one_thread = ["--inter_op_threads=1", "--intra_op_threads=1"]

  def speed(run_dir):
    return json.loads((run_dir / run_files.RESULTS_FILE).read_text())["train_tokens_per_second"]

  rows, alone, pairs = [], [], []
  for r in range(rounds):
    run_dir = work / f"alone{r}"
    _run_case(common + [f"--model_dir={run_dir}"])
    alone.append(speed(run_dir))
    dirs = [work / f"pair{r}-{k}" for k in range(2)]
    processes = [
      subprocess.Popen(
        common + [f"--model_dir={d}", *one_thread],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
      )
      for d in dirs
    ]
    for process in processes:
      _, stderr = process.communicate()
      if process.returncode:
        raise cli.ParError(f"a one-thread training failed: {stderr.decode().strip()[-300:]}")
    pairs.append(sum(speed(d) for d in dirs))
    rows.append(
      (
        f"round {r + 1}",
        f"one two-thread run {alone[-1]:,.0f} tok/s; two one-thread "
        f"runs at once {pairs[-1]:,.0f} tok/s together",
      )
    )
  rows.append(
    ("two at once / one alone, same run", f"{statistics.mean(pairs) / statistics.mean(alone):.2f}")
  )
  return rows


def _split_of(name):
  """The part of a step an op of the traced graph belongs to, by its name."""
  lowered = name.lower()
  if "gradient" in lowered:
    return "backward"
  if any(word in lowered for word in ("adam", "optimizer", "apply", "assignvariable")):
    return "optimizer"
  if any(word in lowered for word in ("iterator", "dataset", "prefetch")):
    return "input"
  return "forward"


def profile_split(log_dir, steps):
  """(thread-ms a step by split, [(op type, thread-ms a step, calls a step)] by time), from
  the newest trace under log_dir: every op executed on TensorFlow's compute threads."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  traces = sorted(Path(log_dir).glob("plugins/profile/*/*.xplane.pb"))
  if not traces:
    raise cli.ParError(f"{log_dir} holds no profiler trace")
  space = xplane_pb2.XSpace()
  space.ParseFromString(traces[-1].read_bytes())
  split, by_type, calls = {}, {}, {}
  for plane in space.planes:
    meta = plane.event_metadata
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        m = meta[event.metadata_id]
        if m.display_name in ("", "Process"):
          continue
        ms = event.duration_ps / 1e9 / steps
        part = _split_of(m.name)
        split[part] = split.get(part, 0.0) + ms
        by_type[m.display_name] = by_type.get(m.display_name, 0.0) + ms
        calls[m.display_name] = calls.get(m.display_name, 0) + 1 / steps
  ops = sorted(((k, v, calls[k]) for k, v in by_type.items()), key=lambda row: -row[1])
  return split, ops


def profile_suite(work):
  """A TensorBoard profiler trace of --profile_steps steps of the base SuperNet (warmed up
  first), and the step's split and top ops read back from it."""
  from par.config import TrainConfig
  from par.data import records
  from par.train import steps as steps_lib
  from par.train import trainer

  tf = cli.import_tensorflow()
  cli.configure_threads()
  log_dir = Path(_PROFILE_DIR.value)
  if (log_dir / "plugins" / "profile").exists():
    raise cli.ParError(f"{log_dir} already holds a profile: choose another --profile_dir")
  data = Path(_DATA_DIR.value) if _DATA_DIR.value else work / "data"
  if not _DATA_DIR.value:
    _run_measured(_build_command(_TEXT_DIR.value, data))
  settings = _printed_config("configs/base_model.flags", data)
  known = {field.name for field in dataclasses.fields(TrainConfig)}
  config = TrainConfig.from_dict({k: v for k, v in settings.items() if k in known})
  config, meta = trainer.checked_data(config)
  plan = trainer.make_plan(config, meta, 1)
  strategy = tf.distribute.get_strategy()
  model, optimizers, state, loss_scale = trainer._build(config, meta, plan, strategy)
  loop = steps_lib.StepLoop(
    model, optimizers, state, config, plan.total_steps, strategy, loss_scale
  )
  batches = iter(records.load_dataset(str(data), "train").repeat().prefetch(2))
  memory = model.initial_memory(meta.batch_size)
  count = _PROFILE_STEPS.value
  for _ in range(2):  # traces, then warms up
    result = loop.run(batches, memory, tf.constant(count))
    float(result.nll)
    memory = result.memory
  tf.profiler.experimental.start(str(log_dir))
  start = time.perf_counter()
  result = loop.run(batches, memory, tf.constant(count))
  float(result.nll)
  wall = (time.perf_counter() - start) / count * 1e3
  tf.profiler.experimental.stop()
  split, ops = profile_split(log_dir, count)
  busy = sum(split.values())
  rows = [
    ("trace", f"{log_dir} (tensorboard --logdir={log_dir}, Profile tab)"),
    ("step wall time", f"{wall:.1f} ms; {meta.batch_size * meta.seq_len / wall * 1e3:,.0f} tok/s"),
    ("op time on compute threads", f"{busy:.1f} thread-ms a step"),
  ]
  for part in ("forward", "backward", "optimizer", "input"):
    rows.append((f"split: {part}", f"{split.get(part, 0.0):.1f} thread-ms"))
  idle = os.cpu_count() * wall - busy
  rows.append(("split: host, executor and idle", f"{idle:.1f} thread-ms (cores × wall − ops)"))
  for name, ms, calls in ops[:12]:
    rows.append((f"op {name}", f"{ms:.1f} thread-ms, {calls:.0f} calls"))
  return rows


def matmul_case():
  """The machine's matmul rate, and the rate at the base model's feed-forward shape."""
  import tensorflow as tf

  def repeated_matmul(a, b, times):
    """`times` products in one graph; adding the loop index keeps them from being merged."""
    total = tf.zeros([a.shape[0], b.shape[1]])
    for i in tf.range(times):
      total += tf.matmul(a + tf.cast(i, tf.float32), b)
    return total

  rates = {}
  for name, (m, k, n), times in (
    ("square", (2048, 2048, 2048), 10),
    ("ffn_shaped", (1024, 128, 1024), 100),
  ):
    seconds = _best_seconds(
      tf.function(repeated_matmul),
      tf.random.normal([m, k]),
      tf.random.normal([k, n]),
      tf.constant(times),
    )
    rates[name] = times * 2 * m * k * n / seconds
  print(json.dumps(rates))


def eval_case(run_dir):
  """Evaluation tokens/s of a run's SuperNet (argmax, expected) and its derived fixed model."""
  from par import runs
  from par.data import records
  from par.train.evaluate import Evaluator

  cli.configure_threads()
  run = runs.read_run(run_dir)
  data_dir = run.config.data_dir
  meta = records.load_meta(data_dir)
  supernet, _ = runs.load_model(run, "export", eval_mode="argmax")
  expected, _ = runs.load_model(run, "export", eval_mode="expected")
  fixed = supernet.to_fixed()
  evaluators = {}
  for name, model in (
    ("SuperNet, eval_mode argmax", supernet),
    ("SuperNet, eval_mode expected", expected),
    (f"fixed {fixed.pattern}", fixed),
  ):
    evaluators[name] = Evaluator(model, model.config.mem_len)
    evaluators[name](records.load_dataset(data_dir, "valid"), meta.batch_size)  # traces
  # Rounds alternate the models, so that a noisy neighbour slows all of them alike; the
  # best round of each is reported.
  speeds = dict.fromkeys(evaluators, 0.0)
  for _ in range(3):
    for name, evaluator in evaluators.items():
      start = time.perf_counter()
      result = evaluator(records.load_dataset(data_dir, "valid"), meta.batch_size)
      speeds[name] = max(speeds[name], result.tokens / (time.perf_counter() - start))
  print(json.dumps(speeds))


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _SUITE.value not in ("cuts", "scale", "shapes"):  # Which need no TensorFlow here.
    cli.import_tensorflow()
  if _SUITE.value == "matmul_case":
    return matmul_case()
  if _SUITE.value == "eval_case":
    return eval_case(Path(_RUN_DIR.value))
  if _SUITE.value == "bound_case":
    return bound_case(_SHAPES_JSON.value, _BOUND_DTYPE.value)
  with tempfile.TemporaryDirectory() as work:
    suite = {
      "data": data_suite,
      "train": train_suite,
      "cuts": cuts_suite,
      "scale": scale_suite,
      "shapes": shapes_suite,
      "blocks": blocks_suite,
      "memory": memory_suite,
      "speed": speed_suite,
      "jobs": jobs_suite,
      "profile": profile_suite,
    }[_SUITE.value]
    rows = suite(Path(work))
  repeats = (
    f", {_TRAIN_STEPS.value} steps per training case"
    if _SUITE.value == "train"
    else ""
    if _SUITE.value in ("scale", "shapes", "blocks", "profile")
    else f", repeats {_REPEATS.value}"
  )
  print(f"suite {_SUITE.value}, {os.cpu_count()} CPUs{repeats}\n")
  print("| measure | value |\n|---|---|")
  for name, value in rows:
    print(f"| {name} | {value} |")


if __name__ == "__main__":
  cli.run(main)

"""Measures the targets the issues name; prints a markdown table for docs/BENCHMARKS.md.

  python scripts/benchmark.py --suite=data --text_dir=../shared/data/wt2-small

Suite `data` (the dataset build of par/dataset.py):
- build: the whole `scripts/build_data.py` run, tokenizer training and TensorFlow's import
  included, as a fresh process (wall seconds and peak RSS), --repeats times;
- pipeline: in one process, tokenize + context-batch + write (what the build does after
  training the tokenizer) against a bare sentencepiece encode of the same lines, alternated
  --repeats times; the ratio of medians is the figure;
- memory: peak RSS of a build whose train split is the text repeated 2, 8 and 32 times (with
  the tokenizer given, so that only the pipeline grows), and the increment per MiB of text.

Machines here are shared and noisy: compare figures from one run, not across runs.
"""

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

from par import cli

_SUITE = flags.DEFINE_enum("suite", "data", ["data"], "What to measure.")
_TEXT_DIR = flags.DEFINE_string(
    "text_dir", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "wt2-small"),
    "Split files for the data suite.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 7000, "Vocabulary for the data suite.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Repetitions of each timing.")

ROOT = Path(__file__).resolve().parents[1]


def _run_measured(command):
  """Runs a command; returns (wall seconds, peak RSS in MiB) of that process alone."""
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  stderr = process.stderr.read().decode()
  process.stderr.close()
  if os.waitstatus_to_exitcode(status) != 0:
    raise cli.ParError(f"{' '.join(command)} failed: {stderr.strip().splitlines()[-1]}")
  return wall, usage.ru_maxrss / 1024


def _build_command(text, output, *extra):
  return [sys.executable, "scripts/build_data.py", f"--input={text}", f"--output_dir={output}",
          f"--vocab_size={_VOCAB_SIZE.value}", "--overwrite", *extra]


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
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  from par import corpus, records, tokenizer  # pylint: disable=g-import-not-at-top
  from par.config import DataConfig  # pylint: disable=g-import-not-at-top

  text_dir = Path(_TEXT_DIR.value)
  if not text_dir.is_dir():
    raise cli.ParError(f"--text_dir {text_dir} does not exist")
  rows = []

  # 1. The whole build, as a user runs it.
  builds = [_run_measured(_build_command(text_dir, work / "ds")) for _ in range(_REPEATS.value)]
  walls = [w for w, _ in builds]
  rows.append(("whole build, wall s (median; min-max)",
               f"{_median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})"))
  rows.append(("whole build, peak RSS MiB", f"{max(m for _, m in builds):.0f}"))

  # 2. Tokenize + batch + write against a bare sentencepiece encode, same lines, same process.
  config = DataConfig(vocab_size=_VOCAB_SIZE.value)
  texts = [corpus.read_split(p) for p in corpus.find_split_files(text_dir).values()]
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
  rows.append(("bare sentencepiece encode, wall s / CPU s (medians)",
               f"{bare_wall:.3f} / {_median([c for _, c in bare]):.3f}"))
  rows.append(("tokenize + batch + write, wall s / CPU s (medians)",
               f"{ours_wall:.3f} / {_median([c for _, c in ours]):.3f}"))
  rows.append(("wall ratio, same run (target <= 3)", f"{ours_wall / bare_wall:.2f}"))
  rows.append(("tokens/s, tokenize + batch + write", f"{tokens / ours_wall:,.0f}"))

  # 3. Memory against split size, tokenizer given.
  raw = corpus.find_split_files(text_dir)["train"].read_bytes()
  previous = None
  for copies in (2, 8, 32):
    path = work / f"x{copies}.txt"
    path.write_bytes(raw * copies)
    _, rss = _run_measured(_build_command(
        path, work / f"m{copies}", f"--sp_model={work / 'ds' / records.TOKENIZER_FILE}"))
    size = len(raw) * copies / 2**20
    step = "" if previous is None else f", +{(rss - previous[1]) / (size - previous[0]):.0f} MiB per MiB of text"
    rows.append((f"peak RSS, train = {size:.1f} MiB of text", f"{rss:.0f} MiB{step}"))
    previous = (size, rss)
  return rows


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.import_tensorflow()
  with tempfile.TemporaryDirectory() as work:
    rows = data_suite(Path(work))
  print(f"suite {_SUITE.value}, {os.cpu_count()} CPUs, repeats {_REPEATS.value}\n")
  print("| measure | value |\n|---|---|")
  for name, value in rows:
    print(f"| {name} | {value} |")


if __name__ == "__main__":
  cli.run(main)

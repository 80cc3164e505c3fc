"""How the suites measure: a command in a fresh process (wall seconds, peak resident memory,
its last line of JSON), the best of repeated calls, medians, and the commands they time."""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from par.errors import ParError


def command(name, *flags):
  """The command line of a par command (`python -m par <name>`) in a fresh interpreter."""
  return [sys.executable, "-m", "par", name, *map(str, flags)]


def run_measured(line):
  """Runs a command line; returns (wall seconds, peak RSS in MiB) of that process alone."""
  start = time.perf_counter()
  process = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  stderr = process.stderr.read().decode()
  process.stderr.close()
  if os.waitstatus_to_exitcode(status) != 0:
    raise ParError(f"{' '.join(map(str, line))} failed: {_last_line(stderr)}")
  return wall, usage.ru_maxrss / 1024


def run_case(line):
  """Runs a command line; returns (its last stdout line as JSON or None, peak RSS MiB)."""
  process = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
  process.stdout.close()
  process.stderr.close()
  if os.waitstatus_to_exitcode(status) != 0:
    raise ParError(f"{' '.join(map(str, line))} failed: {_last_line(stderr)}")
  lines = stdout.strip().splitlines()
  try:
    value = json.loads(lines[-1]) if lines else None
  except ValueError:
    value = None
  return value, usage.ru_maxrss / 1024


def _last_line(stderr):
  lines = stderr.strip().splitlines()
  return lines[-1] if lines else "(nothing on stderr)"


def build_command(text, output, vocab_size, *extra):
  """par-build-data of `text` into `output` (replaced if there) with a SentencePiece
  vocabulary of `vocab_size`."""
  return command(
    "build_data",
    f"--input={text}",
    f"--output_dir={output}",
    f"--vocab_size={vocab_size}",
    "--overwrite",
    *extra,
  )


def printed_config(data, *flags):
  """The JSON `par-train --print_config` prints for training flags on a dataset."""
  printed = subprocess.run(
    command("train", *flags, f"--data_dir={data}", "--print_config"),
    capture_output=True,
    text=True,
  )
  if printed.returncode != 0:
    raise ParError(f"par-train --print_config failed: {_last_line(printed.stderr)}")
  return json.loads(printed.stdout)


def training_command(data, steps):
  """par-train on base_model.flags for `steps` steps, timed after its first loop call of 50,
  one log line and one checkpoint at the end, no figures."""
  return command(
    "train",
    "--flagfile=configs/base_model.flags",
    f"--data_dir={data}",
    f"--train_steps={steps}",
    "--steps_per_loop=50",
    f"--log_every={steps}",
    f"--checkpoint_every={steps}",
    "--plot_every=0",
  )


def best_seconds(function, *args):
  """The fastest of five calls of a tf.function, after one that traces it."""
  function(*args).numpy()
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    function(*args).numpy()
    best = min(best, time.perf_counter() - start)
  return best


def median(values):
  return statistics.median(values)


def _cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def timed(function):
  """Runs function(); returns (wall seconds, CPU seconds of this process, all threads)."""
  wall, cpu = time.perf_counter(), _cpu_seconds()
  function()
  return time.perf_counter() - wall, _cpu_seconds() - cpu


def tail_shares(data_dir, cutoffs, vocab_size):
  """Share of train targets in each tail cluster of the adaptive softmax."""
  from par.data import records

  counts, _ = records.target_counts(data_dir, "train")
  bounds = list(cutoffs) + [vocab_size]
  return [counts[a:b].sum() / counts.sum() for a, b in zip(bounds[:-1], bounds[1:])]

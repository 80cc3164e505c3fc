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


# Runs the command line after its first argument and writes the command's peak resident
# memory (ru_maxrss as wait4 reports it) and wall seconds to the file descriptor that argument
# names.
_PEAK = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
os.write(int(sys.argv[1]), f"{usage.ru_maxrss} {wall!r}".encode())
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _run(line, stdout):
  """Runs a command line; returns (its stdout or None, its peak RSS in MiB, its wall seconds).

  A child's ru_maxrss starts at least at its parent's peak (Linux keeps a process's high-water
  mark over fork and exec): started from a process that imported TensorFlow, every child
  would measure at least that process's 600 MiB or more. Each command is therefore started by
  a small interpreter of its own (`_PEAK`), whose peak of about 10 MiB is the floor; its pipes
  are read while it runs, so a command's long log cannot fill them and stall it."""
  read, write = os.pipe()
  try:
    process = subprocess.Popen(
      [sys.executable, "-c", _PEAK, str(write), *map(str, line)],
      stdout=stdout,
      stderr=subprocess.PIPE,
      pass_fds=(write,),
    )
  finally:
    os.close(write)
  with os.fdopen(read, "rb") as peak:
    out, err = process.communicate()
    measured = peak.read().decode().split()
  if process.returncode != 0 or not measured:
    raise ParError(f"{' '.join(map(str, line))} failed: {_last_line(err.decode(errors='replace'))}")
  maxrss, wall = int(measured[0]), float(measured[1])
  # ru_maxrss is in KiB on Linux and in bytes on macOS.
  return out, maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024), wall


def run_measured(line):
  """Runs a command line; returns (wall seconds, peak RSS in MiB) of that process alone."""
  _, rss, wall = _run(line, subprocess.DEVNULL)
  return wall, rss


def run_case(line):
  """Runs a command line; returns (its last stdout line as JSON or None, peak RSS MiB)."""
  stdout, rss, _ = _run(line, subprocess.PIPE)
  lines = stdout.decode().strip().splitlines()
  try:
    value = json.loads(lines[-1]) if lines else None
  except ValueError:
    value = None
  return value, rss


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

"""Helpers for tests: synthetic corpora and running the project's scripts."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def counting_lines(num_lines, start=0):
  """Lines of consecutive numbers ("w17 w18 w19"), 0 to 12 words each, some empty.

  Any window of the resulting token stream says where in the text it comes from, so tests
  can check that records reproduce the stream exactly.
  """
  lines, k = [], start
  for i in range(num_lines):
    count = (i * 7) % 13
    lines.append(" ".join(f"w{j}" for j in range(k, k + count)))
    k += count
  return lines


def write_corpus(directory, split_lines, names=None):
  """Writes {split: lines} as directory/{name}; returns the directory."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  for split, lines in split_lines.items():
    name = (names or {}).get(split, f"{split}.txt")
    (directory / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
  return directory


def counting_dataset(root, valid_lines=150, test_lines=120, vocab_size=60, name="ds"):
  """A built dataset of counting text (4 lanes x 8 tokens) under root; returns its directory.

  The text (train 250 lines, valid and test from other number ranges) is written once.
  """
  from par.config import DataConfig
  from par.data.build import build_dataset

  root = Path(root)
  if not (root / "text").is_dir():
    write_corpus(
      root / "text",
      {
        "train": counting_lines(250),
        "valid": counting_lines(valid_lines, 100_000),
        "test": counting_lines(test_lines, 200_000),
      },
    )
  build_dataset(
    root / "text", root / name, DataConfig(vocab_size=vocab_size, batch_size=4, seq_len=8)
  )
  return root / name


def run_script(*args, env=None, timeout=300, **kwargs):
  """Runs a project script or command from the repository root; returns CompletedProcess."""
  full_env = dict(os.environ, **(env or {}))
  command = list(args)
  if command[0].endswith(".py"):
    command = [sys.executable] + command
  return subprocess.run(
    command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, **kwargs
  )


def error_line(result):
  """The single `error: ...` line a failed script printed last; fails on a traceback."""
  assert result.returncode != 0, result.stdout + result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  lines = result.stderr.strip().splitlines()
  errors = [line for line in lines if line.startswith("error: ")]
  assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
  return errors[0]


def training_flags(config):
  """The par-train flags that give `config` (a TrainConfig): one per field of it and of its
  model that differs from the default."""
  import dataclasses

  flags = []
  for values in (config.model, config):
    defaults = type(values)()
    for field in dataclasses.fields(values):
      value = getattr(values, field.name)
      if dataclasses.is_dataclass(value) or value == getattr(defaults, field.name):
        continue
      if isinstance(value, bool):
        flags.append(f"--{'' if value else 'no'}{field.name}")
      elif isinstance(value, tuple):
        flags.append(f"--{field.name}={','.join(map(str, value)) or 'none'}")
      else:
        flags.append(f"--{field.name}={value}")
  return flags


def printed_config(stdout):
  """The TrainConfig `scripts/train.py --print_config` printed (without its counts)."""
  import json

  from par.config import TrainConfig

  value = json.loads(stdout)
  for key in ("parameters", "flops_per_token", "counted_at", "memory_mib_per_replica"):
    value.pop(key, None)
  return TrainConfig.from_dict(value)


def summary_tags(directory):
  """The scalar and image tags of every TensorBoard event file in `directory`."""
  import tensorflow as tf

  tags = set()
  for path in Path(directory).glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      tags.update(value.tag for value in event.summary.value)
  return tags


def read_events(run_dir):
  """Every TensorBoard event file under `run_dir`, read: {run (the file's directory relative
  to run_dir, "." for run_dir itself): [(tag, step, plugin, value), ...]} in file order, one
  entry per summary value; a file with no value adds an empty list for its run."""
  import tensorflow as tf

  events = {}
  for path in sorted(Path(run_dir).rglob("events.out.tfevents.*")):
    run = str(path.parent.relative_to(run_dir))
    values = events.setdefault(run, [])
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        number = None
        if value.HasField("tensor") and value.tensor.dtype == tf.float32.as_datatype_enum:
          array = tf.make_ndarray(value.tensor)
          number = float(array) if array.ndim == 0 else None
        values.append((value.tag, event.step, value.metadata.plugin_data.plugin_name, number))
  return events


def wt2_sample(directory, lines=300):
  """The first `lines` lines of each split of ../shared/data/wt2-small, as a corpus directory:
  real text, small enough that evaluating it takes a second."""
  import pytest

  if not (SHARED_DATA / "wt2-small" / "train.txt").is_file():
    pytest.skip(f"needs the WikiText-2 sample in {SHARED_DATA} (../shared beside the project)")
  directory = Path(directory)
  directory.mkdir(parents=True)
  for split in ("train", "valid"):
    with open(SHARED_DATA / "wt2-small" / f"{split}.txt", encoding="utf-8") as f:
      head = [next(f) for _ in range(lines)]
    (directory / f"{split}.txt").write_text("".join(head), encoding="utf-8")
  return directory


def worker_facts(tag):
  """What a `par.study.jobs` worker is: (tag, its pid, TensorFlow's inter-op and intra-op
  threads)."""
  import os

  import tensorflow as tf

  return (
    tag,
    os.getpid(),
    tf.config.threading.get_inter_op_parallelism_threads(),
    tf.config.threading.get_intra_op_parallelism_threads(),
  )


def fail_with(message):
  """Raises ValueError(message): a job that fails."""
  raise ValueError(message)


fail_with.without_tensorflow = True  # its Ray worker skips TensorFlow's import


def log_twice(tag):
  """Logs one INFO and one WARNING line through absl; returns (tag, its pid)."""
  import os

  from absl import logging

  logging.info("info from %s", tag)
  logging.warning("warning from %s", tag)
  return tag, os.getpid()


def where_am_i(tag):
  """(tag, the Ray node and pid a `par.study.jobs` call ran on, whether its worker imported
  TensorFlow)."""
  import os
  import sys

  import ray

  return tag, ray.get_runtime_context().get_node_id(), os.getpid(), "tensorflow" in sys.modules


where_am_i.without_tensorflow = True  # its Ray worker skips TensorFlow's import


def die_once(path):
  """A call whose worker the test kills: its first run writes its pid to `path` and waits
  to be killed; a run after that finds the file and says it resumed (as a training resumes
  from its checkpoint)."""
  import os
  import time
  from pathlib import Path

  path = Path(path)
  if path.exists():
    return "resumed", int(path.read_text())
  path.write_text(str(os.getpid()))
  time.sleep(120)
  return "never killed", os.getpid()


die_once.without_tensorflow = True  # its Ray worker skips TensorFlow's import


def wait_for_stop(path, seconds=120):
  """A call that stops as a training does: it notes the first SIGINT or SIGTERM
  (`par.signals.StopSignals`), "checkpoints" (appends the signals it got to `path`), and
  raises Interrupted; with no signal within `seconds`, it ends. It writes "started" first;
  run again after its checkpoint, it says it resumed."""
  import time
  from pathlib import Path

  from par import signals

  path = Path(path)
  if path.exists() and "checkpoint" in path.read_text():
    return "resumed"
  path.write_text("started\n")
  with signals.StopSignals("saving a checkpoint, then stopping") as stop:
    deadline = time.monotonic() + seconds
    while stop.received is None and time.monotonic() < deadline:
      time.sleep(0.1)
    if stop.received is None:
      return "never stopped"
    time.sleep(1.0)  # the checkpoint; a second stop in this time would end it at once
    with path.open("a") as f:
      f.write(f"checkpoint after signal {stop.received}\n")
    stop.check()
  return "never stopped"


wait_for_stop.without_tensorflow = True  # its Ray worker skips TensorFlow's import


def with_tests(env):
  """`env` with the tests' directory on PYTHONPATH: Ray's workers import their helpers."""
  return dict(
    env,
    PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")])),
  )

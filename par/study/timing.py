"""Measured time per token of a pipeline's finished runs, in interleaved rounds, kept in
times.json (par/study/workdir.py).

Time per token is measured at the end of a pipeline, in one process, in rounds that each
measure every model in turn (`measure_all`), keeping each model's fastest: training as
compiled forward and backward passes (`costs.measure_train_time`), evaluation as passes over
the valid split. Runs that differ only in their seed are measured once, through the first
of them. A call that finds every run's time in times.json, measured on the same machine in
as many rounds, measures nothing again.
"""

import dataclasses
import json
import time
from pathlib import Path

from absl import logging

from par import runs
from par.data import records
from par.search import costs


def _eval_speed(model, run, split, repeats=2):
  """Evaluation seconds per token of `model` (a run's export) on a split: the fastest of
  `repeats` passes, after an untimed pass that traces."""
  from par.train import evaluate  # TensorFlow: only when something is measured.

  evaluator = evaluate.Evaluator(model, run.eval_mem_len)
  meta = records.load_meta(run.config.data_dir)
  evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)  # Traces.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    result = evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)
    best = min(best, (time.perf_counter() - start) / result.tokens)
  return best


def measure_times(model_dir):
  """(train, eval) seconds per token of a finished run's export, one measurement."""
  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  meta = records.load_meta(run.config.data_dir)
  train = costs.measure_train_time(model, meta.batch_size, meta.seq_len)
  return train, _eval_speed(model, run, "valid")


def measure_all(model_dirs, rounds=3, cache=None):
  """{model_dir: (train, eval) seconds per token}: the fastest of `rounds` measurements,
  each round measuring every run once, in turn.

  On a shared CPU one measurement can be 1.7 times another of the same model (seen here:
  a freshly loaded model sometimes runs slow throughout); interleaved rounds spread such
  spells over all models instead of charging one of them. Runs that differ only in their
  seed have one architecture and one set of shapes, so one time: the first of them is
  measured for all (a study over three seeds measures each pattern once, not three times).

  Args:
    model_dirs: finished runs.
    rounds: measurements of each run.
    cache: a JSON file that keeps what this call measured. When it already holds every run
      of `model_dirs`, measured in at least `rounds` rounds on this machine, those times are
      returned as they are (a finished pipeline run again measures nothing); otherwise every
      run is measured again, so that all times come from the same rounds.
  """
  machine = _machine()
  kept = runs.read_json_cache(cache, "every time") if cache is not None else None
  if kept is not None:
    times = kept.get("times", {})
    if (
      kept.get("machine") == machine
      and kept.get("rounds", 0) >= rounds
      and all(str(d) in times for d in model_dirs)
    ):
      return {d: tuple(times[str(d)]) for d in model_dirs}
  keys = {d: _timing_key(d) for d in model_dirs}
  first = {}  # the run measured for each setting
  for d, key in keys.items():
    first.setdefault(key, d)
  best = {d: (float("inf"), float("inf")) for d in first.values()}
  logging.info(
    "timing %d models (%d settings), %d round%s: forward and backward passes, then valid",
    len(model_dirs),
    len(best),
    rounds,
    "s" * (rounds > 1),
  )
  start = time.perf_counter()
  for r in range(rounds):
    for k, d in enumerate(best):
      done = r * len(best) + k
      left = (time.perf_counter() - start) / done * (rounds * len(best) - done) if done else None
      logging.info(
        "timing %d of %d (round %d of %d): %s%s",
        k + 1,
        len(best),
        r + 1,
        rounds,
        d,
        "" if left is None else f", about {left / 60:.0f} min left",
      )
      train, evaluation = measure_times(d)
      best[d] = (min(best[d][0], train), min(best[d][1], evaluation))
  times = {d: best[first[keys[d]]] for d in model_dirs}
  if cache is not None:
    value = {"machine": machine, "rounds": rounds, "times": {str(d): t for d, t in times.items()}}
    runs.write_json(cache, value)
  return times


def _timing_key(model_dir):
  """What a run's time depends on: its settings but the seed, and its dataset."""
  run = runs.read_run(model_dir)
  settings = dataclasses.replace(run.config, seed=0).to_dict()
  return json.dumps([settings, run.dataset], sort_keys=True)


def _machine():
  """This machine, as far as a time per token depends on it: the processor, the cores
  TensorFlow may use, the host and the versions."""
  import platform

  import tensorflow as tf

  from par import cli

  cpu = platform.processor()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{platform.node()} | {cpu} | {cli.usable_cores()} cores | TensorFlow {tf.__version__}"

"""Independent pieces of work (trainings, rankings) run at once, each process on one core.

A training of the small models this project studies does not keep two cores busy: its
~4,000 ops a step leave one waiting (docs/BENCHMARKS.md). Two trainings in two processes
with one thread each use both, and nothing about a run depends on its thread count (the
tests check it), so `--jobs=2` changes when a run finishes, never what it computes.

`run_all` runs calls in a pool of `jobs` processes, a fresh one per call (TensorFlow's
thread pools are set once per process, and a run's memory goes back to the system when it
ends), started with "spawn" (a fork of a process that has run TensorFlow can deadlock). A
worker prints warnings only; each training's full log stays in its training.log. The first
failure stops the pool: the workers get SIGTERM, on which a training checkpoints and stops
(par/signals.py), so the next call resumes it.
"""

import multiprocessing

from absl import logging


def _start_worker():
  """In each worker before its call: one thread, quiet stderr."""
  import logging as std_logging

  from par import cli

  cli.import_tensorflow()
  cli.configure_threads(1, 1)
  # Outside absl.app.run, absl's records reach stderr through the root logger's handlers
  # (one made here if there is none yet); a training's INFO still goes to its training.log.
  root = std_logging.getLogger()
  if not root.handlers:
    root.addHandler(std_logging.StreamHandler())
  for handler in root.handlers + [logging.get_absl_handler()]:
    handler.setLevel(std_logging.WARNING)


def run_all(calls, jobs=1, names=None):
  """[function(*args) for function, args in calls], in order.

  Args:
    calls: (function, args) pairs; functions and arguments must pickle (module-level
      functions, plain data) when jobs > 1.
    jobs: 1 runs the calls here, one after another; more runs them in that many worker
      processes of one thread each.
    names: what to call each call in the progress lines, if given.

  Raises:
    The first exception a call raises, after the other workers are stopped.
  """
  calls = list(calls)
  names = list(names) if names is not None else [getattr(f, "__name__", "call") for f, _ in calls]
  if jobs <= 1 or len(calls) <= 1:
    return [function(*args) for function, args in calls]
  context = multiprocessing.get_context("spawn")
  pool = context.Pool(min(jobs, len(calls)), initializer=_start_worker, maxtasksperchild=1)
  try:
    pending = [pool.apply_async(function, args) for function, args in calls]
    logging.info("%d jobs, %d at a time, one core each", len(calls), min(jobs, len(calls)))
    results = []
    for k, (result, name) in enumerate(zip(pending, names)):
      results.append(result.get())
      logging.info("job %d of %d done: %s", k + 1, len(calls), name)
    pool.close()
    return results
  except BaseException:
    pool.terminate()
    raise
  finally:
    pool.join()


def fill(results, calls, jobs=1, names=None):
  """`results` with each None replaced by the result of its call (the calls of the others
  are not made): `run_all` over the missing ones. Each is logged as it is queued."""
  missing = [k for k, r in enumerate(results) if r is None]
  names = list(names) if names is not None else [str(k) for k in range(len(calls))]
  for k in missing:
    logging.info("to run: %s", names[k])
  results = list(results)
  for k, result in zip(
    missing, run_all([calls[k] for k in missing], jobs, [names[k] for k in missing])
  ):
    results[k] = result
  return results

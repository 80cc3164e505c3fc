"""Host plumbing of a training run: the log file, the worker-thread call and the progress bar.

None of this touches TensorFlow. The trainer enters `LogFile` and `par.signals.StopSignals`
around the run and makes its long calls through `call`; the reporter (par/train/report.py)
draws the `Progress` bar.
"""

import logging as std_logging
import math
import os
import sys
import threading
import time
from pathlib import Path

from absl import logging

import par

# The project: par/ and scripts/. Only their INFO lines go to the log.
PACKAGE_ROOT = Path(par.__file__).resolve().parents[1]


def only_our_info(record):
  """Keeps warnings and errors from everyone, INFO only from par and its scripts.

  Libraries that log through absl (TensorFlow's checkpoint saver, matplotlib's GIF writer)
  would otherwise fill the log with a line per save.
  """
  if record.levelno >= std_logging.WARNING:
    return True
  path = Path(record.pathname).resolve()
  return PACKAGE_ROOT in path.parents


class _FileHandler(std_logging.FileHandler):
  """A log file that, once it cannot be written (a full disk), stops with one warning instead
  of printing logging's traceback for every record."""

  failed = False

  def emit(self, record):
    if not self.failed:
      super().emit(record)

  def handleError(self, record):
    del record
    if not self.failed:
      self.failed = True
      os.write(
        2, f"warning: cannot write {self.baseFilename}; the log goes on on stderr only\n".encode()
      )


class LogFile:
  """Copies absl logging to model_dir/training.log while training runs."""

  def __init__(self, path):
    self.handler = _FileHandler(path)
    self.handler.setFormatter(logging.PythonFormatter())

  def __enter__(self):
    # Outside absl.app.run the verbosity is WARNING; the log is meant to hold INFO.
    self.verbosity = logging.get_verbosity()
    logging.set_verbosity(max(self.verbosity, logging.INFO))
    logging.get_absl_logger().addHandler(self.handler)
    self.handler.addFilter(only_our_info)
    logging.get_absl_handler().addFilter(only_our_info)
    return self

  def __exit__(self, *exc):
    logging.get_absl_handler().removeFilter(only_our_info)
    logging.get_absl_logger().removeHandler(self.handler)
    logging.set_verbosity(self.verbosity)
    self.handler.close()


def call(function, *args):
  """`function(*args)` on a worker thread, the main thread waiting for it in Python.

  A lock wait is interruptible on POSIX, so signal handlers run at once while `function`
  spends minutes inside TensorFlow. Its exceptions are re-raised here.
  """
  outcome = {}

  def work():
    try:
      outcome["value"] = function(*args)
    except BaseException as e:
      outcome["error"] = e

  worker = threading.Thread(target=work, daemon=True)
  worker.start()
  while worker.is_alive():
    worker.join(0.5)
  if "error" in outcome:
    raise outcome["error"]
  return outcome.get("value")


class Progress:
  """A one-line progress bar with ETA and tokens/s when stderr is a terminal."""

  def __init__(self, total_steps, start_step, enabled=True):
    self.total = total_steps
    self.start_step = start_step
    self.start = time.perf_counter()
    self.enabled = enabled and sys.stderr.isatty()

  def update(self, step, tokens_per_second, loss):
    if not self.enabled:
      return
    elapsed = time.perf_counter() - self.start
    done = step - self.start_step
    eta = elapsed / done * (self.total - step) if done else float("nan")
    width = 24
    filled = int(width * step / self.total)
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
    speed = "–" if tokens_per_second is None else f"{tokens_per_second:,.0f}"  # None: tracing
    sys.stderr.write(
      f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
      f"loss {loss:.3f} | {speed} tok/s | ETA {eta_text} "
    )
    sys.stderr.flush()

  def close(self):
    if self.enabled:
      sys.stderr.write("\n")

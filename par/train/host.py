"""Host plumbing of a training run: the log file, the stop signals and the progress bar.

None of this touches TensorFlow. The trainer enters `LogFile` and `StopSignals` around the
run; the reporter (par/train/report.py) draws the `Progress` bar.
"""

import logging as std_logging
import math
import os
import signal
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


class StopSignals:
  """SIGINT and SIGTERM ask the run to save and stop; a second one stops at once.

  The first is acknowledged at once, as long as the main thread waits in Python (see
  `call`) rather than inside TensorFlow: Python runs signal handlers only between the main
  thread's bytecodes. It sets `received` and runs the `on_stop` callbacks in a new thread,
  where they may call TensorFlow (from the handler itself, an op could land in whatever graph
  the main thread is tracing). The second ends the process at once (`os._exit`), as safe as
  SIGKILL: files are written whole or not at all.

  Args:
    on_stop: callables run (in a new thread) when the first signal arrives.
  """

  def __init__(self, on_stop=()):
    self.received = None
    self.on_stop = list(on_stop)
    self._previous = {}

  def _handle(self, signum, frame):
    # Python runs this between two bytecodes of the main thread, which may be inside a log
    # handler's flush: logging from here re-enters that stream ("reentrant call" errors).
    # The loop logs when it sees `received`; the user gets an unbuffered line now.
    del frame
    if self.received is not None:
      os.write(2, f"signal {signum} again: stopping now\n".encode())
      os._exit(128 + signum)
    self.received = signum
    os.write(
      2, f"signal {signum}: saving a checkpoint, then stopping (again to stop now)\n".encode()
    )
    for callback in self.on_stop:
      threading.Thread(target=callback, daemon=True).start()

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


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
    sys.stderr.write(
      f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
      f"loss {loss:.3f} | {tokens_per_second:,.0f} tok/s | ETA {eta_text} "
    )
    sys.stderr.flush()

  def close(self):
    if self.enabled:
      sys.stderr.write("\n")

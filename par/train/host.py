"""Host plumbing of a training run: the log file, the worker-thread call and the status line.

None of this touches TensorFlow. The trainer enters `LogFile` and `par.signals.StopSignals`
around the run and makes its long calls through `call`; the reporter (par/train/report.py)
keeps the terminal's `StatusLine`.
"""

import logging as std_logging
import os
import sys
import threading
from pathlib import Path

from absl import logging

import par
from par import signals

# Ours: the par package, and in a checkout its scripts/ beside it (an installed par has none:
# there its parent is site-packages, every library's, whose INFO lines must stay out).
PACKAGE_DIR = Path(par.__file__).resolve().parent
_SCRIPTS = PACKAGE_DIR.parent / "scripts"
OURS = (PACKAGE_DIR,) + ((_SCRIPTS,) if (_SCRIPTS / "train.py").is_file() else ())


def only_our_info(record):
  """Keeps warnings and errors from everyone, INFO only from par and its scripts.

  Libraries that log through absl (TensorFlow's checkpoint saver, matplotlib's GIF writer)
  would otherwise fill the log with a line per save.
  """
  if record.levelno >= std_logging.WARNING:
    return True
  parents = Path(record.pathname).resolve().parents
  return any(ours in parents for ours in OURS)


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
      signals.write_stderr(
        f"warning: cannot write {self.baseFilename}; the log goes on on stderr only\n"
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


def clock(seconds):
  """h:mm:ss."""
  seconds = round(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StatusLine:
  """A status line at the bottom of a terminal, redrawn in place between loop calls.

  Log records never share its line: while it is shown, absl's stream is wrapped so that each
  record first erases the line, is written, and the line is drawn again below it. A pseudo-
  terminal test holds this (tests/test_train.py). Off when stderr is not a terminal (a file,
  a pipe, CI): the log lines carry the same numbers.

  Chosen over a tqdm bar: tqdm's logging redirect replaces stream handlers, and absl's is not
  one (it wraps one), and the ETA and throughput belong in the log too, for files and TensorBoard.
  """

  def __init__(self, enabled=True):
    self.enabled = enabled and sys.stderr.isatty()
    self.text = ""
    self.shown = False

  def __enter__(self):
    if self.enabled:
      self.handler = logging.get_absl_handler().python_handler
      self.stream = self.handler.stream
      self.handler.stream = _AroundStatus(self.stream, self)
    return self

  def __exit__(self, *exc):
    if self.enabled:
      self.erase()
      self.handler.stream = self.stream

  def update(self, text):
    """Shows `text` as the status line."""
    if self.enabled:
      self.text = text
      self.erase()
      self.draw()

  def erase(self):
    if self.shown:
      self.stream.write("\r\x1b[K")
      self.shown = False

  def draw(self):
    if self.text:
      self.stream.write(fit(self.text, _columns(self.stream)))
      self.stream.flush()
      self.shown = True


def _columns(stream):
  """The width of the terminal `stream` writes to (80 if it cannot say)."""
  try:
    return os.get_terminal_size(stream.fileno()).columns or 80
  except (OSError, ValueError, AttributeError):
    return 80


def fit(text, columns):
  """The status line within `columns - 1` characters, so that it never wraps (a wrapped line
  is not erased by the next redraw, and floods a narrow terminal): without its bar first,
  then cut."""
  limit = max(columns - 1, 1)
  if len(text) <= limit:
    return text
  if text.startswith("[") and "] " in text:
    text = text[text.index("] ") + 2 :]
  return text[:limit]


class _AroundStatus:
  """A stream whose every write of whole lines happens with the status line out of the way."""

  def __init__(self, stream, status):
    self._stream, self._status = stream, status

  def write(self, text):
    self._status.erase()
    self._stream.write(text)
    if text.endswith("\n"):
      self._status.draw()

  def __getattr__(self, name):  # flush, isatty, fileno, ...
    return getattr(self._stream, name)

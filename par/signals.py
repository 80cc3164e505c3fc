"""Ctrl-C and SIGTERM held until the program reaches a safe point.

A Python signal handler runs between two bytecodes of the main thread, wherever that is:
inside TensorFlow's Python code, a log handler's flush or a half-built tf.function. An
exception raised from there (KeyboardInterrupt) can leave TensorFlow's state half-changed. So
work that runs long (training, generation) notes the first signal, stops at its next safe
point (a loop boundary, a generated token) and raises `Interrupted` itself; the second signal
ends the process at once (`os._exit`), as safe as SIGKILL: our files are written whole or not
at all.
"""

import contextlib
import os
import signal
import threading

from par.errors import Interrupted


class StopSignals:
  """Notes SIGINT and SIGTERM inside a `with` block; a second one stops at once.

  The first is acknowledged with one line at once (as long as the main thread waits in Python
  rather than inside TensorFlow; see par/train/host.py `call`), sets `received` and runs the
  `on_stop` callbacks in a new thread, where they may call TensorFlow (from the handler itself,
  an op could land in whatever graph the main thread is tracing).

  Args:
    announce: what the first signal's line says will happen, e.g. "stopping".
    on_stop: callables run (in a new thread) when the first signal arrives.
  """

  def __init__(self, announce="stopping", on_stop=()):
    self.announce = announce
    self.received = None
    self.on_stop = list(on_stop)
    self._previous = {}

  def check(self):
    """Raises `Interrupted` if a signal came: call it at the safe points."""
    if self.received is not None:
      raise Interrupted(self.received)

  def _handle(self, signum, frame):
    # Python runs this between two bytecodes of the main thread, which may be inside a log
    # handler's flush: logging from here re-enters that stream ("reentrant call" errors).
    # The loop logs when it sees `received`; the user gets an unbuffered line now.
    del frame
    if self.received is not None:
      write_stderr(f"signal {signum} again: stopping now\n")
      os._exit(128 + signum)
    self.received = signum
    write_stderr(f"signal {signum}: {self.announce} (again to stop now)\n")
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


def write_stderr(line):
  """Writes `line` to descriptor 2 unbuffered (safe in a signal handler). A closed stderr
  (`2>&1 | tee log`, and the Ctrl-C that stopped us stopped tee too) is pointed at /dev/null
  rather than ending the program before it saves."""
  try:
    os.write(2, line.encode())
  except OSError:  # BrokenPipeError, or a closed descriptor
    to_devnull(2)


def to_devnull(descriptor):
  """Points a descriptor whose reader has gone at /dev/null: later writes succeed, unread."""
  with contextlib.suppress(OSError):
    os.dup2(os.open(os.devnull, os.O_WRONLY), descriptor)


@contextlib.contextmanager
def held():
  """Holds SIGINT and SIGTERM until the end of the block, then delivers the first that came
  (its handler runs then). For the few steps that must not be cut in two, such as creating a
  temporary directory and recording its name. Python-level, not a signal mask: a process's
  signal may reach any of its threads, but Python runs handlers in the main thread only, and
  only the main thread can change them (elsewhere this holds nothing)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  pending = []
  previous = {
    signum: signal.signal(signum, lambda received, frame: pending.append(received))
    for signum in (signal.SIGINT, signal.SIGTERM)
  }
  try:
    yield
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if pending:
      signal.raise_signal(pending[0])

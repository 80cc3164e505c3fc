"""One process at a time on a run directory, a dataset's output and a pipeline's work.

Two trainings started on one fresh `--model_dir` (a second terminal, a scheduler's retry)
would both run to the end, write over each other's checkpoints and results and interleave
their logs; the first's printed result would have nothing behind it. Each of these places is
held by a lock for the life of the work on it: a second process is refused at once, in one
line naming the holder's pid.

The lock is `flock` on a small file (the place's `.lock`, or `.<name>.lock` beside a place
that does not exist yet), holding the pid for that message. The kernel drops it when its
process ends, however it ends, so a lock left by a killed process never blocks. The file is
removed when the work ends; a process that opened it just before is told to try again by
the file's identity, so two processes can never both believe they hold it.
"""

import contextlib
import fcntl
import os
import time
from pathlib import Path

from par import errors
from par.errors import ParError


def beside(path):
  """The lock file of a place that may not exist yet: `.<name>.lock` in its parent."""
  path = Path(path)
  return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def hold(lock_file, place, what):
  """Holds `lock_file` inside the block for `place` (named in a failure to write it); `what`
  names it in the refusal.

  Raises:
    ParError: another process holds it (naming its pid), or the file cannot be made.
  """
  lock_file = Path(lock_file)
  created = [p for p in (lock_file.parent, *lock_file.parent.parents) if not p.exists()]
  try:
    descriptor = _acquire(lock_file, place, what)
  except BaseException:
    _remove_empty(created)
    raise
  try:
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    yield
  finally:
    with contextlib.suppress(OSError):
      lock_file.unlink()  # While still held: a newcomer then retries on a file of its own.
    os.close(descriptor)
    _remove_empty(created)  # Directories made for the lock and left empty: no trace.


def _remove_empty(directories):
  for directory in directories:
    with contextlib.suppress(OSError):
      directory.rmdir()


def _acquire(lock_file, place, what):
  while True:
    with errors.writing(place):
      lock_file.parent.mkdir(parents=True, exist_ok=True)
      if lock_file.is_symlink() or (lock_file.exists() and not lock_file.is_file()):
        raise ParError(
          f"{lock_file} is not a lock file par made (a "
          f"{'symbolic link' if lock_file.is_symlink() else 'directory or special file'}): "
          "remove it if no par process is running there"
        )
      # O_NOFOLLOW: a link put there in between is refused, its target never truncated.
      descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(descriptor)
      os.close(descriptor)
      raise ParError(
        f"{what} is in use by another process ({holder}); wait for it to end or stop it, or "
        "choose another place"
      ) from None
    try:  # Still the file at that name, not one its holder removed as we opened it?
      if os.stat(lock_file).st_ino == os.fstat(descriptor).st_ino:
        return descriptor
    except FileNotFoundError:
      pass
    os.close(descriptor)


def _holder(descriptor):
  """The holder's pid as written in the file (it writes it just after locking)."""
  for _ in range(20):
    try:
      pid = os.pread(descriptor, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
      pid = ""
    if pid.isdigit():
      return f"pid {pid}"
    time.sleep(0.01)
  return "pid unknown"

"""The one exception type that users see.

A `ParError` means bad input or a bad setting, not a bug: its message is a single line that
names the problem and, where there is one, the fix. Scripts print it as `error: <message>` and
exit with status 1, without a traceback.
"""

import contextlib


class ParError(Exception):
  """Bad input or settings, explained in one line."""


class DamagedFile(ParError):
  """A file this tool wrote that no longer reads as it wrote it (truncated, edited, another
  program's): what can be computed again is, the rest names the file in one line."""


class Interrupted(BaseException):
  """The user stopped the program with a signal; everything worth keeping was saved.

  A BaseException, like KeyboardInterrupt, so that `except Exception` does not swallow it.
  """

  def __init__(self, signum):
    super().__init__(f"stopped by signal {signum}")
    self.signum = signum


_CANNOT_WRITE = {"EACCES", "EPERM", "EROFS"}
_FULL = {"ENOSPC", "EDQUOT"}
_IN_THE_WAY = {"EEXIST", "ENOTDIR"}


def explain_write_error(error, path=None):
  """One line (what, where, what to do) for a failure to write a file, or None if `error` is
  not one: a read-only or forbidden place, a full disk, or a file where a directory must go.

  Args:
    error: Python's OSError or one of TensorFlow's errors (whose messages name the cause).
    path: what was being written, as the user knows it; else the file the error names.
  """
  import errno as errno_lib
  import re

  if isinstance(error, OSError) and error.errno is not None:
    code = errno_lib.errorcode.get(error.errno, "")
    path = path or error.filename or "a file"
  elif type(error).__module__.startswith("tensorflow") and hasattr(error, "error_code"):
    message = str(error)
    code = next(
      (
        name
        for name, text in (
          ("ENOSPC", "No space left on device"),
          ("EROFS", "Read-only file system"),
          ("EACCES", "Permission denied"),
          ("ENOTDIR", "Not a directory"),
        )
        if text in message
      ),
      "",
    )
    found = re.search(r"(/(?:[\w.+-]+/)+[\w.+-]+)", message)  # A path, not /job:localhost.
    path = path or (found[1] if found else "a file")
  else:
    return None
  if code in _CANNOT_WRITE:
    return (
      f"cannot write {path}: the place is read-only or not yours; choose a writable "
      "directory (or make this one writable) and run again"
    )
  if code in _FULL:
    return (
      f"no space left on the device while writing {path}; free some space (or choose "
      "another disk) and run again: what was saved before is intact"
    )
  if code in _IN_THE_WAY:
    return f"{path}: a file stands where a directory is needed; choose another path"
  return None


@contextlib.contextmanager
def writing(path):
  """Inside the block, a failure to write becomes a ParError naming `path` (see above)."""
  try:
    yield
  except Exception as e:
    message = explain_write_error(e, path)
    if message is None:
      raise
    raise ParError(message) from None

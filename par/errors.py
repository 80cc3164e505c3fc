"""The one exception type that users see.

A `ParError` means bad input or a bad setting, not a bug: its message is a single line that
names the problem and, where there is one, the fix. Scripts print it as `error: <message>` and
exit with status 1, without a traceback.
"""


class ParError(Exception):
  """Bad input or settings, explained in one line."""


class Interrupted(BaseException):
  """The user stopped the program with a signal; everything worth keeping was saved.

  A BaseException, like KeyboardInterrupt, so that `except Exception` does not swallow it.
  """

  def __init__(self, signum):
    super().__init__(f"stopped by signal {signum}")
    self.signum = signum

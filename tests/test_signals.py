"""par.signals.held: SIGINT and SIGTERM wait for the end of the block, then arrive."""

import os
import signal

import pytest

from par import signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_the_block_arrives_after_it(signum):
  received = []
  previous = signal.signal(signum, lambda s, frame: received.append(s))
  try:
    with signals.held():
      os.kill(os.getpid(), signum)
      for _ in range(1000):  # Bytecodes at which an unblocked handler would have run.
        pass
      assert received == []
    for _ in range(1000):
      pass
    assert received == [signum]
    # The mask is restored: a signal now arrives at once.
    os.kill(os.getpid(), signum)
    for _ in range(1000):
      pass
    assert received == [signum, signum]
  finally:
    signal.signal(signum, previous)

"""Shared fixtures: the ../shared data and a synthetic counting corpus."""

import pytest

from helpers import SHARED_DATA, counting_lines, write_corpus
from par import cli

cli.import_tensorflow()  # Once, quietly, before any test module imports it loudly.


def pytest_sessionfinish(session, exitstatus):
  # A run that selects no test (pytest's status 5, e.g. `-m slow` on a machine without the
  # data) is not a failure.
  if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
    session.exitstatus = pytest.ExitCode.OK


@pytest.fixture
def wt2_small():
  path = SHARED_DATA / "wt2-small"
  if not (path / "train.txt").is_file():
    pytest.skip(f"needs the WikiText-2 sample at {path} (../shared beside the project)")
  return path


@pytest.fixture
def counting_corpus(tmp_path):
  """train / valid / test of different lengths, so that mis-wired splits show."""
  return write_corpus(tmp_path / "text", {
      "train": counting_lines(1500),
      "valid": counting_lines(400, start=100_000),
      "test": counting_lines(300, start=200_000),
  })

"""Shared fixtures: the ../shared data and a synthetic counting corpus."""

import os

import pytest

from helpers import SHARED_DATA
from helpers import counting_lines
from helpers import write_corpus
from par import cli

# A script a test runs that crashes in native code (SIGSEGV, SIGABRT) prints its Python stack.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")
cli.import_tensorflow()  # Once, quietly, before any test module imports it loudly.
if os.environ.get("PYTEST_XDIST_WORKER"):
  # Two workers share the two cores: one op at a time each, one thread per op, as the
  # commands run on a CPU (cli.configure_threads), so the workers do not fight over cores.
  cli.configure_threads(inter_op=1, intra_op=1)
  # Each worker on a core of its own, with the scripts it starts (they inherit the affinity,
  # and their auto thread pools follow it: cli.usable_cores): no two processes' threads
  # contend for one core, and each keeps its caches.
  cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
  if 1 < int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) <= len(cores):
    index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    os.sched_setaffinity(0, {cores[index % len(cores)]})


def pytest_addoption(parser):
  parser.addoption(
    "--slow",
    action="store_true",
    help="also run the tests marked slow (subprocess runs, kill-and-resume, "
    "several workers, the notebook); .ci/run does",
  )


def pytest_collection_modifyitems(config, items):
  if config.getoption("--slow"):
    # The slow tests first (a stable sort, so each group keeps its order): xdist hands tests
    # out one at a time as workers free up (setup.cfg: --maxschedchunk 1), so the last minutes
    # go to short tests rather than to one worker finishing a pipeline while the other waits
    # (seen: 2 minutes of one idle core at the end of a 14-minute run).
    items.sort(key=lambda item: "slow" not in item.keywords)
    return
  fast = [item for item in items if "slow" not in item.keywords]
  if len(fast) < len(items):
    config.hook.pytest_deselected(items=[item for item in items if "slow" in item.keywords])
    items[:] = fast


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
  return write_corpus(
    tmp_path / "text",
    {
      "train": counting_lines(1500),
      "valid": counting_lines(400, start=100_000),
      "test": counting_lines(300, start=200_000),
    },
  )

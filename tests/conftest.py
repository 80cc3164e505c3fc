"""Shared fixtures: the ../shared data and a synthetic counting corpus."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT
from helpers import SHARED_DATA
from helpers import counting_lines
from helpers import run_script
from helpers import with_tests
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


# Session fixtures that train or build something slow, by the test module that defines them:
# the tests that use one run on the same worker (setup.cfg's --dist loadgroup), so that it is
# made once rather than once per worker. A test joins the group of the first it uses (a
# fixture listed after another it depends on shares that one's group).
SHARED_FIXTURES = {
  "*": ("readme_sample", "tiny_sample_run"),  # this file's, used by several modules
  "test_distribute.py": ("float32_run",),
  "test_faults.py": ("finished_run", "long_epochs"),
  "test_inference.py": ("run_dir",),
  "test_pipeline.py": ("study",),
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
  for item in items:
    shared = [(item.path.stem, name) for name in SHARED_FIXTURES.get(item.path.name, ())]
    shared += [("conftest", name) for name in SHARED_FIXTURES["*"]]
    used = [(where, name) for where, name in shared if name in getattr(item, "fixturenames", ())]
    if used:
      item.add_marker(pytest.mark.xdist_group(":".join(used[0])))
  if config.getoption("--slow"):
    # The slow tests first (a stable sort, so each group keeps its order): xdist hands out
    # the groups above first, then single tests in this order as workers free up, so the last
    # minutes go to short tests rather than to one worker finishing a pipeline while the
    # other waits (seen: 2 minutes of one idle core at the end of a 14-minute run).
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


@pytest.fixture(scope="session")
def wt2_small():
  path = SHARED_DATA / "wt2-small"
  if not (path / "train.txt").is_file():
    pytest.skip(f"needs the WikiText-2 sample at {path} (../shared beside the project)")
  return path


@pytest.fixture(scope="session")
def readme_sample(tmp_path_factory, wt2_small):
  """The README's offline command on the WikiText-2 sample, run as the README gives it (first
  without --vocab_size, which the sample is too small for): (the README's vocabulary, the
  refused run, the dataset the README's run built)."""
  readme = (ROOT / "README.md").read_text()
  command = re.search(
    r"\./create_tfrecords\.sh --source=\.\./shared/data/wt2-small --vocab_size=(\d+)", readme
  )
  assert command, "the README no longer gives the sample's command"
  data_dir = tmp_path_factory.mktemp("readme")
  refused = run_script("./create_tfrecords.sh", f"--data_dir={data_dir}", f"--source={wt2_small}")
  built = run_script(
    "./create_tfrecords.sh",
    f"--data_dir={data_dir}",
    f"--source={wt2_small}",
    f"--vocab_size={command[1]}",
  )
  assert built.returncode == 0, built.stderr[-2000:]
  (dataset,) = data_dir.glob("*_bsz*_seqlen*")
  return int(command[1]), refused, dataset


@pytest.fixture(scope="session")
def tiny_sample_run(tmp_path_factory, readme_sample):
  """configs/tiny.flags trained as its comment says, on the README's build of the sample:
  the run whose promised result tests/test_configs.py checks, and the notebook's."""
  run_dir = tmp_path_factory.mktemp("tiny") / "run"
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/tiny.flags",
    f"--model_dir={run_dir}",
    f"--data_dir={readme_sample[2]}",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return run_dir


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


def _ray(*args, env=None):
  return subprocess.run(
    ["ray", *args], capture_output=True, text=True, timeout=180, env=env, check=False
  )


@pytest.fixture(scope="session")
def ray_cluster():
  """A Ray cluster of a head and a second node on 127.0.0.1, one CPU each; its address.
  Stopped at the end."""
  running = _raylets()
  if running:
    # A cluster (`ray start`) or an instance a program started (a study's `--jobs=2`):
    # `ray stop` ends every Ray process of the user, theirs too.
    pytest.skip(f"Ray runs here (raylet pid {running[0]}): `ray stop` would end it")
  port = 6390 + os.getpid() % 200
  # Ray 2.59 and later start a head with token authentication (its token in
  # ~/.ray/auth_token): every node and every driver must then say so.
  env = dict(with_tests(os.environ), RAY_AUTH_MODE="token")

  def start(*where):  # a node of one CPU on 127.0.0.1
    return _ray("start", *where, "--node-ip-address=127.0.0.1", "--num-cpus=1", env=env)

  head = start("--head", f"--port={port}", "--include-dashboard=false")
  assert head.returncode == 0, head.stderr[-2000:]
  try:
    node = start(f"--address=127.0.0.1:{port}")
    assert node.returncode == 0, node.stderr[-2000:]
    yield f"127.0.0.1:{port}"
  finally:
    import ray

    ray.shutdown()
    _ray("stop", "--force", env=env)


def _raylets():
  """The pids of this user's running raylets (one per Ray node), from /proc (Linux)."""
  found = []
  for entry in Path("/proc").glob("[0-9]*"):
    try:
      if (entry / "comm").read_text().strip() == "raylet" and entry.stat().st_uid == os.getuid():
        found.append(int(entry.name))
    except OSError:  # ended meanwhile
      continue
  return found

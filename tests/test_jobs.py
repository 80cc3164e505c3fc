"""par.study.jobs: a study's calls here, on a Ray instance of this machine, and on a Ray
cluster of two nodes started on 127.0.0.1; results in order, failures in one line each,
dead workers run again, a stop delivered once to every call."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import die_once
from helpers import fail_with
from helpers import log_twice
from helpers import wait_for_stop
from helpers import where_am_i
from helpers import with_tests
from helpers import worker_facts
from par.errors import ParError
from par.study import jobs


def test_one_job_runs_here_in_order():
  assert jobs.run_all([(worker_facts, ("a",)), (worker_facts, ("b",))], jobs=1)[1][:2] == (
    "b",
    os.getpid(),
  )
  assert jobs.run_all([], jobs=2) == []


def test_an_engine_refuses_impossible_resources():
  for settings, message in (
    (dict(jobs=0), "--jobs must be at least 1, got 0"),
    (dict(job_cpus=0), "--job_cpus must be at least 1"),
    (dict(job_gpus=-1), "--job_gpus and --job_retries 0 or more"),
    (dict(retries=-1), "--job_gpus and --job_retries 0 or more"),
  ):
    with pytest.raises(ParError, match=message):
      jobs.Engine(**settings)
  assert jobs.Engine().here and not jobs.Engine(jobs=2).here
  assert not jobs.Engine(address="auto").here


def test_progress_says_what_is_done_running_and_left():
  progress = jobs._Progress(total=5, slots=2)
  progress.add(60.0, pending=4)
  assert str(progress) == "1 of 5 done, 2 running, about 2 min left"
  progress.add(None, pending=3)
  assert str(progress) == "2 of 5 done (1 failed), 2 running, about 2 min left"
  progress.add(180.0, pending=0)
  assert str(progress) == "3 of 5 done (1 failed), 0 running"


@pytest.fixture(params=["local", "cluster"])
def engine(request, monkeypatch):
  """The two backends: Ray started here for two calls at once, and the cluster."""
  monkeypatch.setenv("PYTHONPATH", with_tests(os.environ)["PYTHONPATH"])
  if request.param == "local":
    return jobs.Engine(jobs=2, retries=1)
  address = request.getfixturevalue("ray_cluster")
  monkeypatch.setenv("RAY_AUTH_MODE", "token")
  return jobs.Engine(address=address, retries=1)


def _errors(monkeypatch):
  said = []
  monkeypatch.setattr(jobs.logging, "error", lambda *a: said.append(a[0] % a[1:]))
  return said


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_calls_are_fresh_one_thread_processes_and_failures_are_one_line_each(monkeypatch):
  monkeypatch.setenv("PYTHONPATH", with_tests(os.environ)["PYTHONPATH"])
  engine = jobs.Engine(jobs=2, retries=1)
  said = _errors(monkeypatch)
  calls = [(worker_facts, (tag,)) for tag in "ab"] + [(log_twice, ("x",))]
  results = jobs.run_all(calls, engine)
  assert [r[0] for r in results] == ["a", "b", "x"]
  pids = [r[1] for r in results]
  assert os.getpid() not in pids and len(set(pids)) == 3  # a fresh process per call
  assert all(r[2:] == (1, 1) for r in results[:2])  # one inter-op and one intra-op thread
  # A failure is one line naming the call; the others finish; then one error for all.
  calls = [(worker_facts, ("a",)), (fail_with, ("the second job failed",))]
  with pytest.raises(ParError, match=r"1 of 2 jobs failed: second \(each said why above"):
    jobs.run_all(calls, engine, names=["first", "second"])
  assert said == ["failed: second: ValueError: the second job failed"]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_cluster_of_two_nodes_runs_calls_on_both(ray_cluster, monkeypatch):
  monkeypatch.setenv("RAY_AUTH_MODE", "token")
  results = jobs.run_all([(where_am_i, (k,)) for k in range(4)], jobs.Engine(address=ray_cluster))
  assert [r[0] for r in results] == list(range(4))
  assert len({r[1] for r in results}) == 2  # both nodes ran calls
  assert len({r[2] for r in results}) == 4  # each in a fresh process
  assert not any(r[3] for r in results)  # a call without TensorFlow: its worker skips it


def _kill_when_started(path):
  deadline = time.monotonic() + 120
  while not path.exists() and time.monotonic() < deadline:
    time.sleep(0.1)
  os.kill(int(path.read_text()), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_killed_worker_runs_again_or_is_reported_never_hangs(
  engine, tmp_path, monkeypatch, capfd
):
  # SIGKILL (the out-of-memory killer's) hung the multiprocessing pool forever.
  said = _errors(monkeypatch)
  marker = tmp_path / "pid"
  killer = threading.Thread(target=_kill_when_started, args=(marker,))
  killer.start()
  started = time.monotonic()
  (result,) = jobs.run_all([(die_once, (str(marker),))], engine, names=["run a"])
  killer.join()
  assert result[0] == "resumed" and time.monotonic() - started < 120
  if engine.address:  # the rest is the engine's, the same on both backends
    return
  # With no run left, the death is one line naming the run, and the study ends non-zero.
  marker.unlink()
  killer = threading.Thread(target=_kill_when_started, args=(marker,))
  killer.start()
  with pytest.raises(ParError, match="1 of 1 jobs failed: run b"):
    jobs.run_all([(die_once, (str(marker),))], dataclasses.replace(engine, retries=0), ["run b"])
  killer.join()
  assert len(said) == 1 and said[0].startswith("failed: run b: its worker died"), said
  assert "A worker died" not in capfd.readouterr().out  # Ray's six lines of advice


_STOPPED_STUDY = """
import sys
from helpers import wait_for_stop
from par import cli
from par.study import jobs

def main(argv):
  paths = [f"{sys.argv[1]}/{k}" for k in range(3)]
  seconds, address = float(sys.argv[2]), (sys.argv[3] if len(sys.argv) > 3 else None)
  engine = jobs.Engine(jobs=1 if address else 2, address=address)
  calls = [(wait_for_stop, (p, seconds)) for p in paths]
  print(jobs.run_all(calls, engine, names=paths))

cli.run(main, "__main__")
"""


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ctrl_c_stops_every_call_once_after_its_checkpoint_and_the_rerun_resumes(engine, tmp_path):
  # Ctrl-C in a terminal signals the whole foreground process group: the study gets it, the
  # workers (their own groups) do not, and each running call is sent exactly one stop. The
  # pool's workers got the terminal's SIGINT and then SIGTERM, and lost their trainings.
  script = tmp_path / "study.py"
  script.write_text(textwrap.dedent(_STOPPED_STUDY))
  address = [engine.address] if engine.address else []
  env = with_tests(os.environ)
  process = subprocess.Popen(
    [sys.executable, str(script), str(tmp_path), "120", *address],
    stderr=subprocess.PIPE,
    text=True,
    env=env,
    start_new_session=True,
  )
  deadline = time.monotonic() + 120
  while not all((tmp_path / str(k)).exists() for k in range(2)) and time.monotonic() < deadline:
    time.sleep(0.2)
  os.killpg(process.pid, signal.SIGINT)
  assert process.wait(timeout=120) == 130
  for k in range(2):  # the two running: one signal each, then their checkpoint
    lines = (tmp_path / str(k)).read_text().splitlines()
    assert lines == ["started", "checkpoint after signal 2"], lines
  assert not (tmp_path / "2").exists()  # queued: never started
  err = process.stderr.read()
  assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err
  # Run again, the calls resume from their checkpoints and the third runs (here, on the
  # Ray instance this process has: the same calls as the command's).
  calls = [(wait_for_stop, (str(tmp_path / str(k)), 0)) for k in range(3)]
  assert jobs.run_all(calls, engine) == ["resumed", "resumed", "never stopped"]

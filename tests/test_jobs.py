"""par.study.jobs: calls in worker processes of one thread each, results in order, failures
raised."""

import os

import pytest

from helpers import fail_with
from helpers import log_twice
from helpers import worker_facts
from par.study import jobs


def test_one_job_runs_here_in_order():
  assert jobs.run_all([(worker_facts, ("a",)), (worker_facts, ("b",))], jobs=1)[1][:2] == (
    "b",
    os.getpid(),
  )
  assert jobs.run_all([], jobs=2) == []


@pytest.mark.slow
def test_workers_are_fresh_one_thread_processes_and_results_keep_their_order(capfd):
  capfd.readouterr()
  calls = [(worker_facts, (tag,)) for tag in "ab"] + [(log_twice, ("x",))]
  results = jobs.run_all(calls, jobs=2)
  assert [r[0] for r in results] == ["a", "b", "x"]
  pids = [r[1] for r in results]
  assert os.getpid() not in pids and len(set(pids)) == 3  # a fresh process per call
  assert all(r[2:] == (1, 1) for r in results[:2])  # one inter-op and one intra-op thread
  # A worker prints warnings, not the INFO lines a training writes to its own log.
  printed = capfd.readouterr().err
  assert "warning from x" in printed and "info from" not in printed
  with pytest.raises(ValueError, match="the second job failed"):
    jobs.run_all([(worker_facts, ("a",)), (fail_with, ("the second job failed",))], jobs=2)

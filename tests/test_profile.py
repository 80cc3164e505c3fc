"""The benchmarks (par/bench/): the profile reader on a real trace of known ops, split by their
names; the matmul bound's subprocess; the suites' table; BENCHMARKS.md's commands."""

import json
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT
from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par.bench import profile as bench
from par.bench import suites


def test_the_trace_holds_the_steps_matmuls_split_into_forward_and_backward(tmp_path):
  w = tf.Variable(tf.random.normal([64, 64]))
  x = tf.random.normal([32, 64])

  @tf.function
  def step(x, g):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(g * tf.matmul(tf.matmul(x, w), w))
    return tape.gradient(loss, w)

  g = tf.random.normal([32, 64])
  step(x, g)
  tf.profiler.experimental.start(str(tmp_path))
  for _ in range(3):
    step(x, g).numpy()
  tf.profiler.experimental.stop()
  split, ops = bench.profile_split(tmp_path, steps=3)
  calls = {name: count for name, _, count in ops}
  matmuls = sum(count for name, count in calls.items() if "MatMul" in name)
  # The loss is not returned, so the outer forward product is pruned: x·w forward, then
  # (x·w)ᵀ·g and g·wᵀ for the outer product's gradients and xᵀ·(g·wᵀ) for the inner's.
  assert matmuls == pytest.approx(4)
  assert calls["AddN"] == pytest.approx(1)  # w's two gradient contributions
  assert split["forward"] > 0 and split["backward"] > 0


def test_an_empty_directory_is_refused(tmp_path):
  with pytest.raises(Exception, match="no profiler trace"):
    bench.profile_split(tmp_path, steps=1)


@pytest.mark.parametrize(
  "name, part",
  [
    ("gradient_tape/par_model/block_0/MatMul", "backward"),
    ("Adam/update_3/mul", "optimizer"),
    ("IteratorGetNext", "input"),
    ("par_model/block_0/attention/MatMul", "forward"),
  ],
)
def test_ops_split_by_name(name, part):
  assert bench._split_of(name) == part


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_bound_times_products_in_the_runs_compute_dtype(dtype):
  shapes = json.dumps({"16,8,4": 3, "32,16,8": 1})
  printed = run_script(
    "scripts/benchmark.py", "--suite=bound_case", f"--shapes={shapes}", f"--bound_dtype={dtype}"
  )
  assert printed.returncode == 0, printed.stderr[-2000:]
  seconds = json.loads(printed.stdout.strip().splitlines()[-1])["step"]
  assert 0 < seconds < 1  # four tiny products, three times over


def test_bad_benchmark_flags_are_one_line():
  assert error_line(run_script("scripts/benchmark.py", "--suite=bound_case")) == (
    "error: --suite=bound_case needs --shapes"
  )
  assert error_line(run_script("scripts/benchmark.py", "--suite=cuts", "--repeats=0")) == (
    "error: --repeats must be at least 1, got 0"
  )


def test_a_suite_prints_its_rows_as_a_table(monkeypatch, tmp_path):
  seen = []

  def fake(work, options):
    seen.append((work.is_dir(), options.repeats))
    return [("a measure", "1.00 s"), ("another", "2 MiB")]

  monkeypatch.setitem(suites.SUITES, "cuts", fake)
  table = suites.run("cuts", suites.Options(text_dir=str(tmp_path), repeats=3))
  assert seen == [(True, 3)]  # in a temporary directory of its own, with the options given
  assert table.splitlines()[1:] == [
    "",
    "| measure | value |",
    "|---|---|",
    "| a measure | 1.00 s |",
    "| another | 2 MiB |",
  ]
  assert table.startswith("suite cuts, ") and table.splitlines()[0].endswith(", repeats 3")


def test_every_suite_benchmarks_md_runs_is_one_the_command_has():
  text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
  named = set(re.findall(r"scripts/benchmark\.py --suite=(\w+)", text))
  assert named and named <= set(suites.SUITES), named - set(suites.SUITES)
  for name, run in suites.SUITES.items():  # each suite's module says what it measures
    module = __import__(run.__module__, fromlist=["run"])
    assert module.__doc__.startswith(f"Suite `{name}`"), name


def test_the_step_memory_probe_counts_what_the_model_holds(tmp_path):
  # `par-step-memory`: after building, the allocator holds at least the
  # feed-forward block's two [128, 2048] matrices three times (themselves and Adam's two
  # slots: the allocator counts large buffers, 1 MiB each here, not the small ones); its peak
  # over the steps is above that; one JSON line.
  import subprocess
  import sys

  data = counting_dataset(tmp_path)
  flags = ["--d_model=128", "--n_heads=2", "--d_ffn=2048", "--n_blocks=2", "--architecture=sf"]
  flags += ["--cutoffs=20"]
  done = subprocess.run(
    [sys.executable, "-m", "par", "step_memory", f"--data_dir={data}", "--steps=2", *flags],
    capture_output=True,
    text=True,
    cwd=ROOT,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  probe = json.loads(done.stdout.strip().splitlines()[-1])
  assert probe["peak_rss"] > 100 and probe["seconds_per_later_step"] > 0
  if probe["allocator_peak"] is None:
    pytest.skip("this TensorFlow keeps no allocator statistics for the CPU")
  assert probe["allocator_after_build"] * 2**20 >= 3 * 4 * (2 * 128 * 2048)
  assert probe["allocator_peak"] > probe["allocator_after_build"]
  # The first call (it traces) and the later ones apart; the peak is the larger.
  first, later = probe["allocator_peak_first_step"], probe["allocator_peak_later_steps"]
  assert first > probe["allocator_after_build"] and later > probe["allocator_after_build"]
  assert probe["allocator_peak"] == max(first, later)


_HOLDS = """
import sys, numpy as np
held = np.ones(int(sys.argv[1]) * 2**20 // 8)  # touched: resident
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
sys.stderr.write("x" * 200_000)  # more than a pipe holds: read while the command runs
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_commands_peak_is_its_own_not_its_parents():
  # This process holds 600 MiB more than any command it measures; a command's peak must be
  # its own (Linux carries a parent's high-water mark into a child's ru_maxrss).
  from par.bench import measure
  from par.errors import ParError

  ballast = np.ones(600 * 2**20 // 8)
  for mib in (50, 200):
    own, rss = measure.run_case([sys.executable, "-c", _HOLDS, str(mib), "0"])
    assert own / 1024 == pytest.approx(rss, abs=2)  # VmHWM as the command saw it
    assert mib < rss < mib + 100
  wall, rss = measure.run_measured([sys.executable, "-c", _HOLDS, "50", "0"])
  assert 50 < rss < 150 and 0 < wall < 60
  with pytest.raises(ParError, match=r"failed: x+$"):
    measure.run_case([sys.executable, "-c", _HOLDS, "10", "3"])
  assert ballast.sum() == ballast.size

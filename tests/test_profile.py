"""scripts/benchmark.py's profile reader: a real trace of known ops, split by their names."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

_SPEC = importlib.util.spec_from_file_location(
  "benchmark", Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
)


@pytest.fixture(scope="module")
def bench():
  module = importlib.util.module_from_spec(_SPEC)
  _SPEC.loader.exec_module(module)
  return module


def test_the_trace_holds_the_steps_matmuls_split_into_forward_and_backward(bench, tmp_path):
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


def test_an_empty_directory_is_refused(bench, tmp_path):
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
def test_ops_split_by_name(bench, name, part):
  assert bench._split_of(name) == part


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_bound_times_products_in_the_runs_compute_dtype(dtype):
  root = Path(__file__).resolve().parents[1]
  shapes = json.dumps({"16,8,4": 3, "32,16,8": 1})
  printed = subprocess.run(
    [sys.executable, "scripts/benchmark.py", "--suite=bound_case", f"--shapes={shapes}"]
    + [f"--bound_dtype={dtype}"],
    cwd=root,
    capture_output=True,
    text=True,
    check=True,
  )
  seconds = json.loads(printed.stdout.strip().splitlines()[-1])["step"]
  assert 0 < seconds < 1  # four tiny products, three times over

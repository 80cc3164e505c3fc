"""The held-out architecture step (--arch_split, par/search/heldout.py): which lanes it holds
out, that no record's lane trains both the weights and the architecture (record by record),
each gradient against an independent computation (a search run with it end to end is in
test_train.py, one over two replicas in test_distribute.py)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from test_steps import make_loop

from helpers import counting_dataset
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError
from par.search import collapse
from par.search.heldout import held_out_lanes

MODEL = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("batch_size", [4, 7, 32, 60, 128])
@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.5, 0.7])
def test_k_lanes_are_held_out_spread_evenly(batch_size, fraction):
  mask = held_out_lanes(batch_size, fraction)
  k = round(fraction * batch_size)
  assert mask.dtype == bool and mask.shape == (batch_size,) and mask.sum() == k
  # Evenly: every window of w lanes holds floor or ceil of w·k/B of them.
  for width in range(1, batch_size + 1):
    windows = np.convolve(mask, np.ones(width), "valid")
    assert windows.max() - windows.min() <= 1


def test_the_split_leaves_a_lane_to_each_or_says_why():
  assert not held_out_lanes(32, 0.0).any()
  np.testing.assert_array_equal(np.flatnonzero(held_out_lanes(60, 0.2)), np.arange(4, 60, 5))
  with pytest.raises(ParError, match="holds out 0 of the 4 lanes"):
    held_out_lanes(4, 0.1)
  with pytest.raises(ParError, match="holds out 4 of the 4 lanes"):
    held_out_lanes(4, 0.9)
  with pytest.raises(ParError, match="a fixed --architecture has none"):
    TrainConfig(model=dataclasses.replace(MODEL, architecture="sfs"), arch_split=0.2).validate()
  with pytest.raises(ParError, match=r"arch_split must lie in \[0, 1\)"):
    TrainConfig(model=MODEL, arch_split=1.0).validate()


def _gradients(loop, inputs, targets, held, memory):
  """The step's gradients (the loop's own function, traced once per loop)."""
  valid = targets >= 0
  counts = [
    tf.reduce_sum(tf.cast(valid & ~held, tf.float32)),
    tf.reduce_sum(tf.cast(valid & held, tf.float32)),
  ]
  if not hasattr(loop, "traced_gradients"):
    loop.traced_gradients = tf.function(loop.gradients)
  grads, _, _, _, memory = loop.traced_gradients(
    inputs, targets, held, memory, tf.constant(0, tf.int64), counts, tf.constant(1.0)
  )
  n = len(loop.weight_variables)
  grads = [tf.convert_to_tensor(g).numpy() for g in grads]
  return grads[:n], grads[n:], memory


@tf.function
def _reference_graph(loop_model, inputs, targets, memory, which, tau):
  variables = (
    loop_model.weight_variables() if which == "weights" else loop_model.architecture_variables()
  )
  with tf.GradientTape() as tape:
    hidden, _ = loop_model(
      inputs, memory=memory, tau=tau, seed=tf.constant([0, 0], tf.int64), training=True
    )
    nll, count = loop_model.nll(hidden, targets)
    loss = nll / count
  grads = tape.gradient(loss, variables)
  return [
    tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)
  ]


def _reference(loop, inputs, targets, memory, which):
  """The gradient of the mean NLL of `targets` (padding -1 left out), taken on its own."""
  tau = tf.constant(loop.config.tau_start)  # the temperature of step 0
  return [g.numpy() for g in _reference_graph(loop.model, inputs, targets, memory, which, tau)]


def _close(a, b):
  """Equal to float32 rounding: within 1e-5 of the largest entry of each gradient."""
  return all(np.abs(x - y).max() <= 1e-5 * max(np.abs(x).max(), 1e-12) for x, y in zip(a, b))


def test_no_record_trains_both_the_weights_and_the_architecture(data_dir):
  config = TrainConfig(model=MODEL, data_dir=str(data_dir), train_steps=20, arch_split=0.25)
  loop = make_loop(config)
  held = tf.constant(held_out_lanes(4, 0.25)[:, None])  # lane 3 of 4
  memory = loop.model.initial_memory(4)
  checked = 0
  for inputs, targets in records.load_dataset(data_dir, "train"):
    w, a, next_memory = _gradients(loop, inputs, targets, held, memory)
    # Other targets on the held-out lane: the weights' gradients do not move, the logits' do.
    other = tf.where(held & (targets >= 0), (targets + 7) % 60, targets)
    w2, a2, _ = _gradients(loop, inputs, other, held, memory)
    assert _close(w, w2) and not _close(a, a2)
    # Other targets on the weights' lanes: the reverse.
    other = tf.where(~held & (targets >= 0), (targets + 7) % 60, targets)
    w3, a3, _ = _gradients(loop, inputs, other, held, memory)
    assert _close(a, a3) and not _close(w, w3)
    if checked < 2:  # And each is the gradient of its own lanes' mean NLL, computed alone.
      pad = tf.fill(tf.shape(targets), -1)
      weights_only = tf.where(held, pad, targets)
      arch_only = tf.where(held, targets, pad)
      assert _close(w, _reference(loop, inputs, weights_only, memory, "weights"))
      assert _close(a, _reference(loop, inputs, arch_only, memory, "arch"))
    memory, checked = next_memory, checked + 1
  assert checked == records.load_meta(data_dir).splits["train"].records


def test_entropy_against_its_closed_form():
  p = np.array([[1 / 3] * 3, [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1]])
  expected = [
    np.log(3),
    0.0,
    np.log(2),
    -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
  ]
  np.testing.assert_allclose(collapse.entropy(p), expected, rtol=1e-12)

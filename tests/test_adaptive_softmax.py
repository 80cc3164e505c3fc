"""Adaptive softmax against a full log-softmax assembled in numpy from the same parameters."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from par.config import tail_widths
from par.model.adaptive_softmax import AdaptiveEmbedding
from par.model.adaptive_softmax import AdaptiveSoftmax

V, D = 53, 24


def log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_log_probs(layer, hidden):
  """Every token's log-probability from the layer's weights, one cluster at a time."""
  w, b = layer.head.get_weights()
  head = log_softmax(hidden @ w + b)
  shortlist = layer.bounds[1]
  out = [head[:, :shortlist]]
  for i, (projection, tail) in enumerate(zip(layer.projections, layer.tails)):
    (p,), (wt, bt) = projection.get_weights(), tail.get_weights()
    out.append(head[:, shortlist + i : shortlist + i + 1] + log_softmax((hidden @ p) @ wt + bt))
  return np.concatenate(out, axis=1)


def make(cutoffs=(7, 20), **kwargs):
  layer = AdaptiveSoftmax(V, D, cutoffs, **kwargs)
  layer.build()
  # Non-zero biases, so that a mis-indexed bias shows.
  for dense in [layer.head] + layer.tails:
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, np.random.default_rng(len(bias)).normal(size=bias.shape)])
  return layer


@pytest.mark.parametrize("cutoffs", [(), (7,), (7, 20), (1, 2, 52)])
def test_log_probs_are_exact_and_sum_to_one(cutoffs):
  layer = make(cutoffs)
  hidden = np.random.default_rng(0).normal(size=[2, 5, D]).astype(np.float32)
  got = layer.log_probs(tf.constant(hidden)).numpy()
  assert got.shape == (2, 5, V) and got.dtype == np.float32
  np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(
    got.reshape(-1, V), numpy_log_probs(layer, hidden.reshape(-1, D)), rtol=1e-4, atol=1e-5
  )


@pytest.mark.parametrize("cutoffs", [(), (7,), (7, 20)])
def test_nll_matches_the_full_log_softmax_with_padding_masked(cutoffs):
  layer = make(cutoffs)
  rng = np.random.default_rng(1)
  hidden = rng.normal(size=[3, 11, D]).astype(np.float32)
  targets = rng.integers(0, V, size=[3, 11])
  targets[0, :4] = -1  # padding
  targets[2, -1] = V - 1  # the last id of the last cluster
  total, count = layer.nll(tf.constant(hidden), tf.constant(targets))
  reference = numpy_log_probs(layer, hidden.reshape(-1, D))
  flat = targets.reshape(-1)
  keep = flat >= 0
  expected = -reference[np.arange(len(flat))[keep], flat[keep]].sum()
  np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)
  assert count.numpy() == keep.sum() == 3 * 11 - 4


def test_a_tail_runs_only_for_its_own_tokens(monkeypatch):
  layer = make((7, 20))
  rows = {}
  original = layer._tail_log_probs

  def spy(i, hidden, tied=None):
    rows[i] = int(hidden.shape[0])
    return original(i, hidden, tied)

  monkeypatch.setattr(layer, "_tail_log_probs", spy)
  targets = np.array([[0, 3, 8, 9, 19, -1, 21]])  # head 2, tail0 3, tail1 1, padding 1
  layer.nll(tf.zeros([1, 7, D]), tf.constant(targets))
  assert rows == {0: 3, 1: 1}


def test_tail_widths_from_factor_or_explicit():
  assert tail_widths(128, 2, proj_factor=4) == (32, 8)
  assert tail_widths(24, 3, proj_factor=4) == (6, 1, 1)
  assert tail_widths(128, 2, proj_dims=(50, 10)) == (50, 10)
  layer = make((7, 20), proj_dims=(5, 3))
  assert [p.units for p in layer.projections] == [5, 3]


def test_bad_cutoffs_are_refused():
  with pytest.raises(ValueError, match="increase strictly"):
    AdaptiveSoftmax(V, D, (20, 7))
  with pytest.raises(ValueError, match="increase strictly"):
    AdaptiveSoftmax(V, D, (7, V))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_normalizes_in_float32(policy):
  reference = make((7, 20))
  keras.mixed_precision.set_global_policy(policy)
  try:
    layer = AdaptiveSoftmax(V, D, (7, 20))
    layer.build()
    layer.set_weights(reference.get_weights())
    hidden = tf.constant(np.random.default_rng(2).normal(size=[4, D]), layer.compute_dtype)
    log_probs = layer.log_probs(hidden)
    total, _ = layer.nll(hidden, tf.constant([0, 8, 30, 52]))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert log_probs.dtype == tf.float32 and total.dtype == tf.float32
  np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(-1), 1.0, rtol=1e-5)
  exact = reference.log_probs(tf.cast(hidden, tf.float32)).numpy()
  np.testing.assert_allclose(log_probs.numpy(), exact, atol=0.1)


def test_get_config_round_trip():
  layer = AdaptiveSoftmax(V, D, (7, 20), proj_factor=2, proj_dims=(4, 2))
  assert AdaptiveSoftmax.from_config(layer.get_config()).get_config() == layer.get_config()


def _graph_ops(function, *args):
  return {op.type for op in function.get_concrete_function(*args).graph.get_operations()}


def test_under_xla_every_tail_scores_every_token_masked_with_the_same_values():
  # XLA needs shapes known before the data: there, no tail selects its tokens (a `Where` of
  # data-dependent size); the NLL and every gradient are those of the selecting path.
  layer = make((7, 20))
  rng = np.random.default_rng(2)
  hidden = tf.constant(rng.normal(size=[3, 11, D]).astype(np.float32))
  targets = rng.integers(0, V, size=[3, 11])
  targets[0, :4] = -1
  targets[2, -1] = V - 1
  targets = tf.constant(targets)

  def loss_and_gradients(hidden, targets):
    with tf.GradientTape() as tape:
      tape.watch(hidden)
      total, _ = layer.nll(hidden, targets)
    return total, tape.gradient(total, [hidden] + layer.trainable_weights)

  selecting = tf.function(loss_and_gradients)
  compiled = tf.function(loss_and_gradients, jit_compile=True)
  assert "Where" in _graph_ops(selecting, hidden, targets)
  assert "Where" not in _graph_ops(compiled, hidden, targets)
  (total, grads), (xla_total, xla_grads) = selecting(hidden, targets), compiled(hidden, targets)
  np.testing.assert_allclose(xla_total.numpy(), total.numpy(), rtol=1e-5)
  assert len(grads) == len(xla_grads) == 1 + 2 + 2 * 3  # hidden, head, 2 tails
  for g, x in zip(grads, xla_grads):
    np.testing.assert_allclose(tf.convert_to_tensor(x), tf.convert_to_tensor(g), atol=1e-5)


def test_under_xla_the_adaptive_input_is_the_same_embedding():
  layer = AdaptiveEmbedding(V, D, (7, 20), div_val=2)
  layer.build()
  tokens = tf.constant(np.random.default_rng(3).integers(0, V, size=[4, 9]))

  def embed_and_gradients(tokens):
    with tf.GradientTape() as tape:
      out = layer(tokens)
      loss = tf.reduce_sum(out * tf.range(D, dtype=tf.float32))
    return out, tape.gradient(loss, layer.trainable_weights)

  selecting = tf.function(embed_and_gradients)
  compiled = tf.function(embed_and_gradients, jit_compile=True)
  assert "Where" in _graph_ops(selecting, tokens)
  assert "Where" not in _graph_ops(compiled, tokens)
  (out, grads), (xla_out, xla_grads) = selecting(tokens), compiled(tokens)
  assert xla_out.shape == (4, 9, D)
  np.testing.assert_allclose(xla_out.numpy(), out.numpy(), atol=1e-6)
  assert len(grads) == len(xla_grads) == 6  # three tables, three projections
  for g, x in zip(grads, xla_grads):
    np.testing.assert_allclose(tf.convert_to_tensor(x), tf.convert_to_tensor(g), atol=1e-6)

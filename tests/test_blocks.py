"""Stochastic blocks: Gumbel-Softmax weights, straight-through gradients, branch selection."""

import numpy as np
import pytest
import tensorflow as tf

from par.model import attention
from par.model import blocks

B, T, M, D, N, H, F = 2, 7, 5, 24, 3, 8, 40
LOGITS = np.array([0.7, -0.4, 0.2], np.float32)


def softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 5.0])
@pytest.mark.parametrize("mode", ["soft", "hard", "single_path"])
def test_without_noise_the_relaxation_is_softmax_of_logits_over_tau(tau, mode):
  weights, index = blocks.mixture_weights(LOGITS, mode, tau, noise=tf.zeros([3]))
  expected = softmax(LOGITS / tau)
  if mode == "soft":
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5, atol=1e-7)
  else:  # hard forward, soft backward
    np.testing.assert_array_equal(weights.numpy(), np.eye(3)[LOGITS.argmax()])
  assert index.numpy() == LOGITS.argmax()


def test_evaluation_modes_are_deterministic():
  weights, index = blocks.mixture_weights(LOGITS, "expected")
  np.testing.assert_allclose(weights.numpy(), softmax(LOGITS), rtol=1e-6)
  weights, index = blocks.mixture_weights(LOGITS, "argmax")
  np.testing.assert_array_equal(weights.numpy(), [1, 0, 0])
  assert index.numpy() == 0


@pytest.mark.parametrize("mode", ["hard", "single_path"])
def test_hard_is_one_hot_forward_and_every_logit_gets_a_gradient(mode):
  logits = tf.Variable(LOGITS)
  branch_values = tf.constant([1.5, -2.0, 0.25])
  with tf.GradientTape() as tape:
    weights, index = blocks.mixture_weights(
      logits, mode, 0.5, blocks.gumbel_noise([3], tf.constant([3, 4]))
    )
    used = (
      weights[index] * branch_values[index]
      if mode == "single_path"
      else tf.reduce_sum(weights * branch_values)
    )
  w = weights.numpy()
  assert sorted(w.tolist()) == [0.0, 0.0, 1.0]
  gradient = tape.gradient(used, logits).numpy()
  assert np.all(np.abs(gradient) > 1e-6), gradient


def test_sampled_branches_follow_softmax_of_logits():
  """n draws through the exact path a block uses; each frequency within 4.5 binomial sigmas
  of softmax(logits) (a false alarm has probability below 1e-5; the seeds are fixed)."""
  n = 4000
  seeds = tf.stack([tf.fill([n], 11), tf.range(n)], axis=1)
  sample = tf.function(
    lambda seed: blocks.mixture_weights(LOGITS, "hard", 1.0, blocks.gumbel_noise([3], seed))[1]
  )
  indices = tf.map_fn(sample, seeds, fn_output_signature=tf.int32).numpy()
  frequency = np.bincount(indices, minlength=3) / n
  p = softmax(LOGITS)
  assert np.all(np.abs(frequency - p) <= 4.5 * np.sqrt(p * (1 - p) / n)), (frequency, p)


def test_gumbel_noise_is_finite_at_the_extremes():
  noise = blocks.gumbel_noise([200_000], tf.constant([0, 1])).numpy()
  assert np.isfinite(noise).all()
  # Mean of a standard Gumbel is the Euler-Mascheroni constant, variance pi^2/6.
  assert abs(noise.mean() - 0.5772) < 0.01 and abs(noise.var() - np.pi**2 / 6) < 0.03


def make_block(sampling="soft", eval_mode="argmax"):
  block = blocks.StochasticBlock(D, N, H, F, dropout=0.0, sampling=sampling, eval_mode=eval_mode)
  block.build()
  return block


def inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.normal(size=[B, T, D]), tf.float32)
  memory = tf.constant(rng.normal(size=[B, M, D]), tf.float32)
  positions = attention.relative_positions(M + T, D)
  mask = attention.attention_mask(T, M, M)
  return x, memory, positions, mask


def branch_outputs(block, x, memory, positions, mask):
  return [
    block.attention_block(x, memory, positions, mask)[0].numpy(),
    block.feed_forward_block(x)[0].numpy(),
    x.numpy(),
  ]


def test_single_path_output_is_the_sampled_branch():
  block = make_block("single_path")
  block.arch_logits.assign([0.1, 0.3, -0.2])
  x, memory, positions, mask = inputs()
  outputs = branch_outputs(block, x, memory, positions, mask)
  sampled = set()
  for seed in ([0, 0], [5, 9], [1, 1], [7, 7]):
    seed = tf.constant(seed)
    out, new_memory = block(x, memory, positions, mask, tau=0.7, seed=seed, training=True)
    _, index = blocks.mixture_weights(
      block.arch_logits, "single_path", 0.7, blocks.gumbel_noise([3], seed)
    )
    np.testing.assert_allclose(out.numpy(), outputs[int(index)], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(new_memory.numpy(), np.concatenate([memory, x], 1)[:, -M:])
    sampled.add(int(index))
  assert sampled == {0, 1, 2}  # The seeds reach every branch.


def test_single_path_logits_learn():
  block = make_block("single_path")
  x, memory, positions, mask = inputs()
  for seed in ([0, 0], [0, 1], [0, 2]):
    with tf.GradientTape() as tape:
      out, _ = block(x, memory, positions, mask, tau=1.0, seed=tf.constant(seed), training=True)
      loss = tf.reduce_sum(out**2)
    gradient = tape.gradient(loss, block.arch_logits).numpy()
    assert np.all(np.abs(gradient) > 0), gradient


@pytest.mark.parametrize("sampling", ["soft", "hard"])
def test_soft_and_hard_mix_all_branches_with_the_sampled_weights(sampling):
  block = make_block(sampling)
  x, memory, positions, mask = inputs(1)
  seed = tf.constant([2, 3])
  out, _ = block(x, memory, positions, mask, tau=0.5, seed=seed, training=True)
  weights, _ = blocks.mixture_weights(
    block.arch_logits, sampling, 0.5, blocks.gumbel_noise([3], seed)
  )
  expected = sum(
    w * b for w, b in zip(weights.numpy(), branch_outputs(block, x, memory, positions, mask))
  )
  np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eval_mode", ["argmax", "expected"])
def test_evaluation_is_deterministic_and_noise_free(eval_mode):
  block = make_block(eval_mode=eval_mode)
  block.arch_logits.assign([-1.0, 2.0, 0.5])  # Feed-forward most likely.
  x, memory, positions, mask = inputs(2)
  first, _ = block(x, memory, positions, mask, tau=0.1, seed=tf.constant([1, 1]))
  second, _ = block(x, memory, positions, mask, tau=3.0, seed=tf.constant([9, 9]))
  np.testing.assert_array_equal(first.numpy(), second.numpy())
  outputs = branch_outputs(block, x, memory, positions, mask)
  if eval_mode == "argmax":
    expected = outputs[1]
  else:
    expected = sum(w * b for w, b in zip(softmax(np.array([-1.0, 2.0, 0.5])), outputs))
  np.testing.assert_allclose(first.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampling", ["soft", "hard", "single_path"])
@pytest.mark.parametrize("logits", [[1e6, -1e6, 0.0], [-1e6, -1e6, -1e6], [30.0, 30.0, -30.0]])
def test_no_nan_at_low_temperature_and_extreme_logits(sampling, logits):
  block = make_block(sampling)
  block.arch_logits.assign(logits)
  x, memory, positions, mask = inputs(3)
  for seed in ([0, 0], [1, 2], [3, 4]):
    with tf.GradientTape() as tape:
      out, _ = block(x, memory, positions, mask, tau=0.05, seed=tf.constant(seed), training=True)
      loss = tf.reduce_mean(out**2)
    gradients = tape.gradient(loss, block.trainable_variables)
    assert np.isfinite(out.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in gradients if g is not None)


def test_training_without_a_seed_is_an_error():
  block = make_block()
  with pytest.raises(ValueError, match="needs a seed"):
    block(*inputs(), training=True)


@pytest.mark.parametrize(
  "layer",
  [
    blocks.AttentionBlock(D, N, H, dropout=0.1, dropatt=0.2, own_bias=False),
    blocks.FeedForwardBlock(D, F, dropout=0.3),
    blocks.StochasticBlock(D, N, H, F, 0.1, 0.0, True, "single_path", "expected"),
  ],
)
def test_get_config_round_trip(layer):
  assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_feed_forward_block_is_post_norm_residual():
  block = blocks.FeedForwardBlock(D, F)
  block.build()
  x = np.random.default_rng(4).normal(size=[B, T, D]).astype(np.float32)
  w1, b1 = block.inner.get_weights()
  w2, b2 = block.outer.get_weights()
  y = x + np.maximum(x @ w1 + b1, 0) @ w2 + b2
  y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5)
  gamma, beta = block.norm.get_weights()
  np.testing.assert_allclose(
    block(tf.constant(x))[0].numpy(), y * gamma + beta, rtol=1e-4, atol=1e-4
  )

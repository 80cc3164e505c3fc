"""par.dropout: the realised drop rate, the exact expectation, determinism, inference."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from par.model.dropout import Dropout
from par.model.dropout import keep_mask


def _draw(n, rate, seed):
  keep, probability = keep_mask(tf.constant([n]), rate, tf.constant(seed, tf.int32))
  return keep.numpy(), float(probability)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.03, 0.25])
def test_each_call_keeps_at_its_own_thresholds_probability(rate):
  n = 1_000_003  # not a multiple of 4: the last 32-bit word is used in part
  mask, p = _draw(n, rate, [7, 11])
  # The call's threshold is floor or ceil of rate · 256.
  assert (1 - p) * 256 in {math.floor(rate * 256), math.ceil(rate * 256)}
  # 5 standard deviations of a binomial count: fails by chance with probability ~6e-7.
  assert abs(mask.sum() - n * p) < 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("rate", [0.1, 0.03, 0.7])
def test_the_drop_rate_over_calls_is_the_rate(rate):
  # 0.1 · 256 = 25.6: a call drops 25/256 or 26/256; over calls the rate is 0.1 exactly.
  calls, n = 600, 4_000
  dropped = sum(n - _draw(n, rate, [i, 5])[0].sum() for i in range(calls))
  total = calls * n
  # Within a call the count is binomial; the threshold adds a Bernoulli(f) of 1/256·n a call.
  f = rate * 256 % 1
  sd = math.sqrt(total * rate * (1 - rate) + calls * f * (1 - f) * (n / 256) ** 2)
  assert abs(dropped - total * rate) < 5 * sd
  thresholds = {round((1 - _draw(8, rate, [i, 9])[1]) * 256) for i in range(200)}
  assert thresholds == {math.floor(rate * 256), math.ceil(rate * 256)}


def test_masks_are_uncorrelated_between_bytes_of_a_draw():
  # Four neighbours come from the same 32-bit word; their decisions must still be independent.
  mask, p = _draw(400_000, 0.5, [1, 2])
  quads = mask.reshape(-1, 4)
  for i, j in [(0, 1), (0, 3), (1, 2), (2, 3)]:
    both = np.mean(quads[:, i] & quads[:, j])
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / len(quads))


def test_layer_scales_by_the_calls_keep_probability_and_is_identity_in_inference():
  keras.utils.set_random_seed(0)
  layer = Dropout(0.1)
  x = tf.ones([3, 5, 7])
  y = layer(x, training=True).numpy()
  kept = y != 0
  assert len(np.unique(y[kept])) == 1
  assert float(y[kept][0]) == pytest.approx(1 / (1 - 25 / 256)) or float(
    y[kept][0]
  ) == pytest.approx(1 / (1 - 26 / 256))
  np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
  # Each call draws a new mask; the seed generator is the state that makes runs repeatable.
  assert not np.array_equal(layer(x, training=True).numpy() != 0, kept)


def test_the_output_expectation_is_the_input():
  keras.utils.set_random_seed(1)
  layer = Dropout(0.1)
  x = tf.fill([2_000], 3.0)
  mean = np.mean([layer(x, training=True).numpy().mean() for _ in range(300)])
  # Each element is 3 / p with probability p: variance 9 (1 - p) / p, p ≈ 0.9.
  assert abs(mean - 3.0) < 5 * math.sqrt(9 * 0.1 / 0.9 / 600_000)


def test_the_gradient_is_the_mask():
  keras.utils.set_random_seed(2)
  layer = Dropout(0.3)
  x = tf.random.normal([50, 20])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
  grad = tape.gradient(y, x).numpy()
  np.testing.assert_allclose(grad * x.numpy(), y.numpy(), rtol=1e-6)


def test_rates_a_byte_cannot_draw_are_refused():
  with pytest.raises(ValueError, match="255/256"):
    Dropout(0.999)


def test_same_seed_same_masks():
  def draw():
    keras.utils.set_random_seed(4)
    layer = Dropout(0.3)
    return [layer(tf.ones([64, 9]), training=True).numpy() for _ in range(2)]

  for a, b in zip(draw(), draw()):
    np.testing.assert_array_equal(a, b)

"""par.dropout: the realised drop rate, the exact expectation, determinism, inference."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from par.model.dropout import Dropout
from par.model.dropout import keep_mask
from par.model.dropout import keep_probability


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.03])
def test_drop_rate_matches_within_a_binomial_tolerance(rate):
  n = 1_000_001  # odd: the last 32-bit draw is used by half
  mask = keep_mask(tf.constant([n]), rate, tf.constant([7, 11], tf.int32)).numpy()
  p = keep_probability(rate)
  assert abs(p - (1 - rate)) < 2**-17
  # 5 standard deviations of a binomial count: fails by chance with probability ~6e-7.
  assert abs(mask.sum() - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_masks_are_uncorrelated_between_halves_of_a_draw():
  # Neighbours come from the same 32-bit word; their decisions must still be independent.
  mask = keep_mask(tf.constant([400_000]), 0.5, tf.constant([1, 2], tf.int32)).numpy()
  pairs = mask.reshape(-1, 2)
  both = np.mean(pairs[:, 0] & pairs[:, 1])
  assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(pairs))


def test_layer_scales_by_the_realised_keep_probability_and_is_identity_in_inference():
  keras.utils.set_random_seed(0)
  layer = Dropout(0.1)
  x = tf.ones([3, 5, 7])
  y = layer(x, training=True).numpy()
  kept = y != 0
  np.testing.assert_allclose(y[kept], 1 / keep_probability(0.1), rtol=1e-6)
  np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
  # Each call draws a new mask; the seed generator is the state that makes runs repeatable.
  assert not np.array_equal(layer(x, training=True).numpy() != 0, kept)


def test_same_seed_same_masks():
  def draw():
    keras.utils.set_random_seed(4)
    layer = Dropout(0.3)
    return [layer(tf.ones([64, 9]), training=True).numpy() for _ in range(2)]

  for a, b in zip(draw(), draw()):
    np.testing.assert_array_equal(a, b)

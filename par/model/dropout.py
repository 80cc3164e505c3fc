"""Inverted dropout from 8-bit random numbers, applied as one multiply.

On CPU, TensorFlow's stateless Philox generator is the costliest part of dropout (about 8 ns
per 32-bit number on the reference machine). A keep/drop decision needs far fewer than 32
bits: each 32-bit draw is split into four bytes, and an element is kept when its byte is at
least a threshold t, so P(keep) = 1 - t/256.

rate · 256 is rarely an integer (0.1 · 256 = 25.6), so each call dithers its threshold: with
rate · 256 = a + f, the call uses t = a + 1 with probability f and t = a otherwise, decided
by one more word of the same draw. The expected drop rate over calls is `rate` (to 2^-24), and
within a call the kept elements are scaled by 1 / (1 - t/256), the call's own keep
probability, so every output's expectation is its input exactly.

The mask is applied as `inputs * where(keep, scale, 0)`: its backward pass is one Mul, where
`where(keep, inputs · scale, 0)` costs a Select and a Mul each way. Together with the bytes
this halves dropout's share of a SuperNet step (docs/BENCHMARKS.md, "Speed").

The layer subclasses `keras.layers.Dropout`: same arguments, same seed generator (a variable
that checkpoints save), so only the way the mask is drawn changes. Under a strategy with
several replicas, each replica folds its id into the seed: their masks are independent.
"""

import keras
import tensorflow as tf

_LEVELS = 256
_DITHER_BITS = 24  # of the extra word, compared with f · 2^24
_MAX_RATE = (_LEVELS - 1) / _LEVELS  # a threshold of 256 would keep nothing


def keep_mask(shape, rate, seed):
  """(bool `shape` mask, its float32 keep probability): kept where a byte >= t.

  Args:
    shape: the mask's shape (int32 [rank] tensor or list).
    rate: drop probability in [0, 255/256].
    seed: int32 [2] stateless seed.

  Returns:
    keep, each True with probability 1 - t/256 for this call's threshold t (a or a + 1 for
    rate · 256 = a + f, a + 1 with probability f), and that probability.
  """
  if not 0 <= rate <= _MAX_RATE:
    raise ValueError(f"dropout rate {rate} is outside [0, 255/256]")
  size = tf.reduce_prod(shape)
  words = (size + 3) // 4
  draw = tf.random.stateless_uniform([words + 1], seed, minval=None, maxval=None, dtype=tf.uint32)
  base, fraction = divmod(rate * _LEVELS, 1.0)
  dither = tf.bitwise.right_shift(draw[words], 32 - _DITHER_BITS)
  up = dither < tf.constant(round(fraction * (1 << _DITHER_BITS)), tf.uint32)
  threshold = tf.cast(base, tf.int32) + tf.cast(up, tf.int32)
  bytes_ = tf.reshape(tf.bitcast(draw[:words], tf.uint8), [-1])[:size]
  keep = tf.reshape(bytes_ >= tf.cast(threshold, tf.uint8), shape)
  return keep, 1.0 - tf.cast(threshold, tf.float32) / _LEVELS


@keras.saving.register_keras_serializable(package="par")
class Dropout(keras.layers.Dropout):
  """`keras.layers.Dropout` (without noise_shape) drawing 8-bit random numbers."""

  def __init__(self, rate, **kwargs):
    if rate > _MAX_RATE:
      raise ValueError(f"par's Dropout draws bytes: its rate must be at most 255/256, not {rate}")
    super().__init__(rate, **kwargs)

  def call(self, inputs, training=False):
    if not training or self.rate == 0:
      return inputs
    if self.noise_shape is not None:
      raise ValueError("par's Dropout does not support noise_shape")
    seed = self.seed_generator.next()
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      # Mirrored seed generators agree across replicas: give each replica its own masks.
      seed = tf.random.experimental.stateless_fold_in(
        tf.cast(seed, tf.int64), tf.cast(context.replica_id_in_sync_group, tf.int64)
      )
    seed = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), tf.int32)
    keep, probability = keep_mask(tf.shape(inputs), self.rate, seed)
    scale = tf.cast(1.0 / probability, inputs.dtype)
    return inputs * tf.where(keep, scale, tf.zeros([], inputs.dtype))

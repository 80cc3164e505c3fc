"""Inverted dropout from 16-bit random numbers: the same layer, half the random bits.

On CPU, TensorFlow's stateless Philox generator is the costliest part of dropout (about 8 ns
per 32-bit number on the reference machine, 9% of a SuperNet training step). A keep/drop
decision needs far fewer than 32 bits: each 32-bit draw is split into two 16-bit numbers,
and an element is kept when its number is at least round(rate · 2^16). The realised rate
differs from `rate` by less than 2^-17 and the scale 1 / P(keep) uses the realised
probability, so the output's expectation is the input exactly.

The layer subclasses `keras.layers.Dropout`: same arguments, same seed generator (a variable
that checkpoints save), so only the way the mask is drawn changes. Under a strategy with
several replicas, each replica folds its id into the seed: their masks are independent.
"""

import keras
import tensorflow as tf

_LEVELS = 1 << 16


def keep_mask(shape, rate, seed):
  """bool `shape`, each True with probability 1 - round(rate·2^16)/2^16.

  Args:
    shape: the mask's shape (int32 [rank] tensor or list).
    rate: drop probability in [0, 1).
    seed: int32 [2] stateless seed.
  """
  size = tf.reduce_prod(shape)
  words = tf.random.stateless_uniform(
    [(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32
  )
  halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
  threshold = tf.constant(round(rate * _LEVELS), tf.int32)
  return tf.reshape(tf.cast(halves, tf.int32) >= threshold, shape)


def keep_probability(rate):
  return 1.0 - round(rate * _LEVELS) / _LEVELS


@keras.saving.register_keras_serializable(package="par")
class Dropout(keras.layers.Dropout):
  """`keras.layers.Dropout` (without noise_shape) drawing 16-bit random numbers."""

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
    keep = keep_mask(tf.shape(inputs), self.rate, seed)
    scale = tf.cast(1.0 / keep_probability(self.rate), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

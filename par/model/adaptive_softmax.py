"""Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs").

Token ids are assumed ordered by decreasing frequency. With cutoffs c_1 < ... < c_n and
c_{n+1} = V, the head is a softmax over the c_1 most frequent tokens plus one entry per tail
cluster; tail i covers ids [c_i, c_{i+1}) behind a projection to a narrower width d_i:

  log p(t) = log p_head(t)                                  t < c_1
  log p(t) = log p_head(cluster i) + log p_tail_i(t - c_i)  c_i <= t < c_{i+1}

These are exact probabilities, summing to 1 over the vocabulary. Training evaluates a tail
only for the tokens that fall in it, which is where the speed comes from. Without cutoffs it
is a plain softmax. Logits are computed in the compute dtype and normalized in float32.
"""

import keras
import tensorflow as tf

from par.config import tail_widths


@keras.saving.register_keras_serializable(package="par")
class AdaptiveSoftmax(keras.layers.Layer):
  """The output layer: hidden states [..., D] -> log-probabilities or summed NLL."""

  def __init__(self, vocab_size, d_model, cutoffs=(), proj_factor=4, proj_dims=(), **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.d_model = d_model
    self.cutoffs = tuple(cutoffs)
    self.proj_factor = proj_factor
    self.proj_dims = tuple(proj_dims)
    bounds = (0,) + self.cutoffs + (vocab_size,)
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
      raise ValueError(
        f"cutoffs must increase strictly below vocab_size {vocab_size}, got {self.cutoffs}"
      )
    self.bounds = bounds  # Cluster k covers ids [bounds[k], bounds[k+1]); cluster 0 = head.
    self.widths = tail_widths(d_model, len(self.cutoffs), proj_factor, proj_dims)

  @property
  def head_size(self):
    return self.bounds[1] + len(self.cutoffs)

  def build(self, input_shape=None):
    self.head = keras.layers.Dense(self.head_size, name="head")
    self.head.build([None, self.d_model])
    self.projections, self.tails = [], []
    for i, width in enumerate(self.widths):
      projection = keras.layers.Dense(width, use_bias=False, name=f"tail{i}_projection")
      projection.build([None, self.d_model])
      tail = keras.layers.Dense(self.bounds[i + 2] - self.bounds[i + 1], name=f"tail{i}")
      tail.build([None, width])
      self.projections.append(projection)
      self.tails.append(tail)
    self.built = True

  def _tail_log_probs(self, i, hidden):
    logits = self.tails[i](self.projections[i](hidden))
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

  def log_probs(self, hidden):
    """Exact log-probabilities over the vocabulary: float32 [..., V]."""
    head = tf.nn.log_softmax(tf.cast(self.head(hidden), tf.float32), axis=-1)
    shortlist = head[..., : self.bounds[1]]
    parts = [shortlist]
    for i in range(len(self.tails)):
      cluster = head[..., self.bounds[1] + i : self.bounds[1] + i + 1]
      parts.append(cluster + self._tail_log_probs(i, hidden))
    return tf.concat(parts, axis=-1)

  def call(self, hidden):
    return self.log_probs(hidden)

  def nll(self, hidden, targets):
    """Summed negative log-likelihood and the number of targets, padding (< 0) excluded.

    Args:
      hidden: [..., D] final hidden states.
      targets: int [...] token ids; negative ids are padding.

    Returns:
      (sum_nll float32 scalar, count float32 scalar).
    """
    hidden = tf.reshape(hidden, [-1, self.d_model])
    targets = tf.reshape(tf.cast(targets, tf.int32), [-1])
    valid = targets >= 0
    safe = tf.where(valid, targets, 0)
    # Cluster of each target: 0 for the head's shortlist, i + 1 for tail i.
    cluster = tf.zeros_like(safe)
    for cutoff in self.cutoffs:
      cluster += tf.cast(safe >= cutoff, tf.int32)
    head_target = tf.where(cluster == 0, safe, self.bounds[1] + cluster - 1)
    head = tf.nn.log_softmax(tf.cast(self.head(hidden), tf.float32), axis=-1)
    nll = -tf.gather(head, head_target, batch_dims=1)
    total = tf.reduce_sum(tf.where(valid, nll, 0.0))
    for i in range(len(self.tails)):
      rows = tf.where(valid & (cluster == i + 1))[:, 0]  # Only this tail's tokens.
      tail = self._tail_log_probs(i, tf.gather(hidden, rows))
      in_tail = tf.gather(safe, rows) - self.bounds[i + 1]
      total -= tf.reduce_sum(tf.gather(tail, in_tail, batch_dims=1))
    return total, tf.reduce_sum(tf.cast(valid, tf.float32))

  def get_config(self):
    return dict(
      super().get_config(),
      vocab_size=self.vocab_size,
      d_model=self.d_model,
      cutoffs=list(self.cutoffs),
      proj_factor=self.proj_factor,
      proj_dims=list(self.proj_dims),
    )

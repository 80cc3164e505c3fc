"""Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs").

Token ids are assumed ordered by decreasing frequency. With cutoffs c_1 < ... < c_n and
c_{n+1} = V, the head is a softmax over the c_1 most frequent tokens plus one entry per tail
cluster; tail i covers ids [c_i, c_{i+1}) behind a projection to a narrower width d_i:

  log p(t) = log p_head(t)                                  t < c_1
  log p(t) = log p_head(cluster i) + log p_tail_i(t - c_i)  c_i <= t < c_{i+1}

These are exact probabilities, summing to 1 over the vocabulary. Training evaluates a tail
only for the tokens that fall in it, which is where the speed comes from. Without cutoffs it
is a plain softmax. Logits are computed in the compute dtype and normalized in float32.

Selecting a tail's tokens gives tensors whose size depends on the data, which XLA cannot
compile (`--jit_compile`, and every TPU step): there XLA's constant shapes are kept by scoring
every tail on every token and masking, as Transformer-XL's TPU code does. Same values, more
FLOPs and memory: each token pays for every tail, as `log_probs` does (at WikiText-103's
267,735 words, about 1 GB of float32 logits per 1,000 tokens of a replica's batch).
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from par.config import cluster_widths
from par.config import tail_widths
from par.model import initializers


def static_shapes():
  """Whether the op being built is compiled by XLA (a jit_compile function, a TPU step),
  which needs every shape known before the data is."""
  return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@keras.saving.register_keras_serializable(package="par")
class AdaptiveSoftmax(keras.layers.Layer):
  """The output layer: hidden states [..., D] -> log-probabilities or summed NLL."""

  def __init__(
    self, vocab_size, d_model, cutoffs=(), proj_factor=4, proj_dims=(), init="glorot", **kwargs
  ):
    super().__init__(**kwargs)
    self.init = init
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
    d, init = self.d_model, self.init
    self.head = keras.layers.Dense(
      self.head_size, kernel_initializer=initializers.matrix(init, d, self.head_size), name="head"
    )
    self.head.build([None, d])
    self.projections, self.tails = [], []
    for i, width in enumerate(self.widths):
      projection = keras.layers.Dense(
        width,
        use_bias=False,
        kernel_initializer=initializers.matrix(init, d, width),
        name=f"tail{i}_projection",
      )
      projection.build([None, d])
      size = self.bounds[i + 2] - self.bounds[i + 1]
      tail = keras.layers.Dense(
        size, kernel_initializer=initializers.matrix(init, width, size), name=f"tail{i}"
      )
      tail.build([None, width])
      self.projections.append(projection)
      self.tails.append(tail)
    self.built = True

  @property
  def num_tails(self):
    return len(self.cutoffs)

  def _head_log_probs(self, hidden, tied=None):
    del tied
    return tf.nn.log_softmax(tf.cast(self.head(hidden), tf.float32), axis=-1)

  def _tail_log_probs(self, i, hidden, tied=None):
    del tied
    logits = self.tails[i](self.projections[i](hidden))
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

  def _prepare(self, tied):
    """What one call's clusters score with, read once for all of them (`tied` here: none)."""
    return tied

  def log_probs(self, hidden, tied=None):
    """Exact log-probabilities over the vocabulary: float32 [..., V].

    `tied`: the `AdaptiveEmbedding` whose weights a tied softmax scores with.
    """
    tied = self._prepare(tied)
    head = self._head_log_probs(hidden, tied)
    shortlist = head[..., : self.bounds[1]]
    parts = [shortlist]
    for i in range(self.num_tails):
      cluster = head[..., self.bounds[1] + i : self.bounds[1] + i + 1]
      parts.append(cluster + self._tail_log_probs(i, hidden, tied))
    return tf.concat(parts, axis=-1)

  def call(self, hidden):
    return self.log_probs(hidden)

  def nll(self, hidden, targets, tied=None):
    """Summed negative log-likelihood and the number of targets, padding (< 0) excluded.

    Args:
      hidden: [..., D] final hidden states.
      targets: int [...] token ids; negative ids are padding.
      tied: the `AdaptiveEmbedding` whose weights a tied softmax scores with.

    Returns:
      (sum_nll float32 scalar, count float32 scalar).
    """
    per_token = self.token_nll(hidden, targets, tied)
    valid = tf.reshape(targets, [-1]) >= 0
    return tf.reduce_sum(per_token), tf.reduce_sum(tf.cast(valid, tf.float32))

  def token_nll(self, hidden, targets, tied=None):
    """The negative log-likelihood of each target, flattened: float32 [N], 0 at padding.

    Each tail runs only on the tokens that fall in it (under XLA, on every token, masked).
    """
    tied = self._prepare(tied)
    hidden = tf.reshape(hidden, [-1, self.d_model])
    targets = tf.reshape(tf.cast(targets, tf.int32), [-1])
    valid = targets >= 0
    safe = tf.where(valid, targets, 0)
    # Cluster of each target: 0 for the head's shortlist, i + 1 for tail i.
    cluster = tf.zeros_like(safe)
    for cutoff in self.cutoffs:
      cluster += tf.cast(safe >= cutoff, tf.int32)
    head_target = tf.where(cluster == 0, safe, self.bounds[1] + cluster - 1)
    head = self._head_log_probs(hidden, tied)
    nll = tf.where(valid, -tf.gather(head, head_target, batch_dims=1), 0.0)
    static = static_shapes()
    for i in range(self.num_tails):
      low, size = self.bounds[i + 1], self.bounds[i + 2] - self.bounds[i + 1]
      in_tail = valid & (cluster == i + 1)
      if static:  # Every token through the tail, masked (module docstring).
        scored, ids = hidden, tf.clip_by_value(safe - low, 0, size - 1)
      else:  # Only this tail's tokens.
        rows = tf.where(in_tail)[:, 0]
        scored, ids = tf.gather(hidden, rows), tf.gather(safe, rows) - low
      tail = tf.gather(self._tail_log_probs(i, scored, tied), ids, batch_dims=1)
      if static:
        nll -= tf.where(in_tail, tail, 0.0)
      else:
        nll = tf.tensor_scatter_nd_sub(nll, rows[:, None], tail)
    return nll

  def save_own_variables(self, store):
    save_variables_once(self, store)

  def get_config(self):
    return dict(
      super().get_config(),
      vocab_size=self.vocab_size,
      d_model=self.d_model,
      cutoffs=list(self.cutoffs),
      proj_factor=self.proj_factor,
      proj_dims=list(self.proj_dims),
      init=self.init,
    )


def save_variables_once(layer, store):
  """Keras's `save_own_variables` with no copy of a variable on its way to the file.

  Keras converts a variable with `np.array(variable)`: a copy of its value read into numpy and
  a copy of that, two of a 419 MiB table at WikiText-103's vocabulary. Each variable is read
  once and handed over as `_ReadValue`, which numpy takes as the copy Keras asks for: the
  file is written from the read value's own buffer. Same order, keys and values as Keras's.
  """
  for i, variable in enumerate(layer.trainable_weights + layer.non_trainable_weights):
    store[f"{i}"] = _ReadValue(tf.convert_to_tensor(variable))


class _ReadValue:
  """A variable's value as read: an immutable tensor no one else holds, so the numpy view of
  its buffer is already the copy that `np.array(value)` (copy=True) asks `__array__` for.
  (A later write of the variable goes to a new buffer: TensorFlow copies a variable's buffer
  on write while a read of it is alive.)"""

  def __init__(self, value):
    self.value = value

  def __array__(self, dtype=None, copy=None):
    array = np.asarray(self.value)
    return array if dtype is None else array.astype(dtype, copy=False)


def split_rows(table, bounds):
  """A [V, w] table's row blocks [bounds[k], bounds[k+1]) as one split: its gradient is one
  [V, w] concatenation of the blocks' gradients. (A slice per block made each block's
  gradient a zero-padded [V, w] of its own: at WikiText-103's vocabulary, four of 419 MiB
  and their sum, in every step.)"""
  return tf.split(table, [b - a for a, b in zip(bounds, bounds[1:])], axis=0)


class ClusterWeights(NamedTuple):
  """What a Transformer-XL softmax's clusters score with in one call: each cluster's weights
  and the tied input projections (empty when not tied)."""

  weights: list
  projections: list


def _matrix(layer, name, shape, initializer=None):
  """A weight of `layer`, N(0, 0.02) unless another initializer is given."""
  return layer.add_weight(
    name=name, shape=shape, initializer=initializer or initializers.table(layer.init)
  )


@keras.saving.register_keras_serializable(package="par")
class AdaptiveEmbedding(keras.layers.Layer):
  """Transformer-XL's adaptive input (Baevski & Auli 2019): tokens [B, T] -> [B, T, D].

  Cluster i of the vocabulary (bounds as the adaptive softmax's) has a table of width
  w_i = d_model // div_val**i; with div_val > 1 each is projected to d_model by P_i [D, w_i]
  (e @ P_iᵀ). With div_val 1 there is one table [V, D] and no projection: a plain embedding.
  A tied softmax scores cluster i with `tables()[i]` and, with tie_projs, `projections[i]`.
  """

  def __init__(self, vocab_size, d_model, cutoffs=(), div_val=1, init="glorot", **kwargs):
    super().__init__(**kwargs)
    self.init = init
    self.vocab_size = vocab_size
    self.d_model = d_model
    self.cutoffs = tuple(cutoffs)
    self.div_val = div_val
    self.bounds = (0,) + self.cutoffs + (vocab_size,)
    self.widths = cluster_widths(d_model, len(self.bounds) - 1, div_val)

  def build(self, input_shape=None):
    if self.div_val == 1:
      self.table = _matrix(self, "table", [self.vocab_size, self.d_model])
      self.cluster_tables, self.projections = [], []
    else:
      sizes = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
      self.cluster_tables = [
        _matrix(self, f"table{i}", [size, width])
        for i, (size, width) in enumerate(zip(sizes, self.widths))
      ]
      self.projections = [
        _matrix(self, f"projection{i}", [self.d_model, width], initializers.projection(self.init))
        for i, width in enumerate(self.widths)
      ]
    self.built = True

  def tables(self):
    """Each cluster's table [size_i, w_i] (row blocks of the one table when div_val is 1,
    `split_rows`)."""
    if self.div_val == 1:
      return split_rows(self.table, self.bounds)
    return list(self.cluster_tables)

  def call(self, tokens):
    tokens = tf.cast(tokens, tf.int32)
    if self.div_val == 1:
      return tf.gather(tf.cast(self.table, self.compute_dtype), tokens)
    flat = tf.reshape(tokens, [-1])
    out = tf.zeros([tf.size(flat), self.d_model], self.compute_dtype)
    static = static_shapes()
    for i, (low, high) in enumerate(zip(self.bounds, self.bounds[1:])):
      in_cluster = (flat >= low) & (flat < high)
      if static:  # Every token through every cluster, masked (module docstring).
        ids = tf.clip_by_value(flat - low, 0, high - low - 1)
      else:  # Only this cluster's tokens.
        rows = tf.where(in_cluster)
        ids = tf.gather_nd(flat, rows) - low
      vectors = tf.gather(tf.cast(self.cluster_tables[i], self.compute_dtype), ids)
      vectors = tf.matmul(
        vectors, tf.cast(self.projections[i], self.compute_dtype), transpose_b=True
      )
      if static:
        out += tf.where(in_cluster[:, None], vectors, tf.zeros([], out.dtype))
      else:
        out = tf.tensor_scatter_nd_update(out, rows, vectors)
    return tf.reshape(out, tf.concat([tf.shape(tokens), [self.d_model]], 0))

  def save_own_variables(self, store):
    save_variables_once(self, store)

  def get_config(self):
    return dict(
      super().get_config(),
      vocab_size=self.vocab_size,
      d_model=self.d_model,
      cutoffs=list(self.cutoffs),
      div_val=self.div_val,
      init=self.init,
    )


@keras.saving.register_keras_serializable(package="par")
class TransformerXLSoftmax(AdaptiveSoftmax):
  """Transformer-XL's adaptive softmax (`ProjectedAdaptiveLogSoftmax`), exact like ours.

  Cluster i (the head is 0) is scored at width w_i = d_model // div_val**i: the hidden state
  is projected by P_i [D, w_i] (div_val > 1 only), then multiplied by the cluster's weights
  [size_i, w_i] plus a bias; the head also scores one entry per tail with its own cluster
  weights. With tie_weight the weights are the input embedding's tables; with tie_projs the
  tails' projections are the input's (the head's stays its own, as in Transformer-XL).

  Porting weights: the head's tail entries are in tail order here (row i of `cluster_weight`
  and `cluster_bias` scores tail i + 1), while Transformer-XL reads tail i at column -i, so
  its rows are in reverse order: reverse both to port a checkpoint either way (no numerical
  difference otherwise; tests/test_transformer_xl.py computes its way from ours).
  """

  def __init__(
    self,
    vocab_size,
    d_model,
    cutoffs=(),
    div_val=1,
    tie_weight=False,
    tie_projs=False,
    init="glorot",
    **kwargs,
  ):
    super().__init__(vocab_size, d_model, cutoffs, init=init, **kwargs)
    self.div_val = div_val
    self.tie_weight = tie_weight
    self.tie_projs = tie_projs
    self.cluster_widths = cluster_widths(d_model, len(self.bounds) - 1, div_val)
    self.widths = self.cluster_widths[1:]

  def build(self, input_shape=None):
    sizes = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
    self.own_projections = [
      _matrix(self, f"projection{i}", [self.d_model, width], initializers.projection(self.init))
      if self.div_val > 1 and not (i and self.tie_projs)
      else None
      for i, width in enumerate(self.cluster_widths)
    ]
    self.own_weights = []
    if not self.tie_weight:
      if self.div_val == 1:
        self.weight = _matrix(self, "weight", [self.vocab_size, self.d_model])
      else:
        self.own_weights = [
          _matrix(self, f"weight{i}", [size, width])
          for i, (size, width) in enumerate(zip(sizes, self.cluster_widths))
        ]
    zeros = keras.initializers.Zeros()
    self.biases = [
      self.add_weight(name=f"bias{i}", shape=[size], initializer=zeros)
      for i, size in enumerate(sizes)
    ]
    if self.num_tails:
      self.cluster_weight = _matrix(
        self, "cluster_weight", [self.num_tails, self.cluster_widths[0]]
      )
      self.cluster_bias = self.add_weight(
        name="cluster_bias", shape=[self.num_tails], initializer=zeros
      )
    self.built = True

  def _prepare(self, tied):
    """Each cluster's weights and the tied projections, read once for one call."""
    if self.tie_weight:
      weights = tied.tables()
    elif self.div_val == 1:
      weights = split_rows(self.weight, self.bounds)
    else:
      weights = list(self.own_weights)
    return ClusterWeights(weights, tied.projections if tied is not None else [])

  def _logits(self, i, hidden, prepared, head=False):
    projection = self.own_projections[i]
    if projection is None and self.div_val > 1:  # tie_projs: the input's projection
      projection = prepared.projections[i]
    weights, bias = prepared.weights[i], self.biases[i]
    if head and self.num_tails:  # one more entry per tail
      weights = tf.concat([weights, self.cluster_weight], 0)
      bias = tf.concat([bias, self.cluster_bias], 0)
    dtype = hidden.dtype
    if projection is not None:
      hidden = tf.matmul(hidden, tf.cast(projection, dtype))
    logits = tf.matmul(hidden, tf.cast(weights, dtype), transpose_b=True) + tf.cast(bias, dtype)
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

  def _head_log_probs(self, hidden, tied=None):
    return self._logits(0, hidden, tied, head=True)

  def _tail_log_probs(self, i, hidden, tied=None):
    return self._logits(i + 1, hidden, tied)

  def get_config(self):
    config = super().get_config()
    for name in ("proj_factor", "proj_dims"):
      config.pop(name)
    return dict(config, div_val=self.div_val, tie_weight=self.tie_weight, tie_projs=self.tie_projs)

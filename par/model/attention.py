"""Relative multi-head attention with memory (Transformer-XL, Dai et al. 2019, section 3.3).

Sizes: B batch, T segment length, M memory length, K = M + T keys, D d_model, N heads,
H head width.

A query at segment position i sits at position M + i of [memory ; segment]; key j is visible
when j <= M + i (causal) and j >= M - memory_length (only memory that holds real states:
the first segment of an epoch has none). The score of a visible pair is

  ((q_i + u) . k_j  +  (q_i + v) . r_{M+i-j}) / sqrt(H)

with u and v learned content and position biases and r_d = W_r · sinusoid(d). Shapes never
depend on how much memory is valid, so a traced function serves every segment.
"""

import math

import keras
import tensorflow as tf

from par.model import initializers
from par.model.dropout import Dropout

_NEG_INF = -1e30  # Scores are float32 when masked, whatever the compute dtype.
SAME_LENGTH_NEEDS_MEMORY = (
  "same_length needs a memory: with a memory of 0 every query would see no key at all "
  "(Transformer-XL gives NaN there); set a memory length or turn same_length off"
)


def relative_positions(num_keys, d_model, clamp_len=0):
  """Sinusoid encodings of the distances K-1, K-2, ..., 0 (descending): float32 [K, D].

  Distances above clamp_len (when > 0) share the encoding of clamp_len.
  """
  distance = tf.range(num_keys - 1, -1, -1, dtype=tf.float32)
  if clamp_len > 0:
    distance = tf.minimum(distance, float(clamp_len))
  inverse_frequency = 1.0 / (10000.0 ** (tf.range(0, d_model, 2, dtype=tf.float32) / d_model))
  angle = distance[:, None] * inverse_frequency[None, :]
  return tf.concat([tf.sin(angle), tf.cos(angle)], axis=-1)[:, :d_model]


def attention_mask(seg_len, mem_len, memory_length, same_length=False):
  """Which keys each query may see: bool [T, K], True = visible.

  Args:
    seg_len: T (int or scalar tensor).
    mem_len: M, the memory's fixed size (int or scalar tensor).
    memory_length: how many of the M memory slots (the last ones) hold states.
    same_length: Transformer-XL's: once memory and segment hold more than M states, query i
      sees only the M keys ending at itself, so every query sees as many (else the first
      query of a segment sees M + 1 keys and the last M + T). Needs M > 0.

  Every query sees at least itself, so no row is fully masked (a fully masked row would
  attend uniformly to every key, the future included).

  Raises:
    ValueError: same_length with M = 0.
  """
  if same_length and isinstance(mem_len, int) and mem_len == 0:
    # Query i would see "the 0 keys ending at itself": no key at all, and the softmax of a
    # fully masked row attends uniformly to every key, future ones included.
    raise ValueError(SAME_LENGTH_NEEDS_MEMORY)
  query = tf.range(seg_len)[:, None]
  key = tf.range(mem_len + seg_len)[None, :]
  visible = (key <= mem_len + query) & (key >= mem_len - memory_length)
  if same_length:
    crowded = memory_length + seg_len > mem_len
    visible &= tf.logical_not(crowded) | (key > query)
  return visible


def rel_shift(x):
  """Aligns scores computed against descending distances with key positions.

  x[..., i, c] is the score of query i against distance K-1-c. Returns y with
  y[..., i, j] = x[..., i, j + T-1-i], the score against distance M+i-j, for every visible
  (i, j); entries for j > M+i are meaningless and must be masked. The trick of Dai et al.:
  pad one zero column on the left, fold the [T, K+1] matrix to [K+1, T], drop the first row,
  unfold to [T, K].
  """
  shape = tf.shape(x)
  seg_len, num_keys = shape[-2], shape[-1]
  leading = shape[:-2]
  paddings = [[0, 0]] * (len(x.shape) - 1) + [[1, 0]]
  x = tf.pad(x, paddings)
  # Dropping the first row of the [K+1, T] fold = dropping the first T entries of the flat
  # [(K+1)·T] vector; tf.slice's gradient is a pad, far cheaper on CPU than the strided
  # slice gradient of x[..., 1:, :].
  x = tf.reshape(x, tf.concat([leading, [(num_keys + 1) * seg_len]], 0))
  rank = len(x.shape)
  x = tf.slice(x, [0] * (rank - 1) + [seg_len], [-1] * rank)
  return tf.reshape(x, tf.concat([leading, [seg_len, num_keys]], 0))


@keras.saving.register_keras_serializable(package="par")
class RelativeMultiHeadAttention(keras.layers.Layer):
  """Multi-head attention over [memory ; segment] with relative positions.

  Returns the attention output projected back to D, before residual and normalization.
  u and v are this layer's own unless the caller passes shared ones.
  """

  def __init__(self, d_model, n_heads, d_head, dropatt=0.0, own_bias=True, init="glorot", **kwargs):
    super().__init__(**kwargs)
    self.d_model = d_model
    self.n_heads = n_heads
    self.d_head = d_head
    self.dropatt = dropatt
    self.own_bias = own_bias
    self.init = init

  def build(self, input_shape=None):
    d, n, h = self.d_model, self.n_heads, self.d_head

    # [D, N, H] kernels are [D, N·H] matrices split into heads: their fans are those. One
    # initializer per weight: an unseeded Keras initializer draws its seed once, when it is
    # made, so one shared by w_q, w_k, w_v and w_r gave all four the same values.
    def into(name):
      return self.add_weight(
        name=name, shape=[d, n, h], initializer=initializers.matrix(self.init, d, n * h)
      )

    self.w_q, self.w_k, self.w_v, self.w_r = into("w_q"), into("w_k"), into("w_v"), into("w_r")
    self.w_o = self.add_weight(
      name="w_o", shape=[n, h, d], initializer=initializers.matrix(self.init, n * h, d)
    )
    if self.own_bias:
      self.u = self.add_weight(name="u", shape=[n, h], initializer=initializers.bias())
      self.v = self.add_weight(name="v", shape=[n, h], initializer=initializers.bias())
    self.attention_dropout = Dropout(self.dropatt)
    self.built = True

  def call(self, segment, memory, positions, mask, u=None, v=None, training=False):
    """Attention of the segment's queries over [memory ; segment].

    Args:
      segment: [B, T, D] inputs of this block.
      memory: [B, M, D] earlier inputs of this block (M may be 0).
      positions: [K, D] relative encodings from `relative_positions`.
      mask: bool [T, K] from `attention_mask`.
      u, v: [N, H] shared biases; None to use this layer's own.
      training: apply attention dropout.

    Returns:
      [B, T, D].
    """
    if u is None:
      if not self.own_bias:
        raise ValueError("this attention layer has no biases of its own: pass u and v")
      u, v = self.u, self.v
    dtype = segment.dtype
    d, n, h = self.d_model, self.n_heads, self.d_head
    batch, seg_len = tf.shape(segment)[0], tf.shape(segment)[1]
    keys_in = tf.concat([tf.cast(memory, dtype), segment], axis=1)  # [B, K, D]
    num_keys = tf.shape(keys_in)[1]
    # Projections as plain 2-D matmuls (keys and values in one), heads split afterwards:
    # on CPU this is about twice as fast as the equivalent einsums, backward pass included.
    w_kv = tf.concat([tf.reshape(self.w_k, [d, n * h]), tf.reshape(self.w_v, [d, n * h])], 1)
    q = tf.matmul(tf.reshape(segment, [-1, d]), tf.cast(tf.reshape(self.w_q, [d, n * h]), dtype))
    kv = tf.matmul(tf.reshape(keys_in, [-1, d]), tf.cast(w_kv, dtype))
    r = tf.matmul(tf.cast(positions, dtype), tf.cast(tf.reshape(self.w_r, [d, n * h]), dtype))
    # The biases go on as BiasAdds of the [B·T, N·H] projection, before the heads are split:
    # their gradients are BiasAddGrads, where a broadcast add over [B, N, T, H] costs a
    # reduction over three axes each (about 4% of the layer's step on CPU).
    q_u = tf.nn.bias_add(q, tf.reshape(tf.cast(u, dtype), [n * h]))
    q_v = tf.nn.bias_add(q, tf.reshape(tf.cast(v, dtype), [n * h]))
    q_u = tf.transpose(tf.reshape(q_u, [batch, seg_len, n, h]), [0, 2, 1, 3])  # [B, N, T, H]
    k, value = tf.unstack(
      tf.transpose(tf.reshape(kv, [batch, num_keys, 2, n, h]), [2, 0, 3, 1, 4])
    )  # [B, N, K, H] each
    r = tf.transpose(tf.reshape(r, [num_keys, n, h]), [1, 2, 0])  # [N, H, K]
    content = tf.matmul(q_u, k, transpose_b=True)  # [B, N, T, K]
    # Position scores batched over heads: [N, B*T, H] x [N, H, K].
    q_v = tf.reshape(
      tf.transpose(tf.reshape(q_v, [batch, seg_len, n, h]), [2, 0, 1, 3]), [n, -1, h]
    )
    position = tf.transpose(
      tf.reshape(tf.matmul(q_v, r), [n, batch, seg_len, num_keys]), [1, 0, 2, 3]
    )
    position = rel_shift(position)
    # Softmax in float32 whatever the compute dtype (mixed precision).
    scores = tf.cast(content + position, tf.float32) * (1.0 / math.sqrt(h))
    scores = tf.where(mask, scores, _NEG_INF)
    weights = tf.cast(tf.nn.softmax(scores, axis=-1), dtype)
    weights = self.attention_dropout(weights, training=training)
    attended = tf.matmul(weights, value)  # [B, N, T, H]
    attended = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [-1, n * h])
    output = tf.matmul(attended, tf.cast(tf.reshape(self.w_o, [n * h, d]), dtype))
    return tf.reshape(output, [batch, seg_len, d])

  def get_config(self):
    return dict(
      super().get_config(),
      d_model=self.d_model,
      n_heads=self.n_heads,
      d_head=self.d_head,
      dropatt=self.dropatt,
      own_bias=self.own_bias,
      init=self.init,
    )


def cache_memory(memory, segment):
  """The next memory: the last M states of [memory ; segment], out of the gradient."""
  mem_len = memory.shape[1]
  if mem_len == 0:
    return memory
  joined = tf.concat([tf.cast(memory, segment.dtype), segment], axis=1)
  return tf.stop_gradient(tf.cast(joined[:, -mem_len:], memory.dtype))

"""The blocks of a PAR network: attention, feed-forward, identity, and the stochastic mixture
of the three that the search trains (Mandava et al. 2020).

Post-norm residual blocks, as in Transformer-XL:
  attention     x -> LayerNorm(x + Dropout(RelativeAttention(x, memory)))
  feed-forward  x -> LayerNorm(x + Dropout(W2 · Dropout(ReLU(W1 x + b1)) + b2))
  identity      x -> x

One interface: every block is called as

  output, memory = block(x, memory, positions, mask, u=, v=, tau=, seed=, training=)

and returns its next memory entry (par/model/memory.py): the last M inputs for blocks that attend,
the `()` it was given for the others, which ignore the attention and sampling arguments.
`make_block(kind, ...)` builds any of them from its pattern letter ("?" for stochastic).

A stochastic block holds one attention and one feed-forward block and three architecture
logits α (attention, feed-forward, identity). Its output is Σ_k w_k · branch_k(x), with w drawn
by `mixture_weights`. Sampling modes in training:
  soft         w = softmax((α + g) / τ), g ~ Gumbel(0, 1): all branches, relaxed weights.
  hard         w = onehot(argmax(α + g)) with the gradient of the soft weights
               (straight-through): all branches computed, one used.
  single_path  as hard, but only the sampled branch is computed (GDAS, Dong & Yang 2019); its
               weight is 1 forward and carries the soft weights' gradient, so every logit
               still learns.
Evaluation is deterministic: "argmax" computes the most likely branch alone (the derived
architecture); "expected" mixes all branches with softmax(α), without noise.

A decoupled SuperNet (sampling "uniform" or "fair", par/model/paths.py) never learns α: the
model hands each block the branch of a path drawn by a fixed sampler (`branch`), and only that
branch runs, with weight 1.
"""

import keras
import tensorflow as tf

from par.config import BLOCK_KINDS
from par.config import COUPLED_SAMPLING
from par.config import EVAL_MODES
from par.config import SAMPLING_MODES
from par.model import attention
from par.model import initializers
from par.model import memory as memory_lib
from par.model.dropout import Dropout

BRANCHES = tuple(BLOCK_KINDS)  # The order of the architecture logits: s, f, i.


def gumbel_noise(shape, seed):
  """Standard Gumbel samples from a stateless seed ([2] int): finite for every draw."""
  tiny = tf.experimental.numpy.finfo(tf.float32).tiny
  uniform = tf.random.stateless_uniform(shape, seed=seed, minval=tiny, maxval=1.0)
  return -tf.math.log(-tf.math.log(uniform))


def mixture_weights(logits, mode, tau=1.0, noise=None):
  """Branch weights and the index of the branch that single-branch modes compute.

  Args:
    logits: float32 [3] architecture logits.
    mode: one of COUPLED_SAMPLING or EVAL_MODES.
    tau: Gumbel-Softmax temperature (sampling modes).
    noise: [3] Gumbel noise for the sampling modes; zeros give the noiseless relaxation.

  Returns:
    (weights float32 [3], index int32 scalar). For "argmax" and "single_path" only
    weights[index] is used.
  """
  logits = tf.cast(logits, tf.float32)
  if mode == "expected":
    return tf.nn.softmax(logits), tf.argmax(logits, output_type=tf.int32)
  if mode == "argmax":
    index = tf.argmax(logits, output_type=tf.int32)
    return tf.one_hot(index, len(BRANCHES)), index
  if mode not in COUPLED_SAMPLING:
    raise ValueError(f"unknown mixture mode {mode!r}")
  perturbed = logits + (tf.zeros_like(logits) if noise is None else noise)
  # Keras casts float call arguments to the compute dtype: tau may arrive in 16 bits.
  soft = tf.nn.softmax(perturbed / tf.cast(tau, tf.float32))
  index = tf.argmax(perturbed, output_type=tf.int32)
  if mode == "soft":
    return soft, index
  hard = tf.one_hot(index, len(BRANCHES))
  return hard - tf.stop_gradient(soft) + soft, index


@keras.saving.register_keras_serializable(package="par")
class AttentionBlock(keras.layers.Layer):
  """x -> LayerNorm(x + Dropout(RelativeAttention(x, memory))); returns (output, memory)."""

  def __init__(
    self,
    d_model,
    n_heads,
    d_head,
    dropout=0.0,
    dropatt=0.0,
    own_bias=True,
    init="glorot",
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.d_model = d_model
    self.n_heads = n_heads
    self.d_head = d_head
    self.dropout = dropout
    self.dropatt = dropatt
    self.own_bias = own_bias
    self.init = init

  def build(self, input_shape=None):
    self.attention = attention.RelativeMultiHeadAttention(
      self.d_model,
      self.n_heads,
      self.d_head,
      self.dropatt,
      self.own_bias,
      self.init,
      name="attention",
    )
    self.attention.build()
    self.output_dropout = Dropout(self.dropout)
    self.norm = _norm(self.init, self.d_model)
    self.built = True

  def call(self, x, memory, positions, mask, u=None, v=None, tau=None, seed=None, training=False):
    """Returns (output [B, T, D], next memory [B, M, D]); tau and seed are not used."""
    del tau, seed
    attended = self.attention(x, memory, positions, mask, u=u, v=v, training=training)
    output = self.norm(x + self.output_dropout(attended, training=training))
    return output, attention.cache_memory(memory, x)

  def get_config(self):
    return dict(
      super().get_config(),
      d_model=self.d_model,
      n_heads=self.n_heads,
      d_head=self.d_head,
      dropout=self.dropout,
      dropatt=self.dropatt,
      own_bias=self.own_bias,
      init=self.init,
    )


def _norm(init, d_model):
  """The post-residual LayerNorm of a block, built."""
  norm = keras.layers.LayerNormalization(
    epsilon=1e-5, gamma_initializer=initializers.norm_scale(init), name="norm"
  )
  norm.build([None, None, d_model])
  return norm


@keras.saving.register_keras_serializable(package="par")
class FeedForwardBlock(keras.layers.Layer):
  """x -> LayerNorm(x + Dropout(W2 · Dropout(ReLU(W1 x + b1)) + b2))."""

  def __init__(self, d_model, d_ffn, dropout=0.0, init="glorot", **kwargs):
    super().__init__(**kwargs)
    self.d_model = d_model
    self.d_ffn = d_ffn
    self.dropout = dropout
    self.init = init

  def build(self, input_shape=None):
    d, f = self.d_model, self.d_ffn
    self.inner = keras.layers.Dense(
      f, activation="relu", kernel_initializer=initializers.matrix(self.init, d, f), name="inner"
    )
    self.inner.build([None, None, d])
    self.outer = keras.layers.Dense(
      d, kernel_initializer=initializers.matrix(self.init, f, d), name="outer"
    )
    self.outer.build([None, None, f])
    self.inner_dropout = Dropout(self.dropout)
    self.output_dropout = Dropout(self.dropout)
    self.norm = _norm(self.init, d)
    self.built = True

  def call(
    self,
    x,
    memory=memory_lib.NONE,
    positions=None,
    mask=None,
    u=None,
    v=None,
    tau=None,
    seed=None,
    training=False,
  ):
    """Returns (output [B, T, D], memory unchanged); only x and training are used."""
    del positions, mask, u, v, tau, seed
    hidden = self.inner_dropout(self.inner(x), training=training)
    return self.norm(x + self.output_dropout(self.outer(hidden), training=training)), memory

  def get_config(self):
    return dict(
      super().get_config(),
      d_model=self.d_model,
      d_ffn=self.d_ffn,
      dropout=self.dropout,
      init=self.init,
    )


@keras.saving.register_keras_serializable(package="par")
class IdentityBlock(keras.layers.Layer):
  """x -> x: the block that skips."""

  def call(
    self,
    x,
    memory=memory_lib.NONE,
    positions=None,
    mask=None,
    u=None,
    v=None,
    tau=None,
    seed=None,
    training=False,
  ):
    """Returns (x, memory unchanged)."""
    del positions, mask, u, v, tau, seed, training
    return x, memory


@keras.saving.register_keras_serializable(package="par")
class StochasticBlock(keras.layers.Layer):
  """Attention, feed-forward or identity, mixed by Gumbel-Softmax over learned logits."""

  def __init__(
    self,
    d_model,
    n_heads,
    d_head,
    d_ffn,
    dropout=0.0,
    dropatt=0.0,
    own_bias=True,
    sampling="soft",
    eval_mode="argmax",
    init="glorot",
    **kwargs,
  ):
    super().__init__(**kwargs)
    if sampling not in SAMPLING_MODES:
      raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
    if eval_mode not in EVAL_MODES:
      raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {eval_mode!r}")
    self.d_model = d_model
    self.n_heads = n_heads
    self.d_head = d_head
    self.d_ffn = d_ffn
    self.dropout = dropout
    self.dropatt = dropatt
    self.own_bias = own_bias
    self.sampling = sampling
    self.eval_mode = eval_mode
    self.init = init

  def build(self, input_shape=None):
    self.attention_block = AttentionBlock(
      self.d_model,
      self.n_heads,
      self.d_head,
      self.dropout,
      self.dropatt,
      self.own_bias,
      self.init,
      name="attention_block",
    )
    self.attention_block.build()
    self.feed_forward_block = FeedForwardBlock(
      self.d_model, self.d_ffn, self.dropout, self.init, name="feed_forward_block"
    )
    self.feed_forward_block.build()
    self.arch_logits = self.add_weight(
      name="arch_logits", shape=[len(BRANCHES)], initializer="zeros", dtype="float32"
    )
    self.built = True

  def call(
    self,
    x,
    memory,
    positions,
    mask,
    u=None,
    v=None,
    tau=1.0,
    seed=None,
    training=False,
    branch=None,
  ):
    """Returns (output [B, T, D], new memory [B, M, D]).

    Args:
      x, memory, positions, mask, u, v: as for `AttentionBlock`.
      tau: Gumbel-Softmax temperature (training only).
      seed: [2] int stateless seed for this block's Gumbel noise (training only).
      training: sample with `sampling` (else evaluate with `eval_mode`) and apply dropout.
      branch: int32 scalar, the branch of a path a decoupled SuperNet follows (0 s, 1 f,
        2 i): computed alone, with weight 1; the logits play no part.
    """
    branches = (
      lambda: self.attention_block(x, memory, positions, mask, u=u, v=v, training=training)[0],
      lambda: self.feed_forward_block(x, training=training)[0],
      lambda: x,
    )
    if branch is not None:
      return tf.switch_case(branch, list(branches)), attention.cache_memory(memory, x)
    if training:
      if self.sampling not in COUPLED_SAMPLING:
        raise ValueError(f"a {self.sampling} SuperNet trains on the paths its model hands it")
      if seed is None:
        raise ValueError("sampling the architecture in training needs a seed")
      mode = self.sampling
      noise = gumbel_noise([len(BRANCHES)], seed)
    else:
      mode, noise = self.eval_mode, None
    weights, index = mixture_weights(self.arch_logits, mode, tau, noise)
    weights = tf.cast(weights, x.dtype)
    if mode in ("single_path", "argmax"):
      # Only the chosen branch runs; its weight is 1 forward (and straight-through in
      # single_path, so the logits get gradients).
      output = tf.switch_case(
        index, [(lambda k=k: weights[k] * branches[k]()) for k in range(len(BRANCHES))]
      )
    else:
      output = tf.add_n([weights[k] * branches[k]() for k in range(len(BRANCHES))])
    return output, attention.cache_memory(memory, x)

  def get_config(self):
    return dict(
      super().get_config(),
      d_model=self.d_model,
      n_heads=self.n_heads,
      d_head=self.d_head,
      d_ffn=self.d_ffn,
      dropout=self.dropout,
      dropatt=self.dropatt,
      own_bias=self.own_bias,
      sampling=self.sampling,
      eval_mode=self.eval_mode,
      init=self.init,
    )


KEEPS_MEMORY = "s?"  # The kinds of block that attend, hence keep memory.


def make_block(kind, config, own_bias, name):
  """The block of one pattern letter: "s", "f", "i", or "?" (stochastic), built.

  Args:
    kind: the letter.
    config: a `par.config.ModelConfig`.
    own_bias: whether attention layers hold their own u, v (else the model passes shared ones).
    name: the layer's name (the model uses "block<k>", which its saved weights are keyed by).
  """
  c = config
  if kind == "?":
    block = StochasticBlock(
      c.d_model,
      c.n_heads,
      c.head_width,
      c.d_ffn,
      c.dropout,
      c.dropatt,
      own_bias,
      c.sampling,
      c.eval_mode,
      c.init,
      name=name,
    )
  elif kind == "s":
    block = AttentionBlock(
      c.d_model, c.n_heads, c.head_width, c.dropout, c.dropatt, own_bias, c.init, name=name
    )
  elif kind == "f":
    block = FeedForwardBlock(c.d_model, c.d_ffn, c.dropout, c.init, name=name)
  elif kind == "i":
    block = IdentityBlock(name=name)
  else:
    raise ValueError(f"unknown block kind {kind!r}")
  block.build([None, None, c.d_model])
  return block

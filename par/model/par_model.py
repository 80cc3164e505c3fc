"""The PAR model: a Transformer-XL whose blocks are searched (SuperNet) or fixed by a pattern.

tokens [B, T] -> embedding · sqrt(D) -> dropout -> blocks -> dropout -> hidden [B, T, D]
hidden -> adaptive softmax -> log-probabilities, or (summed NLL, token count) against targets

Memory is explicit state (par/model/memory.py): one entry per block, [B, M, D] where the block
attends, passed in and returned by every block. A fresh memory (`initial_memory`) is all
zeros with length 0. Evaluation may use a longer memory than training: M is read from the
memory passed in.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from par.config import DECOUPLED_SAMPLING
from par.config import SEARCHED
from par.config import ModelConfig
from par.config import argmax_pattern
from par.model import attention
from par.model import blocks
from par.model import initializers
from par.model import memory as memory_lib
from par.model import paths
from par.model.adaptive_softmax import AdaptiveEmbedding
from par.model.adaptive_softmax import AdaptiveSoftmax
from par.model.adaptive_softmax import TransformerXLSoftmax
from par.model.dropout import Dropout
from par.model.memory import Memory


@keras.saving.register_keras_serializable(package="par")
class ParModel(keras.Model):
  """SuperNet (config.architecture empty) or fixed-pattern PAR model."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    if isinstance(config, dict):
      config = ModelConfig.from_dict(config)
    self.config = config.validate()

  @property
  def is_supernet(self):
    """Whether some block is searched (the SuperNet, or a sub-SuperNet fixing some)."""
    return self.config.is_supernet

  @property
  def is_decoupled(self):
    """A SuperNet trained on paths from a fixed sampler (--sampling uniform or fair): its
    logits learn nothing, its architecture comes from the shared weights' scores."""
    return self.is_supernet and self.config.sampling in DECOUPLED_SAMPLING

  @property
  def pattern(self):
    """The fixed pattern, or the SuperNet's derived one (argmax per block; "" for a decoupled
    SuperNet, which derives none)."""
    return self.derived_pattern() if self.is_supernet else self.config.architecture

  def build(self, input_shape=None):
    c = self.config
    if c.div_val:  # Transformer-XL's adaptive input, tied or not to its softmax
      self.embedding = AdaptiveEmbedding(
        c.vocab_size, c.d_model, c.cutoffs, c.div_val, c.init, name="embedding"
      )
    else:
      self.embedding = keras.layers.Embedding(
        c.vocab_size,
        c.d_model,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="embedding",
      )
    self.embedding.build([None, None])
    shared_bias = self.has_shared_bias
    if shared_bias:
      self.rel_bias_u = self.add_weight(
        name="rel_bias_u", shape=[c.n_heads, c.head_width], initializer=initializers.bias()
      )
      self.rel_bias_v = self.add_weight(
        name="rel_bias_v", shape=[c.n_heads, c.head_width], initializer=initializers.bias()
      )
    self.blocks = [
      blocks.make_block(kind, c, not shared_bias, f"block{k}") for k, kind in enumerate(self.kinds)
    ]
    self.input_dropout = Dropout(c.dropout)
    self.position_dropout = Dropout(c.dropout)
    self.output_dropout = Dropout(c.dropout)
    if c.div_val:
      self.softmax = TransformerXLSoftmax(
        c.vocab_size,
        c.d_model,
        c.cutoffs,
        c.div_val,
        c.tie_weight,
        c.tie_projs,
        c.init,
        name="softmax",
      )
    else:
      self.softmax = AdaptiveSoftmax(
        c.vocab_size, c.d_model, c.cutoffs, c.proj_factor, c.proj_dims, c.init, name="softmax"
      )
    self.softmax.build()
    self.built = True

  @property
  def has_shared_bias(self):
    """Whether u and v are model weights shared by all attending blocks."""
    return not self.config.untie_rel_bias and bool(self.attending_blocks)

  @property
  def kinds(self):
    """One letter per block: the fixed pattern, "?" (stochastic) for every searched block."""
    return self.config.kinds

  @property
  def searched_blocks(self):
    """Indices of the stochastic blocks: every block of the SuperNet, some of a sub-SuperNet.
    Paths, architecture logits and forced patterns run over them, in this order."""
    return tuple(k for k, kind in enumerate(self.kinds) if kind == SEARCHED)

  @property
  def attending_blocks(self):
    """Indices of the blocks that attend, hence carry memory."""
    return tuple(k for k, kind in enumerate(self.kinds) if kind in blocks.KEEPS_MEMORY)

  def initial_memory(self, batch_size, mem_len=None):
    """An empty memory: zeros [B, M, D] for each attending block, length 0."""
    mem_len = self.config.mem_len if mem_len is None else mem_len
    return memory_lib.empty(
      [kind in blocks.KEEPS_MEMORY for kind in self.kinds],
      batch_size,
      mem_len,
      self.config.d_model,
      self.compute_dtype,
    )

  def call(
    self,
    tokens: tf.Tensor,
    memory: Memory | None = None,
    tau: float | tf.Tensor = 1.0,
    seed: tf.Tensor | None = None,
    training: bool = False,
    clamp_len: int | None = None,
    same_length: bool | None = None,
    path: tf.Tensor | None = None,
  ) -> tuple[tf.Tensor, Memory]:
    """Hidden states and the next memory.

    Args:
      tokens: int [B, T].
      memory: a `Memory`, or None for an empty one of config.mem_len.
      tau: Gumbel-Softmax temperature of the SuperNet (training only).
      seed: [2] int stateless seed of the SuperNet's Gumbel noise (training only); each block
        folds in its index. A decoupled SuperNet evaluated with a seed follows the path
        `paths.uniform_path` draws from it (its evaluations average over its sampler's paths).
      training: dropout, and architecture sampling in the SuperNet.
      clamp_len, same_length: the model's settings unless given (Transformer-XL's evaluation
        protocol changes them at evaluation time; neither changes a weight).
      path: int32 [searched blocks], the branch each stochastic block runs (0 s, 1 f, 2 i),
        in order: a decoupled SuperNet's path (in training, the step draws it).

    Returns:
      (hidden [B, T, D] in the compute dtype, next `Memory`).
    """
    c = self.config
    if memory is None:
      memory = self.initial_memory(tf.shape(tokens)[0])
    seg_len = tf.shape(tokens)[1]
    mem_len = memory.mem_len
    x = self.embedding(tokens) * math.sqrt(c.d_model)
    x = self.input_dropout(x, training=training)
    clamp_len = c.clamp_len if clamp_len is None else clamp_len
    same_length = c.same_length if same_length is None else same_length
    positions = attention.relative_positions(mem_len + seg_len, c.d_model, clamp_len)
    positions = self.position_dropout(tf.cast(positions, x.dtype), training=training)
    mask = attention.attention_mask(seg_len, mem_len, memory.length, same_length)
    u = v = None
    if self.has_shared_bias:
      u, v = self.rel_bias_u, self.rel_bias_v
    if path is None and self.is_decoupled and not training and seed is not None:
      path = paths.uniform_path(seed, len(self.searched_blocks))
    branch_of = {k: j for j, k in enumerate(self.searched_blocks)}
    new_states = []
    for k, (block, state) in enumerate(zip(self.blocks, memory.states)):
      # Each block folds its index into the seed: its own Gumbel noise (stochastic blocks).
      block_seed = None if seed is None else tf.random.experimental.stateless_fold_in(seed, k)
      forced = {}
      if path is not None and k in branch_of:
        forced = {"branch": path[branch_of[k]]}
      x, state = block(
        x, state, positions, mask, u=u, v=v, tau=tau, seed=block_seed, training=training, **forced
      )
      new_states.append(state)
    hidden = self.output_dropout(x, training=training)
    length = tf.minimum(memory.length + seg_len, mem_len)
    return hidden, Memory(tuple(new_states), length)

  @property
  def _tied(self):
    """The input embedding a tied softmax scores with."""
    return self.embedding if self.config.tie_weight or self.config.tie_projs else None

  def nll(self, hidden, targets):
    """(summed NLL float32, number of non-padding targets float32)."""
    return self.softmax.nll(hidden, targets, self._tied)

  def token_nll(self, hidden, targets):
    """The NLL of each target, flattened: float32 [N], 0 at padding (`nll` sums it)."""
    return self.softmax.token_nll(hidden, targets, self._tied)

  def log_probs(self, hidden):
    """Exact log-probabilities float32 [..., V]."""
    return self.softmax.log_probs(hidden, self._tied)

  # --- the architecture ---------------------------------------------------------------------

  def architecture_variables(self):
    """The SuperNet's architecture logits, one [3] variable per block (empty if fixed)."""
    return [b.arch_logits for b in self.blocks if isinstance(b, blocks.StochasticBlock)]

  def weight_variables(self):
    """Every trainable variable that is not an architecture logit."""
    arch = {id(v) for v in self.architecture_variables()}
    return [v for v in self.trainable_variables if id(v) not in arch]

  def no_decay_variables(self):
    """The weights decoupled weight decay leaves alone, by role: every bias, norm scale and
    offset (the variables of rank 1: Transformer-XL's softmax biases `bias0…` and
    `cluster_bias` included) and the attention's content and position biases u, v."""
    biases = [self.rel_bias_u, self.rel_bias_v] if self.has_shared_bias else []
    for layer in self._flatten_layers():
      if isinstance(layer, attention.RelativeMultiHeadAttention) and layer.own_bias:
        biases += [layer.u, layer.v]
    exempt = {id(v) for v in biases}
    return [v for v in self.weight_variables() if len(v.shape) <= 1 or id(v) in exempt]

  def architecture_probabilities(self):
    """softmax(logits) per searched block, one-hot rows for fixed ones: numpy float32
    [n_blocks, 3], columns s, f, i."""
    rows = np.eye(len(blocks.BRANCHES), dtype=np.float32)
    probabilities = [
      None if kind == SEARCHED else rows[blocks.BRANCHES.index(kind)] for kind in self.kinds
    ]
    for k, variable in zip(self.searched_blocks, self.architecture_variables()):
      probabilities[k] = tf.nn.softmax(variable).numpy()
    return np.stack(probabilities)

  def derived_pattern(self):
    """The most likely branch of every block, e.g. "sfsfii" ("" for a decoupled SuperNet,
    whose logits learn nothing)."""
    if self.is_decoupled:
      return ""
    return argmax_pattern(self.architecture_probabilities())

  def to_fixed(self, pattern=None):
    """A fixed model of `pattern` (default: the derived one) with this model's weights."""
    pattern = pattern or self.pattern
    if not pattern:
      raise ValueError("a decoupled SuperNet derives no pattern: give the one to fix")
    fixed = ParModel(dataclasses.replace(self.config, architecture=pattern), name=self.name)
    fixed.build()
    copy_weights(self, fixed)
    return fixed

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}


def copy_weights(source, target):
  """Sets `target`'s weights from `source`, a model of the same shape whose pattern contains
  the target's: the embedding, softmax and shared u, v as they are; a block both search,
  whole (its branches and logits); a block the target fixes, from the source's branch of that
  kind (or the same fixed block). Raises ValueError where the source lacks a target's block
  (a fixed s where the target needs f, say)."""
  target.embedding.set_weights(source.embedding.get_weights())
  target.softmax.set_weights(source.softmax.get_weights())
  if target.has_shared_bias and source.has_shared_bias:
    target.rel_bias_u.assign(source.rel_bias_u)
    target.rel_bias_v.assign(source.rel_bias_v)
  for k, (want, have, block, origin) in enumerate(
    zip(target.kinds, source.kinds, target.blocks, source.blocks)
  ):
    if want == have:
      block.set_weights(origin.get_weights())
    elif have == SEARCHED and want in "sf":
      branch = {"s": origin.attention_block, "f": origin.feed_forward_block}[want]
      block.set_weights(branch.get_weights())
    elif want != "i":
      raise ValueError(
        f"block {k}: a {have!r} block of {source.config.kinds!r} cannot give a {want!r} one"
      )

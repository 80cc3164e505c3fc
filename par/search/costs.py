"""What a block, a softmax and a model cost: parameters and FLOPs counted, time measured.

Counted costs:

- parameters exactly as the model creates them (tests check against the model);
- FLOPs per token of a forward pass, a multiply-add counting 2, for a batch of B lanes, each a
  segment of T tokens attending to M memory slots (K = M + T keys). An attention block
  projects queries for its T positions but keys and values for all K, and scores T x K pairs;
  the relative encodings r (K of them, one per distance) are projected once per segment for
  the whole batch ([K, D] x [D, NH]), so each of the B·T tokens carries 1/(B·T) of that:

    attention     2·NH·(D·(2 + 2K/T + K/(B·T)) + 3K)   q, out; k, v over K/T; r; two score
                                                        terms and AV
    feed-forward  4·D·F
    identity      0

  Softmaxes, layer norms and the relative shift are left out (linear in T·K or T·D).

Measured cost (`measure_latency`): the forward time of one block of each kind at the training
shapes, on this machine; the resource term can use it instead of FLOPs.
"""

import dataclasses
import itertools
import time

import numpy as np

from par.config import BLOCK_KINDS
from par.config import cluster_widths
from par.search.patterns import parse_pattern


@dataclasses.dataclass(frozen=True)
class Cost:
  params: int
  flops: float  # per token, forward

  def __add__(self, other):
    return Cost(self.params + other.params, self.flops + other.flops)

  def scaled(self, share):
    return Cost(self.params, self.flops * share)


def block_costs(config, seq_len, batch_size, mem_len=None):
  """Cost of one block of each kind ("s", "f", "i") and of a SuperNet block ("?").

  Args:
    config: ModelConfig.
    seq_len, batch_size: T and B, the segment length and the lanes that share one projection
      of the relative encodings (a dataset's batch: one device holding the whole batch).
    mem_len: M; None for config.mem_len.

  The SuperNet block's FLOPs are those of soft or hard sampling, which compute both branches.
  """
  d, n, h, f = config.d_model, config.n_heads, config.head_width, config.d_ffn
  mem_len = config.mem_len if mem_len is None else mem_len
  keys = mem_len + seq_len
  nh = n * h
  attention_params = 5 * d * nh + 2 * d + (2 * nh if config.untie_rel_bias else 0)
  attention_flops = (
    2 * nh * (d * (2 + 2 * keys / seq_len + keys / (batch_size * seq_len)) + 3 * keys)
  )
  costs = {
    "s": Cost(attention_params, attention_flops),
    "f": Cost(2 * d * f + f + d + 2 * d, 4.0 * d * f),
    "i": Cost(0, 0.0),
  }
  costs["?"] = costs["s"] + costs["f"] + Cost(3, 0.0)  # 3 architecture logits
  return costs


def softmax_cost(config, tail_shares=None):
  """Parameters and FLOPs per token of the output layer.

  Args:
    config: ModelConfig.
    tail_shares: the share of tokens in each tail cluster (only those tokens run the tail);
      None counts every tail for every token, the cost of computing full log-probabilities.
  """
  d, v = config.d_model, config.vocab_size
  if config.div_val:
    return _transformer_xl_softmax_cost(config, tail_shares)
  if not config.cutoffs:
    return Cost(d * v + v, 2.0 * d * v)
  bounds = (0,) + tuple(config.cutoffs) + (v,)
  head = bounds[1] + len(config.cutoffs)
  cost = Cost(d * head + head, 2.0 * d * head)
  for i, width in enumerate(config.tail_widths):
    size = bounds[i + 2] - bounds[i + 1]
    share = 1.0 if tail_shares is None else tail_shares[i]
    cost += Cost(d * width + width * size + size, 2.0 * (d * width + width * size) * share)
  return cost


def _clusters(config):
  """(size, width) of each cluster of Transformer-XL's adaptive input and softmax, head first."""
  bounds = (0,) + tuple(config.cutoffs) + (config.vocab_size,)
  widths = cluster_widths(config.d_model, len(bounds) - 1, config.div_val)
  return [(b - a, width) for a, b, width in zip(bounds, bounds[1:], widths)]


def _transformer_xl_softmax_cost(config, tail_shares):
  """`softmax_cost` of `TransformerXLSoftmax`: tied weights and projections are the input
  embedding's parameters, counted there; their FLOPs are the softmax's."""
  d, tails = config.d_model, len(config.cutoffs)
  projected = config.div_val > 1
  cost = Cost(0, 0.0)
  for i, (size, width) in enumerate(_clusters(config)):
    scored = size + (tails if i == 0 else 0)  # the head also scores one entry per tail
    share = 1.0 if i == 0 or tail_shares is None else tail_shares[i - 1]
    params = size + (tails * width + tails if i == 0 else 0)  # biases; cluster weights
    params += 0 if config.tie_weight else size * width
    params += d * width if projected and not (i and config.tie_projs) else 0
    flops = 2.0 * ((d * width if projected else 0) + width * scored) * share
    cost += Cost(params, flops)
  return cost


def embedding_cost(config, tail_shares=None):
  """The input embedding: a table (FLOPs 0), or Transformer-XL's adaptive input, whose
  projections cost each token its cluster's (all in the head when `tail_shares` is None)."""
  if config.div_val <= 1:  # one table [V, D], no projection
    return Cost(config.vocab_size * config.d_model, 0.0)
  clusters = _clusters(config)
  shares = [0.0] * len(config.cutoffs) if tail_shares is None else list(tail_shares)
  shares = [1.0 - sum(shares)] + shares
  d = config.d_model
  return Cost(
    sum(size * width + d * width for size, width in clusters),
    sum(2.0 * d * width * share for (_, width), share in zip(clusters, shares)),
  )


def model_cost(config, pattern=None, *, seq_len, batch_size, mem_len=None, tail_shares=None):
  """Costs of a whole model: {"embedding", "blocks", "softmax", "total"} as `Cost`s.

  Args:
    config: ModelConfig.
    pattern: a pattern string, or None for the SuperNet (every block "?").
    seq_len, batch_size, mem_len: the segment length, lanes and memory length the FLOPs are
      counted for (see `block_costs`).
    tail_shares: see `softmax_cost`.
  """
  kinds = (
    parse_pattern(pattern, config.n_blocks, searched=True) if pattern else "?" * config.n_blocks
  )
  per_kind = block_costs(config, seq_len, batch_size, mem_len)
  block_total = Cost(0, 0.0)
  for kind in kinds:
    block_total += per_kind[kind]
  if not config.untie_rel_bias and ("s" in kinds or "?" in kinds):  # As ParModel does.
    block_total += Cost(2 * config.n_heads * config.head_width, 0.0)  # shared u, v
  embedding = embedding_cost(config, tail_shares)
  softmax = softmax_cost(config, tail_shares)
  return {
    "embedding": embedding,
    "blocks": block_total,
    "softmax": softmax,
    "total": embedding + block_total + softmax,
  }


def measure_latency(model_config, batch_size, seq_len, repeats=20, backward=False):
  """Seconds per forward pass of one attention, feed-forward and identity block.

  Times compiled forward passes of freshly built blocks on [batch_size, seq_len, d_model]
  with a full memory, after a warm-up call; the median of `repeats` runs. With `backward`,
  each run is a training pass instead: forward with dropout, then the gradients of a random
  projection of the output with respect to the block's weights and its input.
  """
  import tensorflow as tf

  from par.model import attention
  from par.model import blocks

  c = model_config
  x = tf.random.normal([batch_size, seq_len, c.d_model])
  memory = tf.random.normal([batch_size, c.mem_len, c.d_model])
  positions = attention.relative_positions(c.mem_len + seq_len, c.d_model, c.clamp_len)
  mask = attention.attention_mask(seq_len, c.mem_len, tf.constant(c.mem_len))
  attend = blocks.AttentionBlock(c.d_model, c.n_heads, c.head_width, c.dropout, c.dropatt, True)
  feed = blocks.FeedForwardBlock(c.d_model, c.d_ffn, c.dropout)
  forward = {
    "s": lambda training: attend(x, memory, positions, mask, training=training)[0],
    "f": lambda training: feed(x, training=training)[0],
    "i": lambda training: tf.identity(x),
  }
  probe = tf.random.normal(x.shape)

  def trained(kind):
    def step():
      with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(forward[kind](True) * probe)
      layer = {"s": attend, "f": feed}.get(kind)
      sources = [x] + (layer.trainable_variables if layer is not None else [])
      return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, sources)])

    return step

  runs = {
    kind: tf.function(trained(kind) if backward else lambda kind=kind: forward[kind](False))
    for kind in forward
  }
  seconds = []
  for kind in BLOCK_KINDS:
    runs[kind]().numpy()  # Build and trace.
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      runs[kind]().numpy()
      times.append(time.perf_counter() - start)
    seconds.append(float(np.median(times)))
  return seconds


def measure_train_time(model, batch_size, seq_len, repeats=5, steps=4, seed=0):
  """Seconds per token of a training step's forward and backward pass, memory full.

  Compiles the gradients of the mean NLL with respect to every trainable variable (dropout
  and, in a SuperNet, the architecture's sampling as in training) on random tokens of
  [batch_size, seq_len], carrying the memory from call to call as training does; after the
  calls that fill the memory, times `repeats` runs of `steps` calls and keeps the fastest:
  on a shared machine a run can only be slowed down by others. The optimizer's update and
  the input pipeline are left out: they cost the same for every pattern of one width.

  A decoupled SuperNet's step is its training step's: the paths of (seed, call), one
  (uniform) or three on the same batch with their losses summed (fair), only their branches
  run.
  """
  import tensorflow as tf

  from par.model import paths

  tokens = np.random.default_rng(seed).integers(
    0, model.config.vocab_size, [batch_size, seq_len + 1]
  )
  tokens = tf.constant(tokens, tf.int32)
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  variables = model.trainable_variables
  noise = tf.constant([seed, 0], tf.int64)

  searched = len(model.searched_blocks)

  @tf.function
  def step(memory, call):
    with tf.GradientTape() as tape:
      if model.is_decoupled:  # the training step's own paths and pass
        drawn = paths.training_paths(model.config.sampling, tf.stack([noise[0], call]), searched)
        nll, count, memory = paths.run_paths(model, inputs, targets, memory, drawn)
      else:
        hidden, memory = model(inputs, memory=memory, tau=0.5, seed=noise, training=True)
        nll, count = model.nll(hidden, targets)
      loss = nll / count
    return memory, tape.gradient(loss, variables)

  memory = model.initial_memory(batch_size)
  calls = (tf.constant(k, tf.int64) for k in itertools.count())
  for _ in range(-(-model.config.mem_len // seq_len) + 1):  # Fills the memory; traces.
    memory, _ = step(memory, next(calls))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      memory, grads = step(memory, next(calls))
    # Waits for the step (an IndexedSlices' values; a branch off the path has no gradient).
    next(g for g in tf.nest.flatten(grads, expand_composites=True) if g is not None).numpy()
    best = min(best, (time.perf_counter() - start) / steps)
  return best / (batch_size * seq_len)


def step_matmuls(config, pattern=None, *, seq_len, batch_size, mem_len=None, tail_shares=None):
  """The matrix products of one training step's forward pass: {(m, k, n): count}, for a
  global batch of `batch_size` lanes (batched products counted once per matrix). The backward
  pass runs two products of each one's FLOPs, so 3 · Σ count · 2mkn is the step's matmul
  work, and its time at the rate measured for each shape bounds the step's time from below.

  Covers par's own adaptive softmax and Transformer-XL's at div_val 1 (the configs whose speed
  is measured); other div_val raise NotImplementedError.
  """
  if config.div_val > 1:
    raise NotImplementedError("step_matmuls covers div_val 0 and 1")
  b, t = batch_size, seq_len
  m = config.mem_len if mem_len is None else mem_len
  k, d, h, f = m + t, config.d_model, config.head_width, config.d_ffn
  n = config.n_heads
  nh, rows = n * h, b * t
  products = {}

  def add(shape, count=1):
    shape = tuple(int(x) for x in shape)
    if min(shape) > 0:
      products[shape] = products.get(shape, 0) + count

  kinds = (
    parse_pattern(pattern, config.n_blocks, searched=True) if pattern else "?" * config.n_blocks
  )
  for kind in kinds:
    if kind in "s?":
      add((rows, d, nh))  # queries
      add((b * k, d, 2 * nh))  # keys and values, over [memory ; segment]
      add((k, d, nh))  # relative encodings
      add((t, h, k), b * n)  # content scores, per lane and head
      add((rows, h, k), n)  # position scores, per head
      add((t, k, h), b * n)  # attention-weighted values
      add((rows, nh, d))  # output projection
    if kind in "f?":
      add((rows, d, f))
      add((rows, f, d))
  bounds = (0,) + tuple(config.cutoffs) + (config.vocab_size,)
  head = bounds[1] + len(config.cutoffs)
  add((rows, d, head))
  shares = tail_shares or [1.0] * len(config.cutoffs)
  for i, share in enumerate(shares):
    size = bounds[i + 2] - bounds[i + 1]
    tokens = round(rows * share)
    if config.div_val:  # Transformer-XL's at div_val 1: no projection
      add((tokens, d, size))
    else:
      width = config.tail_widths[i]
      add((tokens, d, width))
      add((tokens, width, size))
  return products

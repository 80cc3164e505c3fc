"""What steers and checks the search: a resource term in the loss and a collapse report.

Resource term. Each block kind has a cost c = (c_s, c_f, c_i), normalised so that the dearer
of attention and feed-forward costs 1 (identity costs 0). The penalty is the expected cost
of the architecture under the softmax of the logits, averaged over blocks:

  R = (1 / N) Σ_b Σ_k softmax(logits_b)_k · c_k          (0 <= R <= 1)

and the loss gains `resource_weight · R`, whose gradient reaches only the logits. Costs are
either FLOPs per token (`par.architecture.block_costs`, exact for the config) or latency:
the forward time of one block of each kind at the training shapes, measured on this machine
when the run starts and kept in the run directory, so a resumed run uses the same numbers.

Collapse. Differentiable searches tend to drift to parameter-free operations (DARTS
collapse, Zela et al. 2020; Chu et al. 2021). Identity dominates a block when it is the most
likely kind with probability at least `DOMINANT`; the report names those blocks and warns
when they are at least half of the network.
"""

import time

import numpy as np

from par import architecture
from par.config import BLOCK_KINDS

DOMINANT = 0.5


def flops_costs(model_config, seq_len, batch_size):
  """(c_s, c_f, c_i) from FLOPs per token, the dearer of s and f scaled to 1."""
  costs = architecture.block_costs(model_config, seq_len, batch_size)
  return _normalise([costs[k].flops for k in BLOCK_KINDS])


def measure_latency(model_config, batch_size, seq_len, repeats=20):
  """Seconds per forward pass of one attention, feed-forward and identity block.

  Times compiled forward passes of freshly built blocks on [batch_size, seq_len, d_model]
  with a full memory, after a warm-up call; the median of `repeats` runs.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from par import attention, blocks  # pylint: disable=g-import-not-at-top
  c = model_config
  x = tf.random.normal([batch_size, seq_len, c.d_model])
  memory = tf.random.normal([batch_size, c.mem_len, c.d_model])
  positions = attention.relative_positions(c.mem_len + seq_len, c.d_model, c.clamp_len)
  mask = attention.attention_mask(seq_len, c.mem_len, tf.constant(c.mem_len))
  attend = blocks.AttentionBlock(c.d_model, c.n_heads, c.head_width, c.dropout, c.dropatt,
                                 True)
  feed = blocks.FeedForwardBlock(c.d_model, c.d_ffn, c.dropout)
  runs = {
      "s": tf.function(lambda: attend(x, memory, positions, mask, training=False)[0]),
      "f": tf.function(lambda: feed(x, training=False)[0]),
      "i": tf.function(lambda: tf.identity(x)),
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


def latency_costs(seconds):
  """(c_s, c_f, c_i) from measured seconds: identity's time is the floor, taken as 0."""
  floor = seconds[2]
  return _normalise([max(s - floor, 0.0) for s in seconds[:2]] + [0.0])


def _normalise(values):
  values = np.asarray(values, np.float64)
  top = max(values[0], values[1])
  if top <= 0:
    raise ValueError(f"block costs must be positive, got {values.tolist()}")
  return (values / top).tolist()


def resource_penalty(arch_variables, costs):
  """R = mean over blocks of the expected cost under softmax(logits): a float32 scalar."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  costs = tf.constant(costs, tf.float32)
  logits = tf.stack([tf.cast(v, tf.float32) for v in arch_variables])
  return tf.reduce_mean(tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * costs, axis=-1))


def collapse_report(probabilities):
  """Blocks where identity dominates, and a warning if they are half the network or more.

  Args:
    probabilities: [n_blocks, 3] (columns s, f, i).

  Returns:
    (blocks, message): the indices, and a one-line warning or None.
  """
  probabilities = np.asarray(probabilities)
  dominated = [b for b, row in enumerate(probabilities)
               if row.argmax() == 2 and row[2] >= DOMINANT]
  if 2 * len(dominated) < len(probabilities):
    return dominated, None
  listed = ", ".join(f"{b} ({probabilities[b, 2]:.2f})" for b in dominated)
  return dominated, (
      f"search collapse: identity dominates {len(dominated)} of {len(probabilities)} blocks "
      f"(block (p_identity): {listed}); consider --arch_warmup_steps, a lower --arch_lr, "
      "a higher --tau_end or --arch_weight_decay")

"""The search's resource term: a penalty on the expected cost of the architecture.

Each block kind has a cost c = (c_s, c_f, c_i), normalised so that the dearer of attention
and feed-forward costs 1 (identity costs 0). The penalty is the expected cost
of the architecture under the softmax of the logits, averaged over blocks:

  R = (1 / N) Σ_b Σ_k softmax(logits_b)_k · c_k          (0 <= R <= 1)

and the loss gains `resource_weight · R`, whose gradient reaches only the logits. With a
target T (`--resource_target`, as ProxylessNAS and FBNet budget a search) it gains
`resource_weight · max(R - T, 0)`: an architecture within its budget is not pushed further
down, one above it is pulled back as hard as without a target. Costs are
either FLOPs per token (`par.search.costs.block_costs`, exact for the config) or latency:
the forward time of one block of each kind at the training shapes, measured on this machine
when the run starts and kept in the run directory, so a resumed run uses the same numbers.
"""

import numpy as np

from par.config import BLOCK_KINDS
from par.search import costs as costs_lib


def flops_costs(model_config, seq_len, batch_size):
  """(c_s, c_f, c_i) from FLOPs per token, the dearer of s and f scaled to 1."""
  costs = costs_lib.block_costs(model_config, seq_len, batch_size)
  return _normalise([costs[k].flops for k in BLOCK_KINDS])


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


def resource_penalty(arch_variables, costs, target=0.0):
  """max(R - target, 0), R the mean over blocks of the expected cost under softmax(logits):
  a float32 scalar. With the default target 0 it is R itself."""
  import tensorflow as tf

  costs = tf.constant(costs, tf.float32)
  logits = tf.stack([tf.cast(v, tf.float32) for v in arch_variables])
  expected = tf.reduce_mean(tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * costs, axis=-1))
  return tf.nn.relu(expected - target)

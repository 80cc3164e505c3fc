"""Mixed precision: the Keras dtype policy of a run, and dynamic loss scaling for float16.

Under `mixed_float16` and `mixed_bfloat16` the variables stay float32 and layers compute in
16 bits; attention and adaptive-softmax normalisation and the loss are float32 (see
par/model/attention.py and par/model/adaptive_softmax.py). float16's narrow range needs the
loss scaled so that small gradients do not flush to zero; bfloat16 has float32's range and
needs none.

`LossScale` is the usual dynamic scheme (as in Micikevicius et al. 2018 and Keras's
LossScaleOptimizer): start at 2^15, halve and skip the step when a gradient is not finite,
double after 2,000 finite steps in a row. Ours serves two optimizers (weights and
architecture) from one scaled loss, and decides on the gradients of every replica: a step is
skipped everywhere when any replica overflowed.
"""

import contextlib
from pathlib import Path

import keras
import tensorflow as tf


@contextlib.contextmanager
def policy(name):
  """Sets Keras's global dtype policy to `name` inside the block, restoring it after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


class LossScale(tf.Module):
  """Dynamic loss scale; create it inside the strategy's scope, checkpoint it with the run."""

  def __init__(self, initial=2.0**15, growth_steps=2000):
    super().__init__(name="loss_scale")
    self.growth_steps = growth_steps
    self.scale = tf.Variable(
      initial,
      dtype=tf.float32,
      trainable=False,
      name="scale",
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )
    self.good_steps = tf.Variable(
      0,
      dtype=tf.int64,
      trainable=False,
      name="good_steps",
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )

  def unscale(self, grads):
    """The true gradients, and whether all of them, on every replica, are finite.

    Call in a replica context; the flag is the same on every replica.
    """
    inverse = 1.0 / self.scale
    grads = [g * tf.cast(inverse, g.dtype) for g in grads]
    local = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    context = tf.distribute.get_replica_context()
    overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local, tf.float32))
    return grads, overflowed < 0.5

  def apply_if_finite(self, finite, apply, args=()):
    """Runs `apply(*args)` on every replica when `finite`, then updates the scale.

    Call in a replica context. `apply` may call optimizers, which synchronise replicas, so
    the branch is taken in the cross-replica context as tf.distribute requires; `args` are
    each replica's own values (the gradients).
    """

    def cross_replica(strategy, finite, args):
      finite = strategy.experimental_local_results(finite)[0]

      def step():
        strategy.extended.call_for_each_replica(apply, args=args)
        grow = self.good_steps + 1 >= self.growth_steps
        self.scale.assign(tf.where(grow, self.scale * 2.0, self.scale))
        self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), self.good_steps + 1))

      def skip():
        self.scale.assign(tf.maximum(self.scale * 0.5, 1.0))
        self.good_steps.assign(0)

      tf.cond(finite, step, skip)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, args))


def has_amx(cpuinfo="/proc/cpuinfo"):
  """Whether the CPU multiplies bfloat16 matrices in hardware (Intel AMX's `amx_bf16` flag);
  False where /proc/cpuinfo does not exist."""
  try:
    text = Path(cpuinfo).read_text()
  except OSError:
    return False
  flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
  return "amx_bf16" in flags.split()


def cpu_hint(policy, cpuinfo="/proc/cpuinfo"):
  """A line suggesting mixed_bfloat16 to a float32 run on a CPU with AMX, else None."""
  accelerated = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
  if policy != "float32" or accelerated or not has_amx(cpuinfo):
    return None
  return BFLOAT16_HINT


BFLOAT16_HINT = (
  "this CPU multiplies bfloat16 matrices in hardware (AMX): --mixed_precision=mixed_bfloat16 "
  "trained the base SuperNet 1.3x faster on one, within 0.2% of float32's perplexity "
  "(docs/GUIDE.md, 'On a CPU')"
)

"""The training step and the multi-step loop, compiled; the state a checkpoint adds to them.

`StepLoop.run(iterator, memory, num_steps)` is one `tf.function` that runs up to `num_steps`
steps with no host sync (fewer if `StepLoop.stop` is set meanwhile; the state's step says how
many ran): it reads the step from `TrainState.step`, derives the learning rate
(inside the optimizers' schedules), the temperature and the Gumbel seed (seed, step) from it,
and carries the memory from step to step. It returns the summed NLL, token count, gradient
norm and skipped steps of the steps it ran, and stops early, without counting the step, at
a non-finite loss or gradient norm.

Under a `tf.distribute` strategy every replica runs `replica_step` on its own lanes; the loss
is the global batch's summed NLL over its global token count (so the gradients, summed over
replicas by the optimizers, are those of one device holding the whole batch).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from par.model import memory as memory_lib
from par.search import resource
from par.train import schedules

_NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "rel_bias_u", "rel_bias_v", "u", "v")


class TrainState(tf.Module):
  """The bookkeeping a checkpoint holds besides weights and optimizer slots: the step, the
  epoch, the position (records read) in it, and the memory of every lane."""

  def __init__(self, memory):
    super().__init__(name="train_state")
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
    self.keeps = memory.keeps  # The layout; only the attending blocks' states are saved.
    self.memory_states = [
      tf.Variable(s, trainable=False, name=f"memory{k}") for k, s in enumerate(memory.tensors)
    ]
    self.memory_length = tf.Variable(memory.length, trainable=False, name="memory_length")

  def save_memory(self, memory):
    for variable, value in zip(self.memory_states, memory.tensors):
      variable.assign(value)
    self.memory_length.assign(memory.length)

  def memory(self):
    return memory_lib.assemble(
      self.keeps, [v.read_value() for v in self.memory_states], self.memory_length.read_value()
    )


def make_optimizers(config, total_steps, weight_variables):
  """(weights' optimizer, architecture logits' optimizer), built for their variables.

  Weights: Adam or AdamW (no decay on biases and norms) on the warm-up + cosine schedule.
  Architecture logits: Adam with DARTS' betas at a constant rate, zero during
  arch_warmup_steps (`schedules.Delayed`).
  """
  rate = schedules.WarmupCosine(config.max_lr, config.warmup_steps, total_steps)
  if config.optimizer == "adamw":
    weights = keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    weights.exclude_from_weight_decay(
      var_list=[v for v in weight_variables if v.name in _NO_WEIGHT_DECAY]
    )
  else:
    weights = keras.optimizers.Adam(rate)
  arch = keras.optimizers.Adam(
    schedules.Delayed(config.arch_lr, config.arch_warmup_steps),
    beta_1=0.5,
    beta_2=0.999,
    weight_decay=config.arch_weight_decay or None,
  )
  return weights, arch


def dense(grad):
  """An embedding's IndexedSlices gradient as the dense tensor it stands for.

  It holds one row per token occurrence. Keras's Adam squares such rows one by one, so a token
  seen twice adds g1² + g2² to the second moment instead of (g1 + g2)², and global norms count
  the rows as given: both wrong. Summed into the dense gradient, both are exact.
  """
  return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


class LoopResult(NamedTuple):
  """What one call of the loop returns (sums over the steps it ran; float64 scalars)."""

  memory: memory_lib.Memory  # per replica, as the next call takes it
  nll: tf.Tensor
  tokens: tf.Tensor
  norm: tf.Tensor  # summed global norms of the weights' gradients, before clipping
  skipped: tf.Tensor  # steps skipped for float16 overflow
  finite: tf.Tensor  # bool: False if the loop stopped at a non-finite loss or norm


class StepLoop:
  """The compiled training step of one model and its multi-step loop.

  Build it once the model, optimizers, state and loss scale exist (created in the strategy's
  scope); call `run` as often as needed: it is traced once.

  Args:
    model: the `ParModel`.
    optimizers: (weights', architecture logits') optimizers, built.
    state: the `TrainState`; `run` advances its step.
    config: the `TrainConfig` (seed, temperatures, clipping, resource weight, jit_compile).
    total_steps: the run's length, which the temperature schedule needs.
    strategy: the `tf.distribute` strategy.
    loss_scale: a `precision.LossScale` under mixed_float16, else None.
    costs: the resource term's block costs (par/search/resource.py), or None without one.
  """

  def __init__(
    self, model, optimizers, state, config, total_steps, strategy, loss_scale=None, costs=None
  ):
    self.model = model
    self.weights_optimizer, self.arch_optimizer = optimizers
    self.state = state
    self.config = config
    self.total_steps = total_steps
    self.strategy = strategy
    self.loss_scale = loss_scale
    self.costs = costs
    self.weight_variables = model.weight_variables()
    self.arch_variables = model.architecture_variables()
    self.replicas = strategy.num_replicas_in_sync
    # Set from the host (a signal) while `run` executes; checked before every step.
    self.stop = tf.Variable(False, trainable=False, name="stop_requested")
    # The step's computation; collectives and updates stay outside XLA.
    self._gradients = (
      tf.function(self.gradients, jit_compile=True) if config.jit_compile else self.gradients
    )
    self.run = tf.function(self._run)

  def gradients(self, inputs, targets, memory, step, global_count, scale):
    """The replica's gradients of its share of the global loss (times `scale`).

    Returns (gradients of weight_variables + arch_variables, zeros where a variable had
    none; summed NLL; target count; next memory).
    """
    c = self.config
    tau = schedules.temperature(step, c.tau_start, c.tau_end, self.total_steps, c.tau_schedule)
    seed = tf.stack([tf.constant(c.seed, tf.int64), step])
    with tf.GradientTape() as tape:
      hidden, memory = self.model(inputs, memory=memory, tau=tau, seed=seed, training=True)
      nll, count = self.model.nll(hidden, targets)
      loss = nll / tf.maximum(global_count, 1.0)
      if self.costs is not None:  # Summed over replicas, like the gradients: divide by them.
        loss += (
          c.resource_weight
          / self.replicas
          * resource.resource_penalty(self.arch_variables, self.costs)
        )
      loss *= scale
    variables = self.weight_variables + self.arch_variables
    grads = tape.gradient(loss, variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    return grads, nll, count, memory

  def _apply(self, weight_grads, arch_grads):
    self.weights_optimizer.apply(weight_grads, self.weight_variables)
    if self.arch_variables:
      self.arch_optimizer.apply(arch_grads, self.arch_variables)

  def _clip(self, weight_grads, context):
    """(gradients to apply, the norm to report): clipped as one device would clip them."""
    clip_norm = self.config.clip_norm
    if clip_norm and self.replicas > 1:
      # Clip the global batch's gradient: reduce it here, clip it, and hand each replica's
      # optimizer a 1/replicas share (the optimizers sum the shares).
      weight_grads = context.all_reduce(tf.distribute.ReduceOp.SUM, weight_grads)
      weight_grads, norm = tf.clip_by_global_norm(weight_grads, clip_norm)
      return [g / self.replicas for g in weight_grads], norm
    if clip_norm:
      return tf.clip_by_global_norm(weight_grads, clip_norm)
    return weight_grads, tf.linalg.global_norm(weight_grads)  # per replica: `_run` averages

  def replica_step(self, inputs, targets, memory):
    """One step on one replica's lanes: (nll, count, norm, next memory, skipped)."""
    context = tf.distribute.get_replica_context()
    count = tf.reduce_sum(tf.cast(targets >= 0, tf.float32))  # as model.nll counts
    global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    loss_scale = self.loss_scale
    scale = loss_scale.scale.read_value() if loss_scale is not None else tf.constant(1.0)
    grads, nll, count, memory = self._gradients(
      inputs, targets, memory, self.state.step.read_value(), global_count, scale
    )
    if loss_scale is not None:
      grads, finite = loss_scale.unscale(grads)
    weights = len(self.weight_variables)
    weight_grads, norm = self._clip([dense(g) for g in grads[:weights]], context)
    arch_grads = grads[weights:]
    if loss_scale is None:
      self._apply(weight_grads, arch_grads)
      return nll, count, norm, memory, tf.constant(0.0)
    loss_scale.apply_if_finite(finite, self._apply, args=(weight_grads, arch_grads))
    return nll, count, tf.where(finite, norm, 0.0), memory, 1.0 - tf.cast(finite, tf.float32)

  def _run(self, iterator, memory, num_steps):
    strategy = self.strategy
    nll_total = tf.constant(0.0, tf.float64)
    count_total = tf.constant(0.0, tf.float64)
    norm_total = tf.constant(0.0, tf.float64)
    skipped_total = tf.constant(0.0, tf.float64)
    finite = tf.constant(True)
    # In the form the step returns it (a worker with one replica unwraps PerReplica values).
    memory = strategy.run(lambda m: tf.nest.map_structure(tf.identity, m), args=(memory,))
    for _ in tf.range(num_steps):
      if self.stop:  # The run was asked to stop: end here, before reading the next record.
        break
      inputs, targets = next(iterator)
      nll, count, norm, memory, skipped = strategy.run(
        self.replica_step, args=(inputs, targets, memory)
      )
      nll = strategy.reduce(tf.distribute.ReduceOp.SUM, nll, axis=None)
      count = strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)
      norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
      skipped = strategy.reduce(tf.distribute.ReduceOp.MEAN, skipped, axis=None)  # all agree
      if not (tf.math.is_finite(nll) and tf.math.is_finite(norm)):
        finite = tf.constant(False)
        break
      self.state.step.assign_add(1)
      nll_total += tf.cast(nll, tf.float64)
      count_total += tf.cast(count, tf.float64)
      norm_total += tf.cast(norm, tf.float64)
      skipped_total += tf.cast(skipped, tf.float64)
    return LoopResult(memory, nll_total, count_total, norm_total, skipped_total, finite)

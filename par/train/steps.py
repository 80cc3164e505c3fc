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

With a held-out architecture split (`--arch_split`, par/search/heldout.py) each record comes
with a mask of the lanes held out: one forward pass over all lanes, then the weights' loss
(the other lanes' mean NLL) gives the weights' gradients and the architecture's loss (the
held-out lanes' mean NLL, plus the resource term) the logits' gradients, two backward passes
of one tape. Without it, one loss trains both.

A decoupled SuperNet (--sampling uniform or fair) trains only its weights, on the paths
`paths.training_paths` draws from (seed, step): one (uniform), or three that use every branch
of every block once (fair), each a forward pass over the same batch from the same memory, their
losses summed in one tape, so the update is the sum of the paths' gradients. The memory the
first path leaves is carried on (every path is as likely to be first). `TrainState.draws`
counts each block's branches over the run.
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from par.config import BLOCK_KINDS
from par.model import memory as memory_lib
from par.model import paths
from par.search import resource
from par.train import adam
from par.train import schedules


class TrainState(tf.Module):
  """The bookkeeping a checkpoint holds besides weights and optimizer slots: the step, the
  epoch, the position (records read) in it, and the memory of every lane."""

  def __init__(self, memory, draws=None):
    """`draws`: [n_blocks, 3], a decoupled SuperNet's count of the branches each block ran
    (None for other models, whose checkpoints hold no such variable)."""
    super().__init__(name="train_state")
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
    self.keeps = memory.keeps  # The layout; only the attending blocks' states are saved.
    self.memory_states = [
      tf.Variable(s, trainable=False, name=f"memory{k}") for k, s in enumerate(memory.tensors)
    ]
    self.memory_length = tf.Variable(memory.length, trainable=False, name="memory_length")
    if draws is not None:
      self.draws = tf.Variable(tf.zeros(draws, tf.int64), trainable=False, name="draws")

  def save_memory(self, memory):
    for variable, value in zip(self.memory_states, memory.tensors):
      variable.assign(value)
    self.memory_length.assign(memory.length)

  def memory(self):
    return memory_lib.assemble(
      self.keeps, [v.read_value() for v in self.memory_states], self.memory_length.read_value()
    )


def make_optimizers(config, total_steps, weight_variables, step, no_decay=()):
  """(weights' optimizer, architecture logits' optimizer), built for their variables.

  Weights: Adam (`par.train.adam`: Keras's, each update one fused kernel), AdamW or LAMB on
  the warm-up + cosine schedule; decoupled weight decay (adamw, lamb) leaves out `no_decay`
  (the model's `no_decay_variables`: biases, norms and the attention's u, v). Architecture
  logits: the same Adam with DARTS' betas at a constant rate, zero during arch_warmup_steps
  (`schedules.Delayed`); their L2 term is added to their gradients by the step
  (`StepLoop`), as DARTS and FBNet add it.

  Both rates are functions of `step`, the training step (`TrainState.step`), not of the
  optimizers' own iteration counts: a step skipped for a float16 overflow moves the step
  but not the count, so a schedule of the count would lag behind the step the log reports.
  """
  rate = schedules.WarmupCosine(config.max_lr, config.warmup_steps, total_steps, config.min_lr)
  delayed = schedules.Delayed(config.arch_lr, config.arch_warmup_steps)
  weights_rate, arch_rate = (lambda: rate(step.read_value())), (lambda: delayed(step.read_value()))
  if config.optimizer == "adamw":
    weights = keras.optimizers.AdamW(weights_rate, weight_decay=config.weight_decay)
  elif config.optimizer == "lamb":
    weights = keras.optimizers.Lamb(weights_rate, weight_decay=config.weight_decay or None)
  else:
    weights = adam.Adam(weights_rate)
  if config.optimizer != "adam":
    exempt = {id(v) for v in no_decay}
    weights.exclude_from_weight_decay(var_list=[v for v in weight_variables if id(v) in exempt])
  arch = adam.Adam(arch_rate, beta_1=0.5, beta_2=0.999)
  return weights, arch


def dense(grad):
  """An embedding's IndexedSlices gradient as the dense tensor it stands for.

  It holds one row per token occurrence. Keras's Adam squares such rows one by one, so a token
  seen twice adds g1² + g2² to the second moment instead of (g1 + g2)², and global norms count
  the rows as given: both wrong. Summed into the dense gradient, both are exact.
  """
  return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def l2_gradients(grads, variables, weight, replicas=1):
  """grads + weight · variables: the gradients of an L2 term weight/2 · ||variables||² added
  to the loss (coupled, as DARTS' 1e-3 and FBNet's 5e-4 on the architecture logits, which
  Adam then normalises with the rest of the gradient). Each of `replicas` adds its share:
  the optimizers sum the replicas' gradients."""
  if not weight:
    return list(grads)
  return [g + (weight / replicas) * tf.cast(v, g.dtype) for g, v in zip(grads, variables)]


class LoopResult(NamedTuple):
  """What one call of the loop returns (sums over the steps it ran; float64 scalars)."""

  memory: memory_lib.Memory  # per replica, as the next call takes it
  nll: tf.Tensor  # of the targets that train the weights
  tokens: tf.Tensor
  arch_nll: tf.Tensor  # of the targets that train the architecture (the same without a split)
  arch_tokens: tf.Tensor
  penalty: tf.Tensor  # summed resource term (resource_weight x expected cost), 0 without one
  norm: tf.Tensor  # summed global norms of the weights' gradients (all replicas'), before clipping
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
    # A decoupled SuperNet learns no logits: nothing for the architecture's optimizer.
    self.arch_variables = [] if model.is_decoupled else model.architecture_variables()
    self.replicas = strategy.num_replicas_in_sync
    # Set from the host (a signal) while `run` executes; checked before every step.
    self.stop = tf.Variable(False, trainable=False, name="stop_requested")
    # The step's computation; collectives and updates stay outside XLA.
    self._gradients = (
      tf.function(self.gradients, jit_compile=True) if config.jit_compile else self.gradients
    )
    self.run = tf.function(self._run)

  def gradients(
    self,
    inputs,
    targets,
    held_out,
    memory,
    step,
    global_counts,
    scale,
    with_penalty=True,
    step_paths=None,
  ):
    """The replica's gradients of its share of the global losses (times `scale`).

    Args:
      held_out: bool [lanes, 1], the lanes that train only the architecture; None without a
        split (one loss trains both).
      global_counts: (targets that train the weights, targets that train the architecture),
        over all replicas.
      with_penalty: add the resource term (once per step: micro-batches after the first
        leave it out).
      step_paths: int32 [paths, n_blocks], a decoupled SuperNet's paths of this step.

    Returns (gradients of weight_variables + arch_variables, zeros where a variable had
    none; the weights' summed NLL and target count; the architecture's; the resource term;
    next memory).
    """
    if step_paths is not None:
      return self._path_gradients(inputs, targets, memory, step_paths, global_counts, scale)
    c = self.config
    tau = schedules.temperature(step, c.tau_start, c.tau_end, self.total_steps, c.tau_schedule)
    seed = tf.stack([tf.constant(c.seed, tf.int64), step])
    split = held_out is not None
    with tf.GradientTape(persistent=split) as tape:
      hidden, memory = self.model(inputs, memory=memory, tau=tau, seed=seed, training=True)
      if split:
        per_token = tf.reshape(self.model.token_nll(hidden, targets), tf.shape(targets))
        valid = targets >= 0
        for_arch = valid & held_out
        for_weights = valid & ~held_out
        nll = tf.reduce_sum(tf.where(for_weights, per_token, 0.0))
        count = tf.reduce_sum(tf.cast(for_weights, tf.float32))
        arch_nll = tf.reduce_sum(tf.where(for_arch, per_token, 0.0))
        arch_count = tf.reduce_sum(tf.cast(for_arch, tf.float32))
      else:
        nll, count = self.model.nll(hidden, targets)
        arch_nll, arch_count = nll, count
      penalty = tf.constant(0.0)
      if self.costs is not None and with_penalty:  # Summed over replicas: divide by them.
        penalty = (
          c.resource_weight
          / self.replicas
          * resource.resource_penalty(self.arch_variables, self.costs, c.resource_target)
        )
      weights_loss = nll / tf.maximum(global_counts[0], 1.0)
      arch_loss = arch_nll / tf.maximum(global_counts[1], 1.0) + penalty
      # (Scaled inside the tape: a tape sees only what is computed under it.)
      one_loss = (weights_loss + penalty) * scale  # without a split it trains both
      weights_loss, arch_loss = weights_loss * scale, arch_loss * scale
    if split:
      grads = tape.gradient(weights_loss, self.weight_variables) + tape.gradient(
        arch_loss, self.arch_variables
      )
    else:  # The logits' gradients from one_loss are arch_loss's: one backward pass.
      grads = tape.gradient(one_loss, self.weight_variables + self.arch_variables)
    variables = self.weight_variables + self.arch_variables
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    return grads, (nll, count), (arch_nll, arch_count), penalty, memory

  def _path_gradients(self, inputs, targets, memory, step_paths, global_counts, scale):
    """`gradients` of a decoupled SuperNet: each path's mean NLL over the same batch, summed
    in one tape (so the gradient is the paths' summed); the NLL and count reported are over
    all paths (their mean per token); the first path's memory goes on."""
    with tf.GradientTape() as tape:
      nll, count, carried = paths.run_paths(self.model, inputs, targets, memory, step_paths)
      loss = nll / tf.maximum(global_counts[0], 1.0) * scale
    grads = tape.gradient(loss, self.weight_variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.weight_variables)]
    return grads, (nll, count), (nll, count), tf.constant(0.0), carried

  def _apply(self, weight_grads, arch_grads):
    self.weights_optimizer.apply(weight_grads, self.weight_variables)
    if self.arch_variables:
      self.arch_optimizer.apply(
        l2_gradients(arch_grads, self.arch_variables, self.config.arch_weight_decay, self.replicas),
        self.arch_variables,
      )

  def _clip(self, weight_grads, context):
    """(gradients to apply, the global norm to report), clipped as one device would clip.

    Under several replicas each holds a partial sum of the gradient, whose norm is not the
    global one: the gradient is reduced here, clipped (with --clip_norm) and its norm taken,
    and each replica's optimizer gets a 1/replicas share (the optimizers sum the shares
    again: a second reduction, the price of the true norm).
    """
    clip_norm = self.config.clip_norm
    if self.replicas > 1:
      weight_grads = context.all_reduce(tf.distribute.ReduceOp.SUM, weight_grads)
    if clip_norm:
      weight_grads, norm = tf.clip_by_global_norm(weight_grads, clip_norm)
    else:
      norm = tf.linalg.global_norm(weight_grads)
    if self.replicas > 1:
      weight_grads = [g / self.replicas for g in weight_grads]
    return weight_grads, norm

  def _accumulated_gradients(
    self, inputs, targets, held_out, memory, global_counts, scale, step_paths=None
  ):
    """`gradients` of the replica's lanes, in --accumulate_steps micro-batches of consecutive
    lanes, summed: the large batch's gradients with a fraction of its activations in memory.

    Each micro-batch carries its own lanes' memory; the losses are normalised by the whole
    batch's counts and the first alone adds the resource term, so the sum is the large
    batch's gradient. The micro-batches are unrolled in the traced step.
    """
    step = self.state.step.read_value()
    k = self.config.accumulate_steps
    if k == 1:
      return self._gradients(
        inputs, targets, held_out, memory, step, global_counts, scale, step_paths=step_paths
      )
    width = inputs.shape[0] // k
    total, sums, memories = None, None, []
    for j in range(k):
      lanes = slice(j * width, (j + 1) * width)
      grads, weights_nll, arch_nll, step_penalty, part = self._gradients(
        inputs[lanes],
        targets[lanes],
        None if held_out is None else held_out[lanes],
        memory.map(lambda state, lanes=lanes: state[lanes]),
        step,
        global_counts,
        scale,
        with_penalty=j == 0,
        step_paths=step_paths,
      )
      if j == 0:
        penalty = step_penalty
      grads = [dense(g) for g in grads]
      numbers = [*weights_nll, *arch_nll]
      total = grads if total is None else [a + b for a, b in zip(total, grads)]
      sums = numbers if sums is None else [a + b for a, b in zip(sums, numbers)]
      memories.append(part)
    memory = memories[0].with_tensors(
      [tf.concat(parts, axis=0) for parts in zip(*(m.tensors for m in memories))],
      memories[-1].length,
    )
    return total, (sums[0], sums[1]), (sums[2], sums[3]), penalty, memory

  def replica_step(self, inputs, targets, memory, held_out=None, step_paths=None):
    """One step on one replica's lanes: (weights' (nll, count), architecture's (nll, count),
    resource term, norm, next memory, skipped)."""
    context = tf.distribute.get_replica_context()
    valid = targets >= 0  # as model.nll counts
    if held_out is None:
      counts = [tf.reduce_sum(tf.cast(valid, tf.float32))] * 2
    else:
      counts = [
        tf.reduce_sum(tf.cast(valid & ~held_out, tf.float32)),
        tf.reduce_sum(tf.cast(valid & held_out, tf.float32)),
      ]
    global_counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
    loss_scale = self.loss_scale
    scale = loss_scale.scale.read_value() if loss_scale is not None else tf.constant(1.0)
    grads, weights_nll, arch_nll, penalty, memory = self._accumulated_gradients(
      inputs, targets, held_out, memory, global_counts, scale, step_paths
    )
    if loss_scale is not None:
      grads, finite = loss_scale.unscale(grads)
    weights = len(self.weight_variables)
    weight_grads, norm = self._clip([dense(g) for g in grads[:weights]], context)
    arch_grads = grads[weights:]
    if loss_scale is None:
      self._apply(weight_grads, arch_grads)
      return weights_nll, arch_nll, penalty, norm, memory, tf.constant(0.0)
    loss_scale.apply_if_finite(finite, self._apply, args=(weight_grads, arch_grads))
    skipped = 1.0 - tf.cast(finite, tf.float32)
    return weights_nll, arch_nll, penalty, tf.where(finite, norm, 0.0), memory, skipped

  def _step_paths(self):
    """A decoupled SuperNet's paths of the current step (the same on every replica); None
    for other models."""
    if not self.model.is_decoupled:
      return None
    seed = tf.stack([tf.constant(self.config.seed, tf.int64), self.state.step.read_value()])
    searched = len(self.model.searched_blocks)
    return paths.training_paths(self.config.model.sampling, seed, searched)

  def _run(self, iterator, memory, num_steps):
    strategy = self.strategy
    zero = tf.constant(0.0, tf.float64)
    nll_total = count_total = arch_nll_total = arch_count_total = zero
    penalty_total = norm_total = skipped_total = zero
    finite = tf.constant(True)
    # In the form the step returns it (a worker with one replica unwraps PerReplica values).
    memory = strategy.run(lambda m: tf.nest.map_structure(tf.identity, m), args=(memory,))
    for _ in tf.range(num_steps):
      # One step at a time: a while loop runs up to ten iterations at once where their
      # dependencies allow, and each held its tensors (evaluation at WikiText-103's base
      # shape grew by 1.9 GB a call; par/train/evaluate.py).
      tf.autograph.experimental.set_loop_options(parallel_iterations=1)
      if self.stop:  # The run was asked to stop: end here, before reading the next record.
        break
      inputs, targets, *held_out = next(iterator)  # (a held-out lane mask with a split)
      step_paths = self._step_paths()
      (nll, count), (arch_nll, arch_count), penalty, norm, memory, skipped = strategy.run(
        self.replica_step,
        args=(inputs, targets, memory, *held_out),
        kwargs={"step_paths": step_paths},
      )
      nll, count, arch_nll, arch_count, penalty = (
        strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)
        for x in (nll, count, arch_nll, arch_count, penalty)
      )
      norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)  # all agree
      skipped = strategy.reduce(tf.distribute.ReduceOp.MEAN, skipped, axis=None)  # all agree
      if not (tf.math.is_finite(nll) and tf.math.is_finite(norm)):
        finite = tf.constant(False)
        break
      self.state.step.assign_add(1)
      if step_paths is not None:  # each block's branches, once per path
        self.state.draws.assign_add(
          tf.reduce_sum(tf.one_hot(step_paths, len(BLOCK_KINDS), dtype=tf.int64), axis=0)
        )
      nll_total += tf.cast(nll, tf.float64)
      count_total += tf.cast(count, tf.float64)
      arch_nll_total += tf.cast(arch_nll, tf.float64)
      arch_count_total += tf.cast(arch_count, tf.float64)
      penalty_total += tf.cast(penalty, tf.float64)
      norm_total += tf.cast(norm, tf.float64)
      skipped_total += tf.cast(skipped, tf.float64)
    return LoopResult(
      memory,
      nll_total,
      count_total,
      arch_nll_total,
      arch_count_total,
      penalty_total,
      norm_total,
      skipped_total,
      finite,
    )

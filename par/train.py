"""train_and_evaluate: the architecture search (SuperNet) or the training of a fixed pattern.

One function, in sections: run directory, data, model and optimizers (inside a tf.distribute
strategy scope), restore, loop, final evaluation and export.

The loop is a `tf.function` that runs up to `steps_per_loop` steps per call with no host
sync: it reads the step from a variable, derives the learning rate, the temperature and the
Gumbel seed (seed, step) from it, and carries the memory from step to step. The host acts
only between calls, at the step boundaries that need it (logging, evaluation, checkpoints,
plots, epoch ends), so the metrics are exact at those steps.

A checkpoint holds every model variable (dropout RNG states included), both optimizers, and
a `TrainState`: step, epoch, position in the epoch and the memory. Restoring it and skipping
`position` records of the epoch continues the run exactly where an uninterrupted one would
be: the Gumbel noise is a function of (seed, step), the data order is fixed.

The run directory's files are listed in par/runs.py.
"""

import contextlib
import dataclasses
import json
import logging as std_logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from par import distribute
from par import evaluate
from par import plots
from par import precision
from par import records
from par import schedules
from par import search
from par.runs import ARCHITECTURE_FILE
from par.runs import CHECKPOINT_DIR
from par.runs import CONFIG_FILE
from par.runs import EXPORT_FILE
from par.runs import LOG_FILE
from par.runs import RESOURCE_FILE
from par.runs import RESULTS_FILE
from par.runs import TOKENIZER_FILE
from par.config import BLOCK_KINDS
from par.config import TrainConfig
from par.errors import Interrupted
from par.errors import ParError
from par import memory as memory_lib
from par.model import ParModel

_NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "rel_bias_u", "rel_bias_v", "u", "v")
_GIF_FRAMES = 50


class TrainState(tf.Module):
  """The bookkeeping a checkpoint holds besides weights and optimizer slots."""

  def __init__(self, memory):
    super().__init__(name="train_state")
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
    self.keeps = memory.keeps  # The layout; only the attending blocks' states are saved.
    self.memory_states = [tf.Variable(s, trainable=False, name=f"memory{k}")
                          for k, s in enumerate(memory.tensors)]
    self.memory_length = tf.Variable(memory.length, trainable=False, name="memory_length")

  def save_memory(self, memory):
    for variable, value in zip(self.memory_states, memory.tensors):
      variable.assign(value)
    self.memory_length.assign(memory.length)

  def memory(self):
    return memory_lib.assemble(self.keeps, [v.read_value() for v in self.memory_states],
                               self.memory_length.read_value())


def _write_json(path, value):
  """Writes JSON atomically: a reader never sees half a file."""
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(json.dumps(value, indent=2) + "\n")
  os.replace(temporary, path)


def _resolve_config(config, meta):
  """The config with what the dataset decides (the vocabulary size), validated."""
  model = dataclasses.replace(config.model, vocab_size=meta.vocab_size)
  return dataclasses.replace(config, model=model).validate()


def _dataset_summary(meta):
  return {"tokenizer_sha256": meta.tokenizer_sha256, "batch_size": meta.batch_size,
          "seq_len": meta.seq_len, "train_records": meta.splits["train"].records}


def _prepare_run_directory(model_dir, config, meta, write=True):
  """Creates model_dir or checks that it holds this very run; writes config.json.

  With write=False (workers other than the chief) it only checks.
  """
  path = model_dir / CONFIG_FILE
  dataset = _dataset_summary(meta)
  if path.is_file() and (model_dir / CHECKPOINT_DIR).is_dir():
    try:
      saved = json.loads(path.read_text())
      previous = TrainConfig.from_dict(saved["config"])
    except (ValueError, KeyError, TypeError, ParError):
      raise ParError(f"{path} is not a config this version of par wrote") from None
    changed = [f.name for f in dataclasses.fields(TrainConfig)
               if f.name not in TrainConfig.RESUMABLE_CHANGES and f.name != "data_dir"
               and getattr(previous, f.name) != getattr(config, f.name)]
    if changed or saved.get("dataset") != dataset:
      what = ", ".join(changed) if changed else "the dataset"
      raise ParError(f"{model_dir} holds a run with other settings ({what}); resume it with "
                     "the same flags, or choose another --model_dir")
  if not write:
    return
  model_dir.mkdir(parents=True, exist_ok=True)
  _write_json(path, {"config": config.to_dict(), "dataset": dataset})
  # The tokenizer travels with the run, so that generation needs no dataset.
  source = Path(config.data_dir) / records.TOKENIZER_FILE
  partial = model_dir / (TOKENIZER_FILE + ".partial")
  shutil.copyfile(source, partial)
  os.replace(partial, model_dir / TOKENIZER_FILE)


def _only_our_info(record):
  """Keeps warnings and errors from everyone, INFO only from par and its scripts.

  Libraries that log through absl (TensorFlow's checkpoint saver, matplotlib's GIF writer)
  would otherwise fill the log with a line per save.
  """
  if record.levelno >= std_logging.WARNING:
    return True
  path = Path(record.pathname).resolve()
  return _PACKAGE_ROOT in path.parents


_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class _LogFile:
  """Copies absl logging to model_dir/training.log while training runs."""

  def __init__(self, path):
    self.handler = std_logging.FileHandler(path)
    self.handler.setFormatter(logging.PythonFormatter())

  def __enter__(self):
    # Outside absl.app.run the verbosity is WARNING; the log is meant to hold INFO.
    self.verbosity = logging.get_verbosity()
    logging.set_verbosity(max(self.verbosity, logging.INFO))
    logging.get_absl_logger().addHandler(self.handler)
    self.handler.addFilter(_only_our_info)
    logging.get_absl_handler().addFilter(_only_our_info)
    return self

  def __exit__(self, *exc):
    logging.get_absl_handler().removeFilter(_only_our_info)
    logging.get_absl_logger().removeHandler(self.handler)
    logging.set_verbosity(self.verbosity)
    self.handler.close()


class _StopSignals:
  """SIGINT and SIGTERM ask the loop to save and stop; a second one stops at once."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    # Python runs this between two bytecodes of the main thread, which may be inside a log
    # handler's flush: logging from here re-enters that stream ("reentrant call" errors).
    # The loop logs when it sees `received`; the user gets an unbuffered line now.
    del frame
    if self.received is not None:
      raise Interrupted(signum)
    self.received = signum
    os.write(2, f"signal {signum}: saving a checkpoint, then stopping "
                "(again to stop now)\n".encode())

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


class _Progress:
  """A one-line progress bar with ETA and tokens/s when stderr is a terminal."""

  def __init__(self, total_steps, start_step, enabled=True):
    self.total = total_steps
    self.start_step = start_step
    self.start = time.perf_counter()
    self.enabled = enabled and sys.stderr.isatty()

  def update(self, step, tokens_per_second, loss):
    if not self.enabled:
      return
    elapsed = time.perf_counter() - self.start
    done = step - self.start_step
    eta = elapsed / done * (self.total - step) if done else float("nan")
    width = 24
    filled = int(width * step / self.total)
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
                     f"loss {loss:.3f} | {tokens_per_second:,.0f} tok/s | ETA {eta_text} ")
    sys.stderr.flush()

  def close(self):
    if self.enabled:
      sys.stderr.write("\n")


def _dense(grad):
  """An embedding's IndexedSlices gradient as the dense tensor it stands for.

  It holds one row per token occurrence. Keras's Adam squares such rows one by one, so a token
  seen twice adds g1² + g2² to the second moment instead of (g1 + g2)², and global norms count
  the rows as given: both wrong. Summed into the dense gradient, both are exact.
  """
  return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def _identity(structure):
  return tf.nest.map_structure(tf.identity, structure)


def _make_optimizers(config, total_steps, weight_variables):
  rate = schedules.WarmupCosine(config.max_lr, config.warmup_steps, total_steps)
  if config.optimizer == "adamw":
    weights = keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    weights.exclude_from_weight_decay(
        var_list=[v for v in weight_variables if v.name in _NO_WEIGHT_DECAY])
  else:
    weights = keras.optimizers.Adam(rate)
  arch = keras.optimizers.Adam(schedules.Delayed(config.arch_lr, config.arch_warmup_steps),
                               beta_1=0.5, beta_2=0.999,
                               weight_decay=config.arch_weight_decay or None)
  return weights, arch


def _architecture_record(model, history):
  probabilities = model.architecture_probabilities()
  dominated, _ = search.collapse_report(probabilities)
  return {"columns": list(BLOCK_KINDS), "pattern": model.derived_pattern(),
          "probabilities": probabilities.round(6).tolist(), "identity_dominates": dominated,
          "history": history}


def _agree(strategy, values):
  """The mean of `values` over the replicas, so that every worker uses the same numbers."""
  if strategy.num_replicas_in_sync == 1:
    return values
  local = strategy.run(lambda: tf.constant(values, tf.float32))
  return [float(v) for v in strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None)]


def _resource_costs(config, model_dir, meta, batch, strategy, write):
  """The resource term's block costs, kept in the run directory; None without the term."""
  if config.resource == "none":
    return None
  path = model_dir / RESOURCE_FILE
  if path.is_file():  # A resumed run keeps the costs it started with (latency is measured).
    return json.loads(path.read_text())["costs"]
  if config.resource == "flops":
    costs, detail = search.flops_costs(config.model, meta.seq_len, meta.batch_size), {}
  else:
    seconds = _agree(strategy, search.measure_latency(config.model, batch, meta.seq_len))
    costs, detail = search.latency_costs(seconds), {"seconds": dict(zip(BLOCK_KINDS, seconds))}
  logging.info("resource term (%s, weight %g): block costs s %.3f, f %.3f, i %.3f",
               config.resource, config.resource_weight, *costs)
  if write:
    _write_json(path, dict(detail, resource=config.resource, costs=costs))
  return costs


def _load_history(model_dir, step):
  path = model_dir / ARCHITECTURE_FILE
  if not path.is_file():
    return []
  history = json.loads(path.read_text()).get("history", [])
  return [h for h in history if h["step"] <= step]  # Drop what came after the checkpoint.


def train_and_evaluate(config, model_dir, strategy=None):
  """Trains `config` in `model_dir`, resuming what is there; returns the final metrics.

  Args:
    config: `TrainConfig`.
    model_dir: the run directory (see the module docstring).
    strategy: a `tf.distribute.Strategy` (see par/distribute.py); the default strategy if
      None. Under several replicas each keeps its own lanes and memories; the loss is
      normalised by the global count of predicted tokens.

  Returns:
    dict with "valid" and "test" metrics (those of `evaluate.Result.to_dict`), "steps",
    "pattern" and "train_tokens_per_second".

  Raises:
    ParError: bad settings or data, a run directory of another run, or a non-finite loss.
    Interrupted: SIGINT or SIGTERM arrived; a checkpoint was saved first.
  """
  with precision.policy(config.validate().mixed_precision):
    return _train_and_evaluate(config, model_dir, strategy)


def _train_and_evaluate(config, model_dir, strategy):
  # --- run directory and data ---------------------------------------------------------------
  model_dir = Path(model_dir)
  meta = records.load_meta(config.data_dir)
  if "train" not in meta.splits:
    raise ParError(f"{config.data_dir} has no train split")
  config = _resolve_config(config, meta)
  steps_per_epoch = meta.splits["train"].records
  total_steps = config.train_steps or config.epochs * steps_per_epoch
  strategy = strategy or tf.distribute.get_strategy()
  replicas = strategy.num_replicas_in_sync
  if meta.batch_size % replicas:
    raise ParError(f"batch_size {meta.batch_size} does not split into {replicas} replicas")
  chief = distribute.is_chief(strategy)
  _prepare_run_directory(model_dir, config, meta, write=chief)
  batch = meta.batch_size // replicas  # lanes per replica
  tokens_per_step = meta.batch_size * meta.seq_len
  eval_mem_len = config.eval_mem_len or config.model.mem_len

  log_file = _LogFile(model_dir / LOG_FILE) if chief else contextlib.nullcontext()
  with log_file, _StopSignals() as stop:
    logging.info("run %s: %d steps (%d per epoch), %d replicas, %s, %s", model_dir,
                 total_steps, steps_per_epoch, replicas, config.mixed_precision,
                 "SuperNet search" if not config.model.architecture
                 else f"fixed architecture {config.model.architecture}")

    # --- model, optimizers, checkpoint --------------------------------------------------------
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
      model = ParModel(config.model)
      model.build()
      weight_variables = model.weight_variables()
      arch_variables = model.architecture_variables()
      weights_optimizer, arch_optimizer = _make_optimizers(config, total_steps,
                                                           weight_variables)
      weights_optimizer.build(weight_variables)
      arch_optimizer.build(arch_variables)
      state = TrainState(model.initial_memory(meta.batch_size))
      loss_scale = (precision.LossScale() if config.mixed_precision == "mixed_float16"
                    else None)
    parts = {"model": [v.value for v in model.variables],
             "weights_optimizer": [v.value for v in weights_optimizer.variables],
             "arch_optimizer": [v.value for v in arch_optimizer.variables], "state": state}
    if loss_scale is not None:
      parts["loss_scale"] = loss_scale
    checkpoint = tf.train.Checkpoint(**parts)
    # Every worker saves (saving synchronises them); only the chief's copy is kept.
    own = CHECKPOINT_DIR if chief else f"{CHECKPOINT_DIR}-{distribute.worker_name(strategy)}"
    manager = tf.train.CheckpointManager(checkpoint, model_dir / own,
                                         max_to_keep=config.keep_checkpoints if chief else 1)
    latest = tf.train.latest_checkpoint(model_dir / CHECKPOINT_DIR)
    if latest:
      try:
        checkpoint.restore(latest).assert_consumed()
      except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ParError(f"cannot resume from {latest}: {str(e).splitlines()[0]}") from None
      logging.info("resumed from %s at step %d (epoch %d, record %d)", latest,
                   int(state.step.numpy()), int(state.epoch.numpy()), int(state.position.numpy()))
    history = _load_history(model_dir, int(state.step.numpy()))
    costs = (_resource_costs(config, model_dir, meta, batch, strategy, chief)
             if arch_variables else None)

    # --- the compiled steps -------------------------------------------------------------------
    def gradients(inputs, targets, memory, step, global_count, scale):
      """The replica's gradients of its share of the global loss (times `scale`)."""
      tau = schedules.temperature(step, config.tau_start, config.tau_end, total_steps,
                                  config.tau_schedule)
      seed = tf.stack([tf.constant(config.seed, tf.int64), step])
      with tf.GradientTape() as tape:
        hidden, memory = model(inputs, memory=memory, tau=tau, seed=seed, training=True)
        nll, count = model.nll(hidden, targets)
        loss = nll / tf.maximum(global_count, 1.0)
        if costs is not None:  # Summed over replicas, like the gradients: divide by them.
          loss += (config.resource_weight / replicas *
                   search.resource_penalty(arch_variables, costs))
        loss *= scale
      variables = weight_variables + arch_variables
      grads = tape.gradient(loss, variables)
      grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
      return grads, nll, count, memory

    if config.jit_compile:  # The step's computation; collectives and updates stay outside.
      gradients = tf.function(gradients, jit_compile=True)

    def apply(weight_grads, arch_grads):
      weights_optimizer.apply(weight_grads, weight_variables)
      if arch_variables:
        arch_optimizer.apply(arch_grads, arch_variables)

    def train_step(inputs, targets, memory):
      context = tf.distribute.get_replica_context()
      count = tf.reduce_sum(tf.cast(targets >= 0, tf.float32))  # as model.nll counts
      global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
      scale = loss_scale.scale.read_value() if loss_scale is not None else tf.constant(1.0)
      grads, nll, count, memory = gradients(inputs, targets, memory, state.step.read_value(),
                                            global_count, scale)
      if loss_scale is not None:
        grads, finite = loss_scale.unscale(grads)
      weight_grads = [_dense(g) for g in grads[:len(weight_variables)]]
      arch_grads = grads[len(weight_variables):]
      if config.clip_norm and replicas > 1:
        # Clip the global batch's gradient, as one device would: reduce it here, clip it, and
        # hand each replica's optimizer a 1/replicas share (the optimizers sum the shares).
        weight_grads = context.all_reduce(tf.distribute.ReduceOp.SUM, weight_grads)
        weight_grads, norm = tf.clip_by_global_norm(weight_grads, config.clip_norm)
        weight_grads = [g / replicas for g in weight_grads]
      elif config.clip_norm:
        weight_grads, norm = tf.clip_by_global_norm(weight_grads, config.clip_norm)
      else:  # With several replicas: each replica's norm (the loop averages them).
        norm = tf.linalg.global_norm(weight_grads)
      if loss_scale is None:
        apply(weight_grads, arch_grads)
        skipped = tf.constant(0.0)
      else:
        loss_scale.apply_if_finite(finite, apply, args=(weight_grads, arch_grads))
        skipped = 1.0 - tf.cast(finite, tf.float32)
        norm = tf.where(finite, norm, 0.0)
      return nll, count, norm, memory, skipped

    @tf.function
    def train_loop(iterator, memory, num_steps):
      nll_total = tf.constant(0.0, tf.float64)
      count_total = tf.constant(0.0, tf.float64)
      norm_total = tf.constant(0.0, tf.float64)
      skipped_total = tf.constant(0.0, tf.float64)
      finite = tf.constant(True)
      # In the form the step returns it (a worker with one replica unwraps PerReplica values).
      memory = strategy.run(_identity, args=(memory,))
      for _ in tf.range(num_steps):
        inputs, targets = next(iterator)
        nll, count, norm, memory, skipped = strategy.run(train_step,
                                                         args=(inputs, targets, memory))
        nll = strategy.reduce(tf.distribute.ReduceOp.SUM, nll, axis=None)
        count = strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)
        norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
        skipped = strategy.reduce(tf.distribute.ReduceOp.MEAN, skipped, axis=None)  # all agree
        if not (tf.math.is_finite(nll) and tf.math.is_finite(norm)):
          finite = tf.constant(False)
          break
        state.step.assign_add(1)
        nll_total += tf.cast(nll, tf.float64)
        count_total += tf.cast(count, tf.float64)
        norm_total += tf.cast(norm, tf.float64)
        skipped_total += tf.cast(skipped, tf.float64)
      return memory, nll_total, count_total, norm_total, skipped_total, finite

    evaluator = evaluate.Evaluator(model, eval_mem_len, strategy)

    evaluated = {}  # split -> (step, result): never evaluate the same weights twice

    def run_eval(split, step):
      if split not in evaluated or evaluated[split][0] != step:
        dataset = distribute.lanes(
            strategy, lambda: records.load_dataset(config.data_dir, split).prefetch(2),
            meta.batch_size)
        result = evaluator(dataset, batch, meta.splits[split].words)
        log_eval(split, result, step)
        evaluated[split] = (step, result)
      return evaluated[split][1]

    writers = {name: (tf.summary.create_file_writer(str(model_dir / name)) if chief
                      else tf.summary.create_noop_writer())
               for name in ("train", "valid", "test")}
    train_words_per_token = meta.splits["train"].words / meta.splits["train"].tokens

    def save(memory):
      """Checkpoints; `memory` (per replica) is kept unless None (at an epoch's start)."""
      if memory is not None:
        state.save_memory(distribute.gather_memory(strategy, memory))
      path = manager.save(checkpoint_number=int(state.step.numpy()))
      if chief:
        logging.info("saved %s", path)
      else:
        shutil.rmtree(manager.directory, ignore_errors=True)

    def log_eval(split, result, step):
      logging.info("%s at step %d: loss %.4f, token perplexity %.2f, word perplexity %.2f "
                   "(%d tokens)", split, step, result.loss, result.token_perplexity,
                   result.word_perplexity, result.tokens)
      with writers[split].as_default(step=step):
        tf.summary.scalar("loss", result.loss)
        tf.summary.scalar("token_perplexity", result.token_perplexity)
        tf.summary.scalar("word_perplexity", result.word_perplexity)

    def record_architecture(step, draw):
      if not model.is_supernet or not chief:
        return
      probabilities = model.architecture_probabilities()
      if not history or history[-1]["step"] != step:
        history.append({"step": step, "probabilities": probabilities.round(6).tolist()})
      _write_json(model_dir / ARCHITECTURE_FILE, _architecture_record(model, history))
      with writers["train"].as_default(step=step):
        for k, row in enumerate(probabilities):
          for kind, p in zip(BLOCK_KINDS, row):
            tf.summary.scalar(f"architecture/block{k}/{kind}", p)
        if draw:
          png = plots.heatmap_png(probabilities, f"step {step}: {model.derived_pattern()}")
          tf.summary.image("architecture", tf.image.decode_png(png)[None])
          (model_dir / "plots").mkdir(exist_ok=True)
          (model_dir / "plots" / f"architecture-{step:07d}.png").write_bytes(png)

    # --- the loop -----------------------------------------------------------------------------
    step = int(state.step.numpy())
    epoch, position = int(state.epoch.numpy()), int(state.position.numpy())
    memory = distribute.scatter_memory(strategy, state.memory()) if position else None
    empty_memory = distribute.initial_memory(strategy, model, meta.batch_size)  # Epochs start here.
    iterator = None
    interval = {"nll": 0.0, "tokens": 0.0, "norm": 0.0, "skipped": 0.0, "steps": 0,
                "seconds": 0.0}
    train_seconds, train_steps_timed, calls = 0.0, 0, 0
    progress = _Progress(total_steps, step, enabled=chief)
    if step == 0:
      record_architecture(0, draw=bool(config.plot_every))
    while step < total_steps:
      if iterator is None:
        skip = position
        iterator = iter(distribute.lanes(
            strategy, lambda: records.load_dataset(config.data_dir, "train").skip(skip)
            .prefetch(2), meta.batch_size))
        if memory is None:
          memory = empty_memory
      boundaries = [total_steps, step + config.steps_per_loop,
                    step + steps_per_epoch - position]
      for every in (config.log_every, config.eval_every, config.checkpoint_every,
                    config.plot_every):
        if every:
          boundaries.append((step // every + 1) * every)
      num_steps = min(boundaries) - step
      start = time.perf_counter()
      memory, nll, tokens, norm, skipped, finite = train_loop(iterator, memory,
                                                              tf.constant(num_steps))
      if not bool(finite):
        failed = int(state.step.numpy())
        last = manager.latest_checkpoint or "none yet"
        raise ParError(f"the loss became NaN or infinite at step {failed + 1}; stopped without "
                       f"saving (last checkpoint: {last}). Lower --max_lr, lengthen "
                       "--warmup_steps or set --clip_norm")
      seconds = time.perf_counter() - start
      step += num_steps
      position += num_steps
      for key, value in (("nll", float(nll)), ("tokens", float(tokens)),
                         ("norm", float(norm)), ("skipped", float(skipped)),
                         ("steps", num_steps), ("seconds", seconds)):
        interval[key] += value
      if calls:  # The first call traces and compiles; it would understate the speed.
        train_seconds += seconds
        train_steps_timed += num_steps
      calls += 1
      epoch_done = position == steps_per_epoch
      if epoch_done:
        epoch, position, memory, iterator = epoch + 1, 0, None, None
      state.epoch.assign(epoch)
      state.position.assign(position)

      if step % config.log_every == 0 or step == total_steps or epoch_done:
        loss = interval["nll"] / max(interval["tokens"], 1.0)
        speed = interval["steps"] * tokens_per_step / max(interval["seconds"], 1e-9)
        tau = float(schedules.temperature(step - 1, config.tau_start, config.tau_end,
                                          total_steps, config.tau_schedule))
        rate = float(schedules.learning_rate(step - 1, config.max_lr, config.warmup_steps,
                                             total_steps))
        applied = interval["steps"] - interval["skipped"]
        mean_norm = interval["norm"] / max(applied, 1)
        logging.info("step %d/%d epoch %d | loss %.4f | ppl %.2f | lr %.3g | tau %.3f | "
                     "grad norm %.3f | %s | %.0f tok/s", step, total_steps, epoch, loss,
                     math.exp(min(loss, 80.0)), rate, tau, mean_norm, model.pattern, speed)
        if interval["skipped"]:
          logging.info("loss scaling: %d of %d steps skipped (gradients overflowed float16), "
                       "scale now %g", interval["skipped"], interval["steps"],
                       float(loss_scale.scale.numpy()))
        with writers["train"].as_default(step=step):
          tf.summary.scalar("loss", loss)
          tf.summary.scalar("token_perplexity", math.exp(min(loss, 80.0)))
          tf.summary.scalar("word_perplexity",
                            math.exp(min(loss / train_words_per_token, 80.0)))
          tf.summary.scalar("learning_rate", rate)
          tf.summary.scalar("tau", tau)
          tf.summary.scalar("gradient_norm", mean_norm)
          if loss_scale is not None:
            tf.summary.scalar("loss_scale", float(loss_scale.scale.numpy()))
          tf.summary.scalar("tokens_per_second", speed)
        progress.update(step, speed, loss)
        record_architecture(step, draw=bool(config.plot_every) and step % config.plot_every == 0)
        interval = dict.fromkeys(interval, 0.0)
      elif config.plot_every and step % config.plot_every == 0:
        record_architecture(step, draw=True)

      if (config.eval_every and step % config.eval_every == 0) or epoch_done:
        if "valid" in meta.splits:
          run_eval("valid", step)
      if (step % config.checkpoint_every == 0 or step == total_steps
          or stop.received is not None):
        save(memory)
      if stop.received is not None:
        progress.close()
        logging.warning("stopped at step %d on signal %d", step, stop.received)
        raise Interrupted(stop.received)
    progress.close()

    # --- final evaluation and export ----------------------------------------------------------
    results = {"steps": total_steps, "pattern": model.pattern,
               "train_tokens_per_second": (train_steps_timed * tokens_per_step / train_seconds
                                           if train_seconds else None)}
    for split in ("valid", "test"):
      if split in meta.splits:
        results[split] = run_eval(split, total_steps).to_dict()
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(
        f"-{total_steps}"):
      save(None)
    for writer in writers.values():
      writer.flush()
    if not chief:
      return results
    _write_json(model_dir / RESULTS_FILE, results)
    export = model_dir / EXPORT_FILE
    export.parent.mkdir(exist_ok=True)
    model.save(export.with_name("model.partial.keras"))
    os.replace(export.with_name("model.partial.keras"), export)
    if model.is_supernet:
      record_architecture(total_steps, draw=True)
      frames = history[::-(-len(history) // _GIF_FRAMES)]  # At most _GIF_FRAMES frames.
      plots.animate([(h["step"], np.array(h["probabilities"])) for h in frames],
                    model_dir / "plots" / "architecture.gif")
      (model_dir / "plots" / "probabilities.png").write_bytes(plots.trajectories_png(
          [(h["step"], np.array(h["probabilities"])) for h in history]))
      _, collapse = search.collapse_report(model.architecture_probabilities())
      if collapse:
        logging.warning(collapse)
    else:
      _write_json(model_dir / ARCHITECTURE_FILE, _architecture_record(model, []))
    logging.info("done: %s", json.dumps(results))
    return results

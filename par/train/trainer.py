"""train_and_evaluate: the architecture search (SuperNet) or the training of a fixed pattern.

One function in sections: data and run directory, model and optimizers (inside a
tf.distribute strategy scope), restore, the loop, final evaluation and export. Each section
calls a piece that lives on its own:

  par/train/steps.py        the compiled step and multi-step loop (`StepLoop`), `TrainState`
  par/train/boundaries.py   when the host acts between loop calls (pure functions of the step)
  par/train/checkpoint.py   what a checkpoint holds, saving and restoring
  par/train/report.py       log lines, TensorBoard summaries, the architecture record and plots
  par/train/host.py         the log file, the worker-thread call and the status line
  par/runs.py         the run directory's files
  par/train/evaluate.py     exact evaluation of a split

The host acts only between loop calls, at the step boundaries that need it, so the metrics
are exact at those steps; the Gumbel noise is a function of (seed, step) and the data order
is fixed, so a run restored from a checkpoint continues exactly as an uninterrupted one.
"""

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from par import runs
from par import signals
from par.config import BLOCK_KINDS
from par.config import DECOUPLED_SAMPLING
from par.config import TrainConfig
from par.data import records
from par.errors import Interrupted
from par.errors import ParError
from par.model import par_model
from par.model.par_model import ParModel
from par.search import collapse
from par.search import costs as costs_lib
from par.search import heldout
from par.search import resource
from par.train import boundaries
from par.train import checkpoint as checkpoint_lib
from par.train import distribute
from par.train import evaluate
from par.train import host
from par.train import plan as plan_lib
from par.train import precision
from par.train import report
from par.train import steps


def checked_data(config):
  """The dataset's meta, and the config with what the dataset decides, once every split the run
  will read is checked: sizes, every record's CRC, the vocabulary against the tokenizer.

  The config's data_dir becomes absolute, so the run can be evaluated or resumed from any
  working directory; its vocab_size becomes the dataset's.
  """
  meta = records.load_meta(config.data_dir)
  data_dir = str(Path(config.data_dir).resolve())
  records.check_vocabulary(data_dir, meta)
  for split in meta.splits:
    records.check_dataset(data_dir, split, records=True)
  model = dataclasses.replace(config.model, vocab_size=meta.vocab_size)
  return dataclasses.replace(config, data_dir=data_dir, model=model).validate(), meta


def train_and_evaluate(
  config: TrainConfig,
  model_dir: str | os.PathLike,
  strategy: tf.distribute.Strategy | None = None,
) -> dict:
  """Trains `config` in `model_dir`, resuming what is there; returns the final metrics.

  Args:
    config: `TrainConfig`.
    model_dir: the run directory (its files are listed in par/runs.py).
    strategy: a `tf.distribute.Strategy` (see par/train/distribute.py); the default strategy if
      None. Under several replicas each keeps its own lanes and memories; the loss is
      normalised by the global count of predicted tokens.

  Returns:
    dict with "valid" and "test" metrics (those of `evaluate.Result.to_dict`), "steps",
    "pattern" and "train_tokens_per_second".

  Raises:
    ParError: bad settings or data, a run directory of another run, or a non-finite loss.
    Interrupted: SIGINT or SIGTERM arrived; a checkpoint was saved first.
  """
  model_dir = Path(model_dir)
  strategy = strategy or tf.distribute.get_strategy()
  with precision.policy(config.validate().mixed_precision):
    # --- Data and run directory ---------------------------------------------------------------
    config, meta = checked_data(config)
    plan = plan_lib.make_plan(config, meta, strategy.num_replicas_in_sync)
    chief = distribute.is_chief(strategy)
    # Only the chief writes the run directory, so only it holds it.
    with contextlib.ExitStack() as held:
      held.enter_context(runs.lock(model_dir) if chief else contextlib.nullcontext())
      runs.prepare(model_dir, config, meta, write=chief)
      if chief:
        held.enter_context(host.LogFile(model_dir / runs.LOG_FILE))
      stop = held.enter_context(signals.StopSignals("saving a checkpoint, then stopping"))
      _announce(model_dir, config, plan)

      # --- Model, optimizers, state and checkpoints (in the strategy's scope) ---------------
      model, optimizers, state, loss_scale = _build(config, meta, plan, strategy)
      checkpoints = checkpoint_lib.Checkpoints(
        model, optimizers, state, loss_scale, model_dir, config.keep_checkpoints, strategy
      )

      # --- Restore (or warm-start a fresh run), then the pieces the loop calls --------------
      if not checkpoints.restore() and config.warm_start:
        warm_start(model, config.warm_start)
      previous = runs.read_results(model_dir)
      step = int(state.step.numpy())
      early = (previous or {}).get("stopped_early")
      if previous and runs.is_finished(model_dir) and step in (plan.total_steps, early):
        logging.info(
          "%s finished at step %d already: its results stand (par-evaluate evaluates it again)",
          model_dir,
          step,
        )
        return previous
      best = checkpoint_lib.BestWeights(
        model, model_dir, strategy, config.keep_best, bool(config.patience)
      )
      best.load(step)
      costs = (
        _resource_costs(config, model_dir, meta, plan.lanes, strategy, chief)
        if model.is_supernet
        else None
      )
      step_loop = steps.StepLoop(
        model, optimizers, state, config, plan.total_steps, strategy, loss_scale, costs
      )
      reporter = report.Reporter(
        model_dir,
        model,
        config,
        plan.total_steps,
        int(state.step.numpy()),
        meta.splits["train"].words / meta.splits["train"].tokens,
        chief,
        loss_scale,
        meta.splits["train"].characters / meta.splits["train"].tokens,
        np.flatnonzero(heldout.held_out_lanes(meta.batch_size, config.arch_split)).tolist(),
        getattr(state, "draws", None),
      )
      stop.on_stop.append(lambda: step_loop.stop.assign(True))  # Ends a loop call early.
      evaluations = _evaluations(model, config, meta, strategy, step_loop.stop)

      # --- The loop ---------------------------------------------------------------------------
      meter, end = train_loop(
        step_loop, checkpoints, reporter, evaluations, stop, config, meta, plan, best
      )

      # --- Final evaluation and export -------------------------------------------------------
      return finish(
        model,
        model_dir,
        checkpoints,
        reporter,
        evaluations,
        stop,
        meta,
        plan,
        meter.tokens_per_second or (previous or {}).get("train_tokens_per_second"),
        end,
        best,
      )


def _announce(model_dir, config, plan):
  """The run's first log line, the warning of a sampling mode that failed the known answers
  (docs/SEARCH.md), and the hint of mixed_bfloat16 to a float32 run on a CPU with AMX."""
  logging.info(
    "run %s: %d steps (%d per epoch), %d replicas, %s, %s",
    model_dir,
    plan.total_steps,
    plan.steps_per_epoch,
    plan.replicas,
    config.mixed_precision,
    _kind(config.model),
  )
  if config.model.is_supernet and config.model.sampling in collapse.UNFIT_SAMPLING:
    logging.warning(collapse.UNFIT_SAMPLING[config.model.sampling])
  hint = precision.cpu_hint(config.mixed_precision)
  if hint:
    logging.info(hint)


def warm_start(model, source_dir):
  """Sets a fresh run's weights from the newest checkpoint of the run in `source_dir`
  (`par_model.copy_weights`): few-shot NAS's sub-SuperNets start from their one-shot SuperNet.
  Its shape must be the model's (every field but the pattern and how it samples)."""
  run = runs.read_run(source_dir)
  source = run.config.model
  mine = dataclasses.replace(
    model.config,
    architecture=source.architecture,
    sampling=source.sampling,
    eval_mode=source.eval_mode,
  )
  if mine != source:
    differ = [
      f.name for f in dataclasses.fields(source) if getattr(mine, f.name) != getattr(source, f.name)
    ]
    raise ParError(f"--warm_start {source_dir} is a model of another shape ({', '.join(differ)})")
  loaded, origin = runs.load_model(run, "checkpoint")
  try:
    par_model.copy_weights(loaded, model)
  except ValueError as e:
    raise ParError(f"--warm_start {source_dir}: {e}") from None
  logging.info("weights from %s", origin)


def _kind(model):
  """What a run trains, for its first log line."""
  if not model.is_supernet:
    return f"fixed architecture {model.architecture}"
  part = f"sub-SuperNet {model.architecture}, " if model.architecture else ""
  if model.sampling in DECOUPLED_SAMPLING:
    return f"decoupled {part or 'SuperNet, '}{model.sampling} paths, no architecture logits learned"
  return f"SuperNet search ({part}{model.sampling})"


def _evaluations(model, config, meta, strategy, stop):
  """The run's `evaluate.SplitEvaluator`, with its evaluation settings."""
  return evaluate.SplitEvaluator(
    model,
    config.data_dir,
    meta,
    config.eval_mem_len or config.model.mem_len,
    strategy,
    stop,
    None if config.eval_clamp_len < 0 else config.eval_clamp_len,
    config.eval_same_length or config.model.same_length,
    config.eval_batch_size,
  )


def bench_loop(config):
  """(a `steps.StepLoop` of `config` on one device, its dataset's meta): the model, optimizers
  and state built as a run builds them, without a run directory or a resource term; what the
  benchmarks time and measure."""
  config, meta = checked_data(config)
  plan = plan_lib.make_plan(config, meta, 1)
  strategy = tf.distribute.get_strategy()
  model, optimizers, state, loss_scale = _build(config, meta, plan, strategy)
  loop = steps.StepLoop(model, optimizers, state, config, plan.total_steps, strategy, loss_scale)
  return loop, meta


def _build(config, meta, plan, strategy):
  """(model, optimizers, state, loss scale or None), made and built in the strategy's scope
  from the run's seed."""
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    model = ParModel(config.model)
    model.build()
    draws = [len(model.searched_blocks), len(BLOCK_KINDS)] if model.is_decoupled else None
    state = steps.TrainState(model.initial_memory(meta.batch_size), draws)
    optimizers = steps.make_optimizers(
      config, plan.total_steps, model.weight_variables(), state.step, model.no_decay_variables()
    )
    optimizers[0].build(model.weight_variables())
    optimizers[1].build(model.architecture_variables())
    loss_scale = precision.LossScale() if config.mixed_precision == "mixed_float16" else None
  return model, optimizers, state, loss_scale


def finish(
  model, model_dir, checkpoints, reporter, evaluations, stop, meta, plan, speed, end, best
):
  """The end of a run: final valid and test metrics, a checkpoint at the last step, and (on
  the chief) results.json, the export and the final plots; returns the results.

  `speed` is the training throughput (a run resumed at its last step times nothing and
  passes what its training timed before). `end` is the step the run ended at: the last, or
  an earlier one where --patience stopped it. With --keep_best the best weights are evaluated
  too (results["best"]); the export holds the last.
  """
  results = {"steps": end, "pattern": model.pattern, "train_tokens_per_second": speed}
  if end != plan.total_steps:
    results["stopped_early"] = end
  for split in ("valid", "test"):
    if split in meta.splits:
      result = _evaluate(evaluations, reporter, stop, split, end)
      if result is None:
        stopped(checkpoints, stop, None, end)
      results[split] = result.to_dict()
      if split == "valid":
        best.observe(end, result)
  if not (checkpoints.latest or "").endswith(f"-{end}"):
    checkpoints.save()
  if best.save_weights and best.best_step is not None:
    results["best"] = _evaluate_best(best, evaluations, meta, results, end)
  reporter.flush()
  if distribute.is_chief(checkpoints.strategy):
    runs.write_json(model_dir / runs.RESULTS_FILE, results)
    runs.export(model, model_dir)
    reporter.finish(results)
  if stop.received is not None:  # it came during the final evaluation, checkpoint or export
    logging.warning("finished at step %d; stopping on signal %d as asked", end, stop.received)
    stop.check()
  return results


def _evaluate_best(best, evaluations, meta, results, end):
  """{"step", "valid", "test"} of the best weights (the last's results if they are the best)."""
  if best.best_step == end:
    return {"step": end, **{s: results[s] for s in ("valid", "test") if s in results}}
  last = best.restore()
  try:
    found = {"step": best.best_step, "valid": best.best_valid}
    if "test" in meta.splits:
      found["test"] = evaluations("test", best.best_step)[0].to_dict()
  finally:
    best.put_back(last)
  logging.info(
    "best weights (step %d of %d): valid token perplexity %.2f%s",
    best.best_step,
    end,
    found["valid"]["token_perplexity"],
    f", test {found['test']['token_perplexity']:.2f}" if "test" in found else "",
  )
  return found


def train_loop(step_loop, checkpoints, reporter, evaluations, stop, config, meta, plan, best):
  """Runs the loop from the state's step to the end, or until --patience stops it; returns
  the run's `report.Meter` and the step it ended at.

  Each call of the compiled loop runs up to the next boundary (`boundaries`); between calls
  the host logs, evaluates, checkpoints and plots what is due. The calls run while the main
  thread waits in Python (`host.call`), so a signal is acknowledged at once; it stops the
  compiled loop before its next step, and the host saves at the step reached, without
  evaluating, and raises `Interrupted`.
  """
  state = step_loop.state
  step = int(state.step.numpy())
  epoch, position = int(state.epoch.numpy()), int(state.position.numpy())
  strategy = step_loop.strategy
  memory = distribute.scatter_memory(strategy, state.memory()) if position else None
  empty_memory = distribute.initial_memory(strategy, step_loop.model, meta.batch_size)
  iterator = None
  meter = report.Meter(plan.tokens_per_step)
  if step == 0:
    reporter.start(draw=bool(config.plot_every))
  with reporter.status:  # A terminal's status line, out of the way of every log record.
    while step < plan.total_steps and stop.received is None:
      if iterator is None:  # An epoch starts, or resumes `position` records into it.
        iterator = iter(
          distribute.lanes(
            strategy,
            lambda skip=position: _train_records(config, meta).skip(skip).prefetch(2),
            meta.batch_size,
          )
        )
        memory = empty_memory if memory is None else memory
      num_steps = boundaries.steps_to_next_stop(
        step, position, plan.steps_per_epoch, plan.total_steps, config
      )
      start = time.perf_counter()
      try:
        result = host.call(step_loop.run, iterator, memory, tf.constant(num_steps))
      except tf.errors.DataLossError as e:  # A shard changed after the checks.
        raise records.damage_error(config.data_dir, "train", e) from None
      done = int(state.step.numpy()) - step  # num_steps, or fewer if stopped or not finite.
      if not bool(result.finite):
        raise ParError(
          f"the loss became NaN or infinite at step {int(state.step.numpy()) + 1}; "
          f"stopped without saving (last checkpoint: "
          f"{checkpoints.latest or 'none yet'}). Lower --max_lr, lengthen "
          "--warmup_steps or set --clip_norm"
        )
      meter.add(result, done, time.perf_counter() - start)
      memory, step, position = result.memory, step + done, position + done
      reporter.progress(step, meter)
      epoch_done = position == plan.steps_per_epoch
      if epoch_done:
        epoch, position, memory, iterator = epoch + 1, 0, None, None
      state.epoch.assign(epoch)
      state.position.assign(position)
      if stop.received is not None:
        break

      due = boundaries.due(step, epoch_done, plan.total_steps, config)
      if due.log:
        reporter.interval(step, epoch, meter)
        meter.next_interval()
      if due.log or due.plot:
        reporter.architecture(step, draw=due.plot)
      patience_ran_out = False
      if due.evaluate and "valid" in meta.splits:
        result = _evaluate(evaluations, reporter, stop, "valid", step)
        if result is not None:
          best.observe(step, result)
          patience_ran_out = bool(config.patience) and best.stale >= config.patience
      if due.checkpoint or stop.received is not None or patience_ran_out:
        checkpoints.save(memory)
      if patience_ran_out and step < plan.total_steps:
        logging.info(
          "stopping early at step %d: valid loss has not improved for %d evaluations (best at "
          "step %d)",
          step,
          best.stale,
          best.best_step,
        )
        break
  if stop.received is not None:
    stopped(checkpoints, stop, memory, step)
  return meter, step


def stopped(checkpoints, stop, memory, step):
  """Saves at `step` (unless that checkpoint exists) and raises `Interrupted`."""
  if not (checkpoints.latest or "").endswith(f"-{step}"):
    checkpoints.save(memory)
  logging.warning("stopped at step %d on signal %d", step, stop.received)
  raise Interrupted(stop.received)


def _train_records(config, meta):
  """The train split's records, each with the mask of the lanes held out for the
  architecture ([B, 1] bool) under --arch_split."""
  dataset = records.load_dataset(config.data_dir, "train")
  if not config.arch_split:
    return dataset
  held_out = tf.constant(heldout.held_out_lanes(meta.batch_size, config.arch_split)[:, None])
  return dataset.map(lambda inputs, targets: (inputs, targets, held_out))


def _evaluate(evaluations, reporter, stop, split, step):
  """The split's evaluation at `step`, reported once; None if a signal cut it short."""
  result, fresh = host.call(evaluations, split, step)
  if stop.received is not None:
    return None  # Partial: neither reported nor kept.
  if fresh:
    reporter.evaluation(split, step, result)
  return result


def _agree(strategy, values):
  """The mean of `values` over the replicas, so that every worker uses the same numbers."""
  if strategy.num_replicas_in_sync == 1:
    return values
  local = strategy.run(lambda: tf.constant(values, tf.float32))
  return [float(v) for v in strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None)]


def _resource_costs(config, model_dir, meta, lanes, strategy, write):
  """The resource term's block costs, kept in the run directory; None without the term."""
  if config.resource == "none":
    return None
  path = model_dir / runs.RESOURCE_FILE
  if path.is_file():  # A resumed run keeps the costs it started with (latency is measured).
    return runs.read_json(path)["costs"]
  if config.resource == "flops":
    costs, detail = resource.flops_costs(config.model, meta.seq_len, meta.batch_size), {}
  else:
    seconds = _agree(strategy, costs_lib.measure_latency(config.model, lanes, meta.seq_len))
    costs, detail = resource.latency_costs(seconds), {"seconds": dict(zip(BLOCK_KINDS, seconds))}
  logging.info(
    "resource term (%s, weight %g): block costs s %.3f, f %.3f, i %.3f",
    config.resource,
    config.resource_weight,
    *costs,
  )
  if write:
    runs.write_json(path, dict(detail, resource=config.resource, costs=costs))
  return costs

"""A run's checkpoints: what they hold, saving, restoring.

A checkpoint holds every model variable (dropout RNG states included), both optimizers'
variables, the `TrainState` (step, epoch, position, memory of every lane) and, under
mixed_float16, the loss scale. Restoring it and skipping `position` records of the epoch
continues the run exactly where an uninterrupted one would be.

Variables are listed explicitly (`[v.value for v in model.variables]`) rather than through the
Keras model object: Keras 3's dropout `SeedGenerator` states are not reachable through
`tf.train.Checkpoint`'s object graph, so a restored run would draw other dropout masks. The
order is stable because the model is built the same way from the same config (a changed
config is refused before restoring), and `assert_consumed()` proves the restore complete.
"""

import shutil
from pathlib import Path

import tensorflow as tf
from absl import logging

from par import errors
from par import runs
from par.errors import ParError
from par.runs import CHECKPOINT_DIR
from par.train import distribute


class Checkpoints:
  """The checkpoints of one run directory.

  Args:
    model, optimizers, state, loss_scale: what a checkpoint holds (loss_scale may be None).
    model_dir: the run directory; checkpoints go to model_dir/checkpoints.
    keep: how many to keep.
    strategy: the strategy, whose replicas' memories are gathered on save.
  """

  def __init__(self, model, optimizers, state, loss_scale, model_dir, keep, strategy):
    weights, arch = optimizers
    parts = {
      "model": [v.value for v in model.variables],
      "weights_optimizer": [v.value for v in weights.variables],
      "arch_optimizer": [v.value for v in arch.variables],
      "state": state,
    }
    if loss_scale is not None:
      parts["loss_scale"] = loss_scale
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.state = state
    self.strategy = strategy
    self.keep = keep
    self.chief = distribute.is_chief(strategy)
    self.directory = Path(model_dir) / CHECKPOINT_DIR
    # Every worker saves (saving synchronises them); only the chief's copy is kept.
    self.own = (
      self.directory
      if self.chief
      else Path(model_dir) / f"{CHECKPOINT_DIR}-{distribute.worker_name(strategy)}"
    )
    self._manage()

  def _manage(self):
    """(Re)opens the manager, which reads the state file's list of checkpoints."""
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, self.own, max_to_keep=self.keep if self.chief else 1
    )

  @property
  def latest(self):
    """The newest checkpoint this run saved or restored, or None."""
    return self.manager.latest_checkpoint

  def restore(self):
    """Restores the newest intact checkpoint of the run directory, if any; returns its path.

    A damaged checkpoint (truncated, corrupted, a part missing) is set aside, renamed
    damaged-ckpt-N.* and never deleted, with a warning, and the next older one is tried.

    Raises:
      ParError: checkpoints exist but none is intact, or one belongs to another run.
    """
    listed = runs.checkpoints(self.directory)
    for k, path in enumerate(listed):
      try:
        self.checkpoint.restore(path).assert_consumed()
      except (AssertionError, ValueError, IndexError, tf.errors.OpError) as e:
        reason = runs.damage(e)
        if reason is None:
          raise ParError(f"cannot resume from {path}: {str(e).splitlines()[0]}") from None
        kept = self._set_aside(path)
        logging.warning("checkpoint %s is damaged (%s); kept as %s", path, reason, kept)
        continue
      if k:
        logging.warning("resuming from %s, the newest intact checkpoint", path)
      logging.info(
        "resumed from %s at step %d (epoch %d, record %d)",
        path,
        int(self.state.step.numpy()),
        int(self.state.epoch.numpy()),
        int(self.state.position.numpy()),
      )
      return path
    if listed:
      raise ParError(
        f"no checkpoint in {self.directory} is intact (each is kept as damaged-ckpt-*); "
        "start again in another --model_dir"
      )
    return None

  def _set_aside(self, path):
    """Renames a damaged checkpoint's files and drops it from the state file (chief only)."""
    path = Path(path)
    kept = path.with_name(f"damaged-{path.name}")
    if self.chief:
      for part in path.parent.glob(f"{path.name}.*"):
        part.rename(part.with_name(f"damaged-{part.name}"))
      _drop_from_state(self.directory, path)
      self._manage()
    return f"{kept}.*"

  def save(self, memory=None):
    """Saves at the state's step; `memory` (per replica) is kept unless None (epoch start)."""
    if memory is not None:
      self.state.save_memory(distribute.gather_memory(self.strategy, memory))
    step = int(self.state.step.numpy())
    try:
      with errors.writing(self.manager.directory):
        path = self.manager.save(checkpoint_number=step)
    except BaseException:  # A full disk, say: TensorFlow leaves its temporary directory.
      shutil.rmtree(Path(self.manager.directory) / f"ckpt-{step}_temp", ignore_errors=True)
      raise
    if self.chief:
      logging.info("saved %s", path)
    else:
      shutil.rmtree(self.manager.directory, ignore_errors=True)
    return path


def _drop_from_state(directory, path):
  """Removes `path` from TensorFlow's checkpoint state file, keeping the others' timestamps.

  The manager forgets checkpoints listed without timestamps, and the public
  `update_checkpoint_state` drops them (and is deprecated), so this calls the function the
  manager itself uses (TensorFlow is pinned to 2.21).
  """
  from tensorflow.python.checkpoint import checkpoint_management

  state = tf.train.get_checkpoint_state(str(directory))
  paths = list(state.all_model_checkpoint_paths)
  stamps = list(state.all_model_checkpoint_timestamps)
  if len(stamps) != len(paths):  # A state file written without them: the manager's default.
    stamps = [state.last_preserved_timestamp] * len(paths)
  kept = [(p, t) for p, t in zip(paths, stamps) if p != str(path)]
  if not kept:
    (Path(directory) / "checkpoint").unlink()
    return
  checkpoint_management.update_checkpoint_state_internal(
    str(directory),
    kept[-1][0],
    [p for p, _ in kept],
    all_model_checkpoint_timestamps=[t for _, t in kept],
    last_preserved_timestamp=state.last_preserved_timestamp,
  )


class BestWeights:
  """The weights of the best validation loss so far (`--keep_best`), and the count of
  evaluations since it improved (`--patience`).

  The model's variables are saved to checkpoints/best (one kept) when the valid loss improves;
  `best.json` lists every valid evaluation of the run as [step, loss] and names the best.
  A run resumed at step s keeps the evaluations up to s: the ones after it will be made
  again, and give the same numbers, as the training after s does.

  Args:
    model: the ParModel.
    model_dir: the run directory.
    strategy: the strategy (every worker saves; only the chief's copy is kept).
    save: whether to keep the weights (--keep_best); without it only the count is kept.
    active: whether anything is kept at all (--keep_best or --patience).
  """

  def __init__(self, model, model_dir, strategy, save, active=True):
    self.model = model
    self.save_weights = save
    self.active = active or save
    self.path = Path(model_dir) / runs.BEST_FILE
    self.chief = distribute.is_chief(strategy)
    directory = Path(model_dir) / CHECKPOINT_DIR / "best"
    if not self.chief:
      directory = Path(model_dir) / f"{CHECKPOINT_DIR}-{distribute.worker_name(strategy)}-best"
    self.checkpoint = tf.train.Checkpoint(model=[v.value for v in model.variables])
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, directory, max_to_keep=1, checkpoint_name="best"
    )
    self.evaluations = []  # [step, valid loss]
    self.best_step = None
    self.best_valid = None  # the best evaluation's Result.to_dict()

  def load(self, step):
    """Reads best.json, keeping the evaluations made up to `step` (the resumed step)."""
    if not self.active or not self.path.is_file():
      return
    saved = runs.read_json(self.path)
    self.evaluations = [e for e in saved["evaluations"] if e[0] <= step]
    if saved["best_step"] is not None and saved["best_step"] <= step:
      self.best_step, self.best_valid = saved["best_step"], saved["best_valid"]
    elif self.evaluations:  # The best was made after `step`: it will be found again.
      self.best_step = min(self.evaluations, key=lambda e: (e[1], e[0]))[0]
      self.best_valid = None  # Known again when that step is evaluated again.

  @property
  def stale(self):
    """Valid evaluations since the best one."""
    if self.best_step is None:
      return 0
    return sum(1 for s, _ in self.evaluations if s > self.best_step)

  def observe(self, step, result):
    """A valid evaluation at `step`; saves the weights if it is the best so far."""
    if not self.active:
      return
    if self.evaluations and self.evaluations[-1][0] == step:
      return  # The same weights, evaluated again (an epoch end that is the last step).
    best = min((loss for _, loss in self.evaluations), default=float("inf"))
    self.evaluations.append([step, result.loss])
    if result.loss < best:
      self.best_step, self.best_valid = step, result.to_dict()
      if self.save_weights:
        with errors.writing(self.manager.directory):
          self.manager.save(checkpoint_number=step)
        if not self.chief:
          shutil.rmtree(self.manager.directory, ignore_errors=True)
    elif step == self.best_step:
      self.best_valid = result.to_dict()
    if self.chief:
      runs.write_json(
        self.path,
        {
          "best_step": self.best_step,
          "best_valid": self.best_valid,
          "evaluations": self.evaluations,
        },
      )

  def restore(self):
    """Loads the best weights into the model; returns the weights it had, to put back."""
    last = [v.numpy() for v in self.model.variables]
    path = tf.train.latest_checkpoint(str(self.manager.directory))
    if path is None or not path.endswith(f"-{self.best_step}"):
      raise ParError(
        f"the best weights (step {self.best_step}) are missing from {self.manager.directory}"
      )
    self.checkpoint.restore(path).assert_consumed()
    return last

  def put_back(self, weights):
    for variable, value in zip(self.model.variables, weights):
      variable.assign(value)

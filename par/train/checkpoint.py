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
    self.chief = distribute.is_chief(strategy)
    self.directory = Path(model_dir) / CHECKPOINT_DIR
    # Every worker saves (saving synchronises them); only the chief's copy is kept.
    own = (
      self.directory
      if self.chief
      else Path(model_dir) / f"{CHECKPOINT_DIR}-{distribute.worker_name(strategy)}"
    )
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, own, max_to_keep=keep if self.chief else 1
    )

  @property
  def latest(self):
    """The newest checkpoint this run saved or restored, or None."""
    return self.manager.latest_checkpoint

  def restore(self):
    """Restores the newest checkpoint of the run directory, if any; returns its path or None."""
    latest = tf.train.latest_checkpoint(self.directory)
    if latest:
      try:
        self.checkpoint.restore(latest).assert_consumed()
      except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ParError(f"cannot resume from {latest}: {str(e).splitlines()[0]}") from None
    return latest

  def save(self, memory=None):
    """Saves at the state's step; `memory` (per replica) is kept unless None (epoch start)."""
    if memory is not None:
      self.state.save_memory(distribute.gather_memory(self.strategy, memory))
    path = self.manager.save(checkpoint_number=int(self.state.step.numpy()))
    if self.chief:
      logging.info("saved %s", path)
    else:
      shutil.rmtree(self.manager.directory, ignore_errors=True)
    return path

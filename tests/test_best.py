"""--keep_best and --patience: which weights are kept, the count of evaluations without
improvement across a resume, and a run that stops early and reports its last and best."""

import dataclasses
import json
import types

import numpy as np
import pytest
import tensorflow as tf

from helpers import counting_dataset
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.model.par_model import ParModel
from par.train import checkpoint
from par.train import trainer
from par.train.evaluate import Evaluator

MODEL = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("data"))


def _result(loss):
  return types.SimpleNamespace(loss=loss, to_dict=lambda: {"loss": loss})


def _mark(model, value):
  for v in model.variables:
    v.assign(tf.fill(v.shape, tf.cast(value, v.dtype)))


def test_the_best_evaluation_keeps_its_weights_and_the_count_runs_from_it(tmp_path):
  model = ParModel(MODEL)
  model.build()
  best = checkpoint.BestWeights(model, tmp_path, tf.distribute.get_strategy(), save=True)
  losses = {10: 3.0, 20: 2.0, 30: 2.5, 40: 1.9, 50: 2.2, 60: 1.9, 70: 2.3}
  stale = []
  for step, loss in losses.items():
    _mark(model, step)  # the weights are the step number
    best.observe(step, _result(loss))
    stale.append(best.stale)
  assert best.best_step == 40 and best.best_valid == {"loss": 1.9}  # a tie keeps the first
  assert stale == [0, 0, 1, 0, 1, 2, 3]
  best.observe(70, _result(2.3))  # the same step again (epoch end = last step): no change
  assert best.stale == 3
  _mark(model, 99)
  last = best.restore()
  assert all(np.all(v.numpy() == 40) for v in model.variables if "float" in str(v.dtype))
  best.put_back(last)
  assert all(np.all(v.numpy() == 99) for v in model.variables if "float" in str(v.dtype))
  saved = json.loads((tmp_path / "best.json").read_text())
  assert saved["best_step"] == 40 and [e[0] for e in saved["evaluations"]] == list(losses)
  # Resumed at step 50: the evaluations after it will be made again.
  again = checkpoint.BestWeights(model, tmp_path, tf.distribute.get_strategy(), save=True)
  again.load(50)
  assert again.best_step == 40 and again.stale == 1
  # Resumed at step 30, before the best: the best so far is step 20's.
  early = checkpoint.BestWeights(model, tmp_path, tf.distribute.get_strategy(), save=True)
  early.load(30)
  assert early.best_step == 20 and early.stale == 1


def _config(data_dir, **changes):
  base = TrainConfig(
    model=dataclasses.replace(MODEL, architecture="sfs"),
    data_dir=str(data_dir),
    train_steps=40,
    max_lr=3e-3,
    warmup_steps=3,
    steps_per_loop=2,
    log_every=2,
    checkpoint_every=100,
    plot_every=0,
    plots=False,
    eval_every=2,
    seed=3,
  )
  return dataclasses.replace(base, **changes)


def test_patience_stops_the_run_and_both_last_and_best_are_reported(tmp_path, data_dir):
  # A learning rate far too high: valid loss gets worse after the first evaluations.
  config = _config(data_dir, max_lr=0.3, clip_norm=1.0, keep_best=True, patience=2)
  results = trainer.train_and_evaluate(config, tmp_path)
  saved = json.loads((tmp_path / "best.json").read_text())
  steps = [e[0] for e in saved["evaluations"]]
  losses = [e[1] for e in saved["evaluations"]]
  best_step = steps[int(np.argmin(losses))]
  assert results["stopped_early"] == results["steps"] == steps[-1] < 40
  assert steps[-1] == best_step + 2 * 2  # two evaluations, 2 steps apart, without improving
  assert results["best"]["step"] == best_step and results["valid"]["loss"] == losses[-1]
  assert results["best"]["valid"]["loss"] == pytest.approx(min(losses))
  assert results["best"]["test"]["loss"] != results["test"]["loss"]
  # The best checkpoint holds those weights: evaluated independently, the same numbers.
  model = ParModel(dataclasses.replace(MODEL, architecture="sfs"))
  model.build()
  path = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "best"))
  assert path.endswith(f"best-{best_step}")
  tf.train.Checkpoint(model=[v.value for v in model.variables]).restore(path).assert_consumed()
  meta = records.load_meta(data_dir)
  for split in ("valid", "test"):
    result = Evaluator(model, MODEL.mem_len)(
      records.load_dataset(data_dir, split), 4, meta.splits[split].words
    )
    assert result.loss == pytest.approx(results["best"][split]["loss"], rel=1e-5)
  assert "stopping early at step" in (tmp_path / "training.log").read_text()
  # Run again: the run is finished, at the step it stopped at.
  assert trainer.train_and_evaluate(config, tmp_path) == results

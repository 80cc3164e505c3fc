"""A run directory: its files, and loading its model for evaluation and generation.

  config.json        the resolved TrainConfig and the identity of the dataset it trains on
  spm.model          a copy of that dataset's tokenizer (generation needs no dataset)
  training.log       the log, also printed
  train/, valid/, test/   TensorBoard events
  checkpoints/       the last `keep_checkpoints` checkpoints
  architecture.json  block probabilities, derived pattern, blocks identity dominates, history
  resource.json      the block costs of the resource term, if the search has one
  plots/             architecture heatmaps; at the end architecture.gif and probabilities.png
                     (each block's probabilities over training)
  results.json       final valid and test metrics
  export/model.keras the final model (Keras format, no pickle)

Models load from a checkpoint (variables only; the architecture comes from config.json) or
from the Keras export (`safe_mode`, so nothing in it can run code). Neither uses pickle.
"""

import dataclasses
import json
from pathlib import Path

from par import tokenizer
from par.config import TrainConfig
from par.errors import ParError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "spm.model"
ARCHITECTURE_FILE = "architecture.json"
RESOURCE_FILE = "resource.json"
RESULTS_FILE = "results.json"
LOG_FILE = "training.log"
CHECKPOINT_DIR = "checkpoints"
EXPORT_FILE = Path("export") / "model.keras"


@dataclasses.dataclass(frozen=True)
class Run:
  """What config.json says of a run."""

  model_dir: Path
  config: TrainConfig
  dataset: dict  # tokenizer_sha256, batch_size, seq_len, train_records

  @property
  def tokenizer_sha256(self):
    return self.dataset["tokenizer_sha256"]

  @property
  def eval_mem_len(self):
    return self.config.eval_mem_len or self.config.model.mem_len


def read_run(model_dir):
  """The run in `model_dir`, or a ParError if it is not one."""
  model_dir = Path(model_dir)
  path = model_dir / CONFIG_FILE
  if not path.is_file():
    raise ParError(f"{model_dir} is not a run directory (no {CONFIG_FILE}); train one with "
                   "scripts/train.py")
  try:
    saved = json.loads(path.read_text())
    config = TrainConfig.from_dict(saved["config"])
    dataset = dict(saved["dataset"])
    dataset["tokenizer_sha256"]  # pylint: disable=pointless-statement (must be there)
  except (ValueError, KeyError, TypeError, ParError):
    raise ParError(f"{path} is not a config this version of par wrote") from None
  return Run(model_dir, config, dataset)


def load_tokenizer(run, data_dir=None):
  """The run's SentencePiece processor: its own copy, or data_dir's; checked by checksum."""
  candidates = [run.model_dir / TOKENIZER_FILE]
  for directory in (data_dir, run.config.data_dir):
    if directory:
      candidates.append(Path(directory) / TOKENIZER_FILE)
  for path in candidates:
    if path.is_file():
      proto = path.read_bytes()
      if tokenizer.sha256(proto) != run.tokenizer_sha256:
        raise ParError(f"{path} is not the tokenizer {run.model_dir} was trained with "
                       f"(sha256 {tokenizer.sha256(proto)[:12]}…, expected "
                       f"{run.tokenizer_sha256[:12]}…)")
      return tokenizer.load(proto)
  raise ParError(f"no tokenizer for {run.model_dir}: none of "
                 f"{', '.join(str(p) for p in candidates)} exists")


def _latest_checkpoint(run):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  latest = tf.train.latest_checkpoint(str(run.model_dir / CHECKPOINT_DIR))
  if latest is None:
    raise ParError(f"{run.model_dir} has no checkpoint yet")
  return latest


def load_model(run, source="checkpoint", checkpoint=None, eval_mode=None):
  """The run's model, built and restored.

  Args:
    run: a `Run`.
    source: "checkpoint" (the latest, or `checkpoint`) or "export" (export/model.keras).
    checkpoint: a checkpoint path prefix, e.g. runs/x/checkpoints/ckpt-200.
    eval_mode: the SuperNet's evaluation mode, if not the run's ("argmax" or "expected").

  Returns:
    (ParModel, what it was loaded from).
  """
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from par.model import ParModel  # pylint: disable=g-import-not-at-top

  config = run.config.model
  if source == "export":
    path = run.model_dir / EXPORT_FILE
    if not path.is_file():
      raise ParError(f"{path} does not exist: the run has not finished; use its checkpoint")
    loaded = keras.saving.load_model(path, safe_mode=True)
    if not isinstance(loaded, ParModel):
      raise ParError(f"{path} does not hold a PAR model")
    origin = str(path)
  elif source == "checkpoint":
    origin = checkpoint or _latest_checkpoint(run)
    loaded = ParModel(config)
    loaded.build()
    restore = tf.train.Checkpoint(model=[v.value for v in loaded.variables])
    try:
      restore.restore(origin).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise ParError(f"cannot load {origin}: {str(e).splitlines()[0]}") from None
  else:
    raise ParError(f"source must be checkpoint or export, got {source!r}")
  if eval_mode and eval_mode != loaded.config.eval_mode and loaded.is_supernet:
    model = ParModel(dataclasses.replace(loaded.config, eval_mode=eval_mode))
    model.build()
    model.set_weights(loaded.get_weights())
    loaded = model
  return loaded, origin

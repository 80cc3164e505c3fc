"""A run directory: its files, written (by training) and read (by evaluation, generation and
the pipeline). Nothing else writes into it.

  config.json        the resolved TrainConfig and the identity of the dataset it trains on
  .lock              while a process trains in it: its pid (`lock`)
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

Files are written whole or not at all: JSON and the export go to a temporary name that is
renamed into place, so a reader never sees half a file and a crash leaves the old one.

Models load from a checkpoint (variables only; the architecture comes from config.json) or
from the Keras export (`safe_mode`, so nothing in it can run code). Neither uses pickle.
"""

import dataclasses
import json
import os
import shutil
import zipfile
from pathlib import Path

from absl import logging

from par import errors
from par import locks
from par.config import TrainConfig
from par.data import records
from par.data import tokenizer
from par.errors import ParError

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"  # held while a process trains in the directory (par/locks.py)
TOKENIZER_FILE = records.TOKENIZER_FILE  # A SentencePiece run's; see `Run.tokenizer_file`.
ARCHITECTURE_FILE = "architecture.json"
BEST_FILE = "best.json"
RESOURCE_FILE = "resource.json"
RESULTS_FILE = "results.json"
LOG_FILE = "training.log"
CHECKPOINT_DIR = "checkpoints"
EXPORT_FILE = Path("export") / "model.keras"
PLOTS_DIR = "plots"
GIF_FILE = "architecture.gif"
PROBABILITIES_FILE = "probabilities.png"
CURVES_FILE = "curves"  # plots/curves.png and .pdf: loss and perplexity against the step
SOURCES = ("checkpoint", "export")  # Where `load_model` takes a run's weights from.


@dataclasses.dataclass(frozen=True)
class Run:
  """What config.json says of a run."""

  model_dir: Path
  config: TrainConfig
  dataset: dict  # `dataset_summary`: tokenizer (kind) and sha256, batch_size, seq_len, ...

  @property
  def tokenizer_sha256(self):
    return self.dataset["tokenizer_sha256"]

  @property
  def tokenizer(self):
    """The tokenizer's kind (runs from before word and char vocabularies: sentencepiece)."""
    return self.dataset.get("tokenizer", "sentencepiece")

  @property
  def tokenizer_file(self):
    return records.TOKENIZER_FILES[self.tokenizer]

  @property
  def eval_mem_len(self):
    return self.config.eval_mem_len or self.config.model.mem_len


# --- writing -----------------------------------------------------------------------------------


def write_bytes(path, data):
  """Writes a file atomically (a figure, say): a reader never sees half of it."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  try:
    with errors.writing(path):
      temporary.write_bytes(data)
      os.replace(temporary, path)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise


def write_json(path, value):
  """Writes JSON atomically: a reader never sees half a file."""
  write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def heatmap_path(model_dir, step):
  """The architecture heatmap drawn at `step`."""
  return Path(model_dir) / PLOTS_DIR / f"architecture-{step:07d}.png"


def read_json(path):
  """A JSON file this tool wrote; `errors.DamagedFile` (one line naming it) when it does not
  read as JSON any more (truncated, edited, not text)."""
  path = Path(path)
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:  # (JSONDecodeError is a ValueError)
    raise errors.DamagedFile(
      f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0][:80]}): not the JSON "
      "par wrote; remove it to have it computed again, or restore it"
    ) from None


def read_json_cache(path, what):
  """A JSON file kept to save work (a cache): its value, or None when it is absent or damaged
  (then with a warning: `what` is computed again)."""
  path = Path(path)
  if not path.is_file():
    return None
  try:
    value = read_json(path)
  except errors.DamagedFile as e:
    logging.warning("%s; computing %s again", e, what)
    return None
  return value if isinstance(value, dict) else None


def read_results(model_dir):
  """results.json of a run, or None if it has none yet, or it is damaged (with a warning: the
  run's end, its evaluation, runs again from its last checkpoint)."""
  return read_json_cache(Path(model_dir) / RESULTS_FILE, "the run's results")


def is_finished(model_dir):
  """Whether a run wrote everything its end writes: results.json, then the export."""
  return (Path(model_dir) / RESULTS_FILE).is_file() and (Path(model_dir) / EXPORT_FILE).is_file()


def dataset_summary(meta):
  """What identifies the dataset a run trains on (kept in config.json): the tokenizer, the
  shapes, and the sha256 of every split's text, valid and test included (a run reused on a
  dataset whose test split changed would report the old split's perplexity)."""
  return {
    "tokenizer": meta.tokenizer,
    "tokenizer_sha256": meta.tokenizer_sha256,
    "batch_size": meta.batch_size,
    "seq_len": meta.seq_len,
    "train_records": meta.splits["train"].records,
    "splits": {name: split.source_sha256 for name, split in sorted(meta.splits.items())},
  }


def same_dataset(saved, current):
  """Whether a run's kept dataset identity (config.json's "dataset") is `current`'s. Runs
  from before word and char vocabularies name no tokenizer kind (SentencePiece's); runs from
  before the splits' hashes were kept are compared without them."""
  saved = dict({"tokenizer": "sentencepiece"}, **saved)
  if "splits" not in saved:
    current = {k: v for k, v in current.items() if k != "splits"}
  return saved == current


def changed_settings(previous, config):
  """The fields of two TrainConfigs that differ and would change a run's result.

  data_dir is not compared: a run is tied to its dataset by the dataset's identity
  (`dataset_summary`), wherever the files are.
  """
  return [
    f.name
    for f in dataclasses.fields(TrainConfig)
    if f.name not in TrainConfig.RESUMABLE_CHANGES
    and f.name != "data_dir"
    and getattr(previous, f.name) != getattr(config, f.name)
  ]


def lock(model_dir):
  """Holds the run directory for this process (`par.locks`), creating it: a second process
  on it is refused in one line."""
  model_dir = Path(model_dir)
  if model_dir.exists() and not model_dir.is_dir():
    raise ParError(f"--model_dir {model_dir} is a file, not a directory; choose another path")
  return locks.hold(model_dir / LOCK_FILE, model_dir, f"the run directory {model_dir}")


def prepare(model_dir, config, meta, write=True):
  """Creates model_dir, or checks that it holds this very run; writes config.json and a copy
  of the dataset's tokenizer (so that generation needs no dataset).

  Args:
    model_dir: the run directory.
    config: the resolved `TrainConfig` (vocabulary size from the dataset).
    meta: the dataset's `records.DatasetMeta`.
    write: False only checks (workers other than the chief).

  Raises:
    ParError: model_dir holds a run with other settings or another dataset.
  """
  model_dir = Path(model_dir)
  if model_dir.exists() and not model_dir.is_dir():
    raise ParError(f"--model_dir {model_dir} is a file, not a directory; choose another path")
  path = model_dir / CONFIG_FILE
  dataset = dataset_summary(meta)
  if path.is_file() and (model_dir / CHECKPOINT_DIR).is_dir():
    try:
      saved = json.loads(path.read_text())
      previous = TrainConfig.from_dict(saved["config"])
    except (ValueError, KeyError, TypeError, ParError):
      raise ParError(f"{path} is not a config this version of par wrote") from None
    changed = changed_settings(previous, config)
    if changed or not same_dataset(saved.get("dataset", {}), dataset):
      what = ", ".join(changed) if changed else "the dataset"
      raise ParError(
        f"{model_dir} holds a run with other settings ({what}); resume it with "
        "the same flags, or choose another --model_dir"
      )
  if not write:
    return
  with errors.writing(model_dir):
    model_dir.mkdir(parents=True, exist_ok=True)
  write_json(path, {"config": config.to_dict(), "dataset": dataset})
  write_bytes(
    model_dir / meta.tokenizer_file, (Path(config.data_dir) / meta.tokenizer_file).read_bytes()
  )


def load_history(model_dir, step):
  """The architecture history of architecture.json up to `step` (a resumed run's past)."""
  path = Path(model_dir) / ARCHITECTURE_FILE
  if not path.is_file():
    return []
  history = json.loads(path.read_text()).get("history", [])
  return [h for h in history if h["step"] <= step]  # Drop what came after the checkpoint.


def export(model, model_dir):
  """Saves the model as export/model.keras, whole or not at all.

  Keras's `.keras` writer may build the weights file in memory before zipping it (when it
  judges memory sufficient): a copy of the largest weights beside the one it converts them
  to. Here Keras writes its files to a directory (`zipped=False`) and they are zipped from
  disk into the archive Keras would write (its files in its order, stored), which
  `keras.saving.load_model` reads. With `adaptive_softmax.save_variables_once`, the export of
  Transformer-XL base at WikiText-103's vocabulary copies none of its 419 MiB table, where
  Keras's copies it twice (tests/test_transformer_xl.py).
  """
  path = Path(model_dir) / EXPORT_FILE
  path.parent.mkdir(exist_ok=True)
  partial = path.with_name("model.partial.keras")
  files = path.with_name("model.partial")
  try:
    with errors.writing(path):
      shutil.rmtree(files, ignore_errors=True)
      model.save(files, zipped=False)
      first = {"metadata.json": 0, "config.json": 1}  # Keras's order, then the rest
      written = sorted(
        (f for f in files.rglob("*") if f.is_file()), key=lambda f: (first.get(f.name, 2), f)
      )
      with zipfile.ZipFile(partial, "w") as archive:
        for f in written:
          archive.write(f, f.relative_to(files).as_posix())
      os.replace(partial, path)
  except BaseException:
    partial.unlink(missing_ok=True)
    raise
  finally:
    shutil.rmtree(files, ignore_errors=True)


# --- reading -----------------------------------------------------------------------------------


def read_run(model_dir):
  """The run in `model_dir`, or a ParError if it is not one."""
  model_dir = Path(model_dir)
  path = model_dir / CONFIG_FILE
  if not path.is_file():
    raise ParError(
      f"{model_dir} is not a run directory (no {CONFIG_FILE}); train one with par-train"
    )
  try:
    saved = json.loads(path.read_text())
    config = TrainConfig.from_dict(saved["config"])
    dataset = dict(saved["dataset"])
    dataset["tokenizer_sha256"]  # Must be there.
  except (ValueError, KeyError, TypeError, ParError):
    raise ParError(f"{path} is not a config this version of par wrote") from None
  return Run(model_dir, config, dataset)


def load_tokenizer(run, data_dir=None):
  """The run's tokenizer as a `tokenizer.Codec`: its own copy, or data_dir's; checked by
  checksum."""
  name = run.tokenizer_file
  candidates = [run.model_dir / name]
  for directory in (data_dir, run.config.data_dir):
    if directory:
      candidates.append(Path(directory) / name)
  for path in candidates:
    if path.is_file():
      data = path.read_bytes()
      if tokenizer.sha256(data) != run.tokenizer_sha256:
        raise ParError(
          f"{path} is not the tokenizer {run.model_dir} was trained with "
          f"(sha256 {tokenizer.sha256(data)[:12]}…, expected "
          f"{run.tokenizer_sha256[:12]}…)"
        )
      return tokenizer.load_codec(run.tokenizer, data, path)
  raise ParError(
    f"no tokenizer for {run.model_dir}: none of {', '.join(str(p) for p in candidates)} exists"
  )


def checkpoints(directory):
  """The checkpoints TensorFlow's state file lists in `directory`, newest first."""
  import tensorflow as tf

  state = tf.train.get_checkpoint_state(str(directory))
  return list(reversed(state.all_model_checkpoint_paths)) if state else []


def damage(error):
  """The reason a restore failed, if it means damaged files (truncated, corrupted or missing
  parts); None for other failures, such as a checkpoint of another model."""
  import tensorflow as tf

  if isinstance(
    error, (IndexError, tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError)
  ):
    return str(error).splitlines()[0] if str(error) else type(error).__name__
  return None


def _restore(checkpoint, path):
  """Restores every variable of `checkpoint` (a tf.train.Checkpoint) from `path`.

  Raises:
    ParError: the checkpoint is of another model or run.
    Others: damaged files (see `damage`).
  """
  import tensorflow as tf

  try:
    checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    if damage(e) is None:
      raise ParError(f"cannot load {path}: {str(e).splitlines()[0]}") from None
    raise


def _check_matches(variables, path, model_dir):
  """Raises ParError unless the checkpoint at `path` holds exactly these variables' shapes.

  Read from its index, before any restore: restoring another model's checkpoint fails inside
  TensorFlow, which logs dozens of warnings after the error line.
  """
  import tensorflow as tf

  found = {
    name: shape for name, shape in tf.train.list_variables(path) if name.startswith("model/")
  }
  expected = {
    f"model/{k}/.ATTRIBUTES/VARIABLE_VALUE": list(v.shape) for k, v in enumerate(variables)
  }
  if found == expected:
    return
  differ = next(
    (
      k for k in sorted(expected, key=lambda k: int(k.split("/")[1])) if found.get(k) != expected[k]
    ),
    None,
  )
  detail = (
    f"variable {differ.split('/')[1]} is {found.get(differ, 'missing')} there, "
    f"{expected[differ]} here"
    if differ
    else f"{len(found)} variables there, {len(expected)} here"
  )
  raise ParError(
    f"{path} is a checkpoint of another model than {model_dir}'s ({detail}); give one of "
    "this run's checkpoints"
  )


def _intact_checkpoint(run, checkpoint, skip):
  """The newest checkpoint of the run other than `skip` that restores whole, or None."""
  for path in checkpoints(run.model_dir / CHECKPOINT_DIR):
    if path == skip:
      continue
    try:
      _restore(checkpoint, path)
      return path
    except Exception as e:  # damage() tells damaged files from other failures.
      if damage(e) is None:
        raise
  return None


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
  import keras
  import tensorflow as tf

  from par.model.par_model import ParModel

  config = run.config.model
  if source == "export":
    path = run.model_dir / EXPORT_FILE
    if not path.is_file():
      raise ParError(f"{path} does not exist: the run has not finished; use its checkpoint")
    try:
      loaded = keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # Truncated, tampered with, of another program: one line.
      reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise ParError(
        f"{path} cannot be loaded ({reason[:200]}): it is damaged or was changed (nothing in it "
        "was run); use --source=checkpoint"
      ) from None
    if not isinstance(loaded, ParModel):
      raise ParError(f"{path} does not hold a PAR model")
    origin = str(path)
  elif source == "checkpoint":
    listed = checkpoints(run.model_dir / CHECKPOINT_DIR)
    if not checkpoint and not listed:
      raise ParError(f"{run.model_dir} has no checkpoint yet")
    origin = checkpoint or listed[0]
    loaded = ParModel(config)
    loaded.build()
    restore = tf.train.Checkpoint(model=[v.value for v in loaded.variables])
    try:
      _check_matches(loaded.variables, origin, run.model_dir)
      _restore(restore, origin)
    except Exception as e:  # damage() tells damaged files from other failures.
      reason = damage(e)
      if reason is None:
        raise
      intact = _intact_checkpoint(run, restore, skip=origin)
      instead = (
        f"use --checkpoint={intact}"
        if intact
        else "no other checkpoint is intact; use --source=export"
        if (run.model_dir / EXPORT_FILE).is_file()
        else "no other checkpoint is intact"
      )
      raise ParError(f"checkpoint {origin} is damaged ({reason}); {instead}") from None
  else:
    raise ParError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
  if eval_mode and eval_mode != loaded.config.eval_mode and loaded.is_supernet:
    model = ParModel(dataclasses.replace(loaded.config, eval_mode=eval_mode))
    model.build()
    model.set_weights(loaded.get_weights())
    loaded = model
  return loaded, origin

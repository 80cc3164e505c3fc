"""Building a dataset directory from text: the body of scripts/build_data.py.

text files -> tokenizer (trained or counted on train, or given) -> token streams -> records
-> directory. The tokenizer is SentencePiece, or a word or char vocabulary (par/data/vocab.py).

Everything that can be wrong with the input is found before anything is written. The
directory is then assembled in a hidden temporary sibling and renamed into place at the end,
so an interrupted build never leaves something that looks complete; a build that raises
(Ctrl-C and SIGTERM included) removes its temporary directory, and one killed outright
leaves it for the next build to remove.
"""

import dataclasses
import os
import shutil
import tempfile
import time
import typing
from pathlib import Path

from absl import logging

from par import errors
from par.config import DataConfig
from par.data import records
from par.data import text as text_lib
from par.data import tokenizer
from par.data import vocab as vocab_lib
from par.errors import ParError


def build_dataset(
  input_path: str | os.PathLike,
  output_dir: str | os.PathLike,
  config: DataConfig,
  sp_model: str | os.PathLike | None = None,
  overwrite: bool = False,
  reuse_existing: bool = False,
) -> tuple[records.DatasetMeta, bool]:
  """Builds a dataset directory (layout in `par.data.records`).

  Args:
    input_path: a directory of split files (see `text.SPLIT_FILE_NAMES`) or one text file,
      which becomes the train split.
    output_dir: the dataset directory to create.
    config: `par.config.DataConfig`.
    sp_model: path of an existing SentencePiece model to use instead of training one
      (config.tokenizer sentencepiece only).
    overwrite: replace an existing output_dir.
    reuse_existing: if output_dir was built from the same files and settings, keep it.

  Returns:
    (meta, built): the `records.DatasetMeta`, and False if an existing dataset was reused.
  """
  config.validate()
  if sp_model and config.tokenizer != "sentencepiece":
    raise ParError(f"a SentencePiece model ({sp_model}) cannot make a {config.tokenizer} dataset")
  start = time.perf_counter()
  files = text_lib.find_split_files(input_path)
  output_dir = Path(output_dir)
  model = _read_model(sp_model) if sp_model else None
  if model is not None:
    config = dataclasses.replace(
      config, vocab_size=tokenizer.load(model, sp_model).get_piece_size()
    )
  if output_dir.exists():
    differences = _differences(output_dir, files, config, model)
    if reuse_existing and not differences:
      logging.info("%s is up to date with its inputs and settings; reusing it", output_dir)
      return records.load_meta(output_dir), False
    if not overwrite:
      why = f" (it differs: {'; '.join(differences)})" if reuse_existing else ""
      raise ParError(f"{output_dir} already exists{why}; pass --overwrite to replace it")
    if not (output_dir / records.META_FILE).is_file():
      raise ParError(f"{output_dir} exists and is not a built dataset; not replacing it")

  binary = config.tokenizer == "char"  # Bytes, exactly as stored.
  texts = {split: text_lib.read_text(path, binary) for split, path in files.items()}
  made = _make_tokenizer(config, texts["train"].lines, model)
  logging.info(
    "%s tokenizer of %d ids ready in %.1f s",
    config.tokenizer,
    made.vocab_size,
    time.perf_counter() - start,
  )
  streams, unknown = {}, {}
  for split, text in texts.items():
    streams[split], unknown[split] = made.tokenize(text.lines)
    needed = config.batch_size * config.seq_len + 1
    if len(streams[split]) < needed:
      raise ParError(
        f"the {split} split ({text.path}) has {len(streams[split])} tokens; batch_size "
        f"{config.batch_size} x seq_len {config.seq_len} needs at least {needed}"
      )

  with errors.writing(output_dir):
    meta = _write(output_dir, config, made, texts, streams, unknown)
  logging.info(
    "built %s in %.1f s: %s",
    output_dir,
    time.perf_counter() - start,
    ", ".join(f"{s} {m.tokens} tokens in {m.records} records" for s, m in meta.splits.items()),
  )
  return meta, True


@dataclasses.dataclass(frozen=True)
class _Tokenizer:
  """A dataset's tokenizer, ready to write and to tokenize with, whatever its kind."""

  kind: str
  data: bytes  # its file
  vocab_size: int
  eos_id: int
  tokenize: typing.Callable  # lines -> (int32 stream with an end of line after each, unknown)
  readable: str | None = None  # SentencePiece's spm.vocab


def _make_tokenizer(config, train_lines, model):
  """The tokenizer of config.tokenizer: SentencePiece's `model` if given, else trained on the
  train split's lines; a word or char vocabulary counted on them."""
  if config.tokenizer != "sentencepiece":
    vocabulary = vocab_lib.Vocabulary.count(
      config.tokenizer, train_lines, config.min_count, config.max_vocab
    )
    return _Tokenizer(
      config.tokenizer,
      vocabulary.to_bytes(),
      vocabulary.size,
      vocab_lib.EOS_ID,
      vocabulary.tokenize,
    )
  if model is None:
    model = tokenizer.train(train_lines, config)
  sp = tokenizer.Tokenizer(model)

  def tokenize(lines):
    stream = sp.tokenize(lines)
    return stream, int((stream == tokenizer.UNK_ID).sum())

  return _Tokenizer(
    "sentencepiece",
    model,
    sp.vocab_size,
    sp.processor.eos_id(),
    tokenize,
    tokenizer.vocab_text(model),
  )


def _read_model(path):
  try:
    return Path(path).read_bytes()
  except OSError as e:
    raise ParError(f"cannot read the tokenizer model {path}: {e.strerror}") from None


def _differences(output_dir, files, config, model):
  """How output_dir differs from a build of these files, settings and tokenizer: a list of
  short phrases, empty when it was built from exactly them."""
  try:
    meta = records.load_meta(output_dir)
  except ParError:
    return ["it is not a built dataset"]
  found = []
  changed = [
    f"{name} {getattr(meta.config, name)!r} -> {getattr(config, name)!r}"
    for name in (f.name for f in dataclasses.fields(config))
    if getattr(meta.config, name) != getattr(config, name)
  ]
  if changed:
    found.append("settings " + ", ".join(changed))
  if set(meta.splits) != set(files):
    found.append(f"splits {sorted(meta.splits)} -> {sorted(files)}")
  if model is not None and tokenizer.sha256(model) != meta.tokenizer_sha256:
    found.append("another tokenizer (--sp_model)")
  edited = [
    split
    for split, path in files.items()
    if split in meta.splits and meta.splits[split].source_sha256 != text_lib.file_sha256(path)
  ]
  if edited:
    found.append(f"the text of {', '.join(edited)}")
  return found


def _write(output_dir, config, made, texts, streams, unknown):
  """Writes the dataset into a temporary sibling, then renames it to output_dir."""
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  _remove_abandoned_partials(output_dir)
  work = Path(
    tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-{os.getpid()}-", dir=output_dir.parent)
  )
  try:
    built = work / "dataset"  # mkdtemp's own mode is 0700; this one follows the umask.
    built.mkdir()
    (built / records.TOKENIZER_FILES[made.kind]).write_bytes(made.data)
    if made.readable is not None:
      (built / records.VOCAB_FILE).write_text(made.readable, encoding="utf-8")
    splits = {}
    for split, stream in streams.items():
      windows, dropped, padding = records.context_batch(
        stream, config.batch_size, config.seq_len, config.remainder
      )
      shards = records.write_split(windows, built, split, config.shards)
      text = texts[split]
      splits[split] = records.SplitMeta(
        source=str(Path(text.path).resolve()),
        source_sha256=text.sha256,
        lines=len(text.lines),
        words=text.words,
        tokens=len(stream),
        records=len(windows),
        targets=len(stream) - 1 - dropped,
        dropped_tokens=dropped,
        padding=padding,
        shards=shards,
        characters=text.characters,
        unknown=unknown[split],
      )
    meta = records.DatasetMeta(
      format_version=records.FORMAT_VERSION,
      vocab_size=made.vocab_size,
      batch_size=config.batch_size,
      seq_len=config.seq_len,
      eos_id=made.eos_id,
      pad_id=records.PAD_ID,
      tokenizer_sha256=tokenizer.sha256(made.data),
      config=config,
      splits=splits,
      tokenizer=made.kind,
    )
    (built / records.META_FILE).write_text(meta.to_json())
    if output_dir.exists():  # --overwrite, checked by the caller.
      old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
      os.rename(output_dir, old)
      os.rename(built, output_dir)
      shutil.rmtree(old)
    else:
      os.rename(built, output_dir)
    return meta
  finally:
    shutil.rmtree(work, ignore_errors=True)


def _remove_abandoned_partials(output_dir):
  """Removes temporary directories left by builds of output_dir that were killed."""
  for partial in output_dir.parent.glob(f".{output_dir.name}.partial-*"):
    try:
      pid = int(partial.name.rsplit(".partial-", 1)[1].split("-")[0])
      os.kill(pid, 0)  # Raises if no such process: the build that made it is gone.
    except ProcessLookupError:
      shutil.rmtree(partial, ignore_errors=True)
    except (ValueError, IndexError, PermissionError):
      pass

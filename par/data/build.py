"""Building a dataset directory from text: the body of scripts/build_data.py.

text files -> tokenizer (trained or counted on train, or given) -> token streams -> records
-> directory. The tokenizer is SentencePiece, or a word or char vocabulary (par/data/vocab.py).

Memory does not grow with the corpus: every split is read in pieces (`text.SplitReader`),
once to check and count it (and the train split's symbols), once to tokenize it into a
stream file, whose records are then read back a slice at a time. What stays in memory is the
tokenizer: a word vocabulary, or SentencePiece and, while it trains, its training lines
(`--input_sentence_size` samples them). A word or char build imports no TensorFlow.

Everything that can be wrong with the input text is found before anything is tokenized. The
directory is then assembled in a hidden temporary sibling and renamed into place at the end,
so an interrupted build never leaves something that looks complete; a build that raises
(Ctrl-C and SIGTERM included) removes its temporary directory, and one killed outright
leaves it for the next build to remove.
"""

import collections
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import typing
from pathlib import Path

import numpy as np
from absl import logging

from par import errors
from par import locks
from par import signals
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
  with locks.hold(locks.beside(output_dir), output_dir, f"the dataset {output_dir}"):
    return _build(output_dir, files, config, model, overwrite, reuse_existing, start)


def _build(output_dir, files, config, model, overwrite, reuse_existing, start):
  """`build_dataset`'s work, with its inputs found and its output held."""
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
  whole_lines = config.tokenizer == "sentencepiece"  # Word and char pieces may cut lines.
  counter = None if whole_lines else vocab_lib.Counter(config.tokenizer)
  stats = {}  # One pass over every split finds bad input before anything is tokenized.
  for split, path in files.items():
    consume = counter.add if counter is not None and split == "train" else None
    stats[split] = text_lib.scan(path, binary, whole_lines, consume)
    if counter is not None:  # Word and char streams have exactly `words` and `characters`.
      tokens = stats[split].characters if binary else stats[split].words
      _check_length(split, path, tokens, config)
  made = _make_tokenizer(config, files["train"], stats["train"], counter, model)
  logging.info(
    "%s tokenizer of %d ids ready in %.1f s",
    config.tokenizer,
    made.vocab_size,
    time.perf_counter() - start,
  )
  with errors.writing(output_dir):
    meta = _write(output_dir, config, made, stats)
  for split, info in meta.splits.items():
    if info.unknown > UNKNOWN_WARNING * info.tokens:
      logging.warning(
        "%s: %.1f%% of the %s split's tokens are unknown (<unk>): a perplexity that predicts "
        "<unk> that often measures little; lower --min_count, raise --max_vocab or "
        "--character_coverage, or check that the splits are of one text",
        output_dir,
        100 * info.unknown / info.tokens,
        split,
      )
  logging.info(
    "built %s in %.1f s: %s",
    output_dir,
    time.perf_counter() - start,
    ", ".join(f"{s} {m.tokens} tokens in {m.records} records" for s, m in meta.splits.items()),
  )
  return meta, True


UNKNOWN_WARNING = 0.05  # A split with more unknown tokens than this share is warned of.


def _check_length(split, path, tokens, config):
  needed = config.batch_size * config.seq_len + 1
  if tokens < needed:
    raise ParError(
      f"the {split} split ({path}) has {tokens} tokens; batch_size {config.batch_size} x seq_len "
      f"{config.seq_len} needs at least {needed}"
    )


@dataclasses.dataclass(frozen=True)
class _Tokenizer:
  """A dataset's tokenizer, ready to write and to tokenize with, whatever its kind."""

  kind: str
  data: bytes  # its file
  vocab_size: int
  eos_id: int
  encode: typing.Callable  # piece -> (int32 ids, `<eos>` for each end of line; unknown count)
  readable: str | None = None  # SentencePiece's spm.vocab
  line_starts: typing.Callable | None = None  # SentencePiece: line -> where its tokens start

  def starts(self, piece):
    """Where each token `encode(piece)` gives starts in the piece (`tokenizer.piece_starts`)."""
    return tokenizer.piece_starts(self.kind, piece, self.line_starts)


def _make_tokenizer(config, train_path, train_stats, counter, model):
  """The tokenizer of config.tokenizer: a word or char vocabulary from `counter`, which has
  counted the train split; SentencePiece's `model` if given, else one trained on the train
  split's lines (a sample of them with config.input_sentence_size)."""
  if counter is not None:
    vocabulary = counter.vocabulary(train_stats.lines, config.min_count, config.max_vocab)
    return _Tokenizer(
      config.tokenizer,
      vocabulary.to_bytes(),
      vocabulary.size,
      vocab_lib.EOS_ID,
      vocabulary.encode_piece,
    )
  if model is None:
    lines = text_lib.iter_lines(train_path)
    if config.input_sentence_size:
      lines = tokenizer.sample_lines(lines, config.input_sentence_size)
    model = tokenizer.train(lines, config)
  sp = tokenizer.Tokenizer(model)

  def encode(piece):  # A piece of whole lines.
    ids = sp.tokenize(text_lib.lines_of(piece))
    return ids, int(np.count_nonzero(ids == tokenizer.UNK_ID))

  return _Tokenizer(
    "sentencepiece",
    model,
    sp.vocab_size,
    sp.processor.eos_id(),
    encode,
    tokenizer.vocab_text(model),
    sp.starts,
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


def _write(output_dir, config, made, stats):
  """Tokenizes and writes every split into a temporary sibling, then renames it to output_dir.

  A split's token stream goes to a file in the temporary directory, piece by piece, and its
  records are read back from there a few at a time (`records.StreamRecords`): memory holds
  the tokenizer and a piece or a slice of records, never a whole split.
  """
  created = [p for p in (output_dir.parent, *output_dir.parent.parents) if not p.exists()]
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  _remove_abandoned_partials(output_dir)
  work, done = None, False
  try:
    with signals.held():  # A signal between mkdtemp and `work` would leave the directory.
      work = Path(
        tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-{os.getpid()}-", dir=output_dir.parent)
      )
    built = work / "dataset"  # mkdtemp's own mode is 0700; this one follows the umask.
    built.mkdir()
    (built / records.TOKENIZER_FILES[made.kind]).write_bytes(made.data)
    if made.readable is not None:
      (built / records.VOCAB_FILE).write_text(made.readable, encoding="utf-8")
    splits = {}
    # Smallest first: a split too short for one record is found before the long ones run.
    for split in sorted(stats, key=lambda s: (os.path.getsize(stats[s].path), s)):
      splits[split] = _write_split(work / "stream", built, split, stats[split], config, made)
    meta = records.DatasetMeta(
      format_version=records.FORMAT_VERSION,
      vocab_size=made.vocab_size,
      batch_size=config.batch_size,
      seq_len=config.seq_len,
      eos_id=made.eos_id,
      pad_id=records.PAD_ID,
      tokenizer_sha256=tokenizer.sha256(made.data),
      config=config,
      splits={split: splits[split] for split in stats},
      tokenizer=made.kind,
    )
    (built / records.META_FILE).write_text(meta.to_json())
    # The old dataset (--overwrite, checked by the caller) goes into the temporary directory,
    # removed below or, if the process is killed, by the next build; with signals held,
    # output_dir is never missing between the two renames.
    with signals.held():
      if output_dir.exists():
        os.rename(output_dir, work / "old")
      os.rename(built, output_dir)
      done = True
    return meta
  finally:
    if work is not None:
      shutil.rmtree(work, ignore_errors=True)
    for directory in created if not done else ():  # A failed build leaves no trace.
      with contextlib.suppress(OSError):
        directory.rmdir()


def _write_split(stream_path, built, split, stats, config, made):
  """Tokenizes one split into `stream_path`, writes its records into `built`; its SplitMeta."""
  start = time.perf_counter()
  reader = text_lib.SplitReader(
    stats.path, made.kind == "char", whole_lines=made.kind == "sentencepiece"
  )
  tokens = unknown = 0
  head = None
  tail = _Tail(config.batch_size * config.seq_len)
  with open(stream_path, "wb") as f:
    for piece in reader:
      head = head or text_lib.head_counts(piece, made.starts(piece))
      ids, missing = made.encode(piece)
      ids.astype(np.int32, copy=False).tofile(f)
      tail.add(piece, tokens, tokens + len(ids), reader.before)
      tokens, unknown = tokens + len(ids), unknown + missing
    if made.kind != "sentencepiece" and not reader.stats.ends_with_newline:
      np.array([made.eos_id], np.int32).tofile(f)  # The last line's end.
      tokens += 1
  if reader.stats.sha256 != stats.sha256:
    raise ParError(f"{stats.path} changed while the dataset was being built; build it again")
  _check_length(split, stats.path, tokens, config)
  windows = records.StreamRecords(
    stream_path, tokens, config.batch_size, config.seq_len, config.remainder
  )
  shards = records.write_split(windows, built, split, config.shards)
  os.remove(stream_path)
  scored = tail.scored_counts(tokens - windows.dropped, made) if windows.dropped else (None, None)
  logging.info("%s: %d tokens written in %.1f s", split, tokens, time.perf_counter() - start)
  return records.SplitMeta(
    source=str(Path(stats.path).resolve()),
    source_sha256=stats.sha256,
    lines=stats.lines,
    words=stats.words,
    tokens=tokens,
    records=len(windows),
    targets=tokens - 1 - windows.dropped,
    dropped_tokens=windows.dropped,
    padding=windows.padding,
    shards=shards,
    characters=stats.characters,
    unknown=unknown,
    scored_words=scored[0],
    scored_characters=scored[1],
    head_words=head[0],
    head_characters=head[1],
  )


class _Tail:
  """The last pieces of a split as it is tokenized: enough to hold its first dropped token,
  whose place gives the words and characters the kept records score ("drop" remainder).

  Args:
    span: batch_size x seq_len; fewer tokens than that are ever dropped.
  """

  def __init__(self, span):
    self.span = span
    self.pieces = collections.deque()  # (piece, its first token's index, SplitReader.before)

  def add(self, piece, first, end, before):
    """A piece whose tokens are [first, end) of the stream, `before` the counts before it."""
    self.pieces.append((piece, first, before))
    while len(self.pieces) > 1 and self.pieces[1][1] <= end - self.span + 1:
      self.pieces.popleft()  # The cut lies at or after the next piece's start.

  def scored_counts(self, cut, made):
    """(words, characters) of the text before token `cut`, the first dropped one: a word
    counts when its first token is kept, the end of a line as one word and one character."""
    piece, first, (words, characters, inside) = next(
      p for p in reversed(self.pieces) if p[1] <= cut
    )
    starts = made.starts(piece)
    # Past the piece's own tokens only when the cut is the end of line added to a last line
    # that has none.
    kept = piece[: starts[cut - first]] if cut - first < len(starts) else piece
    return words + text_lib.word_count(kept, inside), characters + len(kept)


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

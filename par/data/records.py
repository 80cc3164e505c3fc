"""Context-batched records: the one format that training and evaluation read.

Context batching (as in Transformer-XL): a split's token stream s[0..N) is laid out as B lanes
(B = batch_size) of R·T + 1 tokens (T = seq_len), lane b being s[b·R·T .. (b+1)·R·T], so
that neighbouring lanes share one token. Record r holds, for every lane, the window
[r·T, r·T + T] of that lane: an int32 array [B, T+1]. Inputs are window[:, :-1], targets
window[:, 1:]. Consecutive records of a lane overlap by exactly one token, so a model that
carries memory from one record to the next sees each lane as continuous text, and every
token of s except s[0] is a target exactly once.

R is the number of records. When (N - 1) is not a multiple of B·T, the remainder is either
padded with PAD_ID (-1; targets equal to it are masked by the loss, inputs are clamped to a
valid id) or dropped (fewer than B·T tokens); `DataConfig.remainder` chooses.

On disk, a built dataset is one directory:

  meta.json              format version, sizes, tokenizer kind and sha256, per-split counts
  spm.model, spm.vocab   a SentencePiece tokenizer (binary model, readable vocabulary), or
  vocab.json             a word or char vocabulary (par/data/vocab.py)
  <split>/<split>-00000-of-0000S.tfrecord   the split's records, in order

Each TFRecord record is the raw little-endian int32 bytes of one [B, T+1] window array, so
a shard's size alone tells whether it holds the records meta.json promises.
"""

import dataclasses
import hashlib
import json
import os
import typing
from pathlib import Path

import google_crc32c
import numpy as np
from absl import logging

from par.config import DataConfig
from par.data import text
from par.data import vocab
from par.errors import ParError

if typing.TYPE_CHECKING:  # TensorFlow is imported on first use (`_tf`), not to annotate.
  import tensorflow as tf

FORMAT_VERSION = 1
PAD_ID = -1
META_FILE = "meta.json"
# The tokenizer's file, by kind (DataConfig.tokenizer); identified by its sha256 in meta.json.
TOKENIZER_FILES = {"sentencepiece": "spm.model", "word": vocab.FILE, "char": vocab.FILE}
TOKENIZER_FILE = TOKENIZER_FILES["sentencepiece"]
VOCAB_FILE = "spm.vocab"  # SentencePiece's pieces and scores, to read
_TFRECORD_FRAMING_BYTES = 16  # uint64 length, uint32 CRC of length, uint32 CRC of data.
_CHUNK_RECORDS = 1024  # Records read at a time when scanning a shard: memory stays bounded.


class Shard(typing.NamedTuple):
  """One file of a split's records."""

  file: str  # relative to the dataset directory
  records: int
  sha256: str | None = None  # of the file; None in datasets built before this was kept


@dataclasses.dataclass(frozen=True)
class SplitMeta:
  """What one split of a built dataset holds."""

  source: str  # the text file it was built from
  source_sha256: str  # of that file's bytes
  lines: int  # lines of text, each ending in one end-of-line token
  words: int  # whitespace words + one per line (the denominator of word-level perplexity)
  tokens: int  # N, the length of the token stream
  records: int  # R
  targets: int  # tokens predicted across all records: N - 1 - dropped_tokens
  dropped_tokens: int  # tail tokens left out ("drop" remainder)
  padding: int  # PAD_ID entries in the last records ("pad" remainder)
  shards: tuple  # `Shard`s in reading order
  characters: int = 0  # characters (bytes for char) + one per line; 0 if unknown (older builds)
  unknown: int = 0  # word and char: symbols not in the vocabulary, become <unk>
  # Under "drop": the words and characters of the text before the dropped tail (a word counts
  # when its first token is kept). None in builds from before they were counted.
  scored_words: int | None = None
  scored_characters: int | None = None
  # The words and characters of the first token's text, which no model predicts
  # (`text.head_counts`). None in builds from before they were counted.
  head_words: int | None = None
  head_characters: int | None = None

  @property
  def scored(self):
    """(words, characters) of the text the records score, the denominators of word-level
    perplexity and bits per character: the split's own, without the first token's text
    (never predicted) and without a dropped tail; (0, 0) when unknown (a "drop" build from
    before they were counted: rebuild it). A build from before the first token's text was
    counted keeps it in (one word in the split's; `evaluate.denominators` says so)."""
    words, characters = self.words, self.characters
    if self.dropped_tokens:
      if self.scored_words is None:
        return 0, 0
      words, characters = self.scored_words, self.scored_characters
    if self.head_words is not None:
      words, characters = words - self.head_words, characters - self.head_characters
    return words, characters


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
  """The contents of meta.json."""

  format_version: int
  vocab_size: int
  batch_size: int
  seq_len: int
  eos_id: int
  pad_id: int
  tokenizer_sha256: str
  config: DataConfig  # the settings it was built with
  splits: dict  # split name -> SplitMeta
  tokenizer: str = "sentencepiece"  # its kind; the file is `tokenizer.FILES[tokenizer]`

  @property
  def tokenizer_file(self):
    return TOKENIZER_FILES[self.tokenizer]

  def to_json(self):
    value = dataclasses.asdict(self)
    for split in value["splits"].values():
      split["shards"] = [Shard(*s)._asdict() for s in split["shards"]]
    return json.dumps(value, indent=2) + "\n"

  @classmethod
  def from_json(cls, text):
    value = json.loads(text)
    splits = {}
    for name, split in value.pop("splits").items():
      shards = tuple(Shard(s["file"], s["records"], s.get("sha256")) for s in split.pop("shards"))
      splits[name] = SplitMeta(shards=shards, **split)
    return cls(config=DataConfig.from_dict(value.pop("config")), splits=splits, **value)


def num_records(num_tokens, batch_size, seq_len, remainder):
  """R for a stream of `num_tokens`; 0 when the stream cannot fill one record."""
  if num_tokens < batch_size * seq_len + 1:
    return 0
  per_record = batch_size * seq_len
  if remainder == "drop":
    return (num_tokens - 1) // per_record
  return -(-(num_tokens - 1) // per_record)


def context_batch(stream, batch_size, seq_len, remainder="pad"):
  """Lays a token stream out as records; see the module docstring.

  Args:
    stream: 1-D int array, N >= batch_size * seq_len + 1.
    batch_size: B, lanes per record.
    seq_len: T, targets per lane per record.
    remainder: "pad" or "drop".

  Returns:
    (records, dropped, padding): a read-only int32 array [R, B, T+1] (a strided view, so
    memory stays one copy of the stream), the number of dropped tail tokens, and the number
    of PAD_ID entries.
  """
  stream = np.asarray(stream, np.int32)
  n = len(stream)
  r = num_records(n, batch_size, seq_len, remainder)
  if r == 0:
    raise ValueError(f"{n} tokens cannot fill one record of {batch_size}x{seq_len + 1}")
  used = batch_size * r * seq_len + 1
  if used <= n:
    flat, dropped, padding = stream[:used], n - used, 0
  else:
    flat = np.full([used], PAD_ID, np.int32)
    flat[:n] = stream
    dropped, padding = 0, used - n
  item = flat.strides[0]
  records = np.lib.stride_tricks.as_strided(
    flat,
    shape=(r, batch_size, seq_len + 1),
    strides=(seq_len * item, r * seq_len * item, item),
    writeable=False,
  )
  return records, dropped, padding


class StreamRecords:
  """The records of a token stream kept in a file (raw int32, native order), read as needed.

  `StreamRecords(...)[a:b]` equals `context_batch(stream, ...)[0][a:b]` for the whole stream,
  but reads only those records' tokens: memory is one slice, whatever the stream's length.
  """

  def __init__(self, path, num_tokens, batch_size, seq_len, remainder="pad"):
    self.path = Path(path)
    self.num_tokens, self.batch_size, self.seq_len = num_tokens, batch_size, seq_len
    self.records = num_records(num_tokens, batch_size, seq_len, remainder)
    if self.records == 0:
      raise ValueError(f"{num_tokens} tokens cannot fill one record of {batch_size}x{seq_len + 1}")
    used = batch_size * self.records * seq_len + 1
    self.dropped = max(num_tokens - used, 0)
    self.padding = max(used - num_tokens, 0)

  def __len__(self):
    return self.records

  def __getitem__(self, index):
    begin, end, step = index.indices(self.records)
    if step != 1:
      raise ValueError("StreamRecords reads consecutive records only")
    count, t = max(end - begin, 0), self.seq_len
    windows = np.empty([count, self.batch_size, t + 1], np.int32)
    if not count:
      return windows
    with open(self.path, "rb") as f:
      for lane in range(self.batch_size):
        tokens = self._read(f, lane * self.records * t + begin * t, count * t + 1)
        windows[:, lane, :t] = tokens[:-1].reshape(count, t)
        windows[:, lane, t] = tokens[t::t]
    return windows

  def _read(self, f, start, length):
    """Stream positions [start, start + length), PAD_ID beyond its end."""
    tokens = np.full([length], PAD_ID, np.int32)
    present = max(min(length, self.num_tokens - start), 0)
    if present:
      f.seek(start * 4)
      tokens[:present] = np.fromfile(f, np.int32, present)
    return tokens


def shard_file_name(split, index, count):
  return f"{split}/{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_split(records, dataset_dir, split, shards, records_per_read=_CHUNK_RECORDS):
  """Writes records [R, B, T+1] as `shards` consecutive TFRecord files; returns their `Shard`s.

  `records` is an array or anything sliced the same way (`StreamRecords`); it is read
  `records_per_read` records at a time. The files are framed here as TensorFlow's
  TFRecordWriter frames them, byte for byte, so a build needs no TensorFlow.
  """
  dataset_dir = Path(dataset_dir)
  (dataset_dir / split).mkdir(parents=True, exist_ok=True)
  total = len(records)
  shards = min(shards, total)
  data_bytes = None
  written = []
  for k in range(shards):
    begin, end = k * total // shards, (k + 1) * total // shards
    name = shard_file_name(split, k, shards)
    digest = hashlib.sha256()
    with open(dataset_dir / name, "wb") as f:
      for first in range(begin, end, records_per_read):
        block = np.asarray(records[first : min(first + records_per_read, end)])
        for window in block:
          data = window.astype("<i4", copy=False).tobytes()
          if data_bytes is None:
            data_bytes = len(data)
            length = data_bytes.to_bytes(8, "little")
            header = length + _masked_crc(length).to_bytes(4, "little")
          frame = header + data + _masked_crc(data).to_bytes(4, "little")
          f.write(frame)
          digest.update(frame)
    written.append(Shard(name, end - begin, digest.hexdigest()))
  return tuple(written)


def _tf():
  """TensorFlow, imported on first use: reading counts (`target_counts`) does not need it."""
  import tensorflow as tf

  return tf


def record_bytes(batch_size, seq_len):
  return batch_size * (seq_len + 1) * 4


def load_meta(data_dir):
  """Reads and checks meta.json of a built dataset."""
  path = Path(data_dir) / META_FILE
  if not path.is_file():
    raise ParError(
      f"{data_dir} is not a built dataset (no {META_FILE}); build one with par-build-data "
      "(par-fetch-data first for WikiText, enwik8 or text8), or ./create_tfrecords.sh in a "
      "checkout"
    )
  try:
    value = json.loads(path.read_text())
    version = value.get("format_version")
  except (ValueError, AttributeError):
    raise ParError(f"{path} is not valid JSON") from None
  if version != FORMAT_VERSION:
    raise ParError(
      f"{data_dir} has dataset format {version}; this version of par reads "
      f"format {FORMAT_VERSION}: rebuild it"
    )
  try:
    return DatasetMeta.from_json(path.read_text())
  except (TypeError, KeyError):
    raise ParError(f"{path} does not have the fields of format {FORMAT_VERSION}") from None


def crc32c_warning():
  """One line if google-crc32c runs without its C extension (then about 1000 times slower:
  checking WikiText-103's records takes minutes instead of a second), else None."""
  if google_crc32c.implementation == "c":
    return None
  return (
    "google-crc32c has no C extension on this machine (implementation "
    f"{google_crc32c.implementation!r}): every record's CRC is checked in pure Python, about "
    "1000 times slower; reinstall it with a C compiler available (pip install --force-reinstall "
    "--no-binary google-crc32c google-crc32c)"
  )


_WARNED = []


def _masked_crc(data):
  """The CRC a TFRecord frame stores: CRC-32C, rotated right by 15 bits, plus a constant."""
  if not _WARNED:
    _WARNED.append(True)
    if crc32c_warning():
      logging.warning(crc32c_warning())
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _scan(path, records, data_bytes):
  """The raw windows of a shard's records, `_CHUNK_RECORDS` at a time, every frame checked.

  Yields (index of the chunk's first record, bytes of its windows, one after another).

  Raises:
    ParError: naming the file and the (1-based) record whose length field or CRCs are wrong.
  """
  frame = data_bytes + _TFRECORD_FRAMING_BYTES
  with open(path, "rb") as f:
    for first in range(0, records, _CHUNK_RECORDS):
      count = min(_CHUNK_RECORDS, records - first)
      chunk = f.read(frame * count)
      windows = []
      for k in range(count):
        at = k * frame  # [length u64][its CRC u32][window][its CRC u32], little-endian
        header, data = chunk[at : at + 8], chunk[at + 12 : at + 12 + data_bytes]
        header_crc = int.from_bytes(chunk[at + 8 : at + 12], "little")
        data_crc = int.from_bytes(chunk[at + 12 + data_bytes : at + frame], "little")
        if int.from_bytes(header, "little") != data_bytes or header_crc != _masked_crc(header):
          raise ParError(
            f"shard {path}: record {first + k + 1} of {records} has a damaged length field; "
            "rebuild the dataset"
          )
        if data_crc != _masked_crc(data):
          raise ParError(
            f"shard {path}: record {first + k + 1} of {records} is damaged (its CRC does not "
            "match its contents); rebuild the dataset"
          )
        windows.append(data)
      yield first, b"".join(windows)


def check_dataset(data_dir, split, tokenizer_sha256=None, records=False, verify=False):
  """Checks that a split of a built dataset is complete and consistent; returns the meta.

  Always: meta.json, the tokenizer's sha256 and every shard's size. Cheap: it reads no record.

  Args:
    data_dir: the dataset directory.
    split: split name.
    tokenizer_sha256: if given, the tokenizer the caller expects (e.g. a model's).
    records: also read every record and check its length field and CRCs (fast: CRC-32C in C).
    verify: also compare every shard's sha256 with the one meta.json keeps.

  Raises:
    ParError: naming the first problem found (for a damaged record: the file and the record).
  """
  data_dir = Path(data_dir)
  meta = load_meta(data_dir)
  if split not in meta.splits:
    raise ParError(f"{data_dir} has no {split} split (it has {', '.join(meta.splits)})")
  model = data_dir / meta.tokenizer_file
  if not model.is_file():
    raise ParError(f"{model} is missing")
  actual = text.file_sha256(model)
  if actual != meta.tokenizer_sha256:
    raise ParError(
      f"{model} is not the tokenizer {META_FILE} names (sha256 {actual[:12]}…, "
      f"expected {meta.tokenizer_sha256[:12]}…): rebuild the dataset"
    )
  if tokenizer_sha256 is not None and tokenizer_sha256 != meta.tokenizer_sha256:
    raise ParError(
      f"{data_dir} was built with another tokenizer (sha256 "
      f"{meta.tokenizer_sha256[:12]}…) than expected ({tokenizer_sha256[:12]}…)"
    )
  data_bytes = record_bytes(meta.batch_size, meta.seq_len)
  size = data_bytes + _TFRECORD_FRAMING_BYTES
  for shard in meta.splits[split].shards:
    path = data_dir / shard.file
    if not path.is_file():
      raise ParError(f"shard {path} is missing")
    if path.stat().st_size != shard.records * size:
      raise ParError(
        f"shard {path} has {path.stat().st_size} bytes, not the {shard.records * size} of "
        f"{shard.records} records of [{meta.batch_size}, {meta.seq_len + 1}] int32: it is "
        "truncated or of another shape; rebuild the dataset"
      )
  for shard in meta.splits[split].shards if records else ():
    for _ in _scan(data_dir / shard.file, shard.records, data_bytes):
      pass
  for shard in meta.splits[split].shards if verify else ():
    path = data_dir / shard.file
    if shard.sha256 is None:
      raise ParError(
        f"{data_dir} was built before shard checksums were kept in {META_FILE}: rebuild it "
        "to verify its shards"
      )
    if text.file_sha256(path) != shard.sha256:
      raise ParError(
        f"shard {path} is not the file {META_FILE} names (sha256 differs): it was changed "
        "after the build; rebuild the dataset"
      )
  return meta


def check_vocabulary(data_dir, meta):
  """Raises ParError unless meta.json's vocab_size is its tokenizer's (an edited file would
  build a model whose ids the tokenizer cannot decode)."""
  from par.data import tokenizer  # Here: most readers of records need no tokenizer.

  path = Path(data_dir) / meta.tokenizer_file
  pieces = tokenizer.load_codec(meta.tokenizer, path.read_bytes(), path).vocab_size
  if pieces != meta.vocab_size:
    raise ParError(
      f"{Path(data_dir) / META_FILE} gives vocab_size {meta.vocab_size}, but its tokenizer "
      f"has {pieces} ids: the file was edited; rebuild the dataset"
    )


def damage_error(data_dir, split, error):
  """The one-line error for TensorFlow's DataLossError while reading a split: the damaged file
  and record if a scan finds them (a shard changed after the checks), else the error itself."""
  try:
    check_dataset(data_dir, split, records=True)
  except ParError as e:
    return e
  return ParError(f"reading the {split} split of {data_dir} failed: {str(error).splitlines()[0]}")


def load_dataset(
  data_dir: str | os.PathLike, split: str, tokenizer_sha256: str | None = None
) -> "tf.data.Dataset":
  """The records of a split, in order, as (inputs, targets) int32 [batch_size, seq_len].

  Targets equal to PAD_ID mark padding; the matching inputs are clamped to 0. The files are
  checked first (`check_dataset`, sizes only); TensorFlow's reader checks every record's CRC
  as it reads it and raises `tf.errors.DataLossError` on a damaged one (`damage_error` names
  it).
  """
  meta = check_dataset(data_dir, split, tokenizer_sha256)
  shape = [meta.batch_size, meta.seq_len + 1]
  files = [str(Path(data_dir) / shard.file) for shard in meta.splits[split].shards]

  def parse(serialized):
    tf = _tf()  # Local to `parse`: AutoGraph refuses a closure over it.
    window = tf.reshape(tf.io.decode_raw(serialized, tf.int32, little_endian=True), shape)
    return tf.maximum(window[:, :-1], 0), window[:, 1:]

  return _tf().data.TFRecordDataset(files).map(parse)


def read_records(data_dir, split, tokenizer_sha256=None):
  """The records of a split as one numpy int32 array [R, B, T+1], read without TensorFlow.

  Every record's length field and CRCs are checked as it is read (`check_dataset` runs first).
  """
  meta = check_dataset(data_dir, split, tokenizer_sha256)
  data_bytes = record_bytes(meta.batch_size, meta.seq_len)
  parts = []
  for shard in meta.splits[split].shards:
    for _, windows in _scan(Path(data_dir) / shard.file, shard.records, data_bytes):
      parts.append(np.frombuffer(windows, "<i4").astype(np.int32))
  return np.concatenate(parts).reshape(-1, meta.batch_size, meta.seq_len + 1), meta


def target_counts(data_dir, split="train"):
  """How often each token id is a target in a split: int64 [vocab_size], and the meta."""
  windows, meta = read_records(data_dir, split)
  targets = windows[:, :, 1:].reshape(-1)
  targets = targets[targets != PAD_ID]
  if targets.size and (targets.min() < 0 or targets.max() >= meta.vocab_size):
    raise ParError(
      f"{data_dir}'s {split} split holds ids outside [0, {meta.vocab_size}): rebuild the dataset"
    )
  return np.bincount(targets, minlength=meta.vocab_size).astype(np.int64), meta


def stream_of(windows):
  """The token stream records [R, B, T+1] were cut from (`context_batch`), without the padding
  of its last record: lane b is its windows' first T tokens, record after record, and its
  last token is lane b + 1's first."""
  stream = np.concatenate([windows[:, :, :-1].transpose(1, 0, 2).reshape(-1), windows[-1:, -1, -1]])
  padding = np.flatnonzero(stream == PAD_ID)  # Only ever at the end.
  return stream[: padding[0]] if padding.size else stream


def relane(stream, lanes, seq_len):
  """Evaluation's own layout: (inputs, targets) [S, lanes, seq_len] of a token stream laid out
  as `context_batch` lays records out, padded, so that every token after the first is a target
  exactly once, whatever the number of lanes (a stream shorter than one record fills the first
  lanes, the others are padding)."""
  if lanes < 1 or seq_len < 1:
    raise ParError(f"lanes and segment length must be positive, got {lanes} and {seq_len}")
  stream = np.asarray(stream, np.int32)
  short = max(lanes * seq_len + 1 - len(stream), 0)
  stream = np.concatenate([stream, np.full([short], PAD_ID, np.int32)])
  windows, _, _ = context_batch(stream, lanes, seq_len, "pad")
  return np.maximum(windows[:, :, :-1], 0), np.ascontiguousarray(windows[:, :, 1:])


def lane_length(tokens, lanes, seq_len):
  """Tokens per lane when a stream of `tokens` is laid out in `lanes` lanes of segments of
  `seq_len` (`context_batch`, `relane`): the longest context evaluation can give."""
  return max(-(-(tokens - 1) // (lanes * seq_len)), 1) * seq_len


def resegment(windows, seq_len):
  """Records [R, B, T+1] cut into segments of another length: (inputs, targets) [S, B, L].

  Each lane's text stays continuous: segment s of lane b holds the lane's positions
  [s·L, (s+1)·L). The last segment is padded (targets PAD_ID, inputs 0); padding inside the
  records stays padding.
  """
  if seq_len < 1:
    raise ParError(f"the segment length must be positive, got {seq_len}")
  _records, lanes, _ = windows.shape
  inputs = np.maximum(windows[:, :, :-1], 0).transpose(1, 0, 2).reshape(lanes, -1)
  targets = windows[:, :, 1:].transpose(1, 0, 2).reshape(lanes, -1)
  segments = -(-inputs.shape[1] // seq_len)
  pad = segments * seq_len - inputs.shape[1]
  inputs = np.pad(inputs, [(0, 0), (0, pad)])
  targets = np.pad(targets, [(0, 0), (0, pad)], constant_values=PAD_ID)

  def cut(x):
    return np.ascontiguousarray(x.reshape(lanes, segments, seq_len).transpose(1, 0, 2))

  return cut(inputs), cut(targets)

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

  meta.json              format version, sizes, tokenizer sha256, per-split counts
  spm.model, spm.vocab   the SentencePiece tokenizer (binary model, readable vocabulary)
  <split>/<split>-00000-of-0000S.tfrecord   the split's records, in order

Each TFRecord record is the raw little-endian int32 bytes of one [B, T+1] window array, so
a shard's size alone tells whether it holds the records meta.json promises.
"""

import dataclasses
import json
import os
import typing
from pathlib import Path

import numpy as np

from par.config import DataConfig
from par.data import text
from par.errors import ParError

if typing.TYPE_CHECKING:  # TensorFlow is imported on first use (`_tf`), not to annotate.
  import tensorflow as tf

FORMAT_VERSION = 1
PAD_ID = -1
META_FILE = "meta.json"
TOKENIZER_FILE = "spm.model"
VOCAB_FILE = "spm.vocab"
_TFRECORD_FRAMING_BYTES = 16  # uint64 length, uint32 CRC of length, uint32 CRC of data.


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
  shards: tuple  # ((file name relative to the dataset, records), ...) in reading order


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

  def to_json(self):
    value = dataclasses.asdict(self)
    for split in value["splits"].values():
      split["shards"] = [{"file": f, "records": r} for f, r in split["shards"]]
    return json.dumps(value, indent=2) + "\n"

  @classmethod
  def from_json(cls, text):
    value = json.loads(text)
    splits = {}
    for name, split in value.pop("splits").items():
      shards = tuple((s["file"], s["records"]) for s in split.pop("shards"))
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


def shard_file_name(split, index, count):
  return f"{split}/{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_split(records, dataset_dir, split, shards):
  """Writes records [R, B, T+1] as `shards` consecutive TFRecord files; returns their list."""
  dataset_dir = Path(dataset_dir)
  (dataset_dir / split).mkdir(parents=True, exist_ok=True)
  total = len(records)
  shards = min(shards, total)
  written = []
  for k in range(shards):
    begin, end = k * total // shards, (k + 1) * total // shards
    name = shard_file_name(split, k, shards)
    with _tf().io.TFRecordWriter(str(dataset_dir / name)) as writer:
      for record in records[begin:end]:
        writer.write(record.astype("<i4", copy=False).tobytes())
    written.append((name, end - begin))
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
      f"{data_dir} is not a built dataset (no {META_FILE}); build one with "
      "scripts/build_data.py or create_tfrecords.sh"
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


def check_dataset(data_dir, split, tokenizer_sha256=None):
  """Checks that a split of a built dataset is complete and consistent; returns the meta.

  Args:
    data_dir: the dataset directory.
    split: split name.
    tokenizer_sha256: if given, the tokenizer the caller expects (e.g. a model's).

  Raises:
    ParError: naming the first problem found.
  """
  data_dir = Path(data_dir)
  meta = load_meta(data_dir)
  if split not in meta.splits:
    raise ParError(f"{data_dir} has no {split} split (it has {', '.join(meta.splits)})")
  model = data_dir / TOKENIZER_FILE
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
  size = record_bytes(meta.batch_size, meta.seq_len) + _TFRECORD_FRAMING_BYTES
  for name, records in meta.splits[split].shards:
    path = data_dir / name
    if not path.is_file():
      raise ParError(f"shard {path} is missing")
    if path.stat().st_size != records * size:
      raise ParError(
        f"shard {path} has {path.stat().st_size} bytes, not the {records * size} of "
        f"{records} records of [{meta.batch_size}, {meta.seq_len + 1}] int32: it is "
        "truncated or of another shape; rebuild the dataset"
      )
  return meta


def load_dataset(
  data_dir: str | os.PathLike, split: str, tokenizer_sha256: str | None = None
) -> "tf.data.Dataset":
  """The records of a split, in order, as (inputs, targets) int32 [batch_size, seq_len].

  Targets equal to PAD_ID mark padding; the matching inputs are clamped to 0. The files are
  checked first (see `check_dataset`).
  """
  meta = check_dataset(data_dir, split, tokenizer_sha256)
  shape = [meta.batch_size, meta.seq_len + 1]
  files = [str(Path(data_dir) / name) for name, _ in meta.splits[split].shards]

  def parse(serialized):
    tf = _tf()  # Local to `parse`: AutoGraph refuses a closure over it.
    window = tf.reshape(tf.io.decode_raw(serialized, tf.int32, little_endian=True), shape)
    return tf.maximum(window[:, :-1], 0), window[:, 1:]

  return _tf().data.TFRecordDataset(files).map(parse)


def read_records(data_dir, split, tokenizer_sha256=None):
  """The records of a split as one numpy int32 array [R, B, T+1], read without TensorFlow.

  Each TFRecord frame is a fixed-size header, the raw window and a CRC (see `check_dataset`,
  which runs first); the length in every header is checked, the CRCs are not.
  """
  meta = check_dataset(data_dir, split, tokenizer_sha256)
  data = record_bytes(meta.batch_size, meta.seq_len)
  parts = []
  for name, records in meta.splits[split].shards:
    path = Path(data_dir) / name
    frames = np.fromfile(path, np.uint8).reshape(records, data + _TFRECORD_FRAMING_BYTES)
    if np.any(frames[:, :8].copy().view("<u8") != data):
      raise ParError(f"shard {path} has a record of the wrong length: rebuild the dataset")
    parts.append(
      frames[:, 12 : 12 + data]
      .copy()
      .view("<i4")
      .astype(np.int32)
      .reshape(records, meta.batch_size, meta.seq_len + 1)
    )
  return np.concatenate(parts), meta


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

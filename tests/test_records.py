"""Context batching, shard files and the checked loader, on streams whose values are positions."""

import json

import numpy as np
import pytest
import tensorflow as tf

from par.config import DataConfig
from par.data import records
from par.data import text
from par.errors import ParError


def naive_records(stream, batch_size, seq_len, remainder):
  """Reference: the records built one token at a time from the definition."""
  n = len(stream)
  per_record = batch_size * seq_len
  r = (n - 1) // per_record if remainder == "drop" else -(-(n - 1) // per_record)
  lane_length = r * seq_len  # Targets per lane.
  out = np.empty([r, batch_size, seq_len + 1], np.int64)
  for i in range(r):
    for b in range(batch_size):
      for t in range(seq_len + 1):
        position = b * lane_length + i * seq_len + t
        out[i, b, t] = stream[position] if position < n else records.PAD_ID
  return out


SIZES = [  # (tokens, batch_size, seq_len): exact fits, one over, odd shapes, one lane.
  (2 * 3 * 5 + 1, 2, 5),
  (2 * 3 * 5 + 2, 3, 5),
  (1000, 3, 7),
  (1025, 32, 32),
  (77, 1, 4),
  (500, 5, 1),
]


@pytest.mark.parametrize("remainder", ["pad", "drop"])
@pytest.mark.parametrize("n,batch_size,seq_len", SIZES)
def test_context_batch_matches_naive_reference(n, batch_size, seq_len, remainder):
  stream = np.arange(n, dtype=np.int32) + 10
  got, dropped, padding = records.context_batch(stream, batch_size, seq_len, remainder)
  np.testing.assert_array_equal(got, naive_records(stream, batch_size, seq_len, remainder))
  assert got.dtype == np.int32 and got.shape[1:] == (batch_size, seq_len + 1)
  assert 0 <= dropped < batch_size * seq_len and 0 <= padding < batch_size * seq_len
  assert (dropped == 0) if remainder == "pad" else (padding == 0)


@pytest.mark.parametrize("remainder", ["pad", "drop"])
@pytest.mark.parametrize("n,batch_size,seq_len", SIZES)
def test_every_token_after_the_first_is_a_target_exactly_once(n, batch_size, seq_len, remainder):
  stream = np.arange(n, dtype=np.int32)
  got, dropped, padding = records.context_batch(stream, batch_size, seq_len, remainder)
  targets = got[:, :, 1:]
  real = targets[targets != records.PAD_ID]
  np.testing.assert_array_equal(np.sort(real), np.arange(1, n - dropped))
  assert (targets == records.PAD_ID).sum() == padding
  # Within a lane, record i+1 starts with the last token of record i (memory sees no gap),
  # and the lane's targets, concatenated, are consecutive positions.
  np.testing.assert_array_equal(got[1:, :, 0], got[:-1, :, -1])
  for b in range(batch_size):
    lane = np.concatenate([got[0, b, :1], targets[:, b].reshape(-1)])
    lane = lane[lane != records.PAD_ID]
    np.testing.assert_array_equal(lane, np.arange(lane[0], lane[0] + len(lane)))


def test_context_batch_refuses_a_stream_shorter_than_one_record():
  with pytest.raises(ValueError, match="cannot fill one record"):
    records.context_batch(np.arange(2 * 5), 2, 5)
  assert records.num_records(2 * 5, 2, 5, "pad") == 0
  assert records.num_records(2 * 5 + 1, 2, 5, "pad") == 1


def write_dataset(directory, stream, batch_size=3, seq_len=4, shards=1, split="train"):
  """A minimal dataset directory around `stream` (the tokenizer file is a stand-in)."""
  windows, dropped, padding = records.context_batch(stream, batch_size, seq_len)
  written = records.write_split(windows, directory, split, shards)
  (directory / records.TOKENIZER_FILE).write_bytes(b"stand-in tokenizer")
  meta = records.DatasetMeta(
    format_version=records.FORMAT_VERSION,
    vocab_size=10_000,
    batch_size=batch_size,
    seq_len=seq_len,
    eos_id=1,
    pad_id=records.PAD_ID,
    tokenizer_sha256=text.file_sha256(directory / records.TOKENIZER_FILE),
    config=DataConfig(batch_size=batch_size, seq_len=seq_len),
    splits={
      split: records.SplitMeta(
        source="x",
        source_sha256="y",
        lines=1,
        words=1,
        tokens=len(stream),
        records=len(windows),
        targets=len(stream) - 1 - dropped,
        dropped_tokens=dropped,
        padding=padding,
        shards=written,
      )
    },
  )
  (directory / records.META_FILE).write_text(meta.to_json())
  return windows


def read_all(directory, split="train", **kwargs):
  pairs = list(records.load_dataset(directory, split, **kwargs).as_numpy_iterator())
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.mark.parametrize("shards", [1, 2, 5, 40])
def test_sharded_records_read_back_in_order(tmp_path, shards):
  stream = np.arange(200, dtype=np.int32)
  windows = write_dataset(tmp_path, stream, shards=shards)
  inputs, targets = read_all(tmp_path)
  assert inputs.dtype == np.int32 and inputs.shape == (len(windows), 3, 4)
  np.testing.assert_array_equal(targets, windows[:, :, 1:])
  np.testing.assert_array_equal(inputs, np.maximum(windows[:, :, :-1], 0))
  meta = records.load_meta(tmp_path)
  assert len(meta.splits["train"].shards) == min(shards, len(windows))
  assert sum(s.records for s in meta.splits["train"].shards) == len(windows)


def test_padding_reaches_targets_only(tmp_path):
  stream = np.arange(1, 32, dtype=np.int32)  # 31 tokens; 3 lanes x 4 leave padding.
  write_dataset(tmp_path, stream)
  inputs, targets = read_all(tmp_path)
  assert (targets == records.PAD_ID).any()
  assert inputs.min() >= 0


def test_meta_json_round_trip(tmp_path):
  write_dataset(tmp_path, np.arange(100, dtype=np.int32))
  meta = records.load_meta(tmp_path)
  assert records.DatasetMeta.from_json(meta.to_json()) == meta


@pytest.mark.parametrize(
  "damage,message",
  [
    (lambda d: (d / records.META_FILE).unlink(), "not a built dataset"),
    (lambda d: next((d / "train").iterdir()).unlink(), "is missing"),
    (lambda d: (d / records.TOKENIZER_FILE).write_bytes(b"another"), "not the tokenizer"),
    (lambda d: _truncate(next((d / "train").iterdir())), "truncated or of another shape"),
    (lambda d: _set_meta(d, format_version=99), "format 99"),
    (lambda d: _set_meta(d, seq_len=5), "truncated or of another shape"),
  ],
)
def test_load_dataset_refuses_damaged_datasets(tmp_path, damage, message):
  write_dataset(tmp_path, np.arange(100, dtype=np.int32))
  damage(tmp_path)
  with pytest.raises(ParError, match=message):
    records.load_dataset(tmp_path, "train")


def test_load_dataset_checks_split_and_expected_tokenizer(tmp_path):
  write_dataset(tmp_path, np.arange(100, dtype=np.int32))
  with pytest.raises(ParError, match="no valid split"):
    records.load_dataset(tmp_path, "valid")
  with pytest.raises(ParError, match="built with another tokenizer"):
    records.load_dataset(tmp_path, "train", tokenizer_sha256="0" * 64)


def _truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:-4])


def _set_meta(directory, **fields):
  path = directory / records.META_FILE
  value = json.loads(path.read_text())
  value.update(fields)
  path.write_text(json.dumps(value))


def test_records_are_little_endian_int32_windows(tmp_path):
  windows = write_dataset(tmp_path, np.arange(100, dtype=np.int32))
  first = next(
    iter(tf.data.TFRecordDataset(str(tmp_path / records.shard_file_name("train", 0, 1))))
  )
  np.testing.assert_array_equal(np.frombuffer(first.numpy(), "<i4").reshape(3, 5), windows[0])


@pytest.mark.parametrize("remainder", ["pad", "drop"])
@pytest.mark.parametrize("n,batch_size,seq_len", SIZES)
def test_stream_records_read_from_a_file_equal_context_batch(
  tmp_path, n, batch_size, seq_len, remainder
):
  stream = np.arange(n, dtype=np.int32) + 10
  stream.tofile(tmp_path / "stream")
  lazy = records.StreamRecords(tmp_path / "stream", n, batch_size, seq_len, remainder)
  expected, dropped, padding = records.context_batch(stream, batch_size, seq_len, remainder)
  assert (len(lazy), lazy.dropped, lazy.padding) == (len(expected), dropped, padding)
  np.testing.assert_array_equal(lazy[:], expected)
  for begin in range(len(expected)):  # Every slice, the last partial record's included.
    for end in range(begin, len(expected) + 1):
      np.testing.assert_array_equal(lazy[begin:end], expected[begin:end])


@pytest.mark.parametrize("records_per_read", [1, 3, 1024])
@pytest.mark.parametrize("shards", [1, 3])
def test_write_split_frames_files_as_tensorflow_does(tmp_path, shards, records_per_read):
  windows, _, _ = records.context_batch(np.arange(1000, dtype=np.int32) - 1, 3, 7)
  written = records.write_split(windows, tmp_path, "train", shards, records_per_read)
  for shard in written:  # The reference: TensorFlow's own writer on the same windows.
    begin = sum(s.records for s in written[: written.index(shard)])
    reference = tmp_path / "reference.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as writer:
      for window in windows[begin : begin + shard.records]:
        writer.write(window.astype("<i4").tobytes())
    assert (tmp_path / shard.file).read_bytes() == reference.read_bytes()
    assert shard.sha256 == text.file_sha256(reference)


def test_a_pure_python_crc32c_is_warned_of_once(monkeypatch, caplog):
  import logging

  import google_crc32c

  assert records.crc32c_warning() is None  # This machine has the C extension.
  monkeypatch.setattr(google_crc32c, "implementation", "python")
  monkeypatch.setattr(records, "_WARNED", [])
  with caplog.at_level(logging.WARNING):
    for _ in range(3):
      records._masked_crc(b"record")
  assert caplog.text.count("google-crc32c has no C extension") == 1

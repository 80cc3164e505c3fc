"""An integration build of the real WikiText-2 sample in ../shared/data/wt2-small."""

import numpy as np
import sentencepiece as spm
from test_build_data import read_pairs
from test_build_data import stream_from_records

from par.config import DataConfig
from par.data import records
from par.data.build import build_dataset


def test_wt2_small_builds_exactly(tmp_path, wt2_small):
  meta, _ = build_dataset(wt2_small, tmp_path / "ds", DataConfig(vocab_size=7000))
  assert set(meta.splits) == {"train", "valid"} and meta.vocab_size == 7000
  train = meta.splits["train"]
  # WikiText-2's test split as published: 4,358 lines, 245,569 words with end-of-lines.
  assert (train.lines, train.words) == (4358, 245_569)
  assert train.source_sha256.startswith("d790b833")
  assert meta.splits["valid"].lines == 3760 and meta.splits["valid"].source_sha256.startswith(
    "f0737ed3"
  )
  # Records against the sentencepiece library's own encoding of the file. The two builds of
  # SentencePiece break exact score ties differently (see par/data/tokenizer.py): the text must
  # agree line by line, and the ids everywhere but at a few swapped pieces.
  processor = spm.SentencePieceProcessor(
    model_proto=(tmp_path / "ds" / records.TOKENIZER_FILE).read_bytes()
  )
  for split in ("train", "valid"):
    lines = (wt2_small / f"{split}.txt").read_text(encoding="utf-8").split("\n")[:-1]
    encoded = [processor.encode(line) for line in lines]
    expected = np.concatenate([ids + [processor.eos_id()] for ids in encoded])
    got = stream_from_records(*read_pairs(tmp_path / "ds", split))
    assert len(got) == len(expected) == meta.splits[split].tokens
    assert (got != expected).mean() < 1e-4
    ends = np.nonzero(got == processor.eos_id())[0]
    starts = np.concatenate([[0], ends[:-1] + 1])
    assert [processor.decode(got[a:b].tolist()) for a, b in zip(starts, ends)] == [
      processor.decode(ids) for ids in encoded
    ]
  assert processor.encode(" <unk> ", out_type=str) == ["\u2581<unk>"]


def test_every_path_encodes_as_the_records_do(tmp_path, wt2_small):
  # One encoder for the records, generation's prompts and evaluated text: the wheel's ids
  # differ on a few lines (score ties), the Codec's must not differ on any.
  from par.data import tokenizer

  build_dataset(wt2_small, tmp_path / "ds", DataConfig(vocab_size=7000))
  model = (tmp_path / "ds" / records.TOKENIZER_FILE).read_bytes()
  codec = tokenizer.load_codec("sentencepiece", model)
  processor = spm.SentencePieceProcessor(model_proto=model)
  lines = (wt2_small / "valid.txt").read_text(encoding="utf-8").split("\n")[:-1]
  got = stream_from_records(*read_pairs(tmp_path / "ds", "valid"))
  ends = np.nonzero(got == codec.eos_id)[0]
  starts = np.concatenate([[0], ends[:-1] + 1])
  differ = 0
  for line, a, b in zip(lines, starts, ends):
    ids, unknown = codec.encode(line)
    assert ids == got[a:b].tolist(), line
    assert len(unknown) == ids.count(tokenizer.UNK_ID)  # The text behind each unknown id.
    differ += processor.encode(line) != ids
  assert len(lines) == len(ends) and differ > 0  # The wheel would have given other ids.
  ids, unknown = codec.encode("a ☃ snowman")
  assert unknown == ["☃"] and tokenizer.UNK_ID in ids

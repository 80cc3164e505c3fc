"""SentencePiece training and tf.data tokenization, against the sentencepiece library itself."""

import dataclasses

import numpy as np
import pytest
import sentencepiece as spm

from helpers import counting_lines
from par.config import DataConfig
from par.data import tokenizer
from par.errors import ParError


def prose_lines(num_lines, seed=0):
  """Random sentences over a small English word list, with blank and odd lines."""
  words = [
    "the",
    "of",
    "and",
    "in",
    "to",
    "a",
    "was",
    "is",
    "for",
    "on",
    "as",
    "by",
    "with",
    "he",
    "that",
    "at",
    "from",
    "his",
    "it",
    "an",
    "were",
    "are",
    "which",
    "this",
    "be",
    "or",
    "has",
    "had",
    "first",
    "also",
    "new",
    "their",
    "after",
    "who",
    "two",
    "they",
    "but",
    "been",
    "her",
    "its",
    "one",
    "year",
    "time",
    "city",
    "season",
    "game",
    "film",
    "river",
    "song",
    "album",
    "station",
    "war",
  ]
  rng = np.random.default_rng(seed)
  lines = [" ".join(rng.choice(words, size=rng.integers(0, 30))) for _ in range(num_lines)]
  return lines + ["", "An <unk> and a<unk>b , Ünïcödé 日本 text", "  "]


LINES = prose_lines(800)
CONFIG = DataConfig(vocab_size=80)


@pytest.fixture(scope="session")
def model():
  return tokenizer.train(LINES, CONFIG)


def reference_stream(model_proto, lines):
  processor = spm.SentencePieceProcessor(model_proto=model_proto)
  return np.array(
    [i for line in lines for i in processor.encode(line) + [processor.eos_id()]], np.int32
  )


def test_training_is_deterministic(model):
  assert tokenizer.train(LINES, CONFIG) == model
  assert tokenizer.sha256(tokenizer.train(LINES, CONFIG)) == tokenizer.sha256(model)


@pytest.mark.parametrize("lines_per_batch", [1, 7, 4096])
def test_tf_data_tokenization_equals_sentencepiece(model, lines_per_batch):
  got = tokenizer.Tokenizer(model).tokenize(LINES, lines_per_batch=lines_per_batch)
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, reference_stream(model, LINES))


def test_tie_breaking_may_differ_but_the_text_is_the_same():
  # Counting text is full of exact score ties ("666" = "6"+"66" = "66"+"6"), which
  # tensorflow-text's SentencePiece build breaks differently from the sentencepiece wheel.
  lines = counting_lines(800)
  model = tokenizer.train(lines, CONFIG)
  processor = tokenizer.load(model)
  stream = tokenizer.Tokenizer(model).tokenize(lines)
  ends = np.nonzero(stream == tokenizer.EOS_ID)[0]
  starts = np.concatenate([[0], ends[:-1] + 1])
  decoded = [processor.decode(stream[a:b].tolist()) for a, b in zip(starts, ends)]
  assert decoded == lines


def test_one_end_of_line_token_per_line_and_fixed_ids(model):
  got = tokenizer.Tokenizer(model).tokenize(LINES)
  assert (got == tokenizer.EOS_ID).sum() == len(LINES)
  processor = tokenizer.load(model)
  assert processor.eos_id() == tokenizer.EOS_ID and processor.unk_id() == tokenizer.UNK_ID
  assert processor.get_piece_size() == CONFIG.vocab_size


def test_user_symbol_stays_one_piece(model):
  processor = tokenizer.load(model)
  pieces = processor.encode("An <unk> and", out_type=str)
  assert "\u2581<unk>" in pieces and "<" not in "".join(p for p in pieces if p != "\u2581<unk>")
  assert processor.decode(processor.encode("An <unk> and")) == "An <unk> and"


def test_lowercase_is_part_of_the_model():
  lower = tokenizer.train(LINES, dataclasses.replace(CONFIG, lowercase=True))
  np.testing.assert_array_equal(
    tokenizer.Tokenizer(lower).tokenize(["W17 w18"]),
    tokenizer.Tokenizer(lower).tokenize(["w17 w18"]),
  )


def test_bpe_trains():
  model = tokenizer.train(LINES, dataclasses.replace(CONFIG, model_type="bpe"))
  np.testing.assert_array_equal(
    tokenizer.Tokenizer(model).tokenize(LINES), reference_stream(model, LINES)
  )


def test_vocab_size_above_what_the_text_supports_names_the_bound():
  with pytest.raises(ParError, match=r"at most \d+ pieces"):
    tokenizer.train(LINES, dataclasses.replace(CONFIG, vocab_size=5000))


def test_vocab_size_below_the_character_count_names_the_minimum():
  with pytest.raises(ParError, match=r"needs at least \d+ pieces"):
    tokenizer.train(LINES, dataclasses.replace(CONFIG, vocab_size=10))


def test_vocab_text_lists_every_piece(model):
  rows = tokenizer.vocab_text(model).splitlines()
  assert len(rows) == CONFIG.vocab_size
  assert rows[tokenizer.EOS_ID].split("\t")[0] == "</s>"


def test_load_refuses_non_models():
  with pytest.raises(ParError, match="not a SentencePiece model"):
    tokenizer.load(b"certainly not a model")

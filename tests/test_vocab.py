"""Word and char vocabularies (par/data/vocab.py) against hand-made texts and naive counts,
WikiText-2's published token counts, and datasets built with them end to end."""

import collections
import dataclasses
import json
import logging
import math

import numpy as np
import pytest

from helpers import SHARED_DATA
from helpers import error_line
from helpers import run_script
from helpers import write_corpus
from helpers import wt2_sample
from par.config import DataConfig
from par.data import records
from par.data import text
from par.data import tokenizer
from par.data import vocab
from par.data.build import build_dataset
from par.data.vocab import EOS_ID
from par.data.vocab import UNK_ID
from par.data.vocab import Vocabulary
from par.errors import ParError
from par.train import evaluate

WT2_SMALL = SHARED_DATA / "wt2-small"


def naive_order(lines, split):
  """Symbols by decreasing count, a tie to the one seen first: a loop over every symbol."""
  first, counts = {}, collections.Counter()
  for line in lines:
    for symbol in split(line):
      first.setdefault(symbol, len(first))
      counts[symbol] += 1
  return sorted(counts, key=lambda s: (-counts[s], first[s]))


def test_word_ids_follow_train_frequency_ties_to_the_first_seen():
  lines = ["b a c a", "c <unk> a", "d b", ""]
  vocabulary = Vocabulary.count("word", lines)
  # a 3; b and c 2 each, b seen first; d 1. WikiText's literal <unk> is id 0 itself.
  assert vocabulary.symbols == ("<unk>", "<eos>", "a", "b", "c", "d")
  assert vocabulary.counts == (1, 4, 3, 2, 2, 1)  # <unk> once, 4 lines end
  stream, unknown = vocabulary.tokenize(["b a c a", "c <unk> z", "", "d"])
  np.testing.assert_array_equal(
    stream, [3, 2, 4, 2, EOS_ID, 4, UNK_ID, UNK_ID, EOS_ID, EOS_ID, 5, 1]
  )
  assert unknown == 1  # z; the literal <unk> is in the vocabulary
  assert vocabulary.decode([3, 2, UNK_ID]) == "b a <unk>"


def test_word_min_count_and_max_vocab_make_rare_words_unknown():
  lines = ["a a a b b c", "a b d"]
  assert Vocabulary.count("word", lines, min_count=2).symbols == ("<unk>", "<eos>", "a", "b")
  limited = Vocabulary.count("word", lines, max_vocab=3)
  assert limited.symbols == ("<unk>", "<eos>", "a")
  assert limited.counts[UNK_ID] == 5  # the train symbols it left out: 3 b's, c and d
  _, unknown = limited.tokenize(["a b c e"])
  assert unknown == 3


def test_char_vocabulary_counts_bytes_beyond_ascii():
  lines = ["héllo wörld", "hé", "\r"]
  data = [line.encode("utf-8") for line in lines]
  vocabulary = Vocabulary.count("char", data)
  assert list(vocabulary.symbols[2:]) == naive_order(data, lambda line: list(line))
  assert set(vocabulary.symbols[2:]) == set(b"".join(data))  # é and ö are two bytes each
  stream, unknown = vocabulary.tokenize(["hé€".encode()])
  ids = {s: i for i, s in enumerate(vocabulary.symbols)}
  expected = [ids[b] for b in "hé".encode()] + [UNK_ID] * 3 + [EOS_ID]  # € unseen: 3 bytes
  np.testing.assert_array_equal(stream, expected)
  assert unknown == 3
  assert vocabulary.decode(stream[:3]) == "hé"


def test_vocabulary_files_round_trip_and_a_bad_one_is_named(tmp_path):
  for kind, lines in (("word", ["x y x"]), ("char", [b"\x00\xff\n"])):
    vocabulary = Vocabulary.count(kind, lines)
    assert Vocabulary.from_bytes(vocabulary.to_bytes()) == vocabulary
  bad = json.dumps({"kind": "word", "symbols": ["<eos>", "<unk>"], "counts": [0, 0]}).encode()
  with pytest.raises(ParError, match=r"/x/vocab\.json is not a par vocabulary"):
    Vocabulary.from_bytes(bad, "/x/vocab.json")
  with pytest.raises(ParError, match="is a word vocabulary, not char"):
    tokenizer.load_codec("char", Vocabulary.count("word", ["a"]).to_bytes(), "v.json")


def test_codec_encodes_and_decodes_a_prompt_for_every_kind():
  word = tokenizer.load_codec("word", Vocabulary.count("word", ["the cat sat"]).to_bytes())
  assert word.encode("the dog sat") == ([2, UNK_ID, 4], ["dog"])
  assert word.decode([2, 3]) == "the cat"
  char = tokenizer.load_codec("char", Vocabulary.count("char", ["né".encode()]).to_bytes())
  ids, unknown = char.encode("né☃")
  assert unknown == ["☃"] and ids[-3:] == [UNK_ID] * 3
  assert char.decode(ids[:3]) == "né" and char.vocab_size == 5


def test_wikitext2_word_counts_are_the_published_ones(tmp_path):
  # WikiText-2 (Merity et al. 2016): valid 217,646 and test 245,569 tokens, with one end of
  # line per line; wt2-small trains on the test split.
  config = DataConfig(tokenizer="word", batch_size=8, seq_len=32)
  meta, _ = build_dataset(WT2_SMALL, tmp_path / "ds", config)
  assert meta.splits["valid"].tokens == 217_646
  assert meta.splits["train"].tokens == 245_569
  assert meta.splits["valid"].words == 217_646  # a word per token: word = token perplexity
  train_lines = text.read_text(WT2_SMALL / "train.txt").lines
  vocabulary = Vocabulary.from_bytes((tmp_path / "ds" / "vocab.json").read_bytes())
  assert list(vocabulary.symbols[2:]) == [
    w for w in naive_order(train_lines, str.split) if w != "<unk>"
  ]
  assert meta.vocab_size == vocabulary.size == len(set(" ".join(train_lines).split())) + 1
  assert meta.splits["train"].unknown == 0
  valid_words = " ".join(text.read_text(WT2_SMALL / "valid.txt").lines).split()
  known = set(vocabulary.symbols)
  assert meta.splits["valid"].unknown == sum(w not in known for w in valid_words)
  records.check_vocabulary(tmp_path / "ds", meta)


def test_char_dataset_holds_every_byte_with_newlines_as_end_of_line(tmp_path):
  corpus = tmp_path / "text"
  body = "ab é\r\nc\n\nlast line without a newline"
  write_corpus(corpus, {"train": [body] * 40, "valid": [body] * 40})
  config = DataConfig(tokenizer="char", batch_size=2, seq_len=8)
  meta, _ = build_dataset(corpus, tmp_path / "ds", config)
  data = (corpus / "valid.txt").read_bytes()
  vocabulary = Vocabulary.from_bytes((tmp_path / "ds" / "vocab.json").read_bytes())
  ids = {s: i for i, s in enumerate(vocabulary.symbols)}
  expected = [EOS_ID if b == 10 else ids[b] for b in data]
  expected += [] if data.endswith(b"\n") else [EOS_ID]  # the last line ends too
  windows, _ = records.read_records(tmp_path / "ds", "valid")
  # Records of a lane overlap by one token, and so do neighbouring lanes.
  lanes = [np.concatenate([windows[0, b]] + [w[b, 1:] for w in windows[1:]]) for b in range(2)]
  stream = np.concatenate([lanes[0], lanes[1][1:]])
  np.testing.assert_array_equal(stream[stream != records.PAD_ID], expected)
  assert meta.splits["valid"].characters == len(expected) == meta.splits["valid"].tokens
  assert meta.tokenizer == "char" and (tmp_path / "ds" / "vocab.json").is_file()
  assert not (tmp_path / "ds" / records.TOKENIZER_FILE).exists()


def test_bits_per_character_by_hand():
  result = evaluate.Result(nll=1000.0, tokens=900, words=200, characters=1200)
  assert result.bpc == pytest.approx(1000.0 / (1200 * math.log(2)), rel=1e-15)
  assert result.to_dict()["bpc"] == result.bpc
  assert evaluate.Result(1.0, 1, 1).to_dict()["bpc"] is None  # a dataset without counts


def test_build_data_refuses_flags_of_the_other_tokenizers(tmp_path):
  for flags, expected in (
    (["--tokenizer=word", "--vocab_size=100"], "takes its size from the text"),
    (["--tokenizer=char", f"--sp_model={tmp_path / 'x.model'}"], "takes its size from the text"),
    (["--min_count=2"], "SentencePiece takes --vocab_size"),
    (["--tokenizer=word", "--max_vocab=2"], "max_vocab must be 0 (no limit) or at least 3"),
  ):
    result = run_script(
      "scripts/build_data.py", f"--input={WT2_SMALL}", f"--output_dir={tmp_path / 'ds'}", *flags
    )
    assert expected in error_line(result)
  assert not (tmp_path / "ds").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["word", "char"])
def test_word_and_char_runs_evaluate_and_generate(tmp_path, kind):
  from par.config import ModelConfig
  from par.config import TrainConfig
  from par.train import trainer

  config = DataConfig(tokenizer=kind, batch_size=4, seq_len=16, max_vocab=300)
  meta, _ = build_dataset(wt2_sample(tmp_path / "text"), tmp_path / "ds", config)
  model = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_blocks=2, mem_len=8, cutoffs=(50,))
  run = tmp_path / "run"
  trained = trainer.train_and_evaluate(
    TrainConfig(
      model=model, data_dir=str(tmp_path / "ds"), train_steps=4, plot_every=0, plots=False
    ),
    run,
  )
  valid = meta.splits["valid"]
  # Every character but the first token's, which nothing predicts. WikiText's valid split
  # opens with the line " ": for words the first token is that line's end, and its text runs
  # to the second token, "=" of " = Homarus gammarus =" (" \n ", 3 characters); for bytes
  # it is the first byte.
  assert (tmp_path / "text" / "valid.txt").read_text().startswith(" \n = ")
  head = 1 if kind == "char" else 3
  assert trained["valid"]["characters"] == valid.characters - head == valid.scored[1]
  assert trained["valid"]["bpc"] == pytest.approx(
    trained["valid"]["nll"] / (valid.scored[1] * math.log(2)), rel=1e-12
  )
  assert (run / "vocab.json").read_bytes() == (tmp_path / "ds" / "vocab.json").read_bytes()
  result = run_script("scripts/evaluate.py", f"--model_dir={run}", "--split=valid")
  assert result.returncode == 0, result.stderr[-2000:]
  evaluated = json.loads(result.stdout)
  assert evaluated["nll"] == pytest.approx(trained["valid"]["nll"], rel=1e-9)
  assert evaluated["bpc"] == pytest.approx(trained["valid"]["bpc"], rel=1e-9)
  result = run_script(
    "scripts/generate.py", f"--model_dir={run}", "--prompt=The", "--max_tokens=20"
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.startswith("⟦The⟧")


PIECED = "b a c a\n\nc <unk> z é\td <eos> b\nthe last line has no end é€ a"


@pytest.mark.parametrize("piece_bytes", [1, 2, 5, 13, 1 << 20])
@pytest.mark.parametrize("kind", ["word", "char"])
def test_counting_and_encoding_piece_by_piece_equal_line_by_line(tmp_path, kind, piece_bytes):
  path = tmp_path / "t.txt"
  path.write_bytes(PIECED.encode("utf-8"))
  binary = kind == "char"
  lines = text.read_text(path, binary).lines
  counter = vocab.Counter(kind)
  stats = text.scan(path, binary, whole_lines=False, consume=counter.add)
  pieces = list(text.SplitReader(path, binary, whole_lines=False, piece_bytes=piece_bytes))
  by_piece = vocab.Counter(kind)
  for piece in pieces:
    by_piece.add(piece)
  expected = Vocabulary.count(kind, lines)
  assert counter.vocabulary(stats.lines) == by_piece.vocabulary(stats.lines) == expected
  symbols = str.split if kind == "word" else list
  ranked = [s for s in naive_order(lines, symbols) if s not in ("<unk>", "<eos>")]
  assert list(expected.symbols[2:]) == ranked
  limited = Vocabulary.count(kind, lines, max_vocab=6)  # Unknown symbols too.
  stream, unknown = limited.tokenize(lines)
  assert unknown > 0
  encoded = [limited.encode_piece(piece) for piece in pieces]
  got = np.concatenate([ids for ids, _ in encoded] + [[EOS_ID]])  # no newline at the end
  np.testing.assert_array_equal(got, stream)
  assert sum(missing for _, missing in encoded) == unknown


def test_a_min_count_that_keeps_nothing_is_refused_and_many_unknowns_warned(tmp_path, caplog):
  corpus = write_corpus(
    tmp_path / "text",
    {"train": ["a b c a", "d e f"], "valid": ["x y z a", "q r s t"] * 10},
  )
  config = DataConfig(tokenizer="word", batch_size=2, seq_len=4)
  with pytest.raises(ParError, match=r"--min_count 3 keeps no word .*seen 2 times.*lower it"):
    build_dataset(corpus, tmp_path / "none", dataclasses.replace(config, min_count=3))
  assert not (tmp_path / "none").exists()
  with caplog.at_level(logging.WARNING):
    meta, _ = build_dataset(corpus, tmp_path / "ds", config)
  share = meta.splits["valid"].unknown / meta.splits["valid"].tokens
  assert share > 0.5
  assert f"{100 * share:.1f}% of the valid split's tokens are unknown" in caplog.text
  assert "train split's" not in caplog.text

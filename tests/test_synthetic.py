"""The Zipfian corpus generator (par/data/synthetic.py, scripts/make_corpus.py) that the
scale benchmark builds from."""

import collections

import numpy as np
import pytest

from helpers import error_line
from helpers import run_script
from par.data import synthetic
from par.data import text
from par.errors import ParError

WORDS = {"train": 60_000, "valid": 3_001, "test": 7}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
  directory = tmp_path_factory.mktemp("zipf") / "corpus"
  written = synthetic.write_corpus(directory, WORDS, types=500)
  return directory, written


def test_splits_have_exactly_the_words_asked_for(corpus):
  directory, written = corpus
  for split, count in WORDS.items():
    stats = text.scan(directory / f"{split}.txt")
    assert stats.words == count == written[split][1]  # one per line for its end included
    assert stats.lines == written[split][0] and stats.ends_with_newline


def test_the_same_arguments_write_the_same_bytes(corpus, tmp_path):
  directory, _ = corpus
  synthetic.write_corpus(tmp_path / "again", WORDS, types=500)
  for split in WORDS:
    assert (tmp_path / "again" / f"{split}.txt").read_bytes() == (
      directory / f"{split}.txt"
    ).read_bytes()
  synthetic.write_corpus(tmp_path / "other", WORDS, types=500, seed=1)
  assert (tmp_path / "other" / "train.txt").read_bytes() != (directory / "train.txt").read_bytes()


def test_word_ranks_follow_the_zipf_law(corpus):
  directory, _ = corpus
  counts = collections.Counter((directory / "train.txt").read_text(encoding="utf-8").split())
  forms = synthetic.word_forms(500)
  drawn = np.array([counts[f] for f in forms], np.float64)
  assert len(set(forms)) == 500 and "<unk>" in forms
  assert set(counts) - set(forms) == {"="}  # the headings
  expected = drawn.sum() / np.arange(1, 501) / (1.0 / np.arange(1, 501)).sum()
  # Poisson noise is ~sqrt(expected): the 50 most frequent ranks are within 5 of it.
  assert np.all(np.abs(drawn[:50] - expected[:50]) < 5 * np.sqrt(expected[:50]))
  assert any(ord(c) > 127 for f in forms for c in f)  # bytes beyond ASCII


def test_only_valid_and_test_have_words_train_never_has(corpus):
  directory, _ = corpus
  train = set((directory / "train.txt").read_text(encoding="utf-8").split())
  valid = set((directory / "valid.txt").read_text(encoding="utf-8").split())
  assert valid - train and all(w.startswith("Q") for w in valid - train)


def test_an_existing_directory_is_refused(tmp_path):
  (tmp_path / "c").mkdir()
  with pytest.raises(ParError, match="already exists"):
    synthetic.write_corpus(tmp_path / "c", WORDS, types=10)
  result = run_script("scripts/make_corpus.py", f"--output={tmp_path / 'c'}", "--types=10")
  assert error_line(result) == f"error: {tmp_path / 'c'} already exists; choose a new directory"

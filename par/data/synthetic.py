"""Zipfian corpora of any size, laid out as WikiText is: for measuring builds at scale.

WikiText-103, enwik8 and text8 cannot be downloaded on every machine, and a build's time and
memory depend on the size of the text and of its vocabulary, not on its meaning. So
`write_corpus` makes train/valid/test files with WikiText-103's shape: word ranks drawn from a
Zipf law (exponent 1 by default, as word frequencies in English roughly follow) over a fixed
number of word types, WikiText's literal `<unk>` one of the frequent ones; paragraphs of
about 100 words on lines of their own, each starting and ending with a space, separated by
blank lines " ", with a " = Heading = " every few paragraphs; a few words with letters beyond
ASCII, so UTF-8 and bytes are exercised; and in valid and test some words that train never
has. Word forms are made of random letters, 0 to 4 (1.75 on average) more than the word's
rank needs in base 26, so the text has WikiText-103's size (539 MB at its word count).

The same arguments give the same files, byte for byte. Nothing here imports TensorFlow.
"""

import os
from pathlib import Path

import numpy as np

from par.errors import ParError

# WikiText-103 (Merity et al. 2016): words per split, end-of-line tokens included.
WIKITEXT103_WORDS = {"train": 103_227_021, "valid": 217_646, "test": 245_569}
# Word types drawn, <unk> among them; with the headings' "=" and <eos>, 267,735 ids.
WIKITEXT103_TYPES = 267_733
_LETTERS = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
_BEYOND_ASCII = np.array(list("éöñçåłž"))
_UNK_RANK = 30  # WikiText's literal <unk> is among its most frequent words.
_WORDS_PER_BLOCK = 1 << 20


def word_forms(types, seed=0):
  """`types` distinct word forms, shortest for the most frequent ranks; one is "<unk>"."""
  rng = np.random.default_rng(seed)
  base = np.ones(types, np.int64)  # letters rank r needs in bijective base 26
  span, reach = 26, 26
  while reach < types:
    base[reach:] += 1
    span *= 26
    reach += span
  lengths = base + rng.integers(0, 4, types) + (rng.random(types) < 0.25)
  forms, seen = [], set()
  for rank, length in enumerate(lengths):
    while True:
      letters = rng.choice(_LETTERS, length)
      if rank % 50 == 7:  # Some words have a letter beyond ASCII.
        letters[rng.integers(length)] = rng.choice(_BEYOND_ASCII)
      form = "".join(letters)
      if form not in seen:
        break
    seen.add(form)
    forms.append(form)
  if types > _UNK_RANK:
    forms[_UNK_RANK] = "<unk>"
  return forms


def write_corpus(directory, words=None, types=WIKITEXT103_TYPES, exponent=1.0, seed=0):
  """Writes train.txt, valid.txt and test.txt into `directory` (which must not exist).

  Args:
    directory: the corpus directory to create.
    words: words per split, end-of-line words included (default: WikiText-103's).
    types: distinct words the train split draws from.
    exponent: of the Zipf law: rank r is drawn with probability proportional to r^-exponent.
    seed: of every random choice.

  Returns:
    {split: (lines, words)} as written.
  """
  directory = Path(directory)
  words = dict(words or WIKITEXT103_WORDS)
  if directory.exists():
    raise ParError(f"{directory} already exists; choose a new directory")
  if types < 2 or min(words.values()) < 1 or exponent <= 0:
    raise ParError("types must be at least 2, words positive and the exponent positive")
  forms = np.array(word_forms(types, seed), dtype=object)
  novel = np.array(["Q" + f for f in word_forms(max(types // 100, 1), seed + 1)], dtype=object)
  weights = np.arange(1, types + 1, dtype=np.float64) ** -exponent
  cdf = np.cumsum(weights / weights.sum())
  partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
  partial.mkdir(parents=True)
  written = {}
  for index, (split, count) in enumerate(words.items()):
    rng = np.random.default_rng([seed, index])
    with open(partial / f"{split}.txt", "w", encoding="utf-8", newline="\n") as f:
      written[split] = _write_split(f, count, forms, novel if split != "train" else None, cdf, rng)
  os.rename(partial, directory)
  return written


def _write_split(f, count, forms, novel, cdf, rng):
  """Writes lines until `count` words (one per line for its end) are written."""
  lines = written = 0
  paragraphs = 0
  while written < count:
    block = []
    block_words = 0
    while block_words < _WORDS_PER_BLOCK and written + block_words < count:
      left = count - written - block_words
      if paragraphs % 6 == 0 and left >= 7:  # " = Heading = ", then a blank line
        size = int(rng.integers(1, 4))
        line_words = ["="] + _draw(forms, novel, cdf, rng, size).tolist() + ["="]
        block += [" " + " ".join(line_words) + " ", " "]
        block_words += len(line_words) + 2
        paragraphs += 1
        continue
      size = min(int(rng.poisson(100)) + 1, left - 2)
      if size < 1:  # The end: blank lines to fill the count exactly.
        block += [" "] * left
        block_words += left
        break
      block += [" " + " ".join(_draw(forms, novel, cdf, rng, size).tolist()) + " ", " "]
      block_words += size + 2
      paragraphs += 1
    f.write("\n".join(block) + "\n")
    lines += len(block)
    written += block_words
  return lines, written


def _draw(forms, novel, cdf, rng, size):
  chosen = forms[np.minimum(np.searchsorted(cdf, rng.random(size)), len(forms) - 1)]
  if novel is not None:  # valid and test: one word in 500 is not a train word
    unseen = rng.random(size) < 0.002
    chosen[unseen] = novel[rng.integers(len(novel), size=int(unseen.sum()))]
  return chosen

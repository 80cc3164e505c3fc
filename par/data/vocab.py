"""Word- and character-level vocabularies, as Transformer-XL's WikiText-103, enwik8 and text8
models use them: every symbol of the train split, in order of decreasing train frequency.

  word   whitespace-separated words of each line (WikiText is already tokenized);
  char   the bytes of each line (UTF-8 text is read as bytes: enwik8's 90M/5M/5M cut splits
         multi-byte characters, and a byte never needs to be unknown).

Ids: 0 is `<unk>`, 1 the end-of-line token `<eos>` that follows every line (as with
SentencePiece), then the symbols by decreasing train count, a tie going to the symbol seen
first in the train split, so the same text always gives the same ids. Frequency order is what
the adaptive softmax needs: its head holds the lowest ids. WikiText's literal word `<unk>` is
the unknown id itself, so WikiText-103's 267,734 distinct train words (`<unk>` among them) and
the end-of-line token make the 267,735 of Transformer-XL. Symbols seen fewer than
`min_count` times, or beyond the `max_vocab` most frequent, become `<unk>`; the words of a
split that are not in the vocabulary are counted (`Vocabulary.tokenize`).

Stored as `vocab.json` (kind, symbols, train counts), whose sha256 identifies the tokenizer
as the SentencePiece model's does. Nothing here imports TensorFlow.
"""

import collections
import dataclasses
import itertools
import json

import numpy as np

from par.errors import ParError

KINDS = ("word", "char")
FILE = "vocab.json"
UNK, EOS = "<unk>", "<eos>"
UNK_ID, EOS_ID = 0, 1
_SPECIALS = 2
_MISSING = -2  # not an id: a word outside the vocabulary, while encoding


def symbols_of(kind, line):
  """The symbols of one line: its words (str), or its bytes (int)."""
  return line.split() if kind == "word" else line


class Counter:
  """Counts a train split's symbols piece by piece (`par.data.text.SplitReader`'s pieces, or
  single lines), keeping for each the order in which it was first seen."""

  def __init__(self, kind):
    if kind not in KINDS:
      raise ParError(f"unknown vocabulary kind {kind!r}: one of {', '.join(KINDS)}")
    self.kind = kind
    self._words = collections.Counter()  # keeps first-seen order
    self._bytes = np.zeros([256], np.int64)
    self._first_seen = np.full([256], np.iinfo(np.int64).max, np.int64)  # byte -> offset
    self._offset = 0

  def add(self, piece):
    """Counts the symbols of a piece of text; end-of-line bytes are not symbols."""
    if self.kind == "word":
      self._words.update(piece.split())  # A piece never cuts a word.
      return
    data = np.frombuffer(piece, np.uint8)
    counts = np.bincount(data, minlength=256)
    new = (counts > 0) & (self._bytes == 0)
    if new.any():
      values, first = np.unique(data, return_index=True)
      keep = new[values]
      self._first_seen[values[keep]] = self._offset + first[keep]
    self._bytes += counts
    self._offset += len(data)

  def vocabulary(self, lines, min_count=1, max_vocab=0):
    """The `Vocabulary` of what was counted, for a split of `lines` lines (its EOS count).

    Args:
      lines: the split's lines, each ending in one end of line.
      min_count: symbols seen fewer times become unknown.
      max_vocab: keep at most this many ids in all, the two specials included (0: no limit).
    """
    if self.kind == "word":
      counts = dict(self._words)
      literal_unk = counts.pop(UNK, 0)
      counts.pop(EOS, None)  # A literal "<eos>" is the end of a line.
    else:
      totals = self._bytes.copy()
      totals[ord("\n")] = 0
      seen = np.flatnonzero(totals)
      order = seen[np.argsort(self._first_seen[seen], kind="stable")]
      counts = {int(b): int(totals[b]) for b in order}
      literal_unk = 0
    # `counts` is in first-seen order and `sorted` is stable: ties go to the symbol seen first.
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    kept = [(s, c) for s, c in ranked if c >= min_count]
    if ranked and not kept:
      raise ParError(
        f"--min_count {min_count} keeps no {self.kind} of the train split (the most frequent "
        f"is seen {ranked[0][1]:,} times): every token would be <unk>; lower it"
      )
    if max_vocab:
      kept = kept[: max(max_vocab - _SPECIALS, 0)]
    dropped = sum(counts.values()) - sum(c for _, c in kept)
    symbols = (UNK, EOS) + tuple(s for s, _ in kept)
    counts = (literal_unk + dropped, lines) + tuple(c for _, c in kept)
    return Vocabulary(self.kind, symbols, counts)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """A word or char vocabulary: `symbols[i]` is id i's symbol, `counts[i]` its train count.

  symbols[0] and symbols[1] are UNK and EOS; the others are str words or int bytes.
  """

  kind: str
  symbols: tuple
  counts: tuple

  @classmethod
  def count(cls, kind, lines, min_count=1, max_vocab=0):
    """The vocabulary of a train split's lines (str for word, bytes for char).

    Args:
      kind: "word" or "char".
      lines: an iterable of lines without terminators; read once.
      min_count: symbols seen fewer times become unknown.
      max_vocab: keep at most this many ids in all, the two specials included (0: no limit).
    """
    counter = Counter(kind)
    lines_seen = 0
    for line in lines:
      counter.add(line)
      lines_seen += 1
    return counter.vocabulary(lines_seen, min_count, max_vocab)

  def __post_init__(self):
    index = {s: i for i, s in enumerate(self.symbols)}  # symbol -> id
    if self.kind == "word":
      index[EOS] = EOS_ID  # A literal "<eos>" in a text is its end of line.
    table = np.full([256], UNK_ID, np.int32)  # byte -> id
    table[ord("\n")] = EOS_ID
    if self.kind == "char":
      for i, s in enumerate(self.symbols[_SPECIALS:], _SPECIALS):
        table[s] = i
    object.__setattr__(self, "_index", index)  # Frozen: set once, here.
    object.__setattr__(self, "_byte_table", table)

  @property
  def size(self):
    return len(self.symbols)

  def encode_line(self, line):
    """(ids of one line without its end of line, the symbols of it that are unknown)."""
    if self.kind == "char":
      data = np.frombuffer(line, np.uint8)
      ids = self._byte_table[data]
      unknown = [bytes([b]) for b in data[ids == UNK_ID]]
      return ids, unknown
    index = self._index
    words = line.split()
    ids = np.fromiter((index.get(w, UNK_ID) for w in words), np.int32, len(words))
    unknown = [w for w, i in zip(words, ids) if i == UNK_ID and w != UNK]
    return ids, unknown

  def encode_piece(self, piece):
    """(the ids of a piece of text, `<eos>` in place of each end of line; how many of its
    symbols are not in the vocabulary and became `<unk>`, WikiText's literal `<unk>` aside).

    A piece is what `par.data.text.SplitReader` yields: it never cuts a word, and a line
    without its end in one piece continues in the next.
    """
    if self.kind == "char":
      ids = self._byte_table[np.frombuffer(piece, np.uint8)]
      return ids, int(np.count_nonzero(ids == UNK_ID))
    get, ids = self._index.get, []
    for k, line in enumerate(piece.split("\n")):
      if k:
        ids.append(EOS_ID)
      ids += map(get, line.split(), itertools.repeat(_MISSING))
    ids = np.array(ids, np.int32)
    missing = ids == _MISSING
    ids[missing] = UNK_ID
    return ids, int(np.count_nonzero(missing))

  def tokenize(self, lines):
    """(the token stream of `lines`, each line's ids then EOS_ID, as int32; how many of its
    symbols are not in the vocabulary and became `<unk>`, WikiText's literal `<unk>` aside)."""
    chunks, unknown = [], 0
    newline = "\n" if self.kind == "word" else b"\n"
    for line in lines:
      ids, missing = self.encode_piece(line + newline)
      chunks.append(ids)
      unknown += missing
    return (np.concatenate(chunks) if chunks else np.zeros([0], np.int32)), unknown

  def decode(self, ids):
    """The text of one line's ids (no EOS_ID among them): words joined by spaces; bytes decoded
    as UTF-8, an invalid or unknown byte shown as U+FFFD."""
    ids = [int(i) for i in ids]
    if self.kind == "word":
      return " ".join(self.symbols[i] for i in ids)
    data = bytes(self.symbols[i] if i >= _SPECIALS else 0xFF for i in ids)
    return data.decode("utf-8", errors="replace")

  def to_bytes(self):
    value = {"kind": self.kind, "symbols": list(self.symbols), "counts": list(self.counts)}
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")

  @classmethod
  def from_bytes(cls, data, path=None):
    """The vocabulary stored in `data`; ParError (naming `path`) if it is not one."""
    what = str(path) if path else "the vocabulary"
    try:
      value = json.loads(data.decode("utf-8"))
      kind, symbols, counts = value["kind"], tuple(value["symbols"]), tuple(value["counts"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
      raise ParError(f"{what} is not a par vocabulary (vocab.json)") from None
    valid = (
      kind in KINDS
      and len(symbols) == len(counts) >= _SPECIALS
      and symbols[:_SPECIALS] == (UNK, EOS)
      and len(set(symbols)) == len(symbols)
      and all(
        isinstance(s, str) if kind == "word" else isinstance(s, int) and 0 <= s < 256
        for s in symbols[_SPECIALS:]
      )
    )
    if not valid:
      raise ParError(f"{what} is not a par vocabulary (vocab.json)")
    return cls(kind, symbols, counts)

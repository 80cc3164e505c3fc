"""Text corpora: finding split files and reading them exactly, a piece at a time.

A split is one text file, UTF-8 unless read as bytes. Lines end at "\n" ("\r\n" is accepted
in UTF-8 text); each line becomes the line's tokens followed by one end-of-line token, empty
lines included, and a last line without its terminator still ends in one. Word counts follow
the convention of word-level language modelling with an end-of-line symbol (Merity et al.
2016, Dai et al. 2019): the whitespace-separated words of the text plus one per line.

A split is read in pieces of a few MiB (`SplitReader`), so memory does not grow with the
corpus: a piece ends after a line, or for the word tokenizer after any space, so that no word
is cut (text8 is one line of 100M bytes); read as bytes for the byte tokenizer, a piece may end
anywhere (a 30 MB line of CJK text has no space to cut at), and a word cut between two pieces
is counted once. Undecodable bytes are refused, with their line
and byte position, rather than replaced: a silently altered test set would make perplexities
incomparable.

Nothing here imports TensorFlow, so bad input is reported before the slow import.
"""

import dataclasses
import hashlib
import itertools
import os
from pathlib import Path

from par.errors import ParError

SPLITS = ("train", "valid", "test")

# Accepted file names per split, in a directory given as input.
SPLIT_FILE_NAMES = {
  split: (f"{split}.txt", f"wiki.{split}.tokens", f"wiki.{split}.raw") for split in SPLITS
}

PIECE_BYTES = 1 << 22  # Read at a time: the text held in memory while building is about this.
_BOM = "\ufeff"


@dataclasses.dataclass(frozen=True)
class SplitStats:
  """What one split file holds, counted in one pass."""

  path: str
  sha256: str  # of the file's bytes
  lines: int  # each ends in one end-of-line token
  words: int  # whitespace words + one end-of-line word per line
  characters: int  # characters (bytes if binary) + one per line: what bits per char divide by
  ends_with_newline: bool  # if not, the last line's end-of-line token is added


@dataclasses.dataclass(frozen=True)
class SplitText:
  """One split's whole text, as lines: for small files and tests (`read_text`)."""

  path: str
  lines: list  # str (bytes if read as binary) per line, without the line terminator
  sha256: str
  words: int
  characters: int


def word_count(piece, continues=False):
  """The words of a piece of text by the convention above: its whitespace words plus one per
  end of line, a word the previous piece ended inside (`continues`) not counted again."""
  newline = "\n" if isinstance(piece, str) else b"\n"
  count = len(piece.split()) + piece.count(newline)
  return count - 1 if continues and piece[:1] and not piece[:1].isspace() else count


def head_counts(piece, starts):
  """(words, characters) of a text's first token, which no model predicts (nothing comes
  before it): the text before its second token (`piece` its start, `starts` where the piece's
  tokens start). The first word is the first token's, as a word counts for a dropped tail
  when its first token is kept; what word perplexity and bits per character leave out of
  their denominators."""
  end = starts[1] if len(starts) > 1 else len(piece)
  # A first token of no characters (SentencePiece's "▁" of the first word) still begins it.
  return word_count(piece[: max(end, 1)]), end


class SplitReader:
  """One pass over a split file: iterate for its text in pieces, then read `stats`.

  Pieces are str (bytes if `binary`: exactly as stored, no byte-order mark or carriage return
  removed), in order; their concatenation is the whole text. Each piece ends after a "\n", or
  unless `whole_lines`, after a space or a tab, so words are never cut; a line longer than a
  piece makes a longer piece. Bytes without `whole_lines` are cut anywhere, at `piece_bytes`.

  While iterating, `before` holds (words, characters, whether the text so far ends inside a
  word) of the text before the piece last yielded, counted as `stats` counts the whole.

  Raises (while iterating):
    ParError: the file cannot be read, is empty or only whitespace, or (unless binary) is not
      UTF-8; the message gives the line and byte of the first invalid byte.
  """

  def __init__(self, path, binary=False, whole_lines=True, piece_bytes=None):
    self.path = Path(path)
    self.binary = binary
    self._anywhere = binary and not whole_lines
    self._cuts = (b"\n",) if whole_lines else (b"\n", b" ", b"\t")
    self._piece_bytes = piece_bytes or PIECE_BYTES
    self.stats = None
    self.before = (0, 0, False)

  def __iter__(self):
    digest = hashlib.sha256()
    counts = {"newlines": 0, "words": 0, "characters": 0}
    state = {"last": "", "content": False, "inside": False}
    offset = 0  # of the next piece's first byte in the file
    line_start = 0  # offset of the line that piece is in
    carry = b""
    for block in itertools.chain(self._blocks(), [b""]):  # b"": the end of the file
      digest.update(block)
      data = carry + block if carry else block
      if block:
        cut = len(data) if self._anywhere else max(data.rfind(c) for c in self._cuts) + 1
        if cut == 0:
          carry = data
          continue
        raw, carry = data[:cut], data[cut:]
      else:
        raw, carry = data, b""
      if raw:
        piece = raw if self.binary else self._decode(raw, offset, line_start, counts, not offset)
        self.before = (counts["words"], counts["characters"], state["inside"])
        self._count(piece, counts, state)
        newline = raw.rfind(b"\n")
        line_start = offset + newline + 1 if newline >= 0 else line_start
        offset += len(raw)
        yield piece
    if not state["content"]:
      raise ParError(f"{self.path} is empty")
    ends = state["last"] in ("\n", b"\n"[0])
    self.stats = SplitStats(
      str(self.path),
      digest.hexdigest(),
      counts["newlines"] + (0 if ends else 1),
      counts["words"] + (0 if ends else 1),
      counts["characters"] + (0 if ends else 1),
      ends,
    )

  def _blocks(self):
    try:
      with open(self.path, "rb") as f:
        while block := f.read(self._piece_bytes):
          yield block
    except OSError as e:
      raise ParError(f"cannot read {self.path}: {e.strerror}") from None

  def _decode(self, raw, offset, line_start, counts, first):
    try:
      piece = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      line = counts["newlines"] + raw.count(b"\n", 0, e.start) + 1
      newline = raw.rfind(b"\n", 0, e.start)
      column = e.start - newline if newline >= 0 else offset + e.start - line_start + 1
      raise ParError(
        f"{self.path}: invalid UTF-8 at line {line}, byte {column} ({raw[e.start : e.end]!r}); "
        "convert the file to UTF-8 first, e.g. with iconv -f latin1 -t utf-8"
      ) from None
    if first and piece.startswith(_BOM):  # A byte-order mark is not text.
      piece = piece[1:]
    return piece.replace("\r\n", "\n")  # A piece never ends between "\r" and "\n".

  @staticmethod
  def _count(piece, counts, state):
    """Adds a piece to the counts: words and characters with each end of line counted as one
    of each (the last line's, when the file lacks it, is added at the end)."""
    newline = "\n" if isinstance(piece, str) else b"\n"
    counts["newlines"] += piece.count(newline)
    counts["words"] += word_count(piece, state["inside"])
    counts["characters"] += len(piece)
    if piece:
      state["last"] = piece[-1]
      state["inside"] = not piece[-1:].isspace()
      state["content"] = state["content"] or bool(piece.strip())


def scan(path, binary=False, whole_lines=True, consume=None):
  """Reads a split file once: its `SplitStats`, each piece passed to `consume` if given."""
  reader = SplitReader(path, binary, whole_lines)
  for piece in reader:
    if consume is not None:
      consume(piece)
  return reader.stats


def lines_of(piece):
  """The lines of a piece of whole lines, without their terminators."""
  lines = piece.split("\n" if isinstance(piece, str) else b"\n")
  if not lines[-1]:  # The terminator of the last line does not start a new one.
    lines.pop()
  return lines


def iter_lines(path, binary=False):
  """The lines of a split file, one at a time."""
  for piece in SplitReader(path, binary, whole_lines=True):
    yield from lines_of(piece)


def read_text(path, binary=False):
  """Reads a whole split file into memory as lines (`SplitText`); see `SplitReader`."""
  reader = SplitReader(path, binary, whole_lines=True)
  lines = []
  for piece in reader:
    lines += lines_of(piece)
  s = reader.stats
  return SplitText(s.path, lines, s.sha256, s.words, s.characters)


def check_readable(path):
  """ParError unless `path` is a file, a pipe or a fifo that can be opened for reading: what
  can be checked of a text to score without reading it (a pipe is read once)."""
  path = Path(path)
  if path.is_dir():
    raise ParError(f"{path} is a directory, not a text file")
  if not os.access(path, os.R_OK):
    reason = "no such file" if not os.path.lexists(path) else "permission denied"
    raise ParError(f"cannot read {path}: {reason}")


def find_split_files(path):
  """Maps split name to file: a directory of split files, or one file used as train."""
  path = Path(path)
  if not path.exists():
    raise ParError(f"input {path} does not exist")
  if path.is_file():
    return {"train": path}
  found = {}
  for split, names in SPLIT_FILE_NAMES.items():
    for name in names:  # A link to nowhere is a mistake to name, not a split to drop.
      if (path / name).is_symlink() and not (path / name).exists():
        raise ParError(
          f"{path / name} is a broken link (to {os.readlink(path / name)}); fix or remove it"
        )
    matches = [path / name for name in names if (path / name).is_file()]
    if len(matches) > 1:
      raise ParError(
        f"{path} has several {split} files ({', '.join(m.name for m in matches)}); keep one"
      )
    if matches:
      found[split] = matches[0]
  if "train" not in found:
    raise ParError(
      f"{path} has no train split: expected one of {', '.join(SPLIT_FILE_NAMES['train'])}"
    )
  return found


def file_sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()

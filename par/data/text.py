"""Text corpora: finding and reading split files exactly.

A split is one UTF-8 text file. Lines end at "\n" ("\r\n" is accepted); each line becomes the
line's tokens followed by one end-of-line token, empty lines included. Word counts follow the
convention of word-level language modelling with an end-of-line symbol (Merity et al. 2016,
Dai et al. 2019): the whitespace-separated words of the text plus one per line.

Undecodable bytes are refused, with their line and byte position, rather than replaced:
a silently altered test set would make perplexities incomparable.

Nothing here imports TensorFlow, so bad input is reported before the slow import.
"""

import dataclasses
import hashlib
from pathlib import Path

from par.errors import ParError

SPLITS = ("train", "valid", "test")

# Accepted file names per split, in a directory given as input.
SPLIT_FILE_NAMES = {
  split: (f"{split}.txt", f"wiki.{split}.tokens", f"wiki.{split}.raw") for split in SPLITS
}


@dataclasses.dataclass(frozen=True)
class SplitText:
  """One split's text, as the tokenizer will see it."""

  path: str
  lines: list  # str (bytes if read as binary) per line, without the line terminator
  sha256: str  # of the file's bytes
  words: int  # whitespace words + one end-of-line word per line
  characters: int  # characters (bytes if binary) + one per line: what bits per char divide by


def find_split_files(path):
  """Maps split name to file: a directory of split files, or one file used as train."""
  path = Path(path)
  if not path.exists():
    raise ParError(f"input {path} does not exist")
  if path.is_file():
    return {"train": path}
  found = {}
  for split, names in SPLIT_FILE_NAMES.items():
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


def read_text(path, binary=False):
  """Reads one split file; raises ParError if it is empty or (unless binary) not UTF-8.

  Args:
    path: the file.
    binary: keep the lines as bytes, exactly as stored (for byte-level vocabularies): no
      decoding, no byte-order mark or carriage return removed.
  """
  path = Path(path)
  try:
    data = path.read_bytes()
  except OSError as e:
    raise ParError(f"cannot read {path}: {e.strerror}") from None
  sha256 = hashlib.sha256(data).hexdigest()
  if binary:
    if not data.strip():
      raise ParError(f"{path} is empty")
    return _split_text(str(path), data, b"\n", sha256)
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    raise ParError(
      f"{path}: invalid UTF-8 at line {line}, byte {column} ({data[e.start : e.end]!r}); "
      "convert the file to UTF-8 first, e.g. with iconv -f latin1 -t utf-8"
    ) from None
  del data  # Peak memory: keep one copy of the text at a time.
  if text.startswith("\ufeff"):  # A byte-order mark is not text.
    text = text[1:]
  if not text.strip():
    raise ParError(f"{path} is empty")
  return _split_text(str(path), text.replace("\r\n", "\n"), "\n", sha256)


def _split_text(path, text, newline, sha256):
  lines = text.split(newline)
  del text
  if not lines[-1]:  # The terminator of the last line does not start a new one.
    lines.pop()
  # Line by line: splitting the whole text at once would hold every word as an object.
  words = sum(len(line.split()) for line in lines) + len(lines)
  characters = sum(map(len, lines)) + len(lines)
  return SplitText(path, lines, sha256, words, characters)


def file_sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()

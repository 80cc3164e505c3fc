"""Text corpora: finding and reading split files exactly, and fetching WikiText-2.

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
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from absl import logging

from par.errors import ParError

SPLITS = ("train", "valid", "test")

# Accepted file names per split, in a directory given as input.
SPLIT_FILE_NAMES = {
    split: (f"{split}.txt", f"wiki.{split}.tokens", f"wiki.{split}.raw") for split in SPLITS
}

# WikiText-2 (v1, tokenized), Merity et al. 2016. The original host first, then mirrors.
WIKITEXT2_URLS = (
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
    "https://wikitext.smerity.com/wikitext-2-v1.zip",
)
WIKITEXT2_MD5 = "542ccefacc6c27f945fb54453812b3cd"


class DownloadError(ParError):
  """No URL gave the archive with the expected checksum."""


@dataclasses.dataclass(frozen=True)
class SplitText:
  """One split's text, as the tokenizer will see it."""

  path: str
  lines: list  # str per line, without the line terminator
  sha256: str  # of the file's bytes
  words: int  # whitespace words + one end-of-line word per line


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
      raise ParError(f"{path} has several {split} files ({', '.join(m.name for m in matches)});"
                     " keep one")
    if matches:
      found[split] = matches[0]
  if "train" not in found:
    raise ParError(f"{path} has no train split: expected one of "
                   f"{', '.join(SPLIT_FILE_NAMES['train'])}")
  return found


def read_split(path):
  """Reads one split file; raises ParError if it is empty or not UTF-8."""
  path = Path(path)
  try:
    data = path.read_bytes()
  except OSError as e:
    raise ParError(f"cannot read {path}: {e.strerror}") from None
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    raise ParError(
        f"{path}: invalid UTF-8 at line {line}, byte {column} ({data[e.start:e.end]!r}); "
        "convert the file to UTF-8 first, e.g. with iconv -f latin1 -t utf-8") from None
  sha256 = hashlib.sha256(data).hexdigest()
  del data  # Peak memory: keep one copy of the text at a time.
  if text.startswith("\ufeff"):  # A byte-order mark is not text.
    text = text[1:]
  if not text.strip():
    raise ParError(f"{path} is empty")
  lines = text.replace("\r\n", "\n").split("\n")
  del text
  if lines[-1] == "":  # The terminator of the last line does not start a new one.
    lines.pop()
  # Line by line: splitting the whole text at once would hold every word as an object.
  words = sum(len(line.split()) for line in lines) + len(lines)
  return SplitText(str(path), lines, sha256, words)


def file_sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _file_md5(path):
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _download(url, destination, timeout):
  with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
    shutil.copyfileobj(response, out, length=1 << 20)


def _extract_splits(archive, destination):
  """Writes destination/{split}.txt from a zip's wiki.{split}.tokens (or accepted names)."""
  try:
    with zipfile.ZipFile(archive) as z:
      by_name = {Path(name).name: name for name in z.namelist() if not name.endswith("/")}
      for split, names in SPLIT_FILE_NAMES.items():
        member = next((by_name[n] for n in names if n in by_name), None)
        if member is None:
          raise ParError(f"{archive} has no {split} split (expected one of {', '.join(names)})")
        with z.open(member) as src, open(destination / f"{split}.txt", "wb") as dst:
          shutil.copyfileobj(src, dst, length=1 << 20)
  except zipfile.BadZipFile:
    raise ParError(f"{archive} is not a zip archive") from None


def prepare_wikitext2(destination, source=None, urls=WIKITEXT2_URLS, md5=WIKITEXT2_MD5,
                      timeout=60):
  """Puts WikiText-2's splits in destination/{train,valid,test}.txt.

  Args:
    destination: directory to create. If it exists it is reused as it is: it only ever
      appears complete, because it is assembled in a temporary sibling and renamed.
    source: None to download; a zip archive (checked against `md5`); or a directory of split
      files (any of SPLIT_FILE_NAMES; train required), copied as they are.
    urls: where to download from, tried in order until one gives the right checksum.
    md5: the archive's expected MD5 (WikiText-2 v1's by default).
    timeout: seconds without progress before a download is abandoned.

  Returns:
    A sentence saying what was done, for the log.
  """
  destination = Path(destination)
  if destination.is_dir():
    return f"{destination} exists; reusing it (delete it to fetch the data again)"
  if destination.exists():
    raise ParError(f"{destination} exists and is not a directory")
  if source is not None and not Path(source).exists():
    raise ParError(f"--source {source} does not exist")
  destination.parent.mkdir(parents=True, exist_ok=True)
  work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
  try:
    splits = work / "splits"
    splits.mkdir()
    if source is None:
      archive = work / "wikitext-2-v1.zip"
      failures = []
      for url in urls:
        logging.info("downloading %s", url)
        try:
          _download(url, archive, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
          failures.append(f"{url}: {getattr(e, 'reason', e)}")
          continue
        got = _file_md5(archive)
        if got == md5:
          break
        failures.append(f"{url}: MD5 {got}, expected {md5}")
      else:
        raise DownloadError("could not download WikiText-2 (" + "; ".join(failures) + ")")
      _extract_splits(archive, splits)
      done = f"downloaded {url} (MD5 verified) and unpacked it into {destination}"
    elif Path(source).is_file():
      got = _file_md5(source)
      if got != md5:
        raise ParError(f"{source} has MD5 {got}, not {md5} (wikitext-2-v1.zip); for other text, "
                       "unzip it and pass the directory")
      _extract_splits(Path(source), splits)
      done = f"unpacked {source} (MD5 verified) into {destination}"
    else:
      for split, path in find_split_files(source).items():
        shutil.copyfile(path, splits / f"{split}.txt")
      done = f"copied the splits of {source} into {destination}"
    os.rename(splits, destination)
    return done
  finally:
    shutil.rmtree(work, ignore_errors=True)

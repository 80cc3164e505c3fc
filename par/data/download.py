"""Fetching the corpora: download (URLs, checksums) or a local copy, as split files.

  wikitext-2, wikitext-103   the zip's wiki.{train,valid,test}.tokens (Merity et al. 2016)
  enwik8, text8              the zip's one 100,000,000-byte file, cut as Transformer-XL's
                             preparation scripts cut it: the last 5,000,000 bytes are test,
                             the 5,000,000 before them valid, the rest (90M) train; the bytes
                             are kept exactly (enwik8's cuts split multi-byte characters)

The destination only ever appears complete: it is assembled in a temporary sibling and
renamed into place. It holds train.txt, valid.txt, test.txt and SOURCE.json (what they came
from: the archive's name, MD5 and sha256, and each split's sha256).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from absl import logging

from par import errors
from par import locks
from par.data.text import SPLIT_FILE_NAMES
from par.data.text import file_sha256
from par.data.text import find_split_files
from par.errors import ParError

SOURCE_FILE = "SOURCE.json"
_CUT_BYTES = 5_000_000  # valid and test of enwik8 and text8


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A published corpus: where it is and how its archive becomes split files."""

  name: str
  archive: str  # the file name it is published as
  urls: tuple  # the original host first, then mirrors
  md5: str | None  # of the archive; None where no checksum is published
  member: str | None = None  # enwik8, text8: the one file, cut into the splits
  size: int | None = None  # the member's published size in bytes


CORPORA = {
  c.name: c
  for c in (
    Corpus(
      "wikitext-2",
      "wikitext-2-v1.zip",
      (
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
        "https://wikitext.smerity.com/wikitext-2-v1.zip",
      ),
      "542ccefacc6c27f945fb54453812b3cd",
    ),
    Corpus(
      "wikitext-103",
      "wikitext-103-v1.zip",
      (
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
        "https://wikitext.smerity.com/wikitext-103-v1.zip",
      ),
      "9ddaacaf6af0710eda8c456decff7832",
    ),
    # Mahoney publishes no checksum for these two; the member's size (100,000,000 bytes, as
    # published) is checked, and the archive's MD5 and sha256 are recorded in SOURCE.json.
    Corpus(
      "enwik8", "enwik8.zip", ("http://mattmahoney.net/dc/enwik8.zip",), None, "enwik8", 10**8
    ),
    Corpus("text8", "text8.zip", ("http://mattmahoney.net/dc/text8.zip",), None, "text8", 10**8),
  )
}


class DownloadError(ParError):
  """No URL gave the archive (with the expected checksum)."""


def _same_splits(new, existing, source):
  """The sentence for an existing destination that holds `source`'s splits; else a ParError."""

  def split_files(directory):  # SOURCE.json says where they came from: it may differ.
    return sorted(p.name for p in directory.iterdir() if p.name != SOURCE_FILE)

  names = split_files(new)
  if names == split_files(existing) and all(
    file_sha256(new / name) == file_sha256(existing / name) for name in names
  ):
    return f"{existing} already holds the splits of {source}; reusing it"
  raise ParError(
    f"{existing} exists and holds other text than --source {source}; nothing was changed: "
    f"move or delete {existing} to use --source, or build elsewhere with --data_dir"
  )


def _file_md5(path):
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _cut(source, total, destination, what, size):
  """Writes destination/{train,valid,test}.txt from one corpus file, streamed from `source` (a
  binary file object) whose length, `total`, is known before a byte is read: a file of the
  wrong size (an archive member that inflates to gigabytes) is refused at once."""
  if size is not None and total != size:
    raise ParError(f"{what} has {total:,} bytes, not the published {size:,}")
  if total <= 2 * _CUT_BYTES:
    raise ParError(f"{what} has {total:,} bytes: too few to cut 5,000,000 for valid and test")
  for split, length in (
    ("train", total - 2 * _CUT_BYTES),
    ("valid", _CUT_BYTES),
    ("test", _CUT_BYTES),
  ):
    with open(destination / f"{split}.txt", "wb") as out:
      left = length
      while left:
        block = source.read(min(left, 1 << 20))
        if not block:
          raise ParError(f"{what} ended early, at {total - left:,} of {total:,} bytes")
        out.write(block)
        left -= len(block)


def _download(url, destination, timeout):
  with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
    shutil.copyfileobj(response, out, length=1 << 20)


def _members(z, archive):
  """{file name: member} of a zip's files; ParError if two members share a file name."""
  found = {}
  for name in z.namelist():
    if name.endswith("/"):
      continue
    other = found.setdefault(Path(name).name, name)
    if other != name:
      raise ParError(
        f"{archive} holds both {other} and {name}: it is not the published archive (which "
        "holds one); unpack the one you mean and pass it with --source"
      )
  return found


def _extract_splits(archive, destination, corpus):
  """Writes destination/{split}.txt from the archive: its split files, or its one member cut.

  Raises:
    ParError: the archive is damaged or truncated (one line, whatever zipfile and zlib say).
  """
  try:
    with zipfile.ZipFile(archive) as z:
      by_name = _members(z, archive)
      if corpus.member is not None:
        if corpus.member not in by_name:
          raise ParError(f"{archive} has no file {corpus.member}")
        info = z.getinfo(by_name[corpus.member])
        with z.open(info) as member:
          _cut(member, info.file_size, destination, f"{corpus.member} in {archive}", corpus.size)
        return
      for split, names in SPLIT_FILE_NAMES.items():
        member = next((by_name[n] for n in names if n in by_name), None)
        if member is None:
          raise ParError(f"{archive} has no {split} split (expected one of {', '.join(names)})")
        with z.open(member) as src, open(destination / f"{split}.txt", "wb") as dst:
          shutil.copyfileobj(src, dst, length=1 << 20)
  except (zipfile.BadZipFile, zlib.error, EOFError) as e:
    raise ParError(_damage(archive, e)) from None


def _damage(archive, error):
  """The one line for a zip that zipfile or zlib could not read."""
  message = str(error).splitlines()[0] if str(error) else type(error).__name__
  if isinstance(error, zipfile.BadZipFile) and "not a zip file" in message:
    if _looks_like_zip(archive):
      return f"{archive} is a damaged or truncated zip archive (no directory at its end)"
    return f"{archive} is not a zip archive"
  if "CRC" in message:
    return f"{archive} is damaged: {message} (its contents do not match its checksum)"
  return f"{archive} is damaged ({message}); fetch it again"


def _looks_like_zip(path):
  """Whether a file starts as a zip archive does, whatever state its end is in."""
  with open(path, "rb") as f:
    return f.read(4) == b"PK\x03\x04"


def _record(splits, corpus, origin, archive=None):
  """Writes SOURCE.json: where the splits came from, and the checksums of everything."""
  value = {"corpus": corpus.name, "from": str(origin)}
  if archive is not None:
    value.update(archive=corpus.archive, md5=_file_md5(archive), sha256=file_sha256(archive))
  value["splits"] = {p.stem: file_sha256(p) for p in sorted(splits.iterdir()) if p.suffix == ".txt"}
  (splits / SOURCE_FILE).write_text(json.dumps(value, indent=2) + "\n")


def prepare(name, destination, source=None, urls=None, md5=None, timeout=60):
  """Puts corpus `name`'s splits in destination/{train,valid,test}.txt (and SOURCE.json).

  Args:
    name: a key of CORPORA.
    destination: directory to create; it only ever appears complete, because it is assembled
      in a temporary sibling and renamed. If it exists it is reused as it is, unless a
      `source` with other splits is given: that is refused, never overwritten.
    source: None to download; the archive (checked against `md5`); for enwik8 and text8 also
      the unpacked file; or a directory of split files (any of SPLIT_FILE_NAMES; train
      required), copied as they are.
    urls: where to download from, tried in order until one gives the right archive (default:
      the corpus's).
    md5: the archive's expected MD5 (default: the corpus's published one, if any).
    timeout: seconds without progress before a download is abandoned.

  Returns:
    A sentence saying what was done, for the log.
  """
  corpus = CORPORA[name]
  urls = urls or corpus.urls
  md5 = md5 or corpus.md5
  destination = Path(destination)
  if destination.exists() and not destination.is_dir():
    raise ParError(f"{destination} exists and is not a directory")
  if source is not None and not Path(source).exists():
    raise ParError(f"--source {source} does not exist")
  if destination.is_dir() and source is None:
    return f"{destination} exists; reusing it (delete it to fetch the data again)"
  with locks.hold(locks.beside(destination), destination, f"{destination} (being fetched)"):
    return _prepare(corpus, destination, source, urls, md5, timeout)


def _prepare(corpus, destination, source, urls, md5, timeout):
  """`prepare`'s work, with its destination held."""
  if destination.is_dir() and source is None:  # Fetched meanwhile by the holder before us.
    return f"{destination} exists; reusing it (delete it to fetch the data again)"
  with errors.writing(destination):
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
  try:
    splits = work / "splits"
    splits.mkdir()
    with errors.writing(destination):
      done = _fetch(corpus, splits, work, source, urls, md5, timeout, destination)
    if destination.is_dir():  # Only with an explicit source: the same splits, or refused.
      return _same_splits(splits, destination, source)
    os.rename(splits, destination)
    return done
  finally:
    shutil.rmtree(work, ignore_errors=True)


def _fetch(corpus, splits, work, source, urls, md5, timeout, destination):
  """Fills `splits` from a download or `source`; returns the sentence saying so."""
  checked = "MD5 verified" if md5 else f"MD5 {{}} recorded in {SOURCE_FILE}"
  if source is None:
    archive = work / corpus.archive
    failures = []
    for url in urls:
      logging.info("downloading %s", url)
      try:
        _download(url, archive, timeout)
      except (urllib.error.URLError, OSError, ValueError) as e:
        failures.append(f"{url}: {getattr(e, 'reason', e)}")
        continue
      got = _file_md5(archive)
      if md5 is None or got == md5:
        break
      failures.append(f"{url}: MD5 {got}, expected {md5}")
    else:
      raise DownloadError(f"could not download {corpus.name} (" + "; ".join(failures) + ")")
    _extract_splits(archive, splits, corpus)
    _record(splits, corpus, url, archive)
    return f"downloaded {url} ({checked.format(got)}) and unpacked it into {destination}"
  source = Path(source)
  if source.is_dir():
    for split, path in find_split_files(source).items():
      shutil.copyfile(path, splits / f"{split}.txt")
    _record(splits, corpus, source.resolve())
    return f"copied the splits of {source} into {destination}"
  if corpus.member is not None and not _looks_like_zip(source):  # enwik8 or text8 itself
    with open(source, "rb") as f:
      _cut(f, source.stat().st_size, splits, str(source), corpus.size)
    _record(splits, corpus, source.resolve())
    return f"cut {source} into {destination}"
  got = _file_md5(source)
  if md5 is not None and got != md5:
    raise ParError(
      f"{source} has MD5 {got}, not {md5} ({corpus.archive}); for other text, "
      "unzip it and pass the directory"
    )
  _extract_splits(source, splits, corpus)
  _record(splits, corpus, source.resolve(), source)
  return f"unpacked {source} ({checked.format(got)}) into {destination}"

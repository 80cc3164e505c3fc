"""Fetching WikiText-2: download (URLs, MD5) or a local copy, unpacked into split files.

The destination only ever appears complete: it is assembled in a temporary sibling and
renamed into place.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from absl import logging

from par import errors
from par.data.text import SPLIT_FILE_NAMES
from par.data.text import file_sha256
from par.data.text import find_split_files
from par.errors import ParError

# WikiText-2 (v1, tokenized), Merity et al. 2016. The original host first, then mirrors.
WIKITEXT2_URLS = (
  "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
  "https://wikitext.smerity.com/wikitext-2-v1.zip",
)
WIKITEXT2_MD5 = "542ccefacc6c27f945fb54453812b3cd"


class DownloadError(ParError):
  """No URL gave the archive with the expected checksum."""


def _same_splits(new, existing, source):
  """The sentence for an existing destination that holds `source`'s splits; else a ParError."""
  names = sorted(p.name for p in new.iterdir())
  if names == sorted(p.name for p in existing.iterdir()) and all(
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


def prepare_wikitext2(destination, source=None, urls=WIKITEXT2_URLS, md5=WIKITEXT2_MD5, timeout=60):
  """Puts WikiText-2's splits in destination/{train,valid,test}.txt.

  Args:
    destination: directory to create; it only ever appears complete, because it is assembled
      in a temporary sibling and renamed. If it exists it is reused as it is, unless a
      `source` with other splits is given: that is refused, never overwritten.
    source: None to download; a zip archive (checked against `md5`); or a directory of split
      files (any of SPLIT_FILE_NAMES; train required), copied as they are.
    urls: where to download from, tried in order until one gives the right checksum.
    md5: the archive's expected MD5 (WikiText-2 v1's by default).
    timeout: seconds without progress before a download is abandoned.

  Returns:
    A sentence saying what was done, for the log.
  """
  destination = Path(destination)
  if destination.exists() and not destination.is_dir():
    raise ParError(f"{destination} exists and is not a directory")
  if source is not None and not Path(source).exists():
    raise ParError(f"--source {source} does not exist")
  if destination.is_dir() and source is None:
    return f"{destination} exists; reusing it (delete it to fetch the data again)"
  with errors.writing(destination):
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
        raise ParError(
          f"{source} has MD5 {got}, not {md5} (wikitext-2-v1.zip); for other text, "
          "unzip it and pass the directory"
        )
      _extract_splits(Path(source), splits)
      done = f"unpacked {source} (MD5 verified) into {destination}"
    else:
      for split, path in find_split_files(source).items():
        shutil.copyfile(path, splits / f"{split}.txt")
      done = f"copied the splits of {source} into {destination}"
    if destination.is_dir():  # Only with an explicit source: the same splits, or refused.
      return _same_splits(splits, destination, source)
    os.rename(splits, destination)
    return done
  finally:
    shutil.rmtree(work, ignore_errors=True)

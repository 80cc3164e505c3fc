"""Reading split files, and getting WikiText-2 from a local HTTP server, a zip or a directory."""

import contextlib
import dataclasses
import functools
import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from helpers import counting_lines
from helpers import error_line
from helpers import run_script
from helpers import write_corpus
from par.data import download
from par.data import text
from par.errors import ParError


def test_read_text_counts_lines_and_words(tmp_path):
  path = tmp_path / "t.txt"
  path.write_bytes("\ufeff = Title = \r\n\r\n one two  three\n last line".encode("utf-8"))
  split = text.read_text(path)
  assert split.lines == [" = Title = ", "", " one two  three", " last line"]
  assert split.words == (3 + 0 + 3 + 2) + 4  # whitespace words + one per line
  assert split.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_text_keeps_blank_lines_and_ignores_the_final_terminator(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text(" \n a b \n \n", encoding="utf-8")
  assert text.read_text(path).lines == [" ", " a b ", " "]


def test_read_text_refuses_invalid_utf8_with_its_position(tmp_path):
  path = tmp_path / "t.txt"
  path.write_bytes(b"fine\nalso fine\nbad \xe9 byte\n")
  with pytest.raises(ParError, match=r"t.txt: invalid UTF-8 at line 3, byte 5 .*iconv"):
    text.read_text(path)


@pytest.mark.parametrize("content", [b"", b" \n\n  \n"])
def test_read_text_refuses_empty_files(tmp_path, content):
  path = tmp_path / "t.txt"
  path.write_bytes(content)
  with pytest.raises(ParError, match="is empty"):
    text.read_text(path)


def test_find_split_files_accepts_both_namings_and_single_files(tmp_path):
  for name in ("wiki.train.tokens", "wiki.valid.tokens", "test.txt"):
    (tmp_path / name).write_text("x\n")
  found = text.find_split_files(tmp_path)
  assert {k: v.name for k, v in found.items()} == {
    "train": "wiki.train.tokens",
    "valid": "wiki.valid.tokens",
    "test": "test.txt",
  }
  assert text.find_split_files(tmp_path / "test.txt") == {"train": tmp_path / "test.txt"}


def test_find_split_files_errors(tmp_path):
  with pytest.raises(ParError, match="does not exist"):
    text.find_split_files(tmp_path / "nothing")
  (tmp_path / "valid.txt").write_text("x\n")
  with pytest.raises(ParError, match="no train split"):
    text.find_split_files(tmp_path)
  (tmp_path / "train.txt").write_text("x\n")
  (tmp_path / "wiki.train.tokens").write_text("x\n")
  with pytest.raises(ParError, match="several train files"):
    text.find_split_files(tmp_path)


# --- WikiText-2 acquisition -----------------------------------------------------------------

SPLIT_TEXT = {split: f" = {split} = \n text of {split} \n" for split in text.SPLITS}


def make_zip():
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    for split, text in SPLIT_TEXT.items():
      z.writestr(f"wikitext-2/wiki.{split}.tokens", text)
  data = buffer.getvalue()
  return data, hashlib.md5(data).hexdigest()


@contextlib.contextmanager
def serve(directory):
  """An HTTP server for `directory` on 127.0.0.1; yields its base URL."""
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
  handler.log_message = lambda *args: None
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirror(tmp_path):
  """A local server holding a WikiText-like zip; yields (url of the zip, its md5)."""
  site = tmp_path / "site"
  site.mkdir()
  data, md5 = make_zip()
  (site / "wikitext-2-v1.zip").write_bytes(data)
  with serve(site) as base:
    yield f"{base}/wikitext-2-v1.zip", md5


def leftovers(directory):
  return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_download_with_the_right_md5_unpacks_the_splits(tmp_path, mirror):
  url, md5 = mirror
  dest = tmp_path / "data" / "wikitext-2"
  message = download.prepare("wikitext-2", dest, urls=[url], md5=md5)
  assert "MD5 verified" in message
  assert {p.name: p.read_text() for p in dest.glob("*.txt")} == {
    f"{s}.txt": t for s, t in SPLIT_TEXT.items()
  }
  source = json.loads((dest / download.SOURCE_FILE).read_text())
  assert (source["from"], source["md5"]) == (url, md5)
  assert source["splits"] == {
    s: hashlib.sha256(t.encode()).hexdigest() for s, t in SPLIT_TEXT.items()
  }
  assert leftovers(dest.parent) == []


def test_download_with_a_wrong_md5_is_refused_and_leaves_nothing(tmp_path, mirror):
  url, _ = mirror
  dest = tmp_path / "data" / "wikitext-2"
  with pytest.raises(download.DownloadError, match=r"MD5 .*expected 0+"):
    download.prepare("wikitext-2", dest, urls=[url], md5="0" * 32)
  assert not dest.parent.exists()  # Not even the directory made for it.


def test_download_falls_back_to_the_next_mirror(tmp_path, mirror):
  url, md5 = mirror
  dest = tmp_path / "wikitext-2"
  download.prepare("wikitext-2", dest, urls=[url.replace(".zip", "-missing.zip"), url], md5=md5)
  assert (dest / "train.txt").read_text() == SPLIT_TEXT["train"]


def test_existing_destination_is_reused(tmp_path, mirror):
  url, md5 = mirror
  dest = tmp_path / "wikitext-2"
  download.prepare("wikitext-2", dest, urls=[url], md5=md5)
  assert "reusing" in download.prepare("wikitext-2", dest, urls=["http://127.0.0.1:9/x"], md5=md5)


def test_local_zip_and_directory_sources(tmp_path):
  data, md5 = make_zip()
  archive = tmp_path / "wikitext-2-v1.zip"
  archive.write_bytes(data)
  download.prepare("wikitext-2", tmp_path / "a", source=archive, md5=md5)
  download.prepare("wikitext-2", tmp_path / "b", source=tmp_path / "a")
  assert (tmp_path / "b" / "valid.txt").read_text() == SPLIT_TEXT["valid"]
  with pytest.raises(ParError, match="has MD5"):
    download.prepare("wikitext-2", tmp_path / "c", source=archive)  # The real archive's MD5.
  assert not (tmp_path / "c").exists() and leftovers(tmp_path) == []


def test_fetch_script_offline_says_how_to_supply_the_data(tmp_path):
  result = run_script(
    "scripts/fetch_data.py",
    f"--dest={tmp_path / 'wt2'}",
    "--url=http://127.0.0.1:9/wikitext-2-v1.zip",
    "--timeout=5",
  )
  assert result.returncode == 1
  line = error_line(result)
  assert line.startswith("error: could not download") and "--source=" in line
  assert not (tmp_path / "wt2").exists() and leftovers(tmp_path) == []


def test_create_tfrecords_offline_says_how_to_supply_the_data(tmp_path):
  result = run_script(
    "./create_tfrecords.sh",
    f"--data_dir={tmp_path}",
    "--url",
    "http://127.0.0.1:9/wikitext-2-v1.zip",
  )
  assert "--source=" in error_line(result)
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_create_tfrecords_downloads_builds_and_then_reuses(tmp_path):
  site = tmp_path / "site"
  write_corpus(
    tmp_path / "text",
    {"train": counting_lines(1500), "valid": counting_lines(300), "test": counting_lines(200)},
  )
  site.mkdir()
  with zipfile.ZipFile(site / "wikitext-2-v1.zip", "w") as z:
    for split in text.SPLITS:
      z.write(tmp_path / "text" / f"{split}.txt", f"wikitext-2/wiki.{split}.tokens")
  md5 = hashlib.md5((site / "wikitext-2-v1.zip").read_bytes()).hexdigest()
  data = tmp_path / "data"
  with serve(site) as base:
    args = [
      "./create_tfrecords.sh",
      f"--data_dir={data}",
      "--url",
      f"{base}/wikitext-2-v1.zip",
      "--md5",
      md5,
      "--vocab_size=60",
      "--batch_size=4",
      "--seq_len=8",
    ]
    first = run_script(*args)
    assert first.returncode == 0, first.stderr
    meta = data / "wikitext2_bsz4_seqlen8" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    second = run_script(*args)
  assert second.returncode == 0, second.stderr
  assert "reusing" in second.stdout and "reused" in second.stdout
  assert meta.stat().st_mtime_ns == stamp
  assert sorted(p.name for p in data.iterdir()) == ["wikitext-2", "wikitext2_bsz4_seqlen8"]
  for split in text.SPLITS:
    assert (data / "wikitext-2" / f"{split}.txt").read_bytes() == (
      tmp_path / "text" / f"{split}.txt"
    ).read_bytes()


# --- WikiText-103, enwik8 and text8 ----------------------------------------------------------


def test_wikitext103_is_checked_against_its_published_md5(tmp_path):
  site = tmp_path / "site"
  site.mkdir()
  data, md5 = make_zip()
  (site / "wikitext-103-v1.zip").write_bytes(data)
  with serve(site) as base:
    url = f"{base}/wikitext-103-v1.zip"
    with pytest.raises(download.DownloadError, match="expected 9ddaacaf6af0710eda8c456decff7832"):
      download.prepare("wikitext-103", tmp_path / "a", urls=[url])
    assert "MD5 verified" in download.prepare("wikitext-103", tmp_path / "b", urls=[url], md5=md5)
  assert (tmp_path / "b" / "valid.txt").read_text() == SPLIT_TEXT["valid"]
  assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []


@pytest.fixture
def small_enwik8(monkeypatch):
  """enwik8 of 10,000,123 bytes (the real one has 10^8): bytes beyond ASCII, cut mid-way."""
  size = 2 * 5_000_000 + 123
  pattern = "naïve <page> ☃ text\n".encode()
  data = (pattern * (size // len(pattern) + 1))[:size]
  corpora = dict(download.CORPORA)
  for name in ("enwik8", "text8"):
    corpora[name] = dataclasses.replace(corpora[name], size=size)
  monkeypatch.setattr(download, "CORPORA", corpora)
  return data


def test_enwik8_is_downloaded_and_cut_as_transformer_xl_cuts_it(tmp_path, small_enwik8):
  site = tmp_path / "site"
  site.mkdir()
  with zipfile.ZipFile(site / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("enwik8", small_enwik8)
  with serve(site) as base:
    message = download.prepare("enwik8", tmp_path / "enwik8", urls=[f"{base}/enwik8.zip"])
  assert "recorded in SOURCE.json" in message  # No published MD5 to check against.
  dest = tmp_path / "enwik8"
  n = len(small_enwik8)
  assert (dest / "train.txt").read_bytes() == small_enwik8[: n - 10_000_000]
  assert (dest / "valid.txt").read_bytes() == small_enwik8[n - 10_000_000 : n - 5_000_000]
  assert (dest / "test.txt").read_bytes() == small_enwik8[n - 5_000_000 :]
  source = json.loads((dest / download.SOURCE_FILE).read_text())
  assert source["md5"] == hashlib.md5((site / "enwik8.zip").read_bytes()).hexdigest()
  assert source["sha256"] == hashlib.sha256((site / "enwik8.zip").read_bytes()).hexdigest()


def test_text8_from_its_unpacked_file_and_a_wrong_size_refused(tmp_path, small_enwik8):
  (tmp_path / "text8").write_bytes(small_enwik8)
  assert "cut" in download.prepare("text8", tmp_path / "a", source=tmp_path / "text8")
  assert (tmp_path / "a" / "test.txt").read_bytes() == small_enwik8[-5_000_000:]
  (tmp_path / "short").write_bytes(small_enwik8[:-1])
  with pytest.raises(ParError, match="has 10,000,122 bytes, not the published 10,000,123"):
    download.prepare("text8", tmp_path / "b", source=tmp_path / "short")
  assert not (tmp_path / "b").exists() and leftovers(tmp_path) == []


def test_a_member_or_file_of_the_wrong_size_is_refused_before_it_is_read(
  tmp_path, small_enwik8, monkeypatch
):
  # A member that inflates to 64 MB (the real case: 3 GB from 3 MB) is refused by its
  # declared size, before a byte of it is read; an unpacked file by its size on disk.
  _zip_of_zeros(tmp_path / "enwik8.zip", 64, 1 << 20)
  read = []
  original = zipfile.ZipExtFile.read
  monkeypatch.setattr(
    zipfile.ZipExtFile, "read", lambda self, n=-1: read.append(n) or original(self, n)
  )
  with pytest.raises(ParError, match="has 67,108,864 bytes, not the published 10,000,123"):
    download.prepare("enwik8", tmp_path / "a", source=tmp_path / "enwik8.zip")
  assert read == [] and not (tmp_path / "a").exists() and leftovers(tmp_path) == []
  with open(tmp_path / "text8", "wb") as f:
    f.truncate(3 * 10**9)  # sparse: no disk, no memory
  with pytest.raises(ParError, match="has 3,000,000,000 bytes, not the published"):
    download.prepare("text8", tmp_path / "b", source=tmp_path / "text8")
  assert not (tmp_path / "b").exists()


def _zip_of_zeros(path, blocks, block):
  """A zip of one member, enwik8, of blocks x block zero bytes (compressed to ~0.1%)."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("enwik8", "w") as member:
    for _ in range(blocks):
      member.write(bytes(block))
  return path


def _zip(path, members, method=zipfile.ZIP_DEFLATED):
  with zipfile.ZipFile(path, "w", method) as z:
    for name, data in members.items():
      z.writestr(name, data)
  return path


def test_damaged_archives_are_one_line(tmp_path, small_enwik8):
  good = _zip(tmp_path / "good.zip", {"enwik8": small_enwik8}).read_bytes()
  cases = {}
  broken = bytearray(good)  # The deflate stream broken in the middle.
  broken[len(good) // 2 : len(good) // 2 + 64] = bytes(64)
  cases["deflate"] = (bytes(broken), r"enwik8\.zip is damaged")
  cases["truncated"] = (good[: len(good) // 2], "is a damaged or truncated zip archive")
  stored = _zip(tmp_path / "stored.zip", {"enwik8": small_enwik8}, zipfile.ZIP_STORED)
  flipped = bytearray(stored.read_bytes())
  flipped[1000] ^= 0xFF  # Inside the member's bytes: only its CRC tells.
  cases["crc"] = (bytes(flipped), r"is damaged: Bad CRC-32 .*do not match its checksum")
  for name, (data, message) in cases.items():
    (tmp_path / name).mkdir()
    archive = tmp_path / name / "enwik8.zip"
    archive.write_bytes(data)
    with pytest.raises(ParError, match=message):
      download.prepare("enwik8", tmp_path / name / "out", source=archive)
    assert not (tmp_path / name / "out").exists() and leftovers(tmp_path / name) == []


@pytest.mark.slow
def test_the_scripts_say_a_damaged_archive_in_one_line(tmp_path):
  good = _zip_of_zeros(tmp_path / "good.zip", 100, 1_000_000).read_bytes()  # the real size
  broken = bytearray(good)
  broken[len(good) // 2 : len(good) // 2 + 64] = bytes(64)
  (tmp_path / "enwik8.zip").write_bytes(bytes(broken))
  for command in (
    ["scripts/fetch_data.py", "--dataset=enwik8", f"--dest={tmp_path / 'a'}"],
    ["./create_tfrecords.sh", "--dataset=enwik8", f"--data_dir={tmp_path / 'data'}"],
  ):
    result = run_script(*command, f"--source={tmp_path / 'enwik8.zip'}")
    assert "enwik8.zip is damaged" in error_line(result)
  assert not (tmp_path / "a").exists() and not (tmp_path / "data" / "enwik8").exists()


def test_an_archive_with_two_files_of_one_name_is_refused(tmp_path, small_enwik8):
  archive = _zip(tmp_path / "enwik8.zip", {"enwik8": small_enwik8, "old/enwik8": b"x"})
  with pytest.raises(ParError, match="holds both enwik8 and old/enwik8"):
    download.prepare("enwik8", tmp_path / "a", source=archive)
  splits = {f"wikitext-2/wiki.{s}.tokens": t for s, t in SPLIT_TEXT.items()}
  archive = _zip(tmp_path / "wt2.zip", dict(splits, **{"old/wiki.test.tokens": "x"}))
  with pytest.raises(ParError, match=r"holds both wikitext-2/wiki\.test\.tokens and old/"):
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    download.prepare("wikitext-2", tmp_path / "b", source=archive, md5=md5)


def test_a_broken_link_among_the_split_files_is_named(tmp_path):
  source = write_corpus(tmp_path / "text", {"train": ["a b c"]})
  (source / "valid.txt").symlink_to(tmp_path / "nowhere.txt")
  with pytest.raises(ParError, match=r"valid\.txt is a broken link \(to .*nowhere\.txt\)"):
    text.find_split_files(source)
  with pytest.raises(ParError, match="is a broken link"):
    download.prepare("wikitext-2", tmp_path / "out", source=source)
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_create_tfrecords_builds_a_word_dataset_of_a_served_wikitext103(tmp_path):
  site = tmp_path / "site"
  site.mkdir()
  lines = {split: counting_lines(n) for split, n in (("train", 900), ("valid", 200), ("test", 200))}
  write_corpus(tmp_path / "text", lines)
  with zipfile.ZipFile(site / "wikitext-103-v1.zip", "w") as z:
    for split in text.SPLITS:
      z.write(tmp_path / "text" / f"{split}.txt", f"wikitext-103/wiki.{split}.tokens")
  md5 = hashlib.md5((site / "wikitext-103-v1.zip").read_bytes()).hexdigest()
  with serve(site) as base:
    result = run_script(
      "./create_tfrecords.sh",
      "--dataset=wikitext-103",
      f"--data_dir={tmp_path / 'data'}",
      f"--url={base}/wikitext-103-v1.zip",
      f"--md5={md5}",
      "--batch_size=4",
      "--seq_len=8",
    )
  assert result.returncode == 0, result.stderr[-2000:]
  meta = json.loads((tmp_path / "data" / "wikitext103_word_bsz4_seqlen8" / "meta.json").read_text())
  assert meta["tokenizer"] == "word"
  words = " ".join(lines["train"]).split()
  assert meta["vocab_size"] == len(set(words)) + 2  # <unk>, <eos> and every train word
  assert meta["splits"]["valid"]["tokens"] == sum(len(line.split()) + 1 for line in lines["valid"])


def naive_split(data, binary):
  """Reference: the whole file at once, as the definition in par/data/text.py reads."""
  if not binary:
    data = data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
  newline = b"\n" if binary else "\n"
  lines = data.split(newline)
  if not lines[-1]:
    lines.pop()
  words = sum(len(line.split()) for line in lines) + len(lines)
  characters = sum(map(len, lines)) + len(lines)
  return lines, words, characters


PIECE_TEXTS = [
  "\ufeff = Title = \r\n\r\n one two  three\r\n last line",  # BOM, CRLF, no final newline
  "é€ word\twith tabs\n\n\nand a very long line " + "x" * 50 + " end\n",
  "one-line text8 style without any newline at all " * 5,
  "  \u00a0nbsp\u00a0split  words\u2028and a line separator\n",
]


@pytest.mark.parametrize("piece_bytes", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("whole_lines", [True, False])
@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("content", PIECE_TEXTS)
def test_split_reader_pieces_make_the_whole_text_and_its_counts(
  tmp_path, content, binary, whole_lines, piece_bytes
):
  path = tmp_path / "t.txt"
  path.write_bytes(content.encode("utf-8"))
  lines, words, characters = naive_split(path.read_bytes(), binary)
  reader = text.SplitReader(path, binary, whole_lines, piece_bytes)
  pieces = list(reader)
  empty = b"" if binary else ""
  newline = b"\n" if binary else "\n"
  assert empty.join(pieces) == newline.join(lines) + (
    newline if reader.stats.ends_with_newline else empty
  )
  stats = reader.stats
  assert (stats.lines, stats.words, stats.characters) == (len(lines), words, characters)
  assert stats.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
  if binary and not whole_lines:  # Bytes for the byte tokenizer: cut anywhere.
    assert all(len(piece) == piece_bytes for piece in pieces[:-1])
  else:  # A piece ends after a line, or a space or tab if allowed.
    for piece in pieces[:-1]:
      assert piece[-1:] in ((newline,) if whole_lines else (newline, " ", "\t"))
  assert text.read_text(path, binary).lines == lines


@pytest.mark.parametrize("piece_bytes", [1, 2, 5, 1 << 20])
def test_split_reader_places_invalid_utf8_exactly_across_pieces(tmp_path, piece_bytes):
  path = tmp_path / "t.txt"
  path.write_bytes(b"fine\nalso fine\nab cd \xe9 byte\n")
  with pytest.raises(ParError, match=r"invalid UTF-8 at line 3, byte 7 "):
    list(text.SplitReader(path, whole_lines=False, piece_bytes=piece_bytes))

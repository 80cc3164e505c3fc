"""build_dataset and scripts/build_data.py end to end, on text whose tokens can be traced."""

import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT
from helpers import counting_lines
from helpers import error_line
from helpers import run_script
from helpers import write_corpus
from par.config import DataConfig
from par.data import records
from par.data import text
from par.data import tokenizer
from par.data.build import build_dataset
from par.errors import ParError

CONFIG = DataConfig(vocab_size=60, batch_size=3, seq_len=7)


def read_pairs(data_dir, split):
  pairs = list(records.load_dataset(data_dir, split).as_numpy_iterator())
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def stream_from_records(inputs, targets):
  """Undoes context batching: lane by lane, the first input then every target."""
  lanes = [
    np.concatenate([inputs[0, b, :1], targets[:, b].reshape(-1)]) for b in range(inputs.shape[1])
  ]
  stream = np.concatenate([lanes[0]] + [lane[1:] for lane in lanes[1:]])
  return stream[stream != records.PAD_ID]


def test_records_reproduce_each_split_stream_exactly(tmp_path, counting_corpus):
  _meta, built = build_dataset(counting_corpus, tmp_path / "ds", CONFIG)
  assert built
  model = (tmp_path / "ds" / records.TOKENIZER_FILE).read_bytes()
  processor = tokenizer.load(model)
  for split in ("train", "valid", "test"):
    lines = (counting_corpus / f"{split}.txt").read_text().splitlines()
    expected = tokenizer.Tokenizer(model).tokenize(lines)
    got = stream_from_records(*read_pairs(tmp_path / "ds", split))
    np.testing.assert_array_equal(got, expected)
    # And the ids are the text: decoding line by line gives the file back.
    ends = np.nonzero(got == tokenizer.EOS_ID)[0]
    starts = np.concatenate([[0], ends[:-1] + 1])
    assert [processor.decode(got[a:b].tolist()) for a, b in zip(starts, ends)] == lines


def test_meta_counts(tmp_path, counting_corpus):
  meta, _ = build_dataset(counting_corpus, tmp_path / "ds", CONFIG)
  assert (meta.vocab_size, meta.batch_size, meta.seq_len) == (60, 3, 7)
  assert meta.eos_id == tokenizer.EOS_ID and meta.pad_id == records.PAD_ID
  model = tmp_path / "ds" / records.TOKENIZER_FILE
  assert meta.tokenizer_sha256 == tokenizer.sha256(model.read_bytes())
  for split, info in meta.splits.items():
    lines = (counting_corpus / f"{split}.txt").read_text().splitlines()
    assert info.lines == len(lines)
    assert info.words == sum(len(line.split()) + 1 for line in lines)
    n = len(tokenizer.Tokenizer(model.read_bytes()).tokenize(lines))
    assert info.tokens == n and info.targets == n - 1 and info.dropped_tokens == 0
    assert info.records == -(-(n - 1) // (3 * 7))
    assert info.padding == info.records * 3 * 7 - (n - 1)
  assert meta == records.load_meta(tmp_path / "ds")


def test_drop_remainder_loses_fewer_than_one_record_of_tokens(tmp_path, counting_corpus):
  config = dataclasses.replace(CONFIG, remainder="drop", shards=4)
  meta, _ = build_dataset(counting_corpus, tmp_path / "ds", config)
  for info in meta.splits.values():
    assert info.padding == 0 and 0 <= info.dropped_tokens < 3 * 7
    assert info.targets == info.records * 3 * 7 == info.tokens - 1 - info.dropped_tokens


def test_sharded_build_reads_back_equal_to_one_shard(tmp_path, counting_corpus):
  build_dataset(counting_corpus, tmp_path / "one", CONFIG)
  meta, _ = build_dataset(counting_corpus, tmp_path / "many", dataclasses.replace(CONFIG, shards=5))
  assert all(len(info.shards) == 5 for info in meta.splits.values())
  for split in meta.splits:
    one, many = read_pairs(tmp_path / "one", split), read_pairs(tmp_path / "many", split)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


def test_given_tokenizer_is_used_as_is(tmp_path, counting_corpus):
  first, _ = build_dataset(counting_corpus, tmp_path / "a", CONFIG)
  model = tmp_path / "a" / records.TOKENIZER_FILE
  second, _ = build_dataset(
    counting_corpus, tmp_path / "b", dataclasses.replace(CONFIG, vocab_size=12000), sp_model=model
  )
  assert second.tokenizer_sha256 == first.tokenizer_sha256 and second.vocab_size == 60
  np.testing.assert_array_equal(
    read_pairs(tmp_path / "a", "valid")[1], read_pairs(tmp_path / "b", "valid")[1]
  )


def test_single_file_input_is_the_train_split(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_text("".join(line + "\n" for line in counting_lines(300)))
  meta, _ = build_dataset(path, tmp_path / "ds", CONFIG)
  assert list(meta.splits) == ["train"]


def test_existing_output_is_refused_reused_or_overwritten(tmp_path, counting_corpus):
  out = tmp_path / "ds"
  build_dataset(counting_corpus, out, CONFIG)
  stamp = (out / records.META_FILE).stat().st_mtime_ns
  with pytest.raises(ParError, match="already exists; pass --overwrite"):
    build_dataset(counting_corpus, out, CONFIG)
  _, built = build_dataset(counting_corpus, out, CONFIG, reuse_existing=True)
  assert not built and (out / records.META_FILE).stat().st_mtime_ns == stamp
  other = dataclasses.replace(CONFIG, seq_len=5)
  with pytest.raises(ParError, match="already exists"):  # Different settings: not reused.
    build_dataset(counting_corpus, out, other, reuse_existing=True)
  _meta, built = build_dataset(counting_corpus, out, other, overwrite=True)
  assert built and records.load_meta(out).seq_len == 5
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "text"]


def test_overwrite_never_replaces_a_directory_that_is_not_a_dataset(tmp_path, counting_corpus):
  (tmp_path / "precious").mkdir()
  (tmp_path / "precious" / "notes.txt").write_text("mine")
  with pytest.raises(ParError, match="not a built dataset; not replacing it"):
    build_dataset(counting_corpus, tmp_path / "precious", CONFIG, overwrite=True)
  assert (tmp_path / "precious" / "notes.txt").read_text() == "mine"


def _bad_corpus(kind, tmp_path):
  text = tmp_path / "text"
  good = {"train": counting_lines(1500), "valid": counting_lines(400)}
  if kind == "missing":
    return text, "does not exist", CONFIG
  if kind == "empty":
    write_corpus(text, dict(good, valid=[]))
    return text, "valid.txt is empty", CONFIG
  if kind == "too small":
    write_corpus(text, dict(good, valid=["w1 w2"]))
    return text, r"the valid split .* has \d+ tokens; .* needs at least 22", CONFIG
  if kind == "vocab":
    write_corpus(text, good)
    return (
      text,
      r"vocab_size 5000 is more than .* at most \d+ pieces",
      dataclasses.replace(CONFIG, vocab_size=5000),
    )
  if kind == "undecodable":
    write_corpus(text, good)
    with open(text / "valid.txt", "ab") as f:
      f.write(b"caf\xe9\n")
    return text, "invalid UTF-8 at line 401", CONFIG
  raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty", "too small", "vocab", "undecodable"])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, kind):
  text, message, config = _bad_corpus(kind, tmp_path)
  before = sorted(p.name for p in tmp_path.iterdir())
  with pytest.raises(ParError, match=message):
    build_dataset(text, tmp_path / "out" / "ds", config)
  assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_script_reports_bad_input_in_one_line(tmp_path, counting_corpus):
  (tmp_path / "ds").mkdir()
  result = run_script(
    "scripts/build_data.py", f"--input={counting_corpus}", f"--output_dir={tmp_path / 'ds'}"
  )
  assert result.returncode == 1
  assert (
    error_line(result) == f"error: {tmp_path / 'ds'} already exists; pass --overwrite to replace it"
  )


# A given tokenizer and many small shards: a quick build whose writing phase still lasts.
INTERRUPTED_CONFIG = DataConfig(batch_size=4, seq_len=8, shards=64)


def _start_build(corpus_dir, out, model):
  return subprocess.Popen(
    [
      sys.executable,
      "scripts/build_data.py",
      f"--input={corpus_dir}",
      f"--output_dir={out}",
      f"--sp_model={model}",
      "--batch_size=4",
      "--seq_len=8",
      "--shards=64",
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_for_partial(process, parent, timeout=120):
  """Waits until the build has started writing its temporary directory."""
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if any(p.name.startswith(".ds.partial-") for p in parent.iterdir()):
      return True
    time.sleep(0.002)
  return False


@pytest.fixture
def big_corpus(tmp_path):
  """A corpus whose build writes for a moment, and a tokenizer for it."""
  model = tmp_path / "counting.model"
  model.write_bytes(tokenizer.train(counting_lines(2000), CONFIG))
  return write_corpus(tmp_path / "text", {"train": counting_lines(60_000)}), model


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, big_corpus, sig):
  corpus_dir, model = big_corpus
  out = tmp_path / "ds"
  process = _start_build(corpus_dir, out, model)
  if not _wait_for_partial(process, tmp_path):
    process.kill()
    pytest.fail(f"the build ended before writing: {process.communicate()[1][-2000:]}")
  process.send_signal(sig)
  _, stderr = process.communicate(timeout=120)
  report = f"exit {process.returncode}; stderr:\n{stderr[-3000:]}"
  assert process.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig), report
  assert not out.exists(), report
  partials = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
  if sig != signal.SIGKILL:
    assert partials == [], report
  else:  # The next build removes what a killed one left.
    build_dataset(corpus_dir, out, INTERRUPTED_CONFIG, sp_model=model)
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")] == []
    assert records.load_meta(out).splits["train"].records > 0


def dataset_files(directory):
  """Every file of a built dataset, by relative path, with meta.json's source paths blanked."""
  files = {
    p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()
  }
  meta = records.load_meta(directory)
  files["meta.json"] = (
    dataclasses.replace(
      meta, splits={s: dataclasses.replace(m, source="") for s, m in meta.splits.items()}
    )
    .to_json()
    .encode()
  )
  return files


@pytest.mark.parametrize("kind", ["sentencepiece", "word", "char"])
def test_reading_in_tiny_pieces_builds_the_same_dataset(
  tmp_path, counting_corpus, monkeypatch, kind
):
  config = dataclasses.replace(CONFIG, tokenizer=kind, shards=2)
  if kind != "sentencepiece":
    config = dataclasses.replace(config, vocab_size=DataConfig().vocab_size)
  build_dataset(counting_corpus, tmp_path / "whole", config)
  monkeypatch.setattr(text, "PIECE_BYTES", 5)  # A piece is then a word or a line.
  monkeypatch.setattr(records, "_CHUNK_RECORDS", 2)  # and records are read two at a time.
  build_dataset(counting_corpus, tmp_path / "pieces", config)
  assert dataset_files(tmp_path / "pieces") == dataset_files(tmp_path / "whole")


def test_word_and_char_builds_import_no_tensorflow(tmp_path, counting_corpus):
  script = (
    "import sys\n"
    "from par.config import DataConfig\n"
    "from par.data.build import build_dataset\n"
    f"for kind in ('word', 'char'):\n"
    f"  build_dataset({str(counting_corpus)!r}, {str(tmp_path)!r} + '/' + kind,\n"
    "                DataConfig(tokenizer=kind, batch_size=3, seq_len=7))\n"
    "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
  )
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"
  assert records.load_meta(tmp_path / "char").tokenizer == "char"


def test_sample_lines_is_a_fixed_uniform_sample_in_order():
  lines = [f"line {i}" if i % 3 else "  " for i in range(3000)]  # a third of them blank
  nonblank = [line for line in lines if line.strip()]
  sample = tokenizer.sample_lines(iter(lines), 500)
  assert sample == tokenizer.sample_lines(lines, 500)  # the same every time
  assert len(sample) == 500 and len(set(sample)) == 500
  assert sample == sorted(sample, key=nonblank.index)  # in the text's order
  assert tokenizer.sample_lines(lines, 500, seed=1) != sample
  assert tokenizer.sample_lines(lines, 5000) == nonblank  # all of them when they are fewer
  # Uniform: each half of the text gives about half of the sample (binomial sd ~11).
  assert abs(sum(nonblank.index(s) < 1000 for s in sample) - 250) < 50


def test_sentencepiece_trains_on_the_sample_it_is_given(tmp_path, counting_corpus):
  config = dataclasses.replace(CONFIG, input_sentence_size=40)
  meta, _ = build_dataset(counting_corpus, tmp_path / "ds", config)
  lines = (counting_corpus / "train.txt").read_text().splitlines()
  expected = tokenizer.train(tokenizer.sample_lines(lines, 40), CONFIG)
  assert (tmp_path / "ds" / records.TOKENIZER_FILE).read_bytes() == expected
  assert expected != tokenizer.train(lines, CONFIG)
  assert meta.config.input_sentence_size == 40


DROP_LINES = [
  "= Title é =",
  "",
  "the <unk> cat sat  on\tthe mat , é€ twice",
  "a b c d e f g h",
  "",
  "last words here before the end é",
] * 9


def _naive_kept_text(text_, kind, line_starts, cut):
  """The text before token `cut` of a split, the whole text tokenized at once: each line's
  token starts (words by whitespace, bytes, or SentencePiece's), then its end of line."""
  starts, offset = [], 0
  lines = text_.split("\n" if kind != "char" else b"\n")
  if not lines[-1]:
    lines.pop()
  for line in lines:
    if kind == "word":
      position = 0
      for word in line.split():
        position = line.index(word, position)
        starts.append(offset + position)
        position += len(word)
    elif kind == "char":
      starts += [offset + k for k in range(len(line))]
    else:
      starts += [offset + at for at in line_starts(line)]
    starts.append(offset + len(line))  # its end of line
    offset += len(line) + 1
  return text_[: starts[cut]] if cut < len(starts) else text_


@pytest.mark.parametrize("final_newline,batch_size,seq_len", [(True, 5, 9), (False, 4, 8)])
@pytest.mark.parametrize("kind", ["word", "char", "sentencepiece"])
def test_dropped_tails_leave_out_their_words_and_characters(
  tmp_path, monkeypatch, kind, final_newline, batch_size, seq_len
):
  # Word perplexity and bpc divide the NLL of the scored tokens: under "drop" by the words
  # and characters of the text before the dropped tail (a word counts when its first token is
  # kept), not by the whole split's; and never the first token's text, which nothing predicts
  # (a word counts when its first token is predicted).
  body = "\n".join(DROP_LINES) + ("\n" if final_newline else "")
  corpus = tmp_path / "text"
  corpus.mkdir()
  for split in ("train", "valid"):
    (corpus / f"{split}.txt").write_text(body, encoding="utf-8")
  config = DataConfig(
    tokenizer=kind, vocab_size=30, batch_size=batch_size, seq_len=seq_len, remainder="drop"
  )
  if kind != "sentencepiece":
    config = dataclasses.replace(config, vocab_size=DataConfig().vocab_size)
  monkeypatch.setattr(text, "PIECE_BYTES", 23)  # The tail spans several pieces.
  meta, _ = build_dataset(corpus, tmp_path / "ds", config)
  split = meta.splits["valid"]
  assert 0 < split.dropped_tokens < batch_size * seq_len
  cut = split.tokens - split.dropped_tokens
  words, characters = split.scored
  if kind == "word":
    assert words == cut - 1 == split.targets  # every token a word, every end of line one more
  if kind == "char":
    assert characters == cut - 1 == split.targets  # every token a byte, every end of line too
  data = body.encode("utf-8") if kind == "char" else body
  line_starts = None
  if kind == "sentencepiece":
    line_starts = tokenizer.Tokenizer((tmp_path / "ds" / "spm.model").read_bytes()).starts
    line_starts = (lambda starts: lambda line: starts([line])[0])(line_starts)
  newline = b"\n" if kind == "char" else "\n"

  def counts(cut):  # of the text before token `cut`
    kept = _naive_kept_text(data, kind, line_starts, cut)
    return len(kept.split()) + kept.count(newline), len(kept)

  # The first token's text, its word even when the token is SentencePiece's bare "▁".
  head = (1, counts(1)[1])
  assert head == (split.head_words, split.head_characters)
  assert 0 <= head[1] <= len(DROP_LINES[0]) + 1  # SentencePiece's "▁" has none
  assert (words, characters) == (counts(cut)[0] - head[0], counts(cut)[1] - head[1])
  assert (words, characters) < (split.words, split.characters)
  padded = build_dataset(corpus, tmp_path / "padded", dataclasses.replace(config, remainder="pad"))[
    0
  ].splits["valid"]
  assert padded.scored == (split.words - head[0], split.characters - head[1])
  assert (padded.words, padded.characters) == (split.words, split.characters)

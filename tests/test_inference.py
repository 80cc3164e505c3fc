"""Using a trained run: evaluation on any split with other memory and segment lengths,
incremental generation, and the scripts that do both."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par import generate
from par import runs
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.model.par_model import ParModel
from par.train import evaluate
from par.train import trainer

MODEL = ModelConfig(
  d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.1
)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("inference")
  counting_dataset(root, valid_lines=60, test_lines=50)
  counting_dataset(root, valid_lines=60, test_lines=50, vocab_size=50, name="other")
  return root


@pytest.fixture(scope="session")
def run_dir(data):
  """A finished SuperNet search of 16 steps."""
  config = TrainConfig(
    model=MODEL,
    data_dir=str(data / "ds"),
    train_steps=16,
    max_lr=3e-3,
    warmup_steps=3,
    steps_per_loop=8,
    log_every=8,
    checkpoint_every=8,
    plot_every=0,
    plots=False,
    seed=5,
  )
  trainer.train_and_evaluate(config, data / "run")
  return data / "run"


# --- evaluation -------------------------------------------------------------------------------


def test_resegment_keeps_every_lane_continuous(data):
  windows, meta = records.read_records(data / "ds", "valid")
  reference = [(x.numpy(), y.numpy()) for x, y in records.load_dataset(data / "ds", "valid")]
  inputs, targets = records.resegment(windows, meta.seq_len)
  np.testing.assert_array_equal(inputs, np.stack([x for x, _ in reference]))
  np.testing.assert_array_equal(targets, np.stack([y for _, y in reference]))
  for length in (3, 13, 1000):
    cut_inputs, cut_targets = records.resegment(windows, length)
    assert cut_inputs.shape[1:] == (meta.batch_size, length)
    for lane in range(meta.batch_size):
      lane_targets = cut_targets[:, lane].reshape(-1)
      n = targets[:, lane].size
      np.testing.assert_array_equal(lane_targets[:n], targets[:, lane].reshape(-1))
      assert np.all(lane_targets[n:] == records.PAD_ID)
      # Inputs are the targets shifted by one: the text continues across segments.
      lane_inputs = cut_inputs[:, lane].reshape(-1)
      valid = np.flatnonzero(lane_targets[: n - 1] >= 0)
      np.testing.assert_array_equal(lane_inputs[valid + 1], lane_targets[valid])


def test_segment_length_does_not_matter_with_memory_covering_the_lane(data):
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, eval_mode="expected"))
  model.build()
  windows, meta = records.read_records(data / "ds", "valid")
  lane = windows.shape[0] * meta.seq_len
  results = [
    evaluate.evaluate_split(model, data / "ds", "valid", lane, seq_len)[0] for seq_len in (0, 5, 32)
  ]
  assert {r.tokens for r in results} == {meta.splits["valid"].targets}
  for result in results[1:]:
    assert result.nll == pytest.approx(results[0].nll, rel=1e-5)
  short = evaluate.evaluate_split(model, data / "ds", "valid", 2, 5)[0]
  assert short.nll != pytest.approx(results[0].nll, rel=1e-5)  # Memory does matter.


def _one_pass_nll(model, texts):
  """The summed NLL of each text[1:] given all that precedes each token: one segment per text,
  no memory (the texts of one length side by side in one batch: they do not see each other)."""
  total = 0.0
  for length in sorted({len(t) for t in texts}):
    batch = np.stack([t for t in texts if len(t) == length])
    tokens = tf.constant(np.maximum(batch[:, :-1], 0), tf.int32)
    hidden, _ = model(tokens, memory=model.initial_memory(len(batch), 0))
    total += float(model.nll(hidden, tf.constant(batch[:, 1:], tf.int32))[0])
  return total


def test_evaluation_lanes_score_every_token_once(data):
  # --eval_batch_size cuts the split's continuous text into its own lanes: every token after
  # the first is a target exactly once, and with a memory that covers a lane each lane's NLL
  # is that of one pass over its text.
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, eval_mode="expected"))
  model.build()
  windows, meta = records.read_records(data / "ds", "valid")
  stream = records.stream_of(windows)
  assert len(stream) == meta.splits["valid"].tokens
  rebuilt, _, _ = records.context_batch(stream, meta.batch_size, meta.seq_len)
  np.testing.assert_array_equal(rebuilt, windows)
  for lanes, seq_len in ((1, 0), (3, 5), (7, 0), (400, 4)):
    split = evaluate.layout(meta, "valid", lanes, seq_len)
    inputs, targets = records.relane(stream, lanes, split.seq_len)
    assert targets.shape == (split.segments, lanes, split.seq_len)
    flat = targets.transpose(1, 0, 2).reshape(-1)
    np.testing.assert_array_equal(flat[flat != records.PAD_ID], stream[1:])
    lane_inputs = inputs.transpose(1, 0, 2).reshape(lanes, -1)  # each lane continuous
    lane_targets = targets.transpose(1, 0, 2).reshape(lanes, -1)
    real = lane_targets[:, :-1] >= 0
    np.testing.assert_array_equal(lane_inputs[:, 1:][real], lane_targets[:, :-1][real])
    result, _, mem_len = evaluate.evaluate_split(
      model, data / "ds", "valid", 10**6, seq_len, lanes=lanes
    )
    assert mem_len == split.lane_length  # A memory beyond the longest lane is cut to it.
    assert result.tokens == len(stream) - 1
    length = split.lane_length
    texts = [stream[b * length : (b + 1) * length + 1] for b in range(lanes)]
    expected = _one_pass_nll(model, [t for t in texts if len(t) > 1])
    assert result.nll == pytest.approx(expected, rel=1e-5)


def test_loaded_models_reproduce_the_runs_results(run_dir):
  """Checkpoint and export, loaded without pickle, give the run's own final test metrics."""
  run = runs.read_run(run_dir)
  saved = json.loads((run_dir / runs.RESULTS_FILE).read_text())["test"]
  for source in ("export", "checkpoint"):
    model, origin = runs.load_model(run, source)
    result, _, _ = evaluate.evaluate_split(
      model, run.config.data_dir, "test", run.eval_mem_len, tokenizer_sha256=run.tokenizer_sha256
    )
    assert origin.endswith("model.keras" if source == "export" else "ckpt-16")
    assert (result.tokens, result.words) == (saved["tokens"], saved["words"])
    assert result.token_perplexity == pytest.approx(saved["token_perplexity"], rel=1e-6)
    assert result.word_perplexity == pytest.approx(saved["word_perplexity"], rel=1e-6)


@pytest.mark.slow
def test_evaluate_script(run_dir):
  result = run_script(
    "scripts/evaluate.py",
    f"--model_dir={run_dir}",
    "--eval_mem_len=30",
    "--seq_len=5",
    "--eval_mode=expected",
  )
  assert result.returncode == 0, result.stderr
  printed = json.loads(result.stdout)
  assert (printed["mem_len"], printed["seq_len"], printed["eval_mode"]) == (30, 5, "expected")
  run = runs.read_run(run_dir)
  model, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
  expected, _, _ = evaluate.evaluate_split(model, run.config.data_dir, "valid", 30, 5)
  assert printed["split"] == "valid" and printed["tokens"] == expected.tokens
  assert printed["token_perplexity"] == pytest.approx(expected.token_perplexity, rel=1e-6)
  assert printed["word_perplexity"] == pytest.approx(expected.word_perplexity, rel=1e-6)


def test_evaluate_refuses_bad_runs_and_datasets(run_dir, data):
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={run_dir}", f"--data_dir={data / 'other'}"
  )
  assert "was built with another tokenizer" in error_line(result)
  assert "is not a run directory" in error_line(
    run_script("scripts/evaluate.py", f"--model_dir={data}")
  )
  assert "has no nope split" in error_line(
    run_script("scripts/evaluate.py", f"--model_dir={run_dir}", "--split=nope")
  )


# --- generation -------------------------------------------------------------------------------


def reference_probabilities(log_probs, temperature, top_k, top_p):
  """Sorting everything, the obvious way."""
  p = np.exp(np.asarray(log_probs, float) / temperature)
  p /= p.sum()
  ranked = sorted(range(len(p)), key=lambda i: (-p[i], i))
  if top_k:
    ranked = ranked[:top_k]
  q = p[ranked] / p[ranked].sum()
  kept, mass = [], 0.0
  for i, prob in zip(ranked, q):
    if mass >= top_p:
      break
    kept.append(i)
    mass += prob
  out = np.zeros_like(p)
  out[kept] = p[kept] / p[kept].sum()
  return out


@pytest.mark.parametrize(
  "temperature, top_k, top_p",
  [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 5, 1.0), (1.0, 0, 0.6), (0.8, 7, 0.9), (1.0, 1, 1.0)],
)
def test_sampling_probabilities_against_a_reference(temperature, top_k, top_p):
  rng = np.random.default_rng(1)
  log_probs = np.log(rng.dirichlet(np.ones(30) * 0.5))
  probs = generate.sampling_probabilities(log_probs, temperature, top_k, top_p)
  np.testing.assert_allclose(
    probs, reference_probabilities(log_probs, temperature, top_k, top_p), atol=1e-12
  )
  assert probs.sum() == pytest.approx(1.0)
  if top_k:
    assert np.count_nonzero(probs) <= top_k
  greedy = generate.sampling_probabilities(log_probs, 0.0)
  assert greedy[np.argmax(log_probs)] == 1.0 and greedy.sum() == 1.0


@pytest.mark.parametrize(
  "changes", [dict(architecture="sfs"), dict(eval_mode="expected"), dict(eval_mode="argmax")]
)
def test_incremental_log_probabilities_equal_one_forward_pass(changes):
  config = dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, mem_len=4, **changes)
  model = ParModel(config)
  model.build()
  ids = np.random.default_rng(2).integers(0, 60, 23).tolist()
  hidden, _ = model(tf.constant([ids]), memory=model.initial_memory(1, 0))
  whole = model.log_probs(hidden)[0].numpy()
  generator = generate.Generator(model, mem_len=30)  # Covers the whole text.
  np.testing.assert_allclose(generator.score(ids), whole, atol=2e-5)
  assert generator.step_traces == 1  # One trace for all 23 tokens: shapes never change.
  # A prompt as one segment, then tokens one by one: the same numbers.
  prompt, memory = generator.feed(ids[:9], generator.start())
  rows = list(prompt)
  for token in ids[9:]:
    log_probs, memory = generator.feed([token], memory)
    rows.extend(log_probs)
  np.testing.assert_allclose(np.stack(rows), whole, atol=2e-5)


def test_same_seed_same_text():
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, architecture="sfs"))
  model.build()
  generator = generate.Generator(model, mem_len=8)
  first = generator.generate([1, 5, 7], 40, temperature=1.0, top_k=20, seed=3)
  assert first == generator.generate([1, 5, 7], 40, temperature=1.0, top_k=20, seed=3)
  assert first != generator.generate([1, 5, 7], 40, temperature=1.0, top_k=20, seed=4)
  assert len(first) == 40 and all(0 <= t < 60 for t in first)
  assert generator.step_traces == 1


@pytest.mark.slow
def test_generate_script(run_dir, data, tmp_path):
  sample = [
    "scripts/generate.py",
    f"--model_dir={run_dir}",
    "--prompt=w12 w13",
    "--max_tokens=30",
    "--seed=9",
    "--top_p=0.9",
    "--source=export",
  ]
  result = run_script(*sample, f"--output={tmp_path / 'sample.json'}")
  assert result.returncode == 0, result.stderr
  # Not a terminal: the prompt is marked with brackets; the file has the two apart.
  assert result.stdout.startswith("⟦w12 w13⟧") and len(result.stdout) > len("⟦w12 w13⟧\n")
  record = json.loads((tmp_path / "sample.json").read_text())
  assert record["prompt"] == "w12 w13" and record["settings"]["seed"] == 9
  assert result.stdout == f"⟦{record['prompt']}⟧{record['continuation']}\n"
  # The same again, unmarked, with the plain text to a file; an existing file is refused.
  again = run_script(*sample, "--mark=none", f"--output={tmp_path / 'sample.txt'}")
  assert again.returncode == 0, again.stderr
  assert (
    again.stdout
    == (tmp_path / "sample.txt").read_text()
    == "w12 w13" + record["continuation"] + "\n"
  )
  assert f"--output {tmp_path / 'sample.txt'} exists; choose a new file" in error_line(
    run_script(
      "scripts/generate.py", f"--model_dir={run_dir}", f"--output={tmp_path / 'sample.txt'}"
    )
  )

  # Without its own copy of the tokenizer, a run uses its dataset's; a wrong copy is refused.
  copy = tmp_path / "run"
  shutil.copytree(run_dir, copy)
  (copy / runs.TOKENIZER_FILE).unlink()
  result = run_script(
    "scripts/generate.py", f"--model_dir={copy}", "--max_tokens=5", "--temperature=0"
  )
  assert result.returncode == 0, result.stderr
  shutil.copy(data / "other" / records.TOKENIZER_FILE, copy / runs.TOKENIZER_FILE)
  assert "is not the tokenizer" in error_line(
    run_script("scripts/generate.py", f"--model_dir={copy}", "--max_tokens=5")
  )


@pytest.mark.parametrize(
  "flag, message",
  [
    ("--max_tokens=0", "--max_tokens must be positive"),
    ("--temperature=-1", "--temperature cannot be negative"),
    ("--top_p=0", "--top_p must be in (0, 1]"),
    ("--top_k=-2", "--top_k cannot be negative"),
  ],
)
def test_generate_bad_flags(tmp_path, flag, message):
  assert message in error_line(run_script("scripts/generate.py", f"--model_dir={tmp_path}", flag))


def test_training_evaluates_in_the_same_lanes_as_the_script(data):
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, eval_mode="expected"))
  model.build()
  meta = records.load_meta(data / "ds")
  strategy = tf.distribute.get_strategy()
  evaluator = evaluate.SplitEvaluator(model, str(data / "ds"), meta, 10**6, strategy, lanes=3)
  assert evaluator.evaluator.mem_len == max(s.lane_length for s in evaluator.layouts.values())
  for split in ("valid", "test"):
    expected, _, _ = evaluate.evaluate_split(model, data / "ds", split, 10**6, lanes=3)
    got, fresh = evaluator(split, 0)
    assert fresh and got.tokens == expected.tokens
    assert got.nll == pytest.approx(expected.nll, rel=1e-6)


@pytest.mark.parametrize("remainder", ["pad", "drop"])
def test_word_perplexity_and_bpc_divide_by_the_text_scored(data, tmp_path, remainder):
  from par.config import DataConfig
  from par.data.build import build_dataset

  config = DataConfig(vocab_size=60, batch_size=4, seq_len=8, remainder=remainder)
  meta, _ = build_dataset(data / "text", tmp_path / "ds", config)
  info = meta.splits["valid"]
  assert bool(info.dropped_tokens) == (remainder == "drop")
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0))
  model.build()
  result, _, _ = evaluate.evaluate_split(model, tmp_path / "ds", "valid", 4)
  assert result.tokens == info.targets
  assert (result.words, result.characters) == info.scored
  if remainder == "drop":  # Fewer words and characters than the split's: the tail's are out.
    assert result.words < info.words and result.characters < info.characters
  assert result.word_perplexity == pytest.approx(np.exp(result.nll / info.scored[0]))
  # The first token's text is in no denominator (nothing predicts it).
  if remainder == "pad":
    assert info.scored == (info.words - info.head_words, info.characters - info.head_characters)
  assert info.head_words == 1 and info.head_characters > 0
  # A "drop" build from before the scored counts were kept: no word perplexity, no bpc; one
  # from before the first token's text was counted keeps it in (and says so).
  old = dataclasses.replace(info, scored_words=None, scored_characters=None, head_words=None)
  words, characters = evaluate.denominators(old)
  assert (words, characters) == ((0, 0) if remainder == "drop" else (info.words, info.characters))
  unknown = evaluate.Result(result.nll, result.tokens, words, characters)
  assert (unknown.word_perplexity is None) == (remainder == "drop")


def test_a_text_file_scores_as_its_split_does_in_one_lane(data, run_dir, tmp_path):
  # The valid split's own text, tokenized with the run's tokenizer: the same tokens as the
  # dataset's records, so one lane of it with a memory covering it scores exactly as the
  # split evaluated in one lane does.
  run = runs.read_run(run_dir)
  model, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
  codec = runs.load_tokenizer(run)
  text_file = data / "text" / "valid.txt"
  got, mem_len = evaluate.evaluate_text(model, codec, text_file, 10**6, 8)
  expected, meta, _ = evaluate.evaluate_split(model, data / "ds", "valid", 10**6, 8, lanes=1)
  assert (got.tokens, got.words, got.characters) == (expected.tokens, *meta.splits["valid"].scored)
  assert meta.splits["valid"].head_words == 1
  assert got.nll == pytest.approx(expected.nll, rel=1e-6)
  assert mem_len == -(-(got.tokens) // 8) * 8  # cut to the one lane's length
  for content, message in ((b"", "is empty"), (b"a\x00b\n", "holds NUL bytes"), (b"\xff", "UTF-8")):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(evaluate.ParError, match=message):
      evaluate.evaluate_text(model, codec, bad, 8, 8)


def test_a_text_is_read_once_in_pieces_and_scored_in_calls_that_can_stop(
  data, run_dir, tmp_path, monkeypatch
):
  # The same result whole or in calls of one segment, read in pieces of 64 bytes (a call
  # returns to Python, where a signal stops it and progress is logged), and from a fifo,
  # which can be read once only (it hung; `--text=<(zcat f.gz)` was "empty": the file was
  # read twice).
  from par.data import text as text_lib

  run = runs.read_run(run_dir)
  model, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
  codec = runs.load_tokenizer(run)
  source = data / "text" / "valid.txt"
  whole, _ = evaluate.evaluate_text(model, codec, source, 16, 8, chunk_tokens=10**9)
  calls = []
  score = evaluate.Evaluator.score_segments
  monkeypatch.setattr(
    evaluate.Evaluator, "score_segments", lambda self, *a: calls.append(1) or score(self, *a)
  )
  monkeypatch.setattr(text_lib, "PIECE_BYTES", 64)
  monkeypatch.setattr(evaluate, "_PROGRESS_SECONDS", 0.0)
  logged = []
  monkeypatch.setattr(evaluate.logging, "info", lambda *a: logged.append(a[0] % a[1:]))
  pieces, _ = evaluate.evaluate_text(model, codec, source, 16, 8, chunk_tokens=8)
  assert len(calls) == -(-whole.tokens // 8) > 10
  assert (pieces.tokens, pieces.words, pieces.characters) == (
    whole.tokens,
    whole.words,
    whole.characters,
  )
  assert pieces.nll == pytest.approx(whole.nll, rel=1e-6)
  assert any("MiB read (" in line and "s left" in line for line in logged), logged
  fifo = tmp_path / "fifo"
  os.mkfifo(fifo)
  writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
  writer.start()
  piped, _ = evaluate.evaluate_text(model, codec, fifo, 16, 8)
  writer.join()
  assert (piped.tokens, piped.words) == (whole.tokens, whole.words)
  assert piped.nll == pytest.approx(whole.nll, rel=1e-6)


@pytest.mark.parametrize("first", ["", "  "])
def test_a_one_line_text_counts_the_words_it_predicts(run_dir, tmp_path, first):
  # One line of k words makes k + 1 tokens for a word model (k for this SentencePiece one
  # when each word is one piece): the first is never predicted, so word perplexity divides by
  # the k - 1 words after it and the end of the line, k in all (it divided by k + 1, so a
  # one-line file printed 2696 where 8305 was right); bpc by the characters after the first
  # token's: " w2 ... wk" and the end of line. An empty first line: its end is the first token.
  run = runs.read_run(run_dir)
  model, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
  codec = runs.load_tokenizer(run)
  line = "the of and to in"
  path = tmp_path / "one.txt"
  path.write_text(f"{first}\n{line}\n" if first else f"{line}\n", encoding="utf-8")
  got, _ = evaluate.evaluate_text(model, codec, path, 8, 8)
  ids = codec.tokenize([first, line] if first else [line])
  assert got.tokens == len(ids) - 1
  if first:  # "  \n" is one token, the end of line: every word of the next line is scored
    assert (got.words, got.characters) == (6, len(line) + 1 + 2 + 1 - 3)
  else:
    first_piece = codec.decode(ids[:1])
    assert line.startswith(first_piece)
    assert got.words == 5  # the four words after the first, the end of line
    assert got.characters == len(line) + 1 - len(first_piece)
  assert got.word_perplexity == pytest.approx(np.exp(got.nll / got.words))


@pytest.mark.slow
def test_evaluate_script_scores_a_text_file(run_dir, data, tmp_path):
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={run_dir}", f"--text={data / 'text' / 'valid.txt'}"
  )
  assert result.returncode == 0, result.stderr[-2000:]
  printed = json.loads(result.stdout)
  assert printed["eval_batch_size"] == 1 and printed["text"].endswith("valid.txt")
  assert printed["token_perplexity"] > 1 and printed["words"] > 0
  (tmp_path / "empty.txt").write_text("")
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={run_dir}", f"--text={tmp_path}/empty.txt"
  )
  assert "is empty" in error_line(result)
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={run_dir}", "--text=x.txt", "--split=test"
  )
  assert "--text scores a file as one lane" in error_line(result)
  # A pipe is read once: `--text=<(cat f)` scores as the file does (it said "is empty").
  script = Path(__file__).parents[1] / "scripts" / "evaluate.py"
  piped = subprocess.run(
    [
      "bash",
      "-c",
      f"{sys.executable} {script} --model_dir={run_dir} "
      f"--text=<(cat {data / 'text' / 'valid.txt'})",
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert piped.returncode == 0, piped.stderr[-2000:]
  assert json.loads(piped.stdout)["nll"] == pytest.approx(printed["nll"], rel=1e-6)
  # Ctrl-C while a long text is scored stops it at once (it was ignored for half an hour).
  big = tmp_path / "big.txt"
  big.write_text((data / "text" / "valid.txt").read_text() * 4000)
  process = subprocess.Popen(
    [sys.executable, str(script), f"--model_dir={run_dir}", f"--text={big}"],
    stderr=subprocess.PIPE,
    text=True,
  )
  for line in process.stderr:
    if "Ctrl-C stops it" in line:
      break
  started = time.monotonic()
  process.send_signal(signal.SIGINT)
  assert process.wait(timeout=60) == 130
  assert time.monotonic() - started < 20
  assert process.stderr.read().strip().splitlines()[-1] == "interrupted"


def test_token_nlls_are_each_tokens_nll_in_text_order(data):
  # One lane with a memory covering it is one pass over the text: token t's NLL given all
  # before it, which a single segment without memory computes independently.
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, eval_mode="expected"))
  model.build()
  meta = records.load_meta(data / "ds")
  split = evaluate.layout(meta, "test", lanes=1, seq_len=7)
  got = evaluate.token_nlls(model, split.dataset(data / "ds", "test"), 1, split.lane_length)
  windows, _ = records.read_records(data / "ds", "test")
  text = records.stream_of(windows)
  hidden, _ = model(tf.constant(text[None, :-1], tf.int32), memory=model.initial_memory(1, 0))
  expected = model.token_nll(hidden, tf.constant(text[None, 1:], tf.int32)).numpy()
  assert got.shape == (meta.splits["test"].targets,) == expected.shape
  np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_token_nlls_sum_to_the_evaluators_total_in_the_datasets_lanes(data):
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60, dropout=0.0, eval_mode="expected"))
  model.build()
  meta = records.load_meta(data / "ds")
  expected, _, mem_len = evaluate.evaluate_split(model, data / "ds", "valid", 4)
  dataset = records.load_dataset(data / "ds", "valid")
  got = evaluate.token_nlls(model, dataset, meta.batch_size, mem_len)
  assert got.size == expected.tokens
  assert float(got.astype(np.float64).sum()) == pytest.approx(expected.nll, rel=1e-5)

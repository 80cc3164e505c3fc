"""train_and_evaluate end to end on tiny configs: run directory, exact evaluation, NaN,
resuming after SIGKILL, SIGINT and SIGTERM, and the flagfiles."""

import dataclasses
import json
import logging as std_logging
import math
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import logging

from helpers import ROOT
from helpers import counting_dataset
from helpers import error_line
from helpers import printed_config
from helpers import run_script
from helpers import summary_tags
from par import signals
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError
from par.model.par_model import ParModel
from par.search import collapse
from par.train import summaries
from par.train import trainer
from par.train.evaluate import Evaluator

MODEL = ModelConfig(
  d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.1
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A counting-text dataset: 60 pieces, 4 lanes x 8 tokens, train/valid/test."""
  return counting_dataset(tmp_path_factory.mktemp("data"))


def tiny(data_dir, **changes):
  model_changes = {k: changes.pop(k) for k in list(changes) if hasattr(MODEL, k)}
  base = TrainConfig(
    model=dataclasses.replace(MODEL, **model_changes),
    data_dir=str(data_dir),
    train_steps=12,
    max_lr=3e-3,
    warmup_steps=3,
    steps_per_loop=4,
    log_every=4,
    checkpoint_every=8,
    plot_every=4,
    plots=False,  # (the tests that look at figures ask for them)
    seed=3,
  )
  return dataclasses.replace(base, **changes)


def test_search_writes_the_whole_run_directory(tmp_path, data_dir):
  meta = records.load_meta(data_dir)
  per_epoch = meta.splits["train"].records
  config = tiny(
    data_dir,
    train_steps=per_epoch + 6,
    sampling="hard",
    plot_every=20,
    plots=True,
    checkpoint_every=20,
  )
  results = trainer.train_and_evaluate(config, tmp_path)
  names = {p.name for p in tmp_path.iterdir()}
  assert {
    "config.json",
    "training.log",
    "train",
    "valid",
    "test",
    "checkpoints",
    "architecture.json",
    "plots",
    "results.json",
    "export",
  } <= names
  saved = json.loads((tmp_path / "config.json").read_text())
  assert TrainConfig.from_dict(saved["config"]).model.vocab_size == 60
  log = (tmp_path / "training.log").read_text()
  assert "step 8/" in log and f"valid at step {per_epoch}:" in log  # epoch end evaluation
  architecture = json.loads((tmp_path / "architecture.json").read_text())
  probabilities = np.array(architecture["probabilities"])
  np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
  assert architecture["pattern"] == results["pattern"] and len(architecture["pattern"]) == 3
  assert architecture["history"][0]["step"] == 0
  assert architecture["history"][-1]["step"] == config.train_steps
  plots = {p.name for p in (tmp_path / "plots").iterdir()}
  last = f"architecture-{config.train_steps:07d}"
  assert {
    "architecture-0000000.png",
    "architecture-0000020.png",
    f"{last}.png",
    f"{last}.pdf",
    "architecture.gif",
    "probabilities.png",
    "probabilities.pdf",
    "curves.png",
    "curves.pdf",
  } <= plots
  for name in (f"{last}.pdf", "probabilities.pdf", "curves.pdf"):
    assert (tmp_path / "plots" / name).read_bytes()[:5] == b"%PDF-"
  assert (tmp_path / "plots" / "architecture.gif").read_bytes()[:6] == b"GIF89a"
  assert set(results) >= {"valid", "test", "steps", "pattern"}
  assert json.loads((tmp_path / "results.json").read_text()) == results
  kept = sorted(int(p.stem.split("-")[1]) for p in (tmp_path / "checkpoints").glob("*.index"))
  assert kept == sorted(set(range(20, per_epoch + 6, 20)) | {per_epoch + 6})[-3:]
  tags = summary_tags(tmp_path / "train")
  assert {
    "loss",
    "training/learning_rate",
    "search/tau",
    "training/tokens_per_second",
    "perplexity/token",
    "perplexity/word",
    "search/block0/attention",
    "search/architecture",
  } <= tags
  assert {"loss", "perplexity/token", "perplexity/word"} <= summary_tags(tmp_path / "valid")
  # The export is the trained model: it evaluates to the reported test perplexity.
  exported = keras.saving.load_model(tmp_path / "export" / "model.keras")
  result = Evaluator(exported, MODEL.mem_len)(
    records.load_dataset(data_dir, "test"), 4, meta.splits["test"].words
  )
  assert result.token_perplexity == pytest.approx(results["test"]["token_perplexity"], rel=1e-5)


def test_fixed_architecture_trains_and_learns(tmp_path, data_dir):
  config = tiny(data_dir, architecture="sfs", train_steps=40, plot_every=0, plots=False)
  results = trainer.train_and_evaluate(config, tmp_path)
  assert results["pattern"] == "sfs"
  # Better than the same model untrained, by a margin.
  keras.utils.set_random_seed(config.seed)
  untrained = ParModel(dataclasses.replace(config.model, vocab_size=60))
  untrained.build()
  meta = records.load_meta(data_dir)
  before = Evaluator(untrained, MODEL.mem_len)(
    records.load_dataset(data_dir, "valid"), 4, meta.splits["valid"].words
  )
  assert results["valid"]["loss"] < before.loss - 0.1, (results["valid"]["loss"], before.loss)
  architecture = json.loads((tmp_path / "architecture.json").read_text())
  assert architecture["pattern"] == "sfs" and architecture["history"] == []


def test_first_adam_step_moves_repeated_tokens_by_the_learning_rate(tmp_path, data_dir):
  # Adam's first step (at max_lr: the last of 1 warm-up step) is lr · g / (|g| + eps): every
  # weight with a real gradient moves by the learning rate. Embedding gradients come as one
  # row per token occurrence; had the second moment been taken row by row (g1² + g2² for a
  # token seen twice), repeated tokens would move by less.
  config = tiny(
    data_dir, train_steps=2, warmup_steps=1, dropout=0.0, architecture="sfs", checkpoint_every=1
  )
  trainer.train_and_evaluate(config, tmp_path)
  keras.utils.set_random_seed(config.seed)  # The initial weights, as train_and_evaluate drew.
  model = ParModel(dataclasses.replace(config.model, vocab_size=60))
  model.build()
  before = model.embedding.embeddings.numpy()
  reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-1"))
  after = [
    reader.get_tensor(name)
    for name, shape in tf.train.list_variables(str(tmp_path / "checkpoints" / "ckpt-1"))
    if name.startswith("model/") and shape == [60, 16]
  ]
  assert len(after) == 1
  inputs, _ = next(iter(records.load_dataset(data_dir, "train")))
  tokens, counts = np.unique(inputs.numpy(), return_counts=True)
  assert counts.max() > 1  # the batch repeats tokens
  step = np.abs(after[0] - before)[tokens] / config.max_lr
  assert np.median(step) == pytest.approx(1.0, rel=1e-3)
  assert np.mean(step > 0.99) > 0.95
  unseen = np.setdiff1d(np.arange(60), tokens)
  assert np.all(after[0][unseen] == before[unseen])


def test_evaluation_equals_a_hand_computation(data_dir):
  keras.utils.set_random_seed(5)
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60))
  model.build()
  meta = records.load_meta(data_dir)
  result = Evaluator(model, mem_len=6)(
    records.load_dataset(data_dir, "valid"), 4, meta.splits["valid"].words
  )
  # By hand: every record eagerly, memory carried, every non-padding target's log-probability.
  memory = model.initial_memory(4, 6)
  nll, count = 0.0, 0
  for inputs, targets in records.load_dataset(data_dir, "valid"):
    hidden, memory = model(inputs, memory=memory)
    log_probs = model.log_probs(hidden).numpy()
    for b, t in zip(*np.nonzero(targets.numpy() >= 0)):
      nll -= log_probs[b, t, targets[b, t]]
      count += 1
  lines = (data_dir.parent / "text" / "valid.txt").read_text().splitlines()
  words = sum(len(line.split()) + 1 for line in lines)
  assert count == result.tokens == meta.splits["valid"].tokens - 1
  assert result.nll == pytest.approx(nll, rel=1e-5)
  # In log space: exp() would amplify float32 rounding by the nats per word (~18 here).
  assert math.log(result.token_perplexity) == pytest.approx(nll / count, rel=1e-5)
  assert math.log(result.word_perplexity) == pytest.approx(nll / words, rel=1e-5)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
  # A learning rate of 1e30 overflows the weights on the second step.
  config = tiny(
    data_dir, max_lr=1e30, warmup_steps=1000, steps_per_loop=1, checkpoint_every=1, log_every=1
  )
  with pytest.raises(
    ParError,
    match=r"NaN or infinite at step 2; stopped without saving "
    r"\(last checkpoint: .*ckpt-1\)",
  ):
    trainer.train_and_evaluate(config, tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-1.index"]
  assert not (tmp_path / "results.json").exists()


def test_resuming_with_other_settings_is_refused(tmp_path, data_dir):
  trainer.train_and_evaluate(tiny(data_dir, train_steps=4, plot_every=0, plots=False), tmp_path)
  with pytest.raises(ParError, match=r"other settings \(max_lr\)"):
    trainer.train_and_evaluate(tiny(data_dir, train_steps=4, max_lr=1e-2), tmp_path)
  # Bookkeeping may change: a finished run with another log interval just reports again.
  results = trainer.train_and_evaluate(
    tiny(data_dir, train_steps=4, log_every=1, plot_every=0, plots=False), tmp_path
  )
  assert results["steps"] == 4
  # A damaged results.json is computed again from the last checkpoint (its evaluation runs
  # again), never a traceback; the numbers are the ones it held.
  text = (tmp_path / "results.json").read_text()
  (tmp_path / "results.json").write_text(text[: len(text) // 2])
  again = trainer.train_and_evaluate(
    tiny(data_dir, train_steps=4, log_every=1, plot_every=0, plots=False), tmp_path
  )
  assert again["valid"] == pytest.approx(results["valid"]) and again["steps"] == 4
  assert json.loads((tmp_path / "results.json").read_text())["steps"] == 4


def test_a_run_is_tied_to_every_split_of_its_dataset(tmp_path, data_dir):
  # Two datasets alike but for their test split: a run of the one is not the other's (its
  # results would report the old split's perplexity). A run kept before the splits' hashes
  # were is compared without them.
  from par import runs

  other = counting_dataset(tmp_path / "other", test_lines=119)
  config = tiny(data_dir)
  meta, changed = records.load_meta(data_dir), records.load_meta(other)
  assert meta.splits["train"].source_sha256 == changed.splits["train"].source_sha256
  run = tmp_path / "run"
  runs.prepare(run, config, meta)
  (run / runs.CHECKPOINT_DIR).mkdir()
  runs.prepare(run, config, meta)  # the same dataset: fine
  with pytest.raises(ParError, match=r"other settings \(the dataset\)"):
    runs.prepare(run, config, changed)
  saved = json.loads((run / runs.CONFIG_FILE).read_text())
  assert set(saved["dataset"]["splits"]) == {"train", "valid", "test"}
  del saved["dataset"]["splits"]
  (run / runs.CONFIG_FILE).write_text(json.dumps(saved))
  runs.prepare(run, config, changed)
  assert not runs.same_dataset(
    runs.dataset_summary(meta), runs.dataset_summary(changed)
  ) and runs.same_dataset(runs.dataset_summary(meta), runs.dataset_summary(meta))


def test_architecture_warmup_freezes_the_logits(tmp_path, data_dir):
  frozen = trainer.train_and_evaluate(
    tiny(data_dir, arch_warmup_steps=100, plot_every=0, plots=False), tmp_path / "frozen"
  )
  # (With the architecture step on held-out lanes, 1 and 3 of 4: it moves all the same.)
  # Without figures (--noplots): none drawn, in plots/ or in TensorBoard; the history still
  # recorded.
  moving = trainer.train_and_evaluate(
    tiny(data_dir, arch_lr=0.1, plot_every=4, plots=False, arch_split=0.5), tmp_path / "moving"
  )
  assert not list((tmp_path / "moving").glob("plots/*"))
  assert [
    h["step"]
    for h in json.loads((tmp_path / "moving" / "architecture.json").read_text())["history"]
  ] == [0, 4, 8, 12]
  assert summaries.HEATMAP not in summary_tags(tmp_path / "moving" / "train")
  del frozen, moving

  def probabilities(run):
    return np.array(json.loads((tmp_path / run / "architecture.json").read_text())["probabilities"])

  np.testing.assert_array_equal(
    probabilities("frozen"), np.full([3, 3], 1 / 3, np.float32).round(6)
  )
  assert np.abs(probabilities("moving") - 1 / 3).max() > 1e-3
  record = json.loads((tmp_path / "moving" / "architecture.json").read_text())
  assert record["arch_split"] == 0.5 and record["held_out_lanes"] == [1, 3]
  np.testing.assert_allclose(
    record["entropy"], collapse.entropy(record["probabilities"]), atol=1e-5
  )
  assert (
    json.loads((tmp_path / "moving" / "config.json").read_text())["config"]["arch_split"] == 0.5
  )
  log = (tmp_path / "moving" / "training.log").read_text()
  assert "| arch loss " in log and "| entropy " in log
  assert {"search/architecture_loss", "search/mean_entropy", "search/block2/entropy"} <= (
    summary_tags(tmp_path / "moving" / "train")
  )

  # The same search with a heavy FLOPs term: identity, which costs nothing, takes over, and the
  # collapse report says so.
  trainer.train_and_evaluate(
    tiny(data_dir, arch_lr=0.1, plot_every=0, plots=True, resource="flops", resource_weight=20.0),
    tmp_path / "cheap",
  )
  cheap = probabilities("cheap")
  assert cheap[:, 2].mean() > probabilities("moving")[:, 2].mean() + 0.2
  record = json.loads((tmp_path / "cheap" / "architecture.json").read_text())
  assert record["identity_dominates"] == [0, 1, 2] and record["pattern"] == "iii"
  costs = json.loads((tmp_path / "cheap" / "resource.json").read_text())["costs"]
  assert costs[2] == 0 and max(costs[:2]) == 1
  assert (
    "search collapse: identity dominates 3 of 3 blocks"
    in (tmp_path / "cheap" / "training.log").read_text()
  )
  assert (tmp_path / "cheap" / "plots" / "probabilities.png").stat().st_size > 1000
  assert "search/resource_term" in summary_tags(tmp_path / "cheap" / "train")


# --- interrupted runs, through the script ------------------------------------------------------

RESUME_FLAGS = [
  "--d_model=16",
  "--n_heads=2",
  "--d_ffn=24",
  "--n_blocks=3",
  "--mem_len=4",
  "--cutoffs=20",
  "--train_steps=40",
  "--max_lr=3e-3",
  "--warmup_steps=3",
  "--steps_per_loop=2",
  "--log_every=10",
  "--checkpoint_every=4",
  "--plot_every=0",
  "--noplots",
  "--seed=3",
  "--sampling=single_path",
]


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory, data_dir):
  model_dir = tmp_path_factory.mktemp("uninterrupted")
  result = run_script(
    "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={model_dir}", *RESUME_FLAGS
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir


def _start(data_dir, model_dir):
  return subprocess.Popen(
    [
      sys.executable,
      "scripts/train.py",
      f"--data_dir={data_dir}",
      f"--model_dir={model_dir}",
      *RESUME_FLAGS,
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_for_checkpoint(process, model_dir, after=0, timeout=180):
  """Waits until a checkpoint past step `after` is complete: in the manager's state file."""
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    if latest and int(latest.rsplit("-", 1)[1]) > after:
      return
    time.sleep(0.005)
  process.kill()
  pytest.fail(f"no checkpoint appeared: {process.communicate()[1][-3000:]}")


def _assert_same_run(model_dir, reference):
  got = json.loads((model_dir / "results.json").read_text())
  expected = json.loads((reference / "results.json").read_text())
  for split in ("valid", "test"):
    assert got[split]["nll"] == pytest.approx(expected[split]["nll"], rel=1e-5)
  assert got["pattern"] == expected["pattern"]

  def final(d):
    return tf.train.load_checkpoint(str(d / "checkpoints" / "ckpt-40"))

  a, b = final(model_dir), final(reference)
  for name, _ in tf.train.list_variables(str(reference / "checkpoints" / "ckpt-40")):
    if name.startswith("model/"):
      np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_interrupted_runs_resume_to_the_uninterrupted_result(tmp_path, data_dir, uninterrupted):
  # Killed (SIGKILL), resumed and stopped with Ctrl-C, resumed and stopped with SIGTERM, then
  # resumed to the end: the weights and results of the uninterrupted run.
  saved = 0
  for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
    process = _start(data_dir, tmp_path)
    _wait_for_checkpoint(process, tmp_path, after=saved)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if sig == signal.SIGKILL:
      assert process.returncode == -signal.SIGKILL
    else:  # A clean exit, status 128 + the signal, after saving where it stopped.
      assert process.returncode == 128 + sig, stderr[-3000:]
      assert "Traceback" not in stderr
      assert stderr.strip().splitlines()[-1] == (
        "interrupted" if sig == signal.SIGINT else "terminated"
      )
    if saved:
      assert f"resumed from {tmp_path / 'checkpoints' / f'ckpt-{saved}'}" in stderr
    saved = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
    assert saved < 40, "the run finished before it could be stopped"
    if sig != signal.SIGKILL:
      assert f"ckpt-{saved}" in stderr
  result = run_script(
    "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={tmp_path}", *RESUME_FLAGS
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"resumed from {tmp_path / 'checkpoints' / f'ckpt-{saved}'}" in result.stderr
  _assert_same_run(tmp_path, uninterrupted)


@pytest.mark.slow
def test_ctrl_c_under_a_tee_that_dies_with_it_still_saves(tmp_path, data_dir):
  # `par-train … 2>&1 | tee log` and Ctrl-C: tee dies of the same SIGINT, so every write to
  # the terminal's pipe fails from then on. The run must still save where it stopped and exit
  # 130 (it died of SIGPIPE, 141, or SIGSEGV, 139, before saving).
  read, write = os.pipe()
  process = subprocess.Popen(
    [sys.executable, "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={tmp_path}"]
    + RESUME_FLAGS,
    cwd=ROOT,
    stdout=write,
    stderr=write,
  )
  os.close(write)
  try:
    _wait_for_checkpoint(process, tmp_path)
    before = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    os.close(read)  # tee is gone
    read = None
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 128 + signal.SIGINT
  finally:
    if read is not None:
      os.close(read)
    if process.poll() is None:
      process.kill()
  after = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert int(after.rsplit("-", 1)[1]) >= int(before.rsplit("-", 1)[1])  # (= if it stopped there)
  # The log file saw it all: the stop, then the checkpoint saved where it stopped.
  log = (tmp_path / "training.log").read_text()
  step = int(after.rsplit("-", 1)[1])
  assert log.rstrip().endswith(f"stopped at step {step} on signal 2"), log[-1500:]
  assert f"saved {after}" in log


def test_a_signal_during_the_export_stops_after_the_run_is_complete(
  tmp_path, data_dir, monkeypatch
):
  # Ctrl-C while the finished run evaluates or exports was acknowledged and then ignored (a
  # pipeline went on to train the next model): the run completes, then stops.
  from par import errors
  from par import runs

  export = runs.export

  def interrupted_export(model, model_dir):
    signal.raise_signal(signal.SIGINT)  # the stop's handler runs here
    export(model, model_dir)

  monkeypatch.setattr(runs, "export", interrupted_export)
  with pytest.raises(errors.Interrupted):
    trainer.train_and_evaluate(tiny(data_dir, train_steps=2, plot_every=0, plots=False), tmp_path)
  assert runs.is_finished(tmp_path) and runs.read_results(tmp_path)["steps"] == 2


def test_a_signal_inside_a_log_write_does_not_log_from_the_handler():
  # A signal often lands while the log file is being flushed; a handler that logs then
  # re-enters that stream ("RuntimeError: reentrant call"). Deliver it from inside emit.
  class SignalsOnce(std_logging.Handler):
    def __init__(self):
      super().__init__()
      self.depth = self.deepest = 0

    def emit(self, record):
      self.depth += 1
      self.deepest = max(self.deepest, self.depth)
      if self.deepest == 1:
        signal.raise_signal(signal.SIGTERM)  # Its Python handler runs before this returns.
      self.depth -= 1

  handler = SignalsOnce()
  logging.get_absl_logger().addHandler(handler)
  try:
    with signals.StopSignals() as stop:
      logging.warning("a step's log line")
    assert stop.received == signal.SIGTERM
    assert handler.deepest == 1
  finally:
    logging.get_absl_logger().removeHandler(handler)


# --- the flagfiles -------------------------------------------------------------------------------


def print_config(*flags):
  result = run_script("scripts/train.py", *flags, "--print_config")
  assert result.returncode == 0, result.stderr
  return printed_config(result.stdout)


def test_print_config_with_a_dataset_reads_back_whatever_the_checkout_holds(data_dir):
  # With a dataset at --data_dir (as once the README's data step has run, for the flagfiles'
  # own data/ paths), --print_config adds the step's memory: the tests read it back alike.
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/tiny.flags",
    f"--data_dir={data_dir}",
    "--cutoffs=none",
    "--print_config",
  )
  assert result.returncode == 0, result.stderr
  assert "memory_mib_per_replica" in json.loads(result.stdout)
  assert printed_config(result.stdout).data_dir == str(data_dir)


def test_base_model_flags_are_the_reference_readmes_configuration():
  config = print_config("--flagfile=configs/base_model.flags")
  m = config.model
  assert (m.d_model, m.n_heads, m.d_ffn, m.n_blocks, m.mem_len, m.dropout) == (
    128,
    4,
    1024,
    6,
    16,
    0.1,
  )
  assert (m.cutoffs, m.proj_factor, m.architecture) == ((250, 2500), 4, "")
  assert (config.optimizer, config.max_lr, config.warmup_steps, config.epochs) == (
    "adam",
    1e-4,
    4000,
    20,
  )
  assert (config.tau_start, config.tau_end, config.tau_schedule) == (10.0, 0.1, "linear")
  assert config.train_steps == 0
  assert config.data_dir == "data/wikitext2_bsz32_seqlen32"


def test_tiny_flags_and_overrides():
  config = print_config("--flagfile=configs/tiny.flags", "--cutoffs=none", "--n_blocks=5")
  assert config.model.cutoffs == () and config.model.n_blocks == 5
  assert config.train_steps == 200 and config.model.d_model == 32
  config = print_config("--flagfile=configs/tiny.flags", "--cutoffs=none", "--cutoffs=100,900")
  assert config.model.cutoffs == (100, 900)


@pytest.mark.slow
def test_bad_flags_are_one_error_line(tmp_path):
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/tiny.flags",
    f"--model_dir={tmp_path}",
    "--architecture=sxs",
    "--n_blocks=3",
  )
  assert "only use the letters s (attention)" in error_line(result)
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/tiny.flags",
    f"--model_dir={tmp_path}",
    f"--data_dir={tmp_path / 'none'}",
  )
  assert "is not a built dataset" in error_line(result)
  result = run_script(
    "scripts/train.py", "--flagfile=configs/tiny.flags", f"--model_dir={tmp_path}", "--seed=-1"
  )
  assert "seed must lie in [0, 2^32), got -1" in error_line(result)
  assert not any(tmp_path.iterdir())  # no config.json left behind


@pytest.mark.slow
def test_thread_pools_auto_and_explicit():
  # A fresh process: thread pools can only be set before TensorFlow's runtime starts. Auto
  # follows the cores the process may use (its affinity), not the machine's count.
  import os

  code = (
    "import os; from par import cli; tf = cli.import_tensorflow(); "
    "cli.configure_threads({}, {}); t = tf.config.threading; "
    "print(t.get_inter_op_parallelism_threads(), t.get_intra_op_parallelism_threads(), "
    "len(os.sched_getaffinity(0)))"
  )
  one_core = {min(os.sched_getaffinity(0))}
  cases = (
    ((-1, -1), None, lambda cores: (cores, 1)),
    ((-1, -1), one_core, lambda cores: (1, 1)),
    ((3, 0), one_core, lambda cores: (3, 0)),
  )
  for args, affinity, expected in cases:
    result = subprocess.run(
      [sys.executable, "-c", code.format(*args)],
      capture_output=True,
      text=True,
      cwd=ROOT,
      check=True,
      preexec_fn=affinity and (lambda affinity=affinity: os.sched_setaffinity(0, affinity)),
    )
    inter, intra, cores = map(int, result.stdout.split())
    assert (inter, intra) == expected(cores), (args, affinity)
    assert affinity is None or cores == 1


def test_the_status_line_fits_the_terminal_it_is_drawn_on():
  from par.train import host

  line = "[######..................] 600/2400 | loss 4.123 | 1,234 tok/s | ETA 0:12:34"
  assert host.fit(line, 120) == line
  assert host.fit(line, 60) == "600/2400 | loss 4.123 | 1,234 tok/s | ETA 0:12:34"  # no bar
  assert host.fit(line, 30) == "600/2400 | loss 4.123 | 1,234"[:29] and len(host.fit(line, 2)) == 1


@pytest.mark.slow
def test_a_terminal_shows_a_status_line_that_no_log_record_shares(tmp_path, data_dir):
  # Under a pseudo-terminal, as a user sees it: the status line is redrawn after every loop
  # call (more often than the log), erased before each log record, which starts on a line of
  # its own; the ETA comes from the timed steps, in the status line and the log alike.
  import os
  import pty

  command = [
    sys.executable,
    "scripts/train.py",
    f"--data_dir={data_dir}",
    f"--model_dir={tmp_path / 'run'}",
    "--d_model=16",
    "--n_heads=2",
    "--d_ffn=24",
    "--n_blocks=3",
    "--cutoffs=20",
    "--train_steps=60",
    "--steps_per_loop=10",
    "--log_every=30",
    "--plot_every=0",
    "--noplots",
  ]
  import fcntl
  import struct
  import termios

  pid, fd = pty.fork()
  if pid == 0:  # the child: the command, its stdout and stderr the terminal
    os.chdir(ROOT)
    os.execv(sys.executable, command)
  # A terminal 60 columns wide: the status line (about 75 characters with its bar) fits.
  fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
  output = b""
  while True:
    try:
      chunk = os.read(fd, 1 << 16)
    except OSError:
      break
    if not chunk:
      break
    output += chunk
  _, status = os.waitpid(pid, 0)
  text = output.decode(errors="replace")
  assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
  erase = "\r\x1b[K"
  # (At 60 columns the bar gives way: a draw is the step, loss, throughput and ETA.)
  draws = [part for part in text.split(erase) if re.match(r"\d+/60 \| loss", part)]
  logged = re.findall(r"step (\d+)/60 epoch", text)
  assert logged == ["30", "60"]
  assert len(draws) >= 5 and "ETA" in draws[-1]  # drawn after each call: 6 calls
  assert all(len(draw.split("\r")[0].split("\n")[0]) <= 59 for draw in draws), draws
  for record in re.finditer(r"[IWE]\d{4} \d\d:\d\d:\d\d", text):
    before = text[: record.start()]
    assert before == "" or before.endswith(("\n", erase)), text[record.start() - 80 : record.end()]
  assert re.search(r"step 60/60 .*\| ETA 0:00:00", text)


def test_the_log_keeps_our_info_lines_and_only_warnings_of_libraries(tmp_path):
  # Ours: par's modules (and a checkout's scripts/); a library beside par in the same
  # directory (site-packages, in an installed par) is not ours.
  from par.train import host

  def record(path, level=std_logging.INFO):
    return std_logging.LogRecord("absl", level, str(path), 1, "a line", None, None)

  assert host.only_our_info(record(host.PACKAGE_DIR / "train" / "trainer.py"))
  assert host.only_our_info(record(ROOT / "scripts" / "train.py"))
  neighbour = host.PACKAGE_DIR.parent / "tensorflow" / "python" / "checkpoint.py"
  assert not host.only_our_info(record(neighbour))
  assert host.only_our_info(record(neighbour, std_logging.WARNING))

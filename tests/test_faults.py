"""Faults and bad input, injected: damaged data, checkpoints and disks, signals, odd flags.

Each case gets one line naming what is wrong and where, a non-zero exit, nothing of the
user's lost or overwritten, and never a number printed as right when it may be wrong.
docs/FAULTS.md lists the cases and what each gets.
"""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError

FRAME = 4 * 9 * 4 + 16  # A record of the counting dataset: [4, 9] int32 and 16 bytes of framing.
MODEL = ModelConfig(d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,))


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def data_dir(pristine, tmp_path):
  """A copy of the counting dataset, for one test to damage."""
  return shutil.copytree(pristine, tmp_path / "ds")


def shard(data_dir, split):
  return data_dir / split / f"{split}-00000-of-00001.tfrecord"


def flip(path, record, offset=40, count=16):
  """Inverts `count` bytes of a record's window: its CRC no longer matches."""
  data = bytearray(path.read_bytes())
  at = record * FRAME + 12 + offset
  data[at : at + count] = bytes(b ^ 0xFF for b in data[at : at + count])
  path.write_bytes(bytes(data))


def stale_crc(path, record):
  """Changes one token id inside a record, leaving the record's CRC as it was."""
  data = bytearray(path.read_bytes())
  at = record * FRAME + 12 + 4 * 5
  data[at] = (data[at] + 1) % 50
  path.write_bytes(bytes(data))


def tiny(data_dir, **changes):
  config = TrainConfig(
    model=MODEL,
    data_dir=str(data_dir),
    train_steps=8,
    steps_per_loop=4,
    log_every=4,
    checkpoint_every=4,
    plot_every=0,
    plots=False,
  )
  return dataclasses.replace(config, **changes)


# --- damaged shards ------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "valid"])
def test_a_damaged_shard_is_named_before_training_starts(data_dir, tmp_path, split):
  from par.train import trainer

  flip(shard(data_dir, split), record=2)
  with pytest.raises(
    ParError,
    match=rf"{split}-00000-of-00001.tfrecord: record 3 of \d+ is "
    r"damaged \(its CRC does not match",
  ):
    trainer.train_and_evaluate(tiny(data_dir), tmp_path / "run")
  assert not (tmp_path / "run").exists()  # Found before anything was trained or written.


def test_a_stale_crc_never_gives_a_perplexity(data_dir):
  from par.model.par_model import ParModel
  from par.train import evaluate

  stale_crc(shard(data_dir, "valid"), record=1)
  model = ParModel(dataclasses.replace(MODEL, vocab_size=60))
  model.build()
  for seq_len in (0, 5):  # The records as built (TensorFlow's reader), and cut anew (numpy).
    with pytest.raises(ParError, match=r"valid-00000-of-00001\.tfrecord: record 2 of"):
      evaluate.evaluate_split(model, data_dir, "valid", mem_len=4, seq_len=seq_len)
  with pytest.raises(ParError, match="record 2 of"):
    records.read_records(data_dir, "valid")


def test_target_counts_verify_crcs(data_dir):
  stale_crc(shard(data_dir, "train"), record=0)
  with pytest.raises(ParError, match=r"train-00000-of-00001\.tfrecord: record 1 of"):
    records.target_counts(data_dir)


def test_optimal_cuts_on_a_damaged_dataset_is_one_line(data_dir):
  stale_crc(shard(data_dir, "train"), record=4)
  result = run_script("scripts/optimal_cuts.py", f"--data_dir={data_dir}", "--clusters=2")
  assert "train-00000-of-00001.tfrecord: record 5 of" in error_line(result)


@pytest.mark.slow
def test_evaluate_script_on_a_stale_crc_prints_no_perplexity(data_dir, tmp_path):
  from par.train import trainer

  trainer.train_and_evaluate(tiny(data_dir), tmp_path / "run")
  stale_crc(shard(data_dir, "valid"), record=1)
  for extra in ([], ["--seq_len=5"]):
    result = run_script("scripts/evaluate.py", f"--model_dir={tmp_path / 'run'}", *extra)
    assert "valid-00000-of-00001.tfrecord: record 2 of" in error_line(result)
    assert "perplexity" not in result.stdout


def test_a_shard_damaged_while_training_reads_it_is_named(data_dir):
  # TensorFlow's reader checks CRCs too; its DataLossError becomes the same one line.
  import tensorflow as tf

  flip(shard(data_dir, "valid"), record=3)
  dataset = records.load_dataset(data_dir, "valid")  # Sizes only: the damage is inside.
  with pytest.raises(tf.errors.DataLossError) as raised:
    for _ in dataset:
      pass
  error = records.damage_error(data_dir, "valid", raised.value)
  assert "valid-00000-of-00001.tfrecord: record 4 of" in str(error)


def test_check_data_script_and_verify(data_dir):
  result = run_script("scripts/check_data.py", f"--data_dir={data_dir}")
  assert result.returncode == 0 and "valid: " in result.stdout and "CRCs ok" in result.stdout
  # A shard replaced by another well-formed one: every CRC holds, the sha256 does not.
  meta = records.load_meta(data_dir)
  windows, _ = records.read_records(data_dir, "test")
  records.write_split(np.flip(windows, 0), data_dir, "test", 1)
  assert run_script("scripts/check_data.py", f"--data_dir={data_dir}").returncode == 0
  result = run_script("scripts/check_data.py", f"--data_dir={data_dir}", "--verify")
  assert "test-00000-of-00001.tfrecord is not the file meta.json names" in error_line(result)
  assert meta.splits["test"].shards[0].sha256 is not None
  flip(shard(data_dir, "train"), record=0)
  result = run_script("scripts/check_data.py", f"--data_dir={data_dir}")
  assert "train-00000-of-00001.tfrecord: record 1 of" in error_line(result)


def test_an_edited_vocab_size_is_refused_before_training(data_dir, tmp_path):
  from par.train import trainer

  path = data_dir / records.META_FILE
  value = json.loads(path.read_text())
  value["vocab_size"] += 5
  path.write_text(json.dumps(value))
  with pytest.raises(ParError, match="gives vocab_size 65, but its tokenizer has 60 ids"):
    trainer.train_and_evaluate(tiny(data_dir), tmp_path / "run")


# --- run directories ---------------------------------------------------------------------------


def test_a_finished_run_run_again_keeps_its_results(data_dir, tmp_path):
  from par.train import trainer

  first = trainer.train_and_evaluate(tiny(data_dir), tmp_path / "run")
  assert first["train_tokens_per_second"] is not None
  stamp = (tmp_path / "run" / "results.json").stat().st_mtime_ns
  again = trainer.train_and_evaluate(tiny(data_dir, log_every=2), tmp_path / "run")
  assert again == first  # The measured throughput too, not null.
  assert (tmp_path / "run" / "results.json").stat().st_mtime_ns == stamp  # Not rewritten.
  assert "finished at step 8 already" in (tmp_path / "run" / "training.log").read_text()
  # A run that died after results.json but before its export ends again, and keeps the
  # throughput its training measured.
  shutil.rmtree(tmp_path / "run" / "export")
  ended = trainer.train_and_evaluate(tiny(data_dir), tmp_path / "run")
  assert ended["train_tokens_per_second"] == first["train_tokens_per_second"]
  assert ended["valid"]["nll"] == pytest.approx(first["valid"]["nll"], rel=1e-6)
  assert (tmp_path / "run" / "export" / "model.keras").is_file()


def test_a_run_finds_its_dataset_from_any_working_directory(data_dir, tmp_path, monkeypatch):
  from par import runs
  from par.train import trainer

  monkeypatch.chdir(data_dir.parent)
  trainer.train_and_evaluate(tiny("ds"), tmp_path / "run")  # A relative --data_dir.
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  monkeypatch.chdir(elsewhere)
  run = runs.read_run(tmp_path / "run")
  assert run.config.data_dir == str(data_dir.resolve())
  records.check_dataset(run.config.data_dir, "valid", run.tokenizer_sha256)
  # Resuming with the absolute path (or from the first directory with the relative one) is
  # the same run: the dataset's identity, not its path, ties them.
  again = trainer.train_and_evaluate(tiny(data_dir.resolve()), tmp_path / "run")
  assert again["steps"] == 8


# --- sources and first runs ----------------------------------------------------------------------


def test_an_explicit_source_is_used_or_refused_never_ignored(tmp_path):
  from helpers import counting_lines
  from helpers import write_corpus
  from par.data import download

  first = write_corpus(tmp_path / "first", {"train": counting_lines(30), "valid": ["a b"]})
  other = write_corpus(tmp_path / "other", {"train": counting_lines(40), "valid": ["a b"]})
  dest = tmp_path / "data" / "wikitext-2"
  download.prepare("wikitext-2", dest, source=first)
  before = {p.name: p.read_bytes() for p in dest.iterdir()}
  assert "already holds the splits" in download.prepare("wikitext-2", dest, source=first)
  with pytest.raises(
    ParError,
    match=r"holds other text than --source .*other; nothing was "
    r"changed: move or delete",
  ):
    download.prepare("wikitext-2", dest, source=other)
  assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
  assert "reusing it" in download.prepare("wikitext-2", dest)  # No source: the copy there.
  result = run_script(
    "./create_tfrecords.sh", f"--data_dir={tmp_path / 'data'}", f"--source={other}"
  )
  assert "holds other text than --source" in error_line(result)
  assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


def test_the_offline_error_names_the_command_to_run(tmp_path):
  result = run_script(
    "scripts/fetch_data.py",
    f"--dest={tmp_path / 'wt2'}",
    "--url=http://127.0.0.1:9/wikitext-2-v1.zip",
    "--timeout=5",
  )
  line = error_line(result)
  assert "./create_tfrecords.sh --source=" in line and "./base_model.sh" in line


@pytest.mark.slow
def test_the_readmes_offline_command_builds_the_sample(readme_sample):
  vocab_size, refused, dataset = readme_sample  # (conftest.py runs the README's command)
  bound = re.search(r"has at most (\d+) pieces", error_line(refused))  # the default 12,000
  assert bound and vocab_size <= int(bound[1])
  assert records.load_meta(dataset).vocab_size == vocab_size


# --- damaged checkpoints -----------------------------------------------------------------------


def truncate(path, keep=0.5):
  data = path.read_bytes()
  path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture(scope="session")
def finished_run(pristine, tmp_path_factory):
  """A run of 12 steps checkpointed at 4, 8 and 12; returns (run directory, results)."""
  from par.train import trainer

  model_dir = tmp_path_factory.mktemp("finished") / "run"
  results = trainer.train_and_evaluate(tiny(pristine, train_steps=12), model_dir)
  return model_dir, results


@pytest.fixture
def run_dir(finished_run, tmp_path):
  return shutil.copytree(finished_run[0], tmp_path / "run")


def test_resume_falls_back_to_the_newest_intact_checkpoint(finished_run, run_dir, pristine):
  from par.train import trainer

  checkpoints = run_dir / "checkpoints"
  truncate(checkpoints / "ckpt-12.data-00000-of-00001")
  (run_dir / "results.json").unlink()  # As if the run had died after saving step 12.
  shutil.rmtree(run_dir / "export")
  results = trainer.train_and_evaluate(tiny(pristine, train_steps=12), run_dir)
  log = (run_dir / "training.log").read_text()
  assert "ckpt-12 is damaged (Read less bytes than requested); kept as" in log
  assert f"resumed from {checkpoints / 'ckpt-8'}" in log
  assert (checkpoints / "damaged-ckpt-12.index").is_file()  # Kept, never deleted.
  assert (checkpoints / "damaged-ckpt-12.data-00000-of-00001").is_file()
  # Steps 9 to 12 again, from step 8's state: the uninterrupted run's result.
  assert results["valid"]["nll"] == pytest.approx(finished_run[1]["valid"]["nll"], rel=1e-5)
  assert [p.name for p in sorted(checkpoints.glob("ckpt-*.index"))] == [
    "ckpt-12.index",
    "ckpt-4.index",
    "ckpt-8.index",
  ]


def test_with_no_intact_checkpoint_resume_is_one_line(run_dir, pristine):
  from par.train import trainer

  for index in sorted((run_dir / "checkpoints").glob("ckpt-*.index")):
    truncate(index.with_name(index.name.replace(".index", ".data-00000-of-00001")), 0.3)
  with pytest.raises(ParError, match=r"no checkpoint in .* is intact"):
    trainer.train_and_evaluate(tiny(pristine, train_steps=12), run_dir)
  assert len(list((run_dir / "checkpoints").glob("damaged-ckpt-*.index"))) == 3


def test_loading_a_damaged_checkpoint_names_the_one_to_use(run_dir):
  from par import runs

  truncate(run_dir / "checkpoints" / "ckpt-12.data-00000-of-00001")
  run = runs.read_run(run_dir)
  with pytest.raises(
    ParError,
    match=r"checkpoint .*ckpt-12 is damaged \(Read less bytes than "
    r"requested\); use --checkpoint=.*ckpt-8$",
  ):
    runs.load_model(run)
  _, origin = runs.load_model(run, checkpoint=str(run_dir / "checkpoints" / "ckpt-8"))
  assert origin.endswith("ckpt-8")
  (run_dir / "checkpoints" / "ckpt-8.index").unlink()
  (run_dir / "checkpoints" / "ckpt-4.index").unlink()
  with pytest.raises(ParError, match="no other checkpoint is intact; use --source=export"):
    runs.load_model(run)


def _tampered_exports(run_dir, canary):
  """{case: the bytes of a bad export}: truncated, and one whose model is a Lambda with
  marshalled code that would write `canary` if anything ran it."""
  import zipfile

  import keras

  export = run_dir / "export" / "model.keras"
  data = export.read_bytes()
  cases = {"truncated": data[: len(data) // 2]}
  code = f"lambda x: open({str(canary)!r}, 'w').close() or x"  # No closure: code alone.
  layer = keras.layers.Lambda(eval(code))
  with zipfile.ZipFile(export) as z:
    members = {name: z.read(name) for name in z.namelist()}
  members["config.json"] = json.dumps(keras.saving.serialize_keras_object(layer)).encode()
  path = run_dir / "lambda.keras"
  with zipfile.ZipFile(path, "w") as z:
    for name, member in members.items():
      z.writestr(name, member)
  cases["lambda"] = path.read_bytes()
  return cases


def test_a_damaged_or_tampered_export_is_one_line_and_runs_nothing(run_dir, tmp_path):
  from par import runs

  canary = tmp_path / "ran"
  run = runs.read_run(run_dir)
  export = run_dir / "export" / "model.keras"
  reasons = {"truncated": "File not found", "lambda": "deserialization of a `Lambda` layer"}
  for case, data in _tampered_exports(run_dir, canary).items():
    export.write_bytes(data)
    with pytest.raises(ParError, match=r"model\.keras cannot be loaded \(.*\): it is damaged") as e:
      runs.load_model(run, "export")
    assert reasons[case] in str(e.value) and not canary.exists(), case


@pytest.mark.slow
def test_evaluate_and_generate_on_a_damaged_export_are_one_line(run_dir, tmp_path):
  canary = tmp_path / "ran"
  export = run_dir / "export" / "model.keras"
  for data in _tampered_exports(run_dir, canary).values():
    export.write_bytes(data)
    for script in ("scripts/evaluate.py", "scripts/generate.py"):
      line = error_line(run_script(script, f"--model_dir={run_dir}", "--source=export"))
      assert "cannot be loaded" in line and "use --source=checkpoint" in line
  assert not canary.exists()


def test_a_checkpoint_of_another_model_is_one_line(run_dir, pristine, tmp_path):
  from par import runs
  from par.train import trainer

  fixed = tmp_path / "fixed"
  model = dataclasses.replace(MODEL, architecture="sfs")
  trainer.train_and_evaluate(tiny(pristine, model=model, train_steps=4), fixed)
  for run, other in ((run_dir, fixed), (fixed, run_dir)):
    checkpoint = str(other / "checkpoints" / "ckpt-4")
    with pytest.raises(ParError, match=r"ckpt-4 is a checkpoint of another model than .*'s \("):
      runs.load_model(runs.read_run(run), checkpoint=checkpoint)
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={run_dir}", f"--checkpoint={fixed}/checkpoints/ckpt-4"
  )
  assert "is a checkpoint of another model" in error_line(result)
  assert result.stderr.strip().count("\n") == 0, result.stderr  # nothing after it, or before


@pytest.mark.slow
def test_evaluate_and_generate_on_a_damaged_checkpoint_are_one_line(run_dir):
  truncate(run_dir / "checkpoints" / "ckpt-12.data-00000-of-00001")
  for script in ("scripts/evaluate.py", "scripts/generate.py"):
    line = error_line(run_script(script, f"--model_dir={run_dir}"))
    assert "ckpt-12 is damaged" in line and "use --checkpoint=" in line


# --- unwritable and full disks -------------------------------------------------------------------


@pytest.fixture
def mount(tmp_path):
  """mount(kind, size=None) -> a directory on a read-only bind mount ("ro") or a tmpfs of
  `size` ("tmpfs"); skips, saying why, where this machine forbids mounting (not root)."""
  import subprocess

  mounted = []

  def make(kind, size=None):
    target = tmp_path / f"{kind}{len(mounted)}"
    target.mkdir()
    if kind == "tmpfs":
      commands = [["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)]]
    else:
      source = tmp_path / f"source{len(mounted)}"
      source.mkdir()
      commands = [
        ["mount", "--bind", str(source), str(target)],
        ["mount", "-o", "remount,bind,ro", str(target)],
      ]
    for command in commands:
      done = subprocess.run(command, capture_output=True, text=True)
      if done.returncode:
        if mounted or command is not commands[0]:
          subprocess.run(["umount", str(target)], capture_output=True)
        pytest.skip(
          f"cannot mount here ({done.stderr.strip() or done.returncode}): "
          "these tests need root and mount rights"
        )
    mounted.append(target)
    return target

  yield make
  for target in mounted:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def leftovers(directory):
  """Temporary or half-written files anywhere under `directory`."""
  return sorted(
    str(p.relative_to(directory))
    for p in directory.rglob("*")
    if any(mark in p.name for mark in (".tmp", "_temp", "partial"))
  )


def test_a_read_only_model_dir_is_one_line(data_dir, mount):
  from par.train import trainer

  read_only = mount("ro")
  with pytest.raises(ParError, match=rf"cannot write {read_only}/run: the place is read-only"):
    trainer.train_and_evaluate(tiny(data_dir), read_only / "run")


def test_a_model_dir_that_is_a_file_is_one_line(data_dir, tmp_path):
  from par.train import trainer

  (tmp_path / "afile").write_text("mine\n")
  with pytest.raises(ParError, match="is a file, not a directory"):
    trainer.train_and_evaluate(tiny(data_dir), tmp_path / "afile")
  assert (tmp_path / "afile").read_text() == "mine\n"


@pytest.mark.parametrize(  # Full at the first writes, a checkpoint, later, the export.
  "size",
  [
    pytest.param("300k", marks=pytest.mark.slow),
    "420k",
    pytest.param("560k", marks=pytest.mark.slow),
    pytest.param("700k", marks=pytest.mark.slow),
  ],
)
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(data_dir, mount, size):
  import tensorflow as tf

  from par import runs
  from par.train import trainer

  full = mount("tmpfs", size)
  run = full / "run"
  with pytest.raises(ParError, match=rf"no space left on the device while writing {run}"):
    trainer.train_and_evaluate(tiny(data_dir, plot_every=4, plots=True), run)
  assert leftovers(full) == []
  for name in ("config.json", "architecture.json", "results.json"):
    if (run / name).exists():
      json.loads((run / name).read_text())  # Whole, or not there.
  for path in runs.checkpoints(run / "checkpoints"):  # Every checkpoint listed restores.
    reader = tf.train.load_checkpoint(path)
    for name, _ in tf.train.list_variables(path):
      reader.get_tensor(name)


def test_a_read_only_or_full_dataset_output_is_one_line(pristine, mount):
  from par.config import DataConfig
  from par.data.build import build_dataset

  text = pristine.parent / "text"
  config = DataConfig(vocab_size=60, batch_size=4, seq_len=8)
  read_only = mount("ro")
  with pytest.raises(ParError, match=rf"cannot write {read_only}/ds: the place is read-only"):
    build_dataset(text, read_only / "ds", config)
  full = mount("tmpfs", "100k")
  with pytest.raises(ParError, match=rf"no space left on the device while writing {full}/ds"):
    build_dataset(text, full / "ds", config)
  assert sorted(p.name for p in full.iterdir()) == []


def test_optimal_cuts_output_on_a_read_only_disk_is_one_line(data_dir, mount):
  read_only = mount("ro")
  result = run_script(
    "scripts/optimal_cuts.py",
    f"--data_dir={data_dir}",
    "--clusters=2",
    f"--output={read_only / 'cuts.flags'}",
  )
  assert f"cannot write {read_only / 'cuts.flags'}" in error_line(result)


@pytest.mark.slow
def test_train_script_on_a_read_only_or_full_disk_is_one_line(data_dir, mount):
  flags = [
    "--d_model=16",
    "--n_heads=2",
    "--d_ffn=24",
    "--n_blocks=3",
    "--mem_len=4",
    "--cutoffs=20",
    "--train_steps=8",
    "--checkpoint_every=4",
    "--log_every=4",
  ]
  read_only = mount("ro")
  result = run_script(
    "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={read_only / 'run'}", *flags
  )
  assert "the place is read-only" in error_line(result)
  full = mount("tmpfs", "420k")
  result = run_script(
    "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={full / 'run'}", *flags
  )
  assert "no space left on the device" in error_line(result)
  assert "Logging error" not in result.stderr and leftovers(full) == []


# --- signals -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def long_epochs(tmp_path_factory):
  """A dataset whose epoch takes a tiny model tens of seconds in one loop call."""
  from helpers import counting_lines
  from helpers import write_corpus
  from par.config import DataConfig
  from par.data.build import build_dataset

  root = tmp_path_factory.mktemp("long")
  write_corpus(root / "text", {"train": counting_lines(20000), "valid": counting_lines(300, 10**6)})
  build_dataset(root / "text", root / "ds", DataConfig(vocab_size=50, batch_size=4, seq_len=8))
  return root / "ds"


def start_long_run(data_dir, model_dir):
  """scripts/train.py on one epoch in a single loop call; returns the process once training
  has started (the run's first log line)."""
  import subprocess
  import sys
  import time

  from helpers import ROOT

  meta = records.load_meta(data_dir)
  steps = meta.splits["train"].records
  process = subprocess.Popen(
    [
      sys.executable,
      "scripts/train.py",
      f"--data_dir={data_dir}",
      f"--model_dir={model_dir}",
      "--d_model=16",
      "--n_heads=2",
      "--d_ffn=24",
      "--n_blocks=3",
      "--mem_len=4",
      "--cutoffs=20",
      f"--train_steps={steps}",
      f"--steps_per_loop={steps}",
      f"--log_every={steps}",
      f"--checkpoint_every={steps}",
      "--plot_every=0",
      "--noplots",
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  log = model_dir / "training.log"
  deadline = time.monotonic() + 120
  while not (log.is_file() and "run " in log.read_text()) and time.monotonic() < deadline:
    assert process.poll() is None, process.communicate()[1][-2000:]
    time.sleep(0.1)
  time.sleep(10)  # Past tracing, inside the loop call (the epoch's one call lasts ~40 s).
  return process, steps


def wait_for(process, text, timeout):
  """Seconds until `text` appears on the process's stderr (None if it never did)."""
  import threading
  import time

  seen, lines = threading.Event(), []

  def read():
    for line in process.stderr:
      lines.append(line)
      if text in line:
        seen.set()

  threading.Thread(target=read, daemon=True).start()
  start = time.monotonic()
  return (time.monotonic() - start if seen.wait(timeout) else None), lines


@pytest.mark.slow
def test_ctrl_c_is_acknowledged_at_once_and_saves_where_it_stopped(long_epochs, tmp_path):
  import signal
  import time

  process, steps = start_long_run(long_epochs, tmp_path / "run")
  process.send_signal(signal.SIGINT)
  acknowledged, lines = wait_for(process, "signal 2: saving a checkpoint", timeout=30)
  start = time.monotonic()
  process.wait(timeout=60)
  took = time.monotonic() - start
  stderr = "".join(lines)
  assert acknowledged is not None and acknowledged < 5, stderr[-2000:]
  assert process.returncode == 130 and took < 20 and "Traceback" not in stderr
  log = (tmp_path / "run" / "training.log").read_text()
  stopped = int(log.split("stopped at step ")[1].split()[0])
  assert stopped < steps  # Before the loop call's end: it was stopped, not waited for.
  assert (tmp_path / "run" / "checkpoints" / f"ckpt-{stopped}.index").is_file()
  assert "valid at step" not in log  # The epoch end's evaluation did not run.


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once(long_epochs, tmp_path):
  import signal
  import time

  process, _ = start_long_run(long_epochs, tmp_path / "run")
  process.send_signal(signal.SIGINT)
  acknowledged, lines = wait_for(process, "signal 2: saving", timeout=30)
  assert acknowledged is not None
  start = time.monotonic()
  process.send_signal(signal.SIGINT)
  process.wait(timeout=30)
  assert process.returncode == 130 and time.monotonic() - start < 5
  assert any("stopping now" in line for line in lines)


# --- generation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--temperature=nan", "--temperature=inf", "--top_p=nan"])
def test_generation_refuses_nan_and_inf(tmp_path, flag):
  result = run_script("scripts/generate.py", f"--model_dir={tmp_path}", flag)
  assert "must be" in error_line(result)


@pytest.mark.slow
def test_generation_warns_of_unknown_characters_and_streams_until_ctrl_c(finished_run):
  import signal
  import subprocess
  import sys
  import time

  from helpers import ROOT

  run_dir, _ = finished_run
  result = run_script(
    "scripts/generate.py", f"--model_dir={run_dir}", "--prompt=w7 日本 w8 日", "--max_tokens=5"
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "warning: the tokenizer does not know '日本 日' of the prompt" in result.stderr
  # A long generation stopped with Ctrl-C keeps what it printed.
  process = subprocess.Popen(
    [
      sys.executable,
      "scripts/generate.py",
      f"--model_dir={run_dir}",
      "--prompt=w7 w8",
      "--max_tokens=1000000",
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
  )
  first = process.stdout.read(40)  # The prompt, then tokens as they come.
  time.sleep(1)
  process.send_signal(signal.SIGINT)
  rest, stderr = process.communicate(timeout=60)
  text = (first + rest).decode()
  assert process.returncode == 130 and b"Traceback" not in stderr
  assert text.startswith("⟦w7 w8⟧") and len(text) > 60


# --- smaller -------------------------------------------------------------------------------------


def test_reuse_existing_says_what_differs(pristine, tmp_path):
  from par.config import DataConfig
  from par.data.build import build_dataset

  text = shutil.copytree(pristine.parent / "text", tmp_path / "text")
  config = DataConfig(vocab_size=60, batch_size=4, seq_len=8)
  build_dataset(text, tmp_path / "ds", config)
  other = dataclasses.replace(config, seq_len=7)
  with pytest.raises(ParError, match=r"differs: settings seq_len 8 -> 7\); pass --overwrite"):
    build_dataset(text, tmp_path / "ds", other, reuse_existing=True)
  with (text / "valid.txt").open("a") as f:
    f.write("w1 w2\n")
  with pytest.raises(ParError, match=r"differs: the text of valid\)"):
    build_dataset(text, tmp_path / "ds", config, reuse_existing=True)


@pytest.mark.slow
def test_sp_model_and_a_different_vocab_size_are_refused(pristine, tmp_path):
  model = pristine / records.TOKENIZER_FILE  # 60 pieces
  text = pristine.parent / "text"
  base = [
    "scripts/build_data.py",
    f"--input={text}",
    "--batch_size=4",
    "--seq_len=8",
    f"--sp_model={model}",
  ]
  result = run_script(*base, f"--output_dir={tmp_path / 'a'}", "--vocab_size=8000")
  assert "--vocab_size 8000 and --sp_model" in error_line(result)
  assert "(60 pieces) disagree" in error_line(result) and not (tmp_path / "a").exists()
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"not a model at all")
  result = run_script(*base[:-1], f"--sp_model={bad}", f"--output_dir={tmp_path / 'b'}")
  assert f"{bad} is not a SentencePiece model" in error_line(result)


def test_optimal_cuts_warns_when_its_cutoffs_are_slower_than_the_full_softmax(tmp_path):
  counts = tmp_path / "flat.txt"
  counts.write_text("5\n" * 6)
  result = run_script("scripts/optimal_cuts.py", f"--filename={counts}", "--clusters=3")
  assert result.returncode == 0
  assert "warning: the cheapest 3 clusters cost more than the full softmax" in result.stderr


# --- one process per place ------------------------------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from par import locks
with locks.hold(Path(sys.argv[1]), Path(sys.argv[1]).parent, "x"):
  print("held", flush=True)
  time.sleep(600)
"""


def _hold_in_another_process(lock_file):
  """A process that holds `lock_file` until it is killed."""
  import subprocess
  import sys

  holder = subprocess.Popen(
    [sys.executable, "-c", _HOLDER, str(lock_file)], stdout=subprocess.PIPE, text=True
  )
  assert holder.stdout.readline().strip() == "held"
  return holder


def test_a_second_process_on_a_run_dataset_or_pipeline_is_refused(pristine, tmp_path):
  import signal

  from par import locks
  from par.config import DataConfig
  from par.data.build import build_dataset
  from par.study import pipeline
  from par.train import trainer

  run_dir, output, work = tmp_path / "run", tmp_path / "out" / "ds", tmp_path / "work"
  cases = [
    (run_dir / ".lock", lambda: trainer.train_and_evaluate(tiny(pristine), run_dir)),
    (
      locks.beside(output),
      lambda: build_dataset(pristine.parent / "text", output, DataConfig(vocab_size=60)),
    ),
    (work / ".lock", lambda: pipeline.run_pipeline(tiny(pristine), work)),
  ]
  for lock_file, start in cases:
    holder = _hold_in_another_process(lock_file)
    try:
      with pytest.raises(ParError, match=rf"in use by another process \(pid {holder.pid}\)"):
        start()
    finally:
      holder.send_signal(signal.SIGKILL)  # A killed holder's lock does not block.
      holder.wait()
  assert not output.exists() and not (run_dir / "config.json").exists()
  trainer.train_and_evaluate(tiny(pristine), run_dir)  # Once the holder is gone, it runs,
  assert not (run_dir / ".lock").exists()  # and lets go at the end.
  build_dataset(pristine.parent / "text", output, DataConfig(vocab_size=60, batch_size=4))
  assert sorted(p.name for p in output.parent.iterdir()) == ["ds"]


def test_a_lock_that_is_a_directory_or_a_link_is_refused_and_its_target_kept(tmp_path):
  from par import locks

  (tmp_path / "d" / ".lock").mkdir(parents=True)
  with pytest.raises(ParError, match=r"\.lock is not a lock file par made \(a directory"):
    locks.hold(tmp_path / "d" / ".lock", tmp_path / "d", "x").__enter__()
  precious = tmp_path / "precious.txt"
  precious.write_text("a user's file\n")
  (tmp_path / "e").mkdir()
  (tmp_path / "e" / ".lock").symlink_to(precious)
  with pytest.raises(ParError, match=r"not a lock file par made \(a symbolic link\)"):
    locks.hold(tmp_path / "e" / ".lock", tmp_path / "e", "x").__enter__()
  assert precious.read_text() == "a user's file\n"  # never truncated


def test_a_lock_is_held_by_one_holder_at_a_time(tmp_path):
  # Holders come and go (each removes the file as it lets go) while others try: never two
  # inside at once, even when one opened the file its holder was removing.
  import threading

  from par import locks

  inside, overlaps, entered = [0], [], [0]

  def worker():
    for _ in range(300):
      try:
        with locks.hold(tmp_path / ".lock", tmp_path, "x"):
          inside[0] += 1
          entered[0] += 1
          if inside[0] > 1:
            overlaps.append(inside[0])
          inside[0] -= 1
      except ParError:
        pass

  threads = [threading.Thread(target=worker) for _ in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert overlaps == [] and entered[0] > 300


@pytest.mark.slow
def test_two_training_scripts_on_one_run_directory(pristine, tmp_path):
  import subprocess
  import sys
  import time

  from helpers import ROOT

  args = [
    "scripts/train.py",
    f"--data_dir={pristine}",
    f"--model_dir={tmp_path / 'run'}",
    "--d_model=16",
    "--n_heads=2",
    "--d_ffn=24",
    "--n_blocks=3",
    "--cutoffs=20",
    "--train_steps=40",
    "--plot_every=0",
    "--noplots",
  ]
  first = subprocess.Popen(
    [sys.executable, *args, "--seed=1"], cwd=ROOT, stderr=subprocess.PIPE, text=True
  )
  deadline = time.time() + 120
  while not (tmp_path / "run" / ".lock").exists() and time.time() < deadline:
    time.sleep(0.05)
  second = run_script(*args, "--seed=2")  # Other settings, before config.json exists or not.
  assert f"in use by another process (pid {first.pid})" in error_line(second)
  assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  assert config["config"]["seed"] == 1
  assert len(list((tmp_path / "run" / "train").glob("events.out.tfevents.*"))) == 1


def test_the_fault_table_is_complete():
  import ast
  import re

  from helpers import ROOT

  table = (ROOT / "docs" / "FAULTS.md").read_text()
  named = re.findall(r"`(?:(test_\w+)\.py::)?(test_\w+)`", table)

  def tests_of(module):
    tree = ast.parse((ROOT / "tests" / f"{module}.py").read_text())
    return {
      n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    }

  here = tests_of("test_faults") - {"test_the_fault_table_is_complete"}
  assert here <= {test for module, test in named if not module}, "tests missing from the table"
  for module, test in named:
    assert test in tests_of(module or "test_faults"), f"{module or 'test_faults'}::{test}"

"""scripts/optimal_cuts.py end to end: files and built datasets in, cutoffs and a flagfile that
train.py reads out, one error line for every bad input."""

import re

import numpy as np
import pytest

from helpers import counting_lines
from helpers import error_line
from helpers import printed_config
from helpers import run_script
from helpers import write_corpus
from par import cutoffs
from par.config import DataConfig
from par.data import records
from par.data.build import build_dataset


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("cuts")
  write_corpus(root / "text", {"train": counting_lines(300), "valid": counting_lines(50)})
  build_dataset(root / "text", root / "ds", DataConfig(vocab_size=80, batch_size=3, seq_len=7))
  return root / "ds"


def printed_cutoffs(stdout):
  line = [x for x in stdout.splitlines() if x.startswith("--cutoffs=none")][-1]
  return tuple(int(v) for v in re.findall(r"--cutoffs=(\d+)", line))


def test_target_counts_are_the_records_targets(data_dir):
  counts, meta = records.target_counts(data_dir, "train")
  expected = np.zeros(meta.vocab_size, np.int64)
  for _, targets in records.load_dataset(data_dir, "train"):  # TensorFlow's reader.
    t = targets.numpy().ravel()
    expected += np.bincount(t[t >= 0], minlength=meta.vocab_size)
  np.testing.assert_array_equal(counts, expected)
  assert counts.sum() == meta.splits["train"].targets


def test_a_file_of_unsorted_counts_gives_a_flagfile_train_reads(tmp_path):
  rng = np.random.default_rng(0)
  counts = rng.multinomial(50_000, 1 / np.arange(1, 501) / np.sum(1 / np.arange(1, 501)))
  rng.shuffle(counts)
  source = tmp_path / "counts.txt"
  source.write_text("\n".join(" ".join(map(str, row)) for row in counts.reshape(50, 10)))
  output = tmp_path / "cuts.flags"
  result = run_script(
    "scripts/optimal_cuts.py", f"--filename={source}", "--d_model=64", f"--output={output}"
  )
  assert result.returncode == 0, result.stderr
  expected, _ = cutoffs.solve(np.sort(counts)[::-1], cutoffs.grave_cost(64, 4), 3)
  assert printed_cutoffs(result.stdout) == expected.cutoffs
  assert f"speed-up {expected.speedup:.2f}x" in result.stdout
  assert "sorted by decreasing value" in result.stdout
  train = run_script(
    "scripts/train.py",
    "--flagfile=configs/base_model.flags",
    f"--flagfile={output}",
    "--print_config",
  )
  assert train.returncode == 0, train.stderr
  assert printed_config(train.stdout).model.cutoffs == expected.cutoffs

  # An existing output is kept unless --overwrite.
  before = output.read_text()
  result = run_script(
    "scripts/optimal_cuts.py", f"--filename={source}", "--clusters=2", f"--output={output}"
  )
  assert "exists; pass --overwrite" in error_line(result)
  assert output.read_text() == before
  result = run_script(
    "scripts/optimal_cuts.py",
    f"--filename={source}",
    "--clusters=2",
    f"--output={output}",
    "--overwrite",
  )
  assert result.returncode == 0, result.stderr
  assert len(re.findall(r"--cutoffs=\d+", output.read_text())) == 1
  assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.txt", "cuts.flags"]


def test_keep_order_and_auto_and_the_simple_model(tmp_path):
  source = tmp_path / "p.txt"
  probabilities = np.array([0.05, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01])
  source.write_text("\n".join(map(str, probabilities)))
  result = run_script(
    "scripts/optimal_cuts.py",
    f"--filename={source}",
    "--keep_order",
    "--clusters=auto",
    "--max_clusters=4",
    "--cost=simple",
  )
  assert result.returncode == 0, result.stderr
  best, solutions = cutoffs.solve(probabilities, cutoffs.simple_cost(), "auto", 4)
  assert printed_cutoffs(result.stdout) == best.cutoffs
  assert len(re.findall(r"^  \d clusters:", result.stdout, re.M)) == len(solutions) == 4
  assert "5 of 12 off their rank" in result.stdout


def test_a_dataset_is_optimised_in_id_order(data_dir):
  result = run_script(
    "scripts/optimal_cuts.py", f"--data_dir={data_dir}", "--d_model=32", "--proj_dims=8,2"
  )
  assert result.returncode == 0, result.stderr
  counts, _ = records.target_counts(data_dir, "train")
  model = cutoffs.grave_cost(32, proj_dims=(8, 2))
  expected, _ = cutoffs.solve(counts, model, 3)
  assert printed_cutoffs(result.stdout) == expected.cutoffs
  _, misplaced, _ = cutoffs.order_report(counts)
  assert misplaced > 0  # SentencePiece puts control pieces first, and scores are not counts.
  ideal, _ = cutoffs.solve(np.sort(counts)[::-1], model, 3)
  assert f"the best cost would be {ideal.cost:,.1f}" in result.stdout


@pytest.mark.parametrize(
  "content, flags, message",
  [
    ("", [], "is empty: expected counts or probabilities"),
    ("1 2 x3 4", [], "value 3 is 'x3', not a number"),
    ("1 2 -3 4", [], "value 3 is negative"),
    ("0 0\n0", [], "all 3 counts are zero"),
    ("1 nan", [], "value 2 is nan"),
    ("3 2 1", ["--clusters=3"], "3 clusters need more than 3 ids"),
    ("3 2 1", ["--clusters=two"], "--clusters takes a number or 'auto'"),
    ("3 2 1 1", ["--proj_dims=4,x"], "--proj_dims takes integers"),
  ],
)
def test_bad_input_is_one_error_line(tmp_path, content, flags, message):
  source = tmp_path / "values.txt"
  source.write_text(content)
  result = run_script("scripts/optimal_cuts.py", f"--filename={source}", *flags)
  assert message in error_line(result)


def test_bad_sources_are_one_error_line(tmp_path):
  assert "exactly one of --filename and --data_dir" in error_line(
    run_script("scripts/optimal_cuts.py")
  )
  assert "cannot read" in error_line(
    run_script("scripts/optimal_cuts.py", f"--filename={tmp_path / 'missing.txt'}")
  )
  assert "is not a built dataset" in error_line(
    run_script("scripts/optimal_cuts.py", f"--data_dir={tmp_path}")
  )

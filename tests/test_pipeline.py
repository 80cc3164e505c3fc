"""The pipeline: derivations on hand-made probabilities, and search -> derive -> retrain ->
compare end to end on a tiny config."""

import dataclasses
import json

import numpy as np
import pytest

from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par import pipeline
from par.config import ModelConfig
from par.config import TrainConfig
from par.errors import ParError
from par.search import patterns


def test_derivations_from_hand_made_probabilities():
  probabilities = [
    [0.5, 0.3, 0.2],  # s
    [0.2, 0.7, 0.1],  # f
    [0.1, 0.2, 0.7],  # i
    [0.4, 0.5, 0.1],  # f
    [0.6, 0.2, 0.2],  # s
    [0.3, 0.3, 0.4],
  ]  # i
  derived, ratio = patterns.derive(probabilities)
  assert derived["argmax"] == "sfifsi"
  assert ratio == 3  # 6 blocks, 2 attention blocks.
  assert derived["rule"] == "fsfsff"
  derived, ratio = patterns.derive(probabilities, ratio=6)
  assert ratio == 6 and derived["rule"] == "ffsfff"
  no_attention, ratio = patterns.derive(np.tile([0.1, 0.8, 0.1], (4, 1)))
  assert no_attention["argmax"] == "ffff" and ratio == 4 and no_attention["rule"] == "fsff"
  assert patterns.baseline_pattern(6) == "sfsfsf" and patterns.baseline_pattern(5) == "sfsfs"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("pipeline"), valid_lines=60, test_lines=50)


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, data_dir):
  config = TrainConfig(
    model=ModelConfig(d_model=16, n_heads=2, d_ffn=24, n_blocks=4, mem_len=4, cutoffs=(20,)),
    data_dir=str(data_dir),
    train_steps=10,
    max_lr=3e-3,
    warmup_steps=2,
    arch_lr=0.05,
    steps_per_loop=5,
    log_every=5,
    checkpoint_every=10,
    plot_every=5,
    seed=1,
  )
  rows = pipeline.run_pipeline(config, tmp_path, ratio=2)
  summary = json.loads((tmp_path / "results.json").read_text())
  patterns = summary["patterns"]
  assert patterns["rule"] == "sfsf" and patterns["baseline"] == "sfsf"
  names = [row["model"] for row in rows]
  assert names[0] == "search (SuperNet)" and "rule = baseline" in names  # Trained once.
  for row in rows[1:]:
    run = tmp_path / row["model"].split(" = ")[0]
    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
    assert saved.model.architecture == row["pattern"]
    assert (saved.train_steps, saved.max_lr, saved.seed) == (10, 3e-3, 1)  # Same budget.
    assert row["train_tokens_per_second"] > 0 and row["eval_tokens_per_second"] > 0
    assert row["valid"]["token_perplexity"] > 1 and "test" in row
    assert row["attention_blocks"] == row["pattern"].count("s")
  assert rows[0]["flops_per_token"] > max(r["flops_per_token"] for r in rows[1:])
  table = (tmp_path / "results.md").read_text()
  assert table.count("\n") == 2 + len(rows) and "`sfsf`" in table
  assert (tmp_path / "architecture.png").is_file() and (tmp_path / "probabilities.png").is_file()

  # Again, through the script: finished runs are reused, the table is the same but for the
  # measured evaluation speed.
  flags = [
    "--d_model=16",
    "--n_heads=2",
    "--d_ffn=24",
    "--n_blocks=4",
    "--mem_len=4",
    "--cutoffs=20",
    f"--data_dir={data_dir}",
    "--train_steps=10",
    "--max_lr=3e-3",
    "--warmup_steps=2",
    "--arch_lr=0.05",
    "--steps_per_loop=5",
    "--log_every=5",
    "--checkpoint_every=10",
    "--plot_every=5",
    "--seed=1",
    "--ratio=2",
  ]
  result = run_script("scripts/pipeline.py", f"--work_dir={tmp_path}", *flags)
  assert result.returncode == 0, result.stderr
  again = json.loads((tmp_path / "results.json").read_text())["rows"]
  for before, after in zip(rows, again):
    assert before["valid"] == after["valid"] and before["pattern"] == after["pattern"]
  assert "| rule = baseline | `sfsf` |" in result.stdout

  # Other settings in the same work directory are refused.
  with pytest.raises(ParError, match="holds a run with other settings"):
    pipeline.run_pipeline(dataclasses.replace(config, seed=2), tmp_path)


def test_retrained_models_leave_out_what_only_a_search_has():
  search = TrainConfig(
    model=ModelConfig(vocab_size=100, n_blocks=4, cutoffs=(20,)),
    arch_split=0.2,
    resource="latency",
    resource_weight=0.5,
    resource_target=0.3,
    keep_best=True,
    max_lr=3e-4,
  ).validate()
  fixed = pipeline.retrain_config(search, "sfff").validate()
  assert fixed.model.architecture == "sfff" and fixed.arch_split == 0.0
  assert (fixed.resource, fixed.resource_weight, fixed.resource_target) == ("none", 0.0, 0.0)
  assert fixed.keep_best and fixed.max_lr == 3e-4  # the rest as the search had it


def test_pipeline_script_refuses_a_fixed_architecture(tmp_path):
  assert "leave --architecture empty" in error_line(
    run_script(
      "scripts/pipeline.py",
      f"--work_dir={tmp_path}",
      "--flagfile=configs/tiny.flags",
      "--architecture=sfsf",
    )
  )
  assert "--ratio must be 0" in error_line(
    run_script("scripts/pipeline.py", f"--work_dir={tmp_path}", "--ratio=-1")
  )

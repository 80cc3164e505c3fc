"""Settings have one source (the config fields) that every script's flags come from, and each
flagfile in configs/ keeps the promise its opening comment makes."""

import dataclasses
import json
import re

import pytest

from helpers import ROOT
from helpers import run_script
from par.config import DataConfig
from par.config import ModelConfig
from par.config import RuntimeConfig
from par.config import TrainConfig

SCRIPT_SETTINGS = {  # script: the config fields it takes as flags
  "scripts/train.py": [(ModelConfig, ("vocab_size",)), (TrainConfig, ()), (RuntimeConfig, ())],
  "scripts/pipeline.py": [(ModelConfig, ("vocab_size",)), (TrainConfig, ()), (RuntimeConfig, ())],
  "scripts/build_data.py": [(DataConfig, ())],
}


def _flag_help(help_text):
  """{flag: its help, joined across lines} from absl's --help output."""
  flags, name = {}, None
  for line in help_text.splitlines():
    match = re.match(r"  --(?:\[no\])?(\w+):(.*)", line)
    if match:
      name = match[1]
      flags[name] = match[2].strip()
    elif name and line.startswith("    ") and not line.strip().startswith("(default"):
      flags[name] += " " + line.strip()
  return flags


@pytest.mark.parametrize("script", list(SCRIPT_SETTINGS))
def test_every_setting_is_a_flag_with_the_fields_help_and_choices(script):
  result = run_script(script, "--help")  # (absl exits with status 1 after --help)
  flags = _flag_help(result.stdout + result.stderr)
  assert flags, result.stdout + result.stderr
  for config_class, skip in SCRIPT_SETTINGS[script]:
    for field in dataclasses.fields(config_class):
      if field.name in skip or field.name == "model":
        continue
      help_text = field.metadata["help"]
      assert help_text, f"{config_class.__name__}.{field.name} has no help"
      shown = flags[field.name]
      choices = field.metadata.get("choices")
      if choices:
        assert shown.startswith(f"<{'|'.join(choices)}>: ")
        shown = shown.split(": ", 1)[1]
      # absl wraps at 80 columns and may break a line inside a long word: compare words.
      assert "".join(shown.split()).startswith("".join(help_text.split())), field.name


@pytest.mark.slow
def test_tiny_flags_give_the_perplexity_and_pattern_they_promise(readme_sample, tiny_sample_run):
  comment = (ROOT / "configs" / "tiny.flags").read_text()
  promised = re.search(r"ends with valid token perplexity ([\d.]+) and the pattern (\w+)", comment)
  assert promised, "configs/tiny.flags no longer states its expected result"
  # Trained by conftest.py as the comment says, on the sample as the comment builds it (7,000
  # pieces), here by the README's command.
  assert "--vocab_size=7000" in comment and readme_sample[0] == 7000
  run_dir = tiny_sample_run
  results = json.loads((run_dir / "results.json").read_text())
  # Another CPU's kernels round differently; 200 steps keep that within a fraction of 1%.
  assert results["valid"]["token_perplexity"] == pytest.approx(float(promised[1]), rel=0.01)
  assert results["pattern"] == promised[2]


@pytest.mark.parametrize("config_class", [DataConfig, ModelConfig, TrainConfig])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_number_setting_must_be_finite(config_class, value):
  # NaN passes every comparison a range check makes (--ratio=nan trained a search, then
  # failed); --weight_decay=inf and --tau_start=inf trained into NaN.
  from par.errors import ParError

  floats = [f.name for f in dataclasses.fields(config_class) if isinstance(f.default, float)]
  assert floats
  for name in floats:
    config = dataclasses.replace(config_class(), **{name: value})
    with pytest.raises(ParError, match=rf"{name} must be a finite number, got"):
      config.validate()


def test_the_pipelines_plan_is_checked_before_anything_trains(tmp_path):
  from helpers import error_line
  from par.errors import ParError
  from par.search import patterns

  for ratios, splits, message in (
    ([float("nan")], [], "--ratio must be 0 .* got nan"),
    ([-1.0], [], "--ratio must be 0"),
    ([2.0], [0.25, 0.2500001], "0.25 and 0.2500001 both name the search search-split0.25/"),
    ([2.0], [float("nan")], r"--arch_splits must lie in \[0, 1\), got nan"),
  ):
    with pytest.raises(ParError, match=message):
      patterns.check_plan(ratios, splits)
  patterns.check_plan([0.0, 3.0], [0.0, 0.2])
  result = run_script(
    "scripts/pipeline.py", "--flagfile=configs/tiny.flags", f"--work_dir={tmp_path}", "--ratio=nan"
  )
  assert "--ratio must be 0" in error_line(result)
  assert list(tmp_path.iterdir()) == []


def test_docs_flags_is_every_field_as_the_fields_declare_it():
  from par import config_flags

  text = (ROOT / "docs" / "FLAGS.md").read_text()
  assert text == config_flags.flags_markdown(), "regenerate docs/FLAGS.md (its header says how)"
  for config_class in (DataConfig, ModelConfig, TrainConfig, RuntimeConfig):
    for field in dataclasses.fields(config_class):
      if not dataclasses.is_dataclass(field.default):
        assert text.count(f"| `--{field.name}` |") == 1, field.name

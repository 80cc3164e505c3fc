"""Each flagfile in configs/ keeps the promise its opening comment makes."""

import json
import re

import pytest

from helpers import ROOT, run_script


@pytest.mark.slow
def test_tiny_flags_give_the_perplexity_and_pattern_they_promise(tmp_path, wt2_small):
  comment = (ROOT / "configs" / "tiny.flags").read_text()
  promised = re.search(r"ends with valid token perplexity ([\d.]+) and the pattern (\w+)",
                       comment)
  assert promised, "configs/tiny.flags no longer states its expected result"
  data_dir, run_dir = tmp_path / "data", tmp_path / "run"
  result = run_script("scripts/build_data.py", f"--input={wt2_small}",
                      f"--output_dir={data_dir}", "--vocab_size=7000")
  assert result.returncode == 0, result.stderr[-2000:]
  result = run_script("scripts/train.py", "--flagfile=configs/tiny.flags",
                      f"--model_dir={run_dir}", f"--data_dir={data_dir}")
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((run_dir / "results.json").read_text())
  # Another CPU's kernels round differently; 200 steps keep that within a fraction of 1%.
  assert results["valid"]["token_perplexity"] == pytest.approx(float(promised[1]), rel=0.01)
  assert results["pattern"] == promised[2]

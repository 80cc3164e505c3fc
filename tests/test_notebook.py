"""colab.ipynb runs headless, top to bottom, on the tiny config and the WikiText-2 sample, and
shows what it promises; the committed notebook carries no outputs."""

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ROOT

NOTEBOOK = ROOT / "colab.ipynb"


def test_committed_notebook_has_no_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def _text(cell):
  return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
def test_notebook_runs_headless(tmp_path, wt2_small):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
  run_dir, data_dir = tmp_path / "run", tmp_path / "data"
  parameters.source += f"""
# Overrides of tests/test_notebook.py
CONFIG, TRAIN_STEPS, MODEL_DIR = "tiny", 40, {str(run_dir)!r}
DATA_DIR, DATA_SOURCE, VOCAB_SIZE = {str(data_dir)!r}, {str(wt2_small)!r}, 3000
EVAL_SPLIT, PROMPT, MAX_TOKENS = "valid", "The game", 20
INSTALL, COLAB_CELLS = False, False
"""
  NotebookClient(
    notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
  ).execute()

  assert (run_dir / "results.json").is_file() and (run_dir / "export" / "model.keras").is_file()
  assert (data_dir / "wikitext2_bsz32_seqlen32" / "meta.json").is_file()
  cells = {c.source.splitlines()[0]: c for c in notebook.cells if c.cell_type == "code"}
  architecture = next(c for first, c in cells.items() if first.startswith("from IPython"))
  kinds = {kind for o in architecture.outputs for kind in o.get("data", {})}
  assert {"image/png", "image/gif"} <= kinds
  assert "derived pattern:" in _text(architecture)
  evaluation = next(c for first, c in cells.items() if first.startswith("output = sh("))
  assert "valid: token perplexity" in _text(evaluation)
  generation = next(c for first, c in cells.items() if first.startswith("text = sh("))
  assert "\nThe game" in _text(generation)
  tensorboard = next(c for first, c in cells.items() if first.startswith("if ON_COLAB"))
  assert "not on Colab" in _text(tensorboard)

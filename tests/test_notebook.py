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
def test_notebook_runs_headless(wt2_small, readme_sample, tiny_sample_run):
  # On the data and run it makes, made already (conftest.py): its build and training cells run
  # the same commands again, which reuse them, and the cells after read them.
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
  run_dir, data_dir = tiny_sample_run, readme_sample[2].parent
  parameters.source += f"""
# Overrides of tests/test_notebook.py
CONFIG, TRAIN_STEPS, MODEL_DIR = "tiny", 0, {str(run_dir)!r}
DATA_DIR, DATA_SOURCE = {str(data_dir)!r}, {str(wt2_small)!r}
PROMPT, MAX_TOKENS = "The game", 20
INSTALL, COLAB_CELLS = False, False
"""
  NotebookClient(
    notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
  ).execute()

  assert (run_dir / "results.json").is_file() and (run_dir / "export" / "model.keras").is_file()
  assert (data_dir / "wikitext2_bsz32_seqlen32" / "meta.json").is_file()
  cells = {c.source.splitlines()[0]: c for c in notebook.cells if c.cell_type == "code"}
  # The device, first: this machine has no GPU, and the notebook says so plainly.
  device = notebook.cells[2]
  assert device.source.startswith("import os\n\nDEVICE_CHECK") and "TensorFlow 2." in _text(device)
  assert "WARNING: no GPU. TensorFlow sees only the CPU" in _text(device)
  assert "oneDNN" not in _text(device) and "cuda" not in _text(device).lower()  # C++ noise
  # The defaults on the README's offline route: the sample's vocabulary (the README's), and
  # valid, since the sample has no test split.
  assert readme_sample[0] == 7000
  data = next(c for first, c in cells.items() if first.startswith("source = "))
  assert "evaluating on valid" in _text(data)
  # Learning curves and the architecture's figures, inline although this is not Colab.
  shown = {
    c.source.splitlines()[-1]: [kind for o in c.outputs for kind in o.get("data", {})]
    for c in notebook.cells
    if c.cell_type == "code" and c.source.startswith("from IPython")
  }
  curves = next(kinds for last, kinds in shown.items() if "curves.png" in last)
  assert curves.count("image/png") == 1
  architecture = next(c for c in notebook.cells if "architecture.json" in c.source)
  kinds = [kind for o in architecture.outputs for kind in o.get("data", {})]
  assert kinds.count("image/png") == 2 and kinds.count("image/gif") == 1  # heatmap, curves
  assert "derived pattern:" in _text(architecture)
  evaluation = next(c for first, c in cells.items() if first.startswith("output = sh("))
  assert "valid: token perplexity" in _text(evaluation)
  generation = next(c for first, c in cells.items() if first.startswith("text = sh("))
  assert "\n⟦The game⟧" in _text(generation)  # the prompt told apart
  tensorboard = next(c for first, c in cells.items() if first.startswith("if ON_COLAB"))
  assert "not on Colab" in _text(tensorboard)

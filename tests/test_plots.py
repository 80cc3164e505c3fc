"""The figures' files: formats, resolution, the GIF's frames, y-ranges that show differences."""

import io

import numpy as np
import pytest
from PIL import Image

from par.search import plots

THIRDS = np.array([[0.3330, 0.3334, 0.3336], [0.90, 0.06, 0.04]])


@pytest.mark.parametrize(
  "values, expected",
  [
    ([0.3330, 0.3338], (0.3274, 0.3394)),  # 0.01 wide at least, centred, not 0-1
    ([0.2, 0.6], (0.16, 0.64)),  # the range padded by a tenth each side
    ([0.0, 0.05], (0.0, 0.06)),  # moved up to stay at or above 0
    ([0.0, 1.0], (0.0, 1.0)),  # clipped to [0, 1]
  ],
)
def test_y_range(values, expected):
  low, high = plots._y_range(np.array(values))
  assert (low, high) == pytest.approx(expected)
  assert low <= min(values) and high >= max(values)


def test_heatmap_and_trajectories_come_as_png_and_pdf():
  files = plots.heatmap(THIRDS, step=10, run="r", pattern="fs", kinds=("png", "pdf"))
  assert files["png"][:8] == b"\x89PNG\r\n\x1a\n" and files["pdf"][:5] == b"%PDF-"
  image = Image.open(io.BytesIO(files["png"]))
  assert image.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=1)
  history = [(0, np.full((2, 3), 1 / 3)), (10, THIRDS)]
  files = plots.trajectories(history, run="r", pattern="fs")
  assert set(files) == {"png", "pdf"} and files["pdf"][:5] == b"%PDF-"


def test_gif_has_one_frame_of_one_size_per_entry():
  history = [(step, np.roll(THIRDS, step, axis=1)) for step in range(3)]
  gif = Image.open(io.BytesIO(plots.animation_gif(history, run="r")))
  sizes = set()
  for frame in range(gif.n_frames):
    gif.seek(frame)
    sizes.add(gif.size)
  assert gif.n_frames == 3 and len(sizes) == 1


def test_the_agreement_figure_draws_skipping_patterns_hollow(monkeypatch):
  # A point per pattern and seed, filled in its attention count's colour, or hollow (no fill,
  # the colour on its edge) when it skips a block; the legend says so.
  closed = []
  monkeypatch.setattr(plots.plt, "close", closed.append)
  panels = {"fair": {1: [("sfs", 4.0, 4.1), ("sfi", 3.9, 4.3)], 2: [("sfs", 4.1, 4.2)]}}
  files = plots.scores_against_retrained(panels, "t")
  assert files["png"][:8] == b"\x89PNG\r\n\x1a\n"
  (figure,) = closed
  points = figure.axes[0].collections
  assert [tuple(c.get_offsets()[0]) for c in points] == [(4.0, 4.1), (3.9, 4.3), (4.1, 4.2)]
  faces = [c.get_facecolors() for c in points]
  hollow = len(faces[1]) == 0 or faces[1][0][3] == 0
  assert faces[0][0][3] > 0 and faces[2][0][3] > 0 and hollow
  assert points[1].get_edgecolors()[0][3] > 0 and points[1].get_linewidths()[0] > 0
  labels = [t.get_text() for t in figure.legends[0].get_texts()]
  assert labels[-1] == "skips a block" and "seed 2" in labels
  files = plots.scores_against_retrained({"fair": {1: [("sfs", 4.0, 4.1), ("ssf", 3.9, 4.3)]}})
  assert "skips a block" not in [t.get_text() for t in closed[-1].legends[0].get_texts()]

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

"""Pictures of the architecture: a heatmap of block probabilities, and its animation.

Rows are blocks (input at the top), columns the branch kinds (s attention, f feed-forward,
i identity); each cell shows its probability, and the most likely kind of each block is
outlined. Rendering uses matplotlib's Agg backend, so it works without a display.
"""

import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from par.config import BLOCK_KINDS

_LABELS = {"s": "attention", "f": "feed-forward", "i": "identity"}


def _draw(axes, probabilities, title):
  probabilities = np.asarray(probabilities)
  axes.clear()
  image = axes.imshow(probabilities, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
  axes.set_xticks(range(len(BLOCK_KINDS)), [_LABELS[k] for k in BLOCK_KINDS])
  axes.set_yticks(range(len(probabilities)), [f"block {k}" for k in range(len(probabilities))])
  axes.set_title(title)
  best = probabilities.argmax(1)
  for row, values in enumerate(probabilities):
    for column, value in enumerate(values):
      axes.text(
        column,
        row,
        f"{value:.2f}",
        ha="center",
        va="center",
        color="black" if value > 0.6 else "white",
        fontsize=9,
      )
    axes.add_patch(
      plt.Rectangle((best[row] - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
    )
  return image


def _figure(num_blocks):
  return plt.figure(figsize=(4.8, 1.2 + 0.45 * num_blocks), dpi=100)


def _png(figure):
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()


def heatmap_png(probabilities, title=""):
  """PNG bytes of the heatmap of probabilities [n_blocks, 3]."""
  figure = _figure(len(probabilities))
  try:
    image = _draw(figure.add_subplot(1, 1, 1), probabilities, title)
    figure.colorbar(image, fraction=0.05)
    return _png(figure)
  finally:
    plt.close(figure)


def animation_gif(history, fps=4):
  """GIF bytes of the heatmap over training, one frame per entry.

  Args:
    history: sequence of (step, probabilities [n_blocks, 3]).
    fps: frames per second.
  """
  if not history:
    raise ValueError("no architecture history to animate")
  figure = _figure(len(history[0][1]))
  try:
    axes = figure.add_subplot(1, 1, 1)
    _draw(axes, history[0][1], f"step {history[0][0]}")
    figure.tight_layout()  # Once: every frame has the same layout.

    def frame(index):
      step, probabilities = history[index]
      _draw(axes, probabilities, f"step {step}")

    movie = animation.FuncAnimation(figure, frame, frames=len(history), interval=1000 // fps)
    with tempfile.TemporaryDirectory() as work:  # Pillow's writer takes a file name.
      path = Path(work) / "architecture.gif"
      movie.save(str(path), writer=animation.PillowWriter(fps=fps))
      return path.read_bytes()
  finally:
    plt.close(figure)


def trajectories_png(history):
  """PNG bytes of each block's probabilities over training, one panel per block.

  Args:
    history: sequence of (step, probabilities [n_blocks, 3]), in step order.
  """
  if not history:
    raise ValueError("no architecture history to plot")
  steps = [step for step, _ in history]
  values = np.asarray([probabilities for _, probabilities in history])  # [T, N, 3]
  blocks = values.shape[1]
  columns = min(blocks, 3)
  rows = -(-blocks // columns)
  figure, axes = plt.subplots(
    rows,
    columns,
    figsize=(3.2 * columns, 2.2 * rows),
    dpi=100,
    sharex=True,
    sharey=True,
    squeeze=False,
  )
  try:
    for b, panel in enumerate(axes.flat):
      if b >= blocks:
        panel.axis("off")
        continue
      for k, kind in enumerate(BLOCK_KINDS):
        panel.plot(steps, values[:, b, k], label=_LABELS[kind])
      panel.set_title(f"block {b}", fontsize=9)
      panel.set_ylim(0.0, 1.0)
      panel.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    figure.supxlabel("step")
    figure.supylabel("probability")
    return _png(figure)
  finally:
    plt.close(figure)


_MARKERS = "os^Dvp"


def tradeoff(series, title=""):
  """Valid perplexity against measured time per token, training and evaluation side by side,
  every model a point: {"png": bytes at 200 dpi, "pdf": bytes}.

  Colour tells the pattern (the same in every series), marker the series (e.g. a seed); a
  SuperNet's point is hollow. The legend names each pattern with the derivations that gave
  it.

  Args:
    series: [(label, rows)], rows as `par.pipeline.run_pipeline` returns them.
    title: the figure's title.
  """
  patterns = {}  # pattern -> its label, in order of appearance
  for _, rows in series:
    for row in rows:
      patterns.setdefault(row["pattern"], row["model"])
  colours = {p: plt.get_cmap("tab10")(k % 10) for k, p in enumerate(patterns)}
  figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), sharey=True, layout="constrained")
  try:
    for (label, rows), marker in zip(series, _MARKERS * len(series)):
      for panel, key in zip(axes, ("train_seconds_per_token", "eval_seconds_per_token")):
        for row in rows:
          if "valid" not in row:
            continue
          colour = colours[row["pattern"]]
          panel.scatter(
            row[key] * 1e6,
            row["valid"]["token_perplexity"],
            marker=marker,
            s=46,
            facecolors="none" if row["attention_blocks"] is None else colour,
            edgecolors=colour,
            linewidths=1.4,
          )
    axes[0].set_xlabel("training time per token (µs, forward and backward)")
    axes[1].set_xlabel("evaluation time per token (µs)")
    axes[0].set_ylabel("valid perplexity (token, last weights)")
    for panel in axes:
      panel.grid(alpha=0.3)
    handles = [
      plt.Line2D([], [], ls="", marker="s", color=colours[p], label=f"{p}: {patterns[p]}")
      for p in patterns
    ] + [
      plt.Line2D([], [], ls="", marker=m, color="0.3", mfc="0.3", label=label)
      for (label, _), m in zip(series, _MARKERS * len(series))
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    figure.suptitle(title or "Perplexity against measured time per token")
    files = {}
    for kind, dpi in (("png", 200), ("pdf", None)):
      buffer = io.BytesIO()
      figure.savefig(buffer, format=kind, dpi=dpi)
      files[kind] = buffer.getvalue()
    return files
  finally:
    plt.close(figure)

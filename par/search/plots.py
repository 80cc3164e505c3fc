"""Figures of the search, fit for a paper: the architecture heatmap, its animation, each
block's probabilities over training, and the pipeline's perplexity-against-time plot.

The kinds are spelled out once per figure: attention (s), feed-forward (f) and identity (i).
Every figure has a title naming the run and its pattern, labelled axes and colourbars, and a
legend for every mark; each comes as PNG (200 dpi) and, for the ones a paper takes, PDF
(vector). Rendering uses matplotlib's Agg backend, so it works without a display.
"""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from PIL import Image

from par.config import BLOCK_KINDS
from par.search.ranking import attention_depth
from par.search.ranking import kendall_tau

DPI = 200  # PNG resolution
_LABELS = {"s": "attention (s)", "f": "feed-forward (f)", "i": "identity (i)"}
_COLOURS = {"s": "tab:red", "f": "tab:blue", "i": "tab:gray"}
_STYLES = {"s": "-", "f": "--", "i": ":"}


def _files(figure, kinds=("png",), dpi=DPI):
  """{kind: bytes} of the figure saved as each kind."""
  files = {}
  for kind in kinds:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=dpi)
    files[kind] = buffer.getvalue()
    # The layout is in figure units, the same for every kind and resolution: the first save
    # computes it, the others keep it (half the layout time of a PNG + PDF figure).
    figure.set_layout_engine("none")
  return files


def _heatmap_title(run, step, pattern):
  where = f"{run}, " if run else ""
  return f"{where}step {step}: pattern {pattern}"


def _heatmap_figure(n_blocks):
  """A figure with the heatmap's axes and the colourbar's (fixed, so frames line up)."""
  figure = plt.figure(figsize=(5.6, 1.9 + 0.42 * n_blocks), layout="constrained")
  grid = figure.add_gridspec(1, 2, width_ratios=[1.0, 0.05])
  return figure, figure.add_subplot(grid[0]), figure.add_subplot(grid[1])


def _draw_heatmap(figure, axes, colourbar_axes, probabilities, title):
  """The heatmap on `axes`; the colourbar on `colourbar_axes` unless None (an animation's
  later frames keep the first one's: the scale is fixed)."""
  probabilities = np.asarray(probabilities)
  axes.clear()
  image = axes.imshow(probabilities, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
  axes.set_xticks(range(len(BLOCK_KINDS)), [_LABELS[k] for k in BLOCK_KINDS])
  axes.set_yticks(range(len(probabilities)), [f"block {k}" for k in range(len(probabilities))])
  axes.set_ylabel("block (input at the top)")
  axes.set_xlabel("block kind (outlined: the most likely, which the pattern keeps)")
  axes.set_title(title, fontsize=10)
  best = probabilities.argmax(1)
  for row, values in enumerate(probabilities):
    for column, value in enumerate(values):
      axes.text(
        column,
        row,
        f"{value:.3f}",
        ha="center",
        va="center",
        color="black" if value > 0.6 else "white",
        fontsize=9,
      )
    axes.add_patch(
      plt.Rectangle((best[row] - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
    )
  if colourbar_axes is not None:
    colourbar_axes.clear()
    figure.colorbar(image, cax=colourbar_axes).set_label("probability")


def heatmap(probabilities, step, run="", pattern="", kinds=("png",)):
  """{kind: bytes} of the heatmap of probabilities [n_blocks, 3] at `step`.

  Rows are blocks (input at the top), columns the kinds; each cell shows its probability and
  each block's most likely kind is outlined in red. The title names the run, the step and
  the pattern derived from the probabilities.
  """
  figure, axes, colourbar_axes = _heatmap_figure(len(probabilities))
  try:
    _draw_heatmap(figure, axes, colourbar_axes, probabilities, _heatmap_title(run, step, pattern))
    return _files(figure, kinds)
  finally:
    plt.close(figure)


def heatmap_png(probabilities, step, run="", pattern=""):
  """PNG bytes of `heatmap`."""
  return heatmap(probabilities, step, run, pattern)["png"]


def animation_gif(history, run="", fps=4):
  """GIF bytes of the heatmap over training, one frame per entry, each frame drawn as
  `heatmap` draws it (colourbar, outlines, title with step and pattern).

  Args:
    history: sequence of (step, probabilities [n_blocks, 3]).
    run: the run's name, for the titles.
    fps: frames per second.
  """
  if not history:
    raise ValueError("no architecture history to animate")
  figure, axes, colourbar_axes = _heatmap_figure(len(history[0][1]))
  figure.set_dpi(100)
  try:
    frames = []
    for index, (step, probabilities) in enumerate(history):
      pattern = "".join(BLOCK_KINDS[k] for k in np.asarray(probabilities).argmax(1))
      title = _heatmap_title(run, step, pattern)
      # The first frame draws the colourbar and fixes the layout; the others keep both, so
      # that the frames line up.
      _draw_heatmap(figure, axes, colourbar_axes if index == 0 else None, probabilities, title)
      figure.canvas.draw()
      if index == 0:
        figure.set_layout_engine("none")
      frames.append(Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB"))
    buffer = io.BytesIO()
    frames[0].save(
      buffer, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0
    )
    return buffer.getvalue()
  finally:
    plt.close(figure)


def _y_range(values):
  """Limits that show the differences: the data's range, padded, at least 0.01 wide, within
  [0, 1]."""
  low, high = float(np.min(values)), float(np.max(values))
  span = max(high - low, 0.01)
  middle = (low + high) / 2
  low, high = middle - 0.6 * span, middle + 0.6 * span
  if low < 0.0:
    low, high = 0.0, high - low
  if high > 1.0:
    low, high = max(0.0, low - (high - 1.0)), 1.0
  return low, high


def trajectories(history, run="", pattern="", kinds=("png", "pdf")):
  """{kind: bytes} of each block's probabilities over training, one panel per block.

  Every panel has its own y-range, chosen to show the differences (`_y_range`: three kinds
  near 1/3 are not drawn on a 0-1 axis), and its own step labels; one legend, below.

  Args:
    history: sequence of (step, probabilities [n_blocks, 3]), in step order.
    run, pattern: for the title (the pattern the search derived at the end).
  """
  if not history:
    raise ValueError("no architecture history to plot")
  steps = [step for step, _ in history]
  values = np.asarray([probabilities for _, probabilities in history])  # [T, N, 3]
  blocks = values.shape[1]
  columns = min(blocks, 3)
  rows = -(-blocks // columns)
  figure, axes = plt.subplots(
    rows, columns, figsize=(3.4 * columns, 2.5 * rows + 0.9), squeeze=False, layout="constrained"
  )
  try:
    for b, panel in enumerate(axes.flat):
      if b >= blocks:
        panel.axis("off")
        continue
      for k, kind in enumerate(BLOCK_KINDS):
        panel.plot(steps, values[:, b, k], _STYLES[kind], color=_COLOURS[kind], label=_LABELS[kind])
      panel.set_ylim(*_y_range(values[:, b]))
      panel.yaxis.set_major_formatter(ticker.ScalarFormatter(useOffset=False))
      panel.set_title(f"block {b}", fontsize=10)
      panel.set_xlabel("step")
      if b % columns == 0:
        panel.set_ylabel("probability")
      panel.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    where = f"{run}: " if run else ""
    end = f" (final pattern {pattern})" if pattern else ""
    figure.suptitle(f"{where}architecture probabilities over the search{end}")
    return _files(figure, kinds)
  finally:
    plt.close(figure)


def trajectories_png(history, run="", pattern=""):
  """PNG bytes of `trajectories`."""
  return trajectories(history, run, pattern, kinds=("png",))["png"]


def curves(scalars, panels, run="", pattern="", kinds=("png", "pdf")):
  """{kind: bytes} of a run's learning curves, a panel per tag against the step: train as a
  line, valid and test as marked lines.

  Args:
    scalars: {split: {tag: [(step, value)]}} (`par.train.summaries.read_scalars`).
    panels: [(tag, y label, log scale)], one panel each.
    run, pattern: for the title.
  """
  styles = {"train": ("-", None), "valid": ("-", "o"), "test": ("--", "s")}
  figure, axes = plt.subplots(
    1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False, layout="constrained"
  )
  try:
    for panel, (tag, label, log) in zip(axes.flat, panels):
      for split, (line, marker) in styles.items():
        points = scalars.get(split, {}).get(tag)
        if points:
          steps, values = zip(*points)
          panel.plot(steps, values, line, marker=marker, markersize=4, label=split)
      panel.set_xlabel("step")
      panel.set_ylabel(label + (" (log scale)" if log else ""))
      panel.grid(alpha=0.3)
      panel.legend()
      if log:
        panel.set_yscale("log")
        plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
        panel.yaxis.set_major_formatter(plain)
        panel.yaxis.set_minor_formatter(plain)
    where = f"{run}: " if run else ""
    figure.suptitle(f"{where}learning curves" + (f" (pattern {pattern})" if pattern else ""))
    return _files(figure, kinds)
  finally:
    plt.close(figure)


_MARKERS = "os^Dvp"


def tradeoff(series, title=""):
  """Valid perplexity against measured time per token, training and evaluation side by side,
  every model a point: {"png": bytes at 200 dpi, "pdf": bytes}.

  Colour tells the pattern (the same in every series), marker the series (e.g. a seed); a
  SuperNet's point is hollow (evaluated with its argmax pattern, trained as the mixture). The
  legend names each pattern with the derivations that gave it.

  Args:
    series: [(label, rows)], rows as `par.study.pipeline.run_pipeline` returns them.
    title: the figure's title.
  """

  def key(row):  # a fixed model by its pattern (the same in every series), a SuperNet by name
    return row["pattern"] if row["attention_blocks"] is not None else row["model"]

  labels = {}  # key -> legend label, in order of appearance
  for _, rows in series:
    for row in rows:
      fixed = row["attention_blocks"] is not None
      labels.setdefault(key(row), f"{row['pattern']}: {row['model']}" if fixed else row["model"])
  colours = {k: plt.get_cmap("tab10")(n % 10) for n, k in enumerate(labels)}
  supernets = {key(row) for _, rows in series for row in rows if row["attention_blocks"] is None}
  figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), sharey=True, layout="constrained")
  try:
    for (_, rows), marker in zip(series, _MARKERS * len(series)):
      for panel, time_key in zip(axes, ("train_seconds_per_token", "eval_seconds_per_token")):
        for row in rows:
          if "valid" not in row:
            continue
          colour = colours[key(row)]
          panel.scatter(
            row[time_key] * 1e6,
            row["valid"]["token_perplexity"],
            marker=marker,
            s=46,
            facecolors="none" if key(row) in supernets else colour,
            edgecolors=colour,
            linewidths=1.4,
          )
    axes[0].set_xlabel("training time per token (µs, forward and backward)")
    axes[1].set_xlabel("evaluation time per token (µs)")
    axes[0].set_ylabel("valid perplexity (token, last weights)")
    for panel in axes:
      panel.grid(alpha=0.3)
    handles = [
      plt.Line2D(
        [],
        [],
        ls="",
        marker="o",
        color=colours[k],
        mfc="none" if k in supernets else colours[k],
        label=label,
      )
      for k, label in labels.items()
    ] + [
      plt.Line2D([], [], ls="", marker=m, color="0.3", mfc="0.3", label=label)
      for (label, _), m in zip(series, _MARKERS * len(series))
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    figure.suptitle(title or "Perplexity against measured time per token")
    return _files(figure, ("png", "pdf"))
  finally:
    plt.close(figure)


def ranking(scores, marks, title=""):
  """The shared-weight ranking: each pattern's valid perplexity against its number of
  attention blocks (spread sideways by the mean depth of its attention), coloured by that
  depth; `marks` ({label: pattern}) ringed and named. {"png": bytes, "pdf": bytes}."""
  n_blocks = len(next(iter(scores)))
  figure, axes = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
  try:
    depth_map = plt.get_cmap("viridis")
    for pattern, loss in scores.items():
      attention = pattern.count("s")
      depth = attention_depth(pattern)
      x = attention + (0.0 if depth is None else 0.6 * (depth - 0.5))
      colour = "0.6" if depth is None else depth_map(depth)
      axes.scatter(x, np.exp(loss), s=9, color=colour, alpha=0.75, linewidths=0)
    for (label, pattern), style in zip(marks.items(), ("o", "s", "D", "^")):
      depth = attention_depth(pattern)
      x = pattern.count("s") + (0.0 if depth is None else 0.6 * (depth - 0.5))
      axes.scatter(
        x,
        np.exp(scores[pattern]),
        s=90,
        marker=style,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=1.4,
        label=f"{label}: {pattern}",
      )
    axes.set_xticks(range(n_blocks + 1))
    axes.set_xlabel(
      "attention blocks (spread sideways by their mean depth: bottom left, top right)"
    )
    axes.set_ylabel("valid perplexity with the SuperNet's shared weights")
    axes.set_yscale("log")
    axes.grid(alpha=0.3)
    colourbar = figure.colorbar(
      plt.cm.ScalarMappable(cmap=depth_map, norm=plt.Normalize(0, 1)), ax=axes
    )
    colourbar.set_label("mean depth of attention (0: first block, 1: last)")
    axes.legend(fontsize=8, loc="best")
    axes.set_title(title or "Patterns ranked by the SuperNet", fontsize=10)
    return _files(figure, ("png", "pdf"))
  finally:
    plt.close(figure)


def tradeoff_over_seeds(rows, title=""):
  """Valid perplexity against measured time per token over seeds, training and evaluation
  side by side: each model a point at its means with error bars of ± one standard deviation
  over seeds both ways. {"png": bytes, "pdf": bytes}.

  Args:
    rows: `par.study.seeds.aggregate`'s rows (each metric a {"mean", "sd", "n"}); a SuperNet's point
      is hollow.
    title: the figure's title.
  """
  shown = [row for row in rows if row.get("valid_ppl")]
  colours = {row["model"]: plt.get_cmap("tab20")(n % 20) for n, row in enumerate(shown)}
  figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.8), sharey=True, layout="constrained")
  try:
    for panel, key in zip(axes, ("train_us", "eval_us")):
      for row in shown:
        colour = colours[row["model"]]
        panel.errorbar(
          row[key]["mean"],
          row["valid_ppl"]["mean"],
          xerr=row[key]["sd"],
          yerr=row["valid_ppl"]["sd"],
          fmt="o" if row["fixed"] else "s",
          ms=6,
          mfc=colour if row["fixed"] else "none",
          color=colour,
          capsize=2.5,
          lw=1.1,
        )
      panel.grid(alpha=0.3)
    axes[0].set_xlabel("training time per token (µs, forward and backward)")
    axes[1].set_xlabel("evaluation time per token (µs)")
    axes[0].set_ylabel("valid perplexity (token, last weights)")
    handles = [
      plt.Line2D(
        [],
        [],
        ls="",
        marker="o" if row["fixed"] else "s",
        color=colours[row["model"]],
        mfc=colours[row["model"]] if row["fixed"] else "none",
        label=f"{row['model']}: {row['pattern_label']}" if row["fixed"] else row["model"],
      )
      for row in shown
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    seeds = max(len(row["seeds"]) for row in shown) if shown else 0
    figure.suptitle(
      (title or "Perplexity against measured time per token")
      + f"\nmeans over {seeds} seeds, bars ± one standard deviation"
    )
    return _files(figure, ("png", "pdf"))
  finally:
    plt.close(figure)


def depth(points, split="test", title=""):
  """Retrained perplexity against the mean depth of the attention blocks, one point per
  pattern and seed, coloured by the number of attention blocks, marker by seed; patterns
  without attention have no depth and are left out. {"png": bytes, "pdf": bytes}.

  Args:
    points: [(pattern, seed, perplexity on `split`)].
    split: the split the perplexities are on (the axis says it).
    title: the figure's title.
  """
  seeds = sorted({seed for _, seed, _ in points})
  with_attention = [p for p in points if "s" in p[0]]
  counts = sorted({pattern.count("s") for pattern, _, _ in with_attention})
  colours = {c: plt.get_cmap("viridis")(k / max(len(counts) - 1, 1)) for k, c in enumerate(counts)}
  figure, axes = plt.subplots(figsize=(7.4, 4.6), layout="constrained")
  try:
    for seed, marker in zip(seeds, _MARKERS * len(seeds)):
      for pattern, s, perplexity in with_attention:
        if s == seed:
          axes.scatter(
            attention_depth(pattern),
            perplexity,
            marker=marker,
            s=40,
            color=colours[pattern.count("s")],
            alpha=0.85,
            linewidths=0,
          )
    axes.set_xlim(-0.04, 1.04)
    axes.set_xlabel("mean depth of the attention blocks (0: first block, 1: last)")
    axes.set_ylabel(f"{split} perplexity (token), retrained")
    axes.grid(alpha=0.3)
    handles = [
      plt.Line2D(
        [], [], ls="", marker="o", color=colours[c], label=f"{c} attention block{'s' * (c != 1)}"
      )
      for c in counts
    ] + [
      plt.Line2D([], [], ls="", marker=m, color="0.3", label=f"seed {seed}")
      for seed, m in zip(seeds, _MARKERS * len(seeds))
    ]
    axes.legend(handles=handles, fontsize=8, loc="best")
    left_out = len(points) - len(with_attention)
    note = f" ({left_out} without attention left out)" if left_out else ""
    axes.set_title((title or "Where attention sits") + note, fontsize=10)
    return _files(figure, ("png", "pdf"))
  finally:
    plt.close(figure)


def scores_against_retrained(panels, title=""):
  """Each search's shared-weight scores against the retrained losses of the same patterns,
  one panel per search, a point per pattern and seed (marker by seed: that seed's SuperNet
  against that seed's retraining), coloured by the pattern's attention blocks, hollow when it
  skips a block; each panel's title gives Kendall's τ of each seed. {"png": bytes, "pdf":
  bytes}.

  Args:
    panels: {search name: {seed: [(pattern, shared-weight score, retrained loss)]}}.
    title: the figure's title.
  """
  names = list(panels)
  seeds = sorted({s for per_seed in panels.values() for s in per_seed})
  patterns = {p for per_seed in panels.values() for ps in per_seed.values() for p, _, _ in ps}
  counts = sorted({p.count("s") for p in patterns})
  colours = {c: plt.get_cmap("viridis")(k / max(len(counts) - 1, 1)) for k, c in enumerate(counts)}
  markers = dict(zip(seeds, _MARKERS * len(seeds)))
  columns = min(3, max(1, len(names)))
  rows = -(-max(1, len(names)) // columns)
  figure, grid = plt.subplots(
    rows, columns, figsize=(4.2 * columns, 3.6 * rows), layout="constrained", squeeze=False
  )
  try:
    for axes, name in zip(grid.flat, names):
      taus = []
      for seed, points in sorted(panels[name].items()):
        for pattern, score, loss in points:
          colour = colours[pattern.count("s")]
          skips = "i" in pattern  # hollow: weight sharing is known to favour skipping
          axes.scatter(
            score,
            loss,
            marker=markers[seed],
            s=30,
            facecolors="none" if skips else colour,
            edgecolors=colour,
            alpha=0.85,
            linewidths=1.0 if skips else 0,
          )
        taus.append(kendall_tau([x for _, x, _ in points], [y for _, _, y in points]))
      axes.set_title(f"{name}\nτ by seed: {', '.join(f'{t:.2f}' for t in taus)}", fontsize=9)
      axes.set_xlabel("shared-weight score (valid NLL, nats)", fontsize=8)
      axes.set_ylabel("retrained valid loss (nats)", fontsize=8)
      axes.tick_params(labelsize=7)
      axes.grid(alpha=0.3)
    for axes in list(grid.flat)[len(names) :]:
      axes.axis("off")
    handles = [
      plt.Line2D(
        [], [], ls="", marker="o", color=colours[c], label=f"{c} attention block{'s' * (c != 1)}"
      )
      for c in counts
    ] + [
      plt.Line2D([], [], ls="", marker=markers[s], color="0.3", label=f"seed {s}") for s in seeds
    ]
    if any("i" in p for p in patterns):
      handles.append(
        plt.Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label="skips a block")
      )
    figure.legend(handles=handles, fontsize=7, loc="outside right upper")
    figure.suptitle(title or "Shared-weight scores against retraining", fontsize=10)
    return _files(figure, ("png", "pdf"))
  finally:
    plt.close(figure)

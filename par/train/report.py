"""What a training run shows: log lines, TensorBoard summaries, the architecture record and its
plots, and a status line on a terminal. One `Reporter` per run owns all of them (Flax lm1b's metric
writers and ReportProgress play this part there); the trainer only tells it what happened.

Only the chief reports: on other workers the summary writers are no-ops and the files are
not written.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from par import runs
from par.config import BLOCK_KINDS
from par.search import collapse
from par.search import plots
from par.train import host
from par.train import schedules
from par.train import summaries

_GIF_FRAMES = 50


def status_text(step, total_steps, meter, width=24):
  """The terminal's status line: a bar, the step, the interval's loss, throughput and ETA."""
  filled = int(width * step / total_steps)
  speed = meter.speed  # None while the interval was all tracing
  return (
    f"[{'#' * filled}{'.' * (width - filled)}] {step}/{total_steps} | loss {meter.loss:.3f} | "
    f"{'–' if speed is None else f'{speed:,.0f}'} tok/s | ETA {meter.eta(step, total_steps)}"
  )


@dataclasses.dataclass
class Meter:
  """Sums over the current logging interval, and the run's training throughput.

  The throughput leaves out the first loop call, which traces and compiles.
  """

  tokens_per_step: int
  nll: float = 0.0
  tokens: float = 0.0
  arch_nll: float = 0.0
  arch_tokens: float = 0.0
  penalty: float = 0.0
  norm: float = 0.0
  skipped: float = 0.0
  steps: int = 0
  calls: int = 0
  timed_steps: int = 0
  timed_seconds: float = 0.0
  interval_timed_steps: int = 0
  interval_timed_seconds: float = 0.0

  def add(self, result, num_steps, seconds):
    """Adds one loop call's `steps.LoopResult` of `num_steps` steps that took `seconds`."""
    self.nll += float(result.nll)
    self.tokens += float(result.tokens)
    self.arch_nll += float(result.arch_nll)
    self.arch_tokens += float(result.arch_tokens)
    self.penalty += float(result.penalty)
    self.norm += float(result.norm)
    self.skipped += float(result.skipped)
    self.steps += num_steps
    if self.calls:
      self.timed_steps += num_steps
      self.timed_seconds += seconds
      self.interval_timed_steps += num_steps
      self.interval_timed_seconds += seconds
    self.calls += 1

  @property
  def loss(self):
    return self.nll / max(self.tokens, 1.0)

  @property
  def arch_loss(self):
    """The architecture step's loss over the interval: the mean NLL of the targets that
    train it, plus the mean resource term."""
    return self.arch_nll / max(self.arch_tokens, 1.0) + self.penalty / max(self.steps, 1)

  @property
  def speed(self):
    """Tokens per second over the interval, the process's first (tracing) loop call left
    out; None if that call was all the interval had."""
    if not self.interval_timed_seconds:
      return None
    return self.interval_timed_steps * self.tokens_per_step / self.interval_timed_seconds

  @property
  def mean_norm(self):
    """Mean gradient norm over the interval's applied (not skipped) steps."""
    return self.norm / max(self.steps - self.skipped, 1)

  @property
  def seconds_per_step(self):
    """The run's training time per step, the tracing call left out; None before any."""
    return self.timed_seconds / self.timed_steps if self.timed_steps else None

  def eta(self, step, total_steps):
    """'h:mm:ss' of training left at `step` at the timed pace, '?' before any timed step
    (evaluations and checkpoints not counted)."""
    pace = self.seconds_per_step
    return "?" if pace is None else host.clock(pace * (total_steps - step))

  @property
  def tokens_per_second(self):
    """The run's training throughput, or None if no call was timed."""
    if not self.timed_seconds:
      return None
    return self.timed_steps * self.tokens_per_step / self.timed_seconds

  def next_interval(self):
    self.nll = self.tokens = self.norm = self.skipped = 0.0
    self.arch_nll = self.arch_tokens = self.penalty = 0.0
    self.steps = self.interval_timed_steps = 0
    self.interval_timed_seconds = 0.0


class Reporter:
  """Logs, summaries, the architecture record, plots and the status line of one run.

  Args:
    model_dir: the run directory.
    model: the `ParModel` being trained.
    config: its `TrainConfig`.
    total_steps: the run's length.
    start_step: where this process starts (0, or the step resumed from).
    train_words_per_token: words / tokens of the train split (for word perplexity).
    train_characters_per_token: characters / tokens of the train split (for bits per
      character; 0 if the dataset does not count them).
    chief: whether this process writes files.
    loss_scale: the run's `precision.LossScale`, or None.
    held_out_lanes: the lanes of each record that train only the architecture.
    draws: a decoupled SuperNet's count of the branches each block ran (`TrainState.draws`),
      which it records instead of probabilities it does not learn.
  """

  def __init__(
    self,
    model_dir,
    model,
    config,
    total_steps,
    start_step,
    train_words_per_token,
    chief=True,
    loss_scale=None,
    train_characters_per_token=0.0,
    held_out_lanes=(),
    draws=None,
  ):
    self.model_dir = model_dir
    self.model = model
    self.config = config
    self.total_steps = total_steps
    self.train_words_per_token = train_words_per_token
    self.train_characters_per_token = train_characters_per_token
    self.chief = chief
    self.loss_scale = loss_scale
    self.held_out_lanes = list(held_out_lanes)
    self.draws = draws
    # A search that learns logits (a coupled one), as against a decoupled SuperNet.
    self.coupled = model.is_supernet and not model.is_decoupled
    self._writers = {}  # split -> writer, made when the split first writes (no empty runs)
    self._written = set()  # ("scalars" or "image", step) of architecture summaries written
    self.history = runs.load_history(model_dir, start_step)
    self.status = host.StatusLine(enabled=chief)  # shown while the trainer's loop holds it

  def writer(self, split):
    """The summary writer of `split` ("train", "valid" or "test")."""
    if split not in self._writers:
      self._writers[split] = (
        tf.summary.create_file_writer(str(self.model_dir / split))
        if self.chief
        else tf.summary.create_noop_writer()
      )
    return self._writers[split]

  def _tau(self, step):
    c = self.config
    return float(
      schedules.temperature(step, c.tau_start, c.tau_end, self.total_steps, c.tau_schedule)
    )

  def _rate(self, step):
    c = self.config
    return float(
      schedules.learning_rate(step, c.max_lr, c.warmup_steps, self.total_steps, c.min_lr)
    )

  def start(self, draw=False):
    """A fresh run's first summaries (step 0): the custom-scalars layout, the schedules'
    starting values, the initial architecture."""
    if self.chief:
      with self.writer("train").as_default(step=0):
        summaries.write_layout(
          self.coupled,
          self.model.searched_blocks,
          self._chars(),
          self.coupled and self.config.resource != "none",
          decoupled=self.model.is_decoupled,
        )
        tf.summary.scalar(summaries.LEARNING_RATE, self._rate(0))
        if self.coupled:
          tf.summary.scalar(summaries.TAU, self._tau(0))
    self.architecture(0, draw=draw)

  def _chars(self):
    return bool(self.train_characters_per_token)

  def interval(self, step, epoch, meter):
    """The training interval that ended at `step`: log line (with the ETA) and summaries.

    The learning rate and tau shown are those of the interval's last step; TensorBoard plots
    them against the steps done, from 0.
    """
    loss = meter.loss
    tau, rate = self._tau(step - 1), self._rate(step - 1)
    speed = meter.speed
    search = ""
    if self.coupled:
      entropies = collapse.entropy(self.model.architecture_probabilities())
      search = (
        f" | tau {tau:.3f} | arch loss {meter.arch_loss:.4f} | entropy {entropies.mean():.3f}"
      )
    logging.info(
      "step %d/%d epoch %d | loss %.4f | ppl %.2f | lr %.3g | grad norm %.3f%s | %s | %s tok/s "
      "| ETA %s",
      step,
      self.total_steps,
      epoch,
      loss,
      math.exp(min(loss, 80.0)),
      rate,
      meter.mean_norm,
      search,
      self.model.pattern or f"{self.config.model.sampling} paths",
      "–" if speed is None else f"{speed:.0f}",
      meter.eta(step, self.total_steps),
    )
    if meter.skipped:
      logging.info(
        "loss scaling: %d of %d steps skipped (gradients overflowed float16), scale now %g",
        meter.skipped,
        meter.steps,
        float(self.loss_scale.scale.numpy()),
      )
    with self.writer("train").as_default(step=step):
      summaries.write_metrics(
        loss,
        math.exp(min(loss, 80.0)),
        math.exp(min(loss / self.train_words_per_token, 80.0)),
        loss / self.train_characters_per_token / math.log(2) if self._chars() else None,
      )
      tf.summary.scalar(summaries.LEARNING_RATE, self._rate(step))
      tf.summary.scalar(summaries.GRADIENT_NORM, meter.mean_norm)
      if self.loss_scale is not None:
        tf.summary.scalar(summaries.LOSS_SCALE, float(self.loss_scale.scale.numpy()))
      if speed is not None:  # Not for an interval that was all tracing.
        tf.summary.scalar(summaries.TOKENS_PER_SECOND, speed)
      if self.coupled:
        tf.summary.scalar(summaries.TAU, self._tau(step))
        tf.summary.scalar(summaries.ARCH_LOSS, meter.arch_loss)
        if self.config.resource != "none":
          tf.summary.scalar(summaries.RESOURCE_TERM, meter.penalty / max(meter.steps, 1))

  def evaluation(self, split, step, result):
    """An `evaluate.Result` of `split` at `step`: log line and summaries."""
    words = result.word_perplexity
    logging.info(
      "%s at step %d: loss %.4f, token perplexity %.2f%s%s (%d tokens)",
      split,
      step,
      result.loss,
      result.token_perplexity,
      "" if words is None else f", word perplexity {words:.2f}",
      "" if result.bpc is None else f", bpc {result.bpc:.4f}",
      result.tokens,
    )
    with self.writer(split).as_default(step=step):
      summaries.write_metrics(result.loss, result.token_perplexity, words, result.bpc)

  def _drawn(self):
    """(each searched block's count of the branches it ran [searched blocks, 3], their shares)
    of a decoupled SuperNet."""
    counts = self.draws.numpy()
    return counts, counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

  def _record(self, history):
    if self.model.is_decoupled:
      counts, shares = self._drawn()
      return {
        "columns": list(BLOCK_KINDS),
        "sampling": self.config.model.sampling,
        "pattern": "",  # none derived: its ranking chooses (par-rank)
        "probabilities": None,
        "blocks": list(self.model.searched_blocks),  # the rows of draws and drawn
        "draws": counts.tolist(),
        "drawn": shares.round(6).tolist(),
        "history": [],
      }
    probabilities = self.model.architecture_probabilities()
    dominated, _ = collapse.collapse_report(probabilities)
    return {
      "columns": list(BLOCK_KINDS),
      "pattern": self.model.derived_pattern(),
      "probabilities": probabilities.round(6).tolist(),
      "entropy": collapse.entropy(probabilities).round(6).tolist(),
      "margins": collapse.margins(probabilities).round(6).tolist(),
      "arch_split": self.config.arch_split,
      "held_out_lanes": self.held_out_lanes,
      "identity_dominates": dominated,
      "history": history,
    }

  def architecture(self, step, draw=False):
    """The SuperNet's architecture at `step`: architecture.json, summaries, a heatmap if
    `draw`. Nothing for a fixed architecture."""
    if not self.model.is_supernet or not self.chief:
      return
    if self.model.is_decoupled:  # what it ran, so far; no logits to draw
      runs.write_json(self.model_dir / runs.ARCHITECTURE_FILE, self._record([]))
      if ("scalars", step) not in self._written:
        self._written.add(("scalars", step))
        with self.writer("train").as_default(step=step):
          summaries.write_drawn(self._drawn()[1], self.model.searched_blocks)
      return
    probabilities = self.model.architecture_probabilities()
    if not self.history or self.history[-1]["step"] != step:
      self.history.append({"step": step, "probabilities": probabilities.round(6).tolist()})
    runs.write_json(self.model_dir / runs.ARCHITECTURE_FILE, self._record(self.history))
    drawn = ("image", step) in self._written
    if ("scalars", step) not in self._written:  # Each step once (the end may repeat one).
      self._written.add(("scalars", step))
      with self.writer("train").as_default(step=step):
        summaries.write_architecture(probabilities, collapse.entropy(probabilities))
    if draw and not drawn and self.config.plots:
      self._written.add(("image", step))
      png = plots.heatmap_png(
        probabilities, step=step, run=self.model_dir.name, pattern=self.model.derived_pattern()
      )
      with self.writer("train").as_default(step=step):
        tf.summary.image(summaries.HEATMAP, tf.image.decode_png(png)[None])
      runs.write_bytes(runs.heatmap_path(self.model_dir, step), png)

  def progress(self, step, meter):
    """The status line after a loop call that ended at `step` (a terminal only)."""
    if self.status.enabled:
      self.status.update(status_text(step, self.total_steps, meter))

  def flush(self):
    for writer in self._writers.values():
      writer.flush()

  def _search_figures(self, end):
    """A search's figures at its end: the GIF of its heatmaps, each block's probabilities over
    the search, the final heatmap as PDF."""
    name, pattern = self.model_dir.name, self.model.derived_pattern()
    history = [(h["step"], np.array(h["probabilities"])) for h in self.history]
    frames = history[:: -(-len(history) // _GIF_FRAMES)]  # At most _GIF_FRAMES frames.
    plot_dir = self.model_dir / runs.PLOTS_DIR
    runs.write_bytes(plot_dir / runs.GIF_FILE, plots.animation_gif(frames, run=name))
    for kind, data in plots.trajectories(history, run=name, pattern=pattern).items():
      runs.write_bytes(plot_dir / Path(runs.PROBABILITIES_FILE).with_suffix(f".{kind}"), data)
    final = plots.heatmap(
      self.model.architecture_probabilities(), end, name, pattern, kinds=("pdf",)
    )
    runs.write_bytes(runs.heatmap_path(self.model_dir, end).with_suffix(".pdf"), final["pdf"])

  def finish(self, results):
    """The end of the run: the final architecture, its plots and collapse report, the log's
    last line."""
    if not self.chief:
      return
    if self.model.is_decoupled:
      self.architecture(results["steps"])
    elif self.model.is_supernet:
      end = results["steps"]  # the last step, or where --patience stopped the run
      self.architecture(end, draw=True)
      if self.config.plots:
        self._search_figures(end)
      probabilities = self.model.architecture_probabilities()
      history = [(h["step"], h["probabilities"]) for h in self.history]
      line, undecided = collapse.margin_report(probabilities, history)
      logging.info(line)
      for warning in (undecided, collapse.collapse_report(probabilities)[1]):
        if warning:
          logging.warning(warning)
    else:
      runs.write_json(self.model_dir / runs.ARCHITECTURE_FILE, self._record([]))
    self.flush()
    if self.config.plots:
      figures = plots.curves(
        summaries.read_scalars(self.model_dir),
        [
          (summaries.LOSS, "loss (nats per token)", False),
          (summaries.TOKEN_PERPLEXITY, "token perplexity", True),
        ],
        self.model_dir.name,
        self.model.pattern,
      )
      for kind, data in figures.items():
        runs.write_bytes(self.model_dir / runs.PLOTS_DIR / f"{runs.CURVES_FILE}.{kind}", data)
    logging.info("done: %s", json.dumps(results))

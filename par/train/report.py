"""What a training run shows: log lines, TensorBoard summaries, the architecture record and its
plots, and the progress bar. One `Reporter` per run owns all of them (Flax lm1b's metric
writers and ReportProgress play this part there); the trainer only tells it what happened.

Only the chief reports: on other workers the summary writers are no-ops and the files are
not written.
"""

import dataclasses
import json
import math

import numpy as np
import tensorflow as tf
from absl import logging

from par import runs
from par.config import BLOCK_KINDS
from par.search import collapse
from par.search import plots
from par.train import host
from par.train import schedules

_GIF_FRAMES = 50
_SPLITS = ("train", "valid", "test")


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
  seconds: float = 0.0
  calls: int = 0
  timed_steps: int = 0
  timed_seconds: float = 0.0

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
    self.seconds += seconds
    if self.calls:
      self.timed_steps += num_steps
      self.timed_seconds += seconds
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
    """Tokens per second over the interval."""
    return self.steps * self.tokens_per_step / max(self.seconds, 1e-9)

  @property
  def mean_norm(self):
    """Mean gradient norm over the interval's applied (not skipped) steps."""
    return self.norm / max(self.steps - self.skipped, 1)

  @property
  def tokens_per_second(self):
    """The run's training throughput, or None if no call was timed."""
    if not self.timed_seconds:
      return None
    return self.timed_steps * self.tokens_per_step / self.timed_seconds

  def next_interval(self):
    self.nll = self.tokens = self.norm = self.skipped = self.seconds = 0.0
    self.arch_nll = self.arch_tokens = self.penalty = 0.0
    self.steps = 0


class Reporter:
  """Logs, summaries, the architecture record, plots and the progress bar of one run.

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
    self.writers = {
      split: (
        tf.summary.create_file_writer(str(model_dir / split))
        if chief
        else tf.summary.create_noop_writer()
      )
      for split in _SPLITS
    }
    self.history = runs.load_history(model_dir, start_step)
    self.progress = host.Progress(total_steps, start_step, enabled=chief)

  def interval(self, step, epoch, meter):
    """The training interval that ended at `step`: log line, summaries, progress bar."""
    c = self.config
    loss = meter.loss
    tau = float(
      schedules.temperature(step - 1, c.tau_start, c.tau_end, self.total_steps, c.tau_schedule)
    )
    rate = float(
      schedules.learning_rate(step - 1, c.max_lr, c.warmup_steps, self.total_steps, c.min_lr)
    )
    search = ""
    if self.model.is_supernet:
      entropies = collapse.entropy(self.model.architecture_probabilities())
      search = f" | arch loss {meter.arch_loss:.4f} | entropy {entropies.mean():.3f}"
    logging.info(
      "step %d/%d epoch %d | loss %.4f | ppl %.2f | lr %.3g | tau %.3f | "
      "grad norm %.3f%s | %s | %.0f tok/s",
      step,
      self.total_steps,
      epoch,
      loss,
      math.exp(min(loss, 80.0)),
      rate,
      tau,
      meter.mean_norm,
      search,
      self.model.pattern,
      meter.speed,
    )
    if meter.skipped:
      logging.info(
        "loss scaling: %d of %d steps skipped (gradients overflowed float16), scale now %g",
        meter.skipped,
        meter.steps,
        float(self.loss_scale.scale.numpy()),
      )
    with self.writers["train"].as_default(step=step):
      tf.summary.scalar("loss", loss)
      tf.summary.scalar("token_perplexity", math.exp(min(loss, 80.0)))
      tf.summary.scalar("word_perplexity", math.exp(min(loss / self.train_words_per_token, 80.0)))
      if self.train_characters_per_token:
        tf.summary.scalar("bpc", loss / self.train_characters_per_token / math.log(2))
      tf.summary.scalar("learning_rate", rate)
      tf.summary.scalar("tau", tau)
      tf.summary.scalar("gradient_norm", meter.mean_norm)
      if self.loss_scale is not None:
        tf.summary.scalar("loss_scale", float(self.loss_scale.scale.numpy()))
      tf.summary.scalar("tokens_per_second", meter.speed)
      if self.model.is_supernet:
        tf.summary.scalar("architecture/loss", meter.arch_loss)
        if self.config.resource != "none":
          tf.summary.scalar("architecture/resource_term", meter.penalty / max(meter.steps, 1))
    self.progress.update(step, meter.speed, loss)

  def evaluation(self, split, step, result):
    """An `evaluate.Result` of `split` at `step`: log line and summaries."""
    logging.info(
      "%s at step %d: loss %.4f, token perplexity %.2f, word perplexity %.2f%s (%d tokens)",
      split,
      step,
      result.loss,
      result.token_perplexity,
      result.word_perplexity,
      f", bpc {result.bpc:.4f}" if result.characters else "",
      result.tokens,
    )
    with self.writers[split].as_default(step=step):
      tf.summary.scalar("loss", result.loss)
      tf.summary.scalar("token_perplexity", result.token_perplexity)
      tf.summary.scalar("word_perplexity", result.word_perplexity)
      if result.characters:
        tf.summary.scalar("bpc", result.bpc)

  def _record(self, history):
    probabilities = self.model.architecture_probabilities()
    dominated, _ = collapse.collapse_report(probabilities)
    return {
      "columns": list(BLOCK_KINDS),
      "pattern": self.model.derived_pattern(),
      "probabilities": probabilities.round(6).tolist(),
      "entropy": collapse.entropy(probabilities).round(6).tolist(),
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
    probabilities = self.model.architecture_probabilities()
    if not self.history or self.history[-1]["step"] != step:
      self.history.append({"step": step, "probabilities": probabilities.round(6).tolist()})
    runs.write_json(self.model_dir / runs.ARCHITECTURE_FILE, self._record(self.history))
    with self.writers["train"].as_default(step=step):
      entropies = collapse.entropy(probabilities)
      for k, row in enumerate(probabilities):
        for kind, p in zip(BLOCK_KINDS, row):
          tf.summary.scalar(f"architecture/block{k}/{kind}", p)
        tf.summary.scalar(f"architecture/block{k}/entropy", entropies[k])
      tf.summary.scalar("architecture/mean_entropy", entropies.mean())
      if draw:
        png = plots.heatmap_png(probabilities, f"step {step}: {self.model.derived_pattern()}")
        tf.summary.image("architecture", tf.image.decode_png(png)[None])
        runs.write_bytes(runs.heatmap_path(self.model_dir, step), png)

  def close_progress(self):
    self.progress.close()

  def flush(self):
    for writer in self.writers.values():
      writer.flush()

  def finish(self, results):
    """The end of the run: the final architecture, its plots and collapse report, the log's
    last line."""
    if not self.chief:
      return
    if self.model.is_supernet:
      self.architecture(self.total_steps, draw=True)
      history = [(h["step"], np.array(h["probabilities"])) for h in self.history]
      frames = history[:: -(-len(history) // _GIF_FRAMES)]  # At most _GIF_FRAMES frames.
      plot_dir = self.model_dir / runs.PLOTS_DIR
      runs.write_bytes(plot_dir / runs.GIF_FILE, plots.animation_gif(frames))
      runs.write_bytes(plot_dir / runs.PROBABILITIES_FILE, plots.trajectories_png(history))
      _, warning = collapse.collapse_report(self.model.architecture_probabilities())
      if warning:
        logging.warning(warning)
    else:
      runs.write_json(self.model_dir / runs.ARCHITECTURE_FILE, self._record([]))
    logging.info("done: %s", json.dumps(results))

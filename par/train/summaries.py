"""What a run writes to TensorBoard, and how the dashboards lay it out.

Tags (runs: <run>/train, <run>/valid, <run>/test; in a pipeline also the run itself, for its
hyperparameters, and <run>/timing):

  loss                              mean NLL per token (nats)
  perplexity/token, /word, /bpc     token and word perplexity; bits per character if counted
  search/tau, search/architecture_loss, search/resource_term, search/mean_entropy,
  search/block<k>/{attention,feed_forward,identity,entropy,below_uniform},
  search/architecture (heatmap)     a SuperNet's that learns logits (coupled); below_uniform
                                    is ln 3 - entropy, 0 while the block is undecided
  search/block<k>/ran_{attention,feed_forward,identity}
                                    a decoupled SuperNet's: the share of its paths so far
                                    that ran each branch of the block
  training/learning_rate, /gradient_norm, /tokens_per_second, /loss_scale
  timing/train_us_per_token, timing/eval_us_per_token
                                    measured by the pipeline after training (<run>/timing)

TensorBoard's Time Series dashboard groups cards by the part of the tag before the first
"/", sorts the groups by name and opens the first two: loss, then perplexity, then search
and training, closed. Each run also carries a custom-scalars layout (the Custom Scalars
dashboard): loss and perplexities of train, valid and test together, then for a search each
block's three probabilities a chart each, and how far its entropy is below uniform (an
entropy near ln 3 drew an axis whose every tick read "1.1"), then the schedules.
In a pipeline, which compares runs, each run's settings go to the HParams dashboard
(`write_hparams`, in the run's own directory) and the work directory holds the experiment
(`write_hparams_config`): settings against final perplexities and measured time per token.
A single run writes neither, so that its TensorBoard lists only train, valid and test.
"""

import math
from pathlib import Path

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.summary import v1 as tensorboard_v1

LOSS = "loss"
TOKEN_PERPLEXITY = "perplexity/token"
WORD_PERPLEXITY = "perplexity/word"
BPC = "perplexity/bpc"
TAU = "search/tau"
ARCH_LOSS = "search/architecture_loss"
RESOURCE_TERM = "search/resource_term"
MEAN_ENTROPY = "search/mean_entropy"
UNIFORM_ENTROPY = math.log(3)  # nats: a block whose three branches are equally likely
HEATMAP = "search/architecture"
LEARNING_RATE = "training/learning_rate"
GRADIENT_NORM = "training/gradient_norm"
TOKENS_PER_SECOND = "training/tokens_per_second"
LOSS_SCALE = "training/loss_scale"
TRAIN_TIME = "timing/train_us_per_token"
EVAL_TIME = "timing/eval_us_per_token"
TIMING_RUN = "timing"
KIND_NAMES = {"s": "attention", "f": "feed_forward", "i": "identity"}


def block_tag(block, name):
  """search/block<k>/<name>: name is a kind's (KIND_NAMES) or "entropy"."""
  return f"search/block{block}/{name}"


def write_metrics(loss, token_perplexity, word_perplexity, bpc=None):
  """Loss and perplexities, in the default writer at its step (None: unknown, left out)."""
  tf.summary.scalar(LOSS, loss)
  tf.summary.scalar(TOKEN_PERPLEXITY, token_perplexity)
  if word_perplexity is not None:
    tf.summary.scalar(WORD_PERPLEXITY, word_perplexity)
  if bpc is not None:
    tf.summary.scalar(BPC, bpc)


def write_architecture(probabilities, entropies):
  """Each block's probabilities ([n_blocks, 3], columns s, f, i) and entropies (nats)."""
  for k, row in enumerate(probabilities):
    for kind, p in zip(KIND_NAMES, row):
      tf.summary.scalar(block_tag(k, KIND_NAMES[kind]), p)
    tf.summary.scalar(block_tag(k, "entropy"), entropies[k])
    tf.summary.scalar(block_tag(k, "below_uniform"), UNIFORM_ENTROPY - entropies[k])
  tf.summary.scalar(MEAN_ENTROPY, entropies.mean())


def write_drawn(shares, searched):
  """A decoupled SuperNet's share of paths that ran each branch of each searched block
  ([searched blocks, 3], columns s, f, i; `searched` their indices)."""
  for k, row in zip(searched, shares):
    for kind, share in zip(KIND_NAMES, row):
      tf.summary.scalar(block_tag(k, f"ran_{KIND_NAMES[kind]}"), share)


def _chart(title, *tags):
  """A multiline chart of the tags (exact names, as the regexes the plugin takes)."""
  return layout_pb2.Chart(
    title=title,
    multiline=layout_pb2.MultilineChartContent(tag=[f"^{t}$" for t in tags]),
  )


def layout(search, searched, characters, resource=False, decoupled=False):
  """The custom-scalars layout of a run (see the module docstring): `search` for a SuperNet
  that learns logits, `decoupled` for one that follows sampled paths; `searched`, the indices
  of its searched blocks."""
  metrics = [
    _chart("loss (nats per token): train, valid, test", LOSS),
    _chart("token perplexity", TOKEN_PERPLEXITY),
    _chart("word perplexity", WORD_PERPLEXITY),
  ]
  if characters:
    metrics.append(_chart("bits per character", BPC))
  categories = [layout_pb2.Category(title="loss and perplexity", chart=metrics)]
  if search:
    charts = []
    for k in searched:
      # One chart a branch: a chart of three tags draws them in one colour, with no legend.
      charts += [
        _chart(f"block {k}: probability of {name.replace('_', '-')}", block_tag(k, name))
        for name in KIND_NAMES.values()
      ]
      # The gap, not the entropy: an entropy near ln 3 = 1.0986 drew an axis whose ticks
      # all read "1.1"; the gap starts at 0 and its ticks read as they should.
      charts.append(
        _chart(
          f"block {k}: entropy below uniform (nats, ln 3 - H; 1.099 is one branch)",
          block_tag(k, "below_uniform"),
        )
      )
    charts += [
      _chart("architecture loss", ARCH_LOSS),
      _chart("mean entropy over blocks", MEAN_ENTROPY),
    ]
    if resource:
      charts.append(_chart("resource term (weight x expected cost)", RESOURCE_TERM))
    categories.append(layout_pb2.Category(title="architecture", chart=charts))
  if decoupled:
    charts = [
      _chart(
        f"block {k}: share of paths that ran {name.replace('_', '-')}", block_tag(k, f"ran_{name}")
      )
      for k in searched
      for name in KIND_NAMES.values()
    ]
    categories.append(layout_pb2.Category(title="paths", chart=charts))
  schedule = [
    _chart("learning rate", LEARNING_RATE),
    _chart("gradient norm (before clipping)", GRADIENT_NORM),
    _chart("training tokens per second", TOKENS_PER_SECOND),
  ]
  if search:
    schedule.append(_chart("Gumbel-Softmax temperature tau", TAU))
  categories.append(layout_pb2.Category(title="training", chart=schedule, closed=True))
  return layout_pb2.Layout(category=categories)


def write_layout(search, searched, characters, resource=False, decoupled=False):
  """The run's custom-scalars layout (`layout`), in the default writer."""
  summary = tensorboard_v1.custom_scalar_pb(
    layout(search, searched, characters, resource, decoupled)
  )
  tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)


HPARAM_NAMES = (
  "pattern",
  "search",
  "attention_blocks",
  "arch_split",
  "seed",
  "max_lr",
  "d_model",
  "n_blocks",
  "mem_len",
  "resource_weight",
)


def hparams(config):
  """The settings a run is compared by in the HParams dashboard (a search's pattern is
  "SuperNet"; it has no count of attention blocks, so the dashboard shows none rather than a
  -1 that sorts and plots as a count)."""
  c, m = config, config.model
  value = {
    "pattern": m.architecture if not m.is_supernet else (m.architecture or "SuperNet"),
    "search": m.is_supernet,
    "attention_blocks": None if m.is_supernet else m.architecture.count("s"),
    "arch_split": c.arch_split,
    "seed": c.seed,
    "max_lr": c.max_lr,
    "d_model": m.d_model,
    "n_blocks": m.n_blocks,
    "mem_len": m.mem_len,
    "resource_weight": c.resource_weight,
  }
  return {name: v for name, v in value.items() if v is not None}


def write_hparams(model_dir, config):
  """The run's settings (`hparams`) as an HParams session in the run's own directory, once
  (a directory that has them already is left as it is)."""
  model_dir = Path(model_dir)
  if list(model_dir.glob("events.out.tfevents.*")):
    return
  writer = tf.summary.create_file_writer(str(model_dir))
  with writer.as_default():
    hp.hparams(hparams(config), trial_id=model_dir.name)
  writer.close()


def write_hparams_config(names=HPARAM_NAMES):
  """An experiment of runs written by `write_hparams`, compared by their final valid and test
  perplexity and measured time per token; `names` are the hparams' names."""
  hp.hparams_config(
    hparams=[hp.HParam(name) for name in names],
    metrics=[
      hp.Metric(TOKEN_PERPLEXITY, group="valid", display_name="valid perplexity"),
      hp.Metric(TOKEN_PERPLEXITY, group="test", display_name="test perplexity"),
      hp.Metric(WORD_PERPLEXITY, group="test", display_name="test word perplexity"),
      hp.Metric(TRAIN_TIME, group=TIMING_RUN, display_name="train µs/token"),
      hp.Metric(EVAL_TIME, group=TIMING_RUN, display_name="eval µs/token"),
    ],
  )


def write_timing(model_dir, step, train_seconds, eval_seconds):
  """A run's measured time per token (µs) at `step`, in <run>/timing, replacing what an
  earlier measurement wrote there: one point per tag, the latest."""
  directory = Path(model_dir) / TIMING_RUN
  for old in directory.glob("events.out.tfevents.*"):
    old.unlink()
  writer = tf.summary.create_file_writer(str(directory))
  with writer.as_default(step=step):
    tf.summary.scalar(TRAIN_TIME, train_seconds * 1e6)
    tf.summary.scalar(EVAL_TIME, eval_seconds * 1e6)
  writer.close()


def read_scalars(run_dir, tags=(LOSS, TOKEN_PERPLEXITY)):
  """{split: {tag: [(step, value)] in step order}} of a run's train, valid and test event
  files (a step written again, as after a resume, keeps its last value)."""
  from tensorboard.backend.event_processing import event_accumulator

  found = {}
  for split in ("train", "valid", "test"):
    directory = Path(run_dir) / split
    if not directory.is_dir():
      continue
    accumulator = event_accumulator.EventAccumulator(
      str(directory), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    available = set(accumulator.Tags().get("tensors", []))
    for tag in tags:
      if tag in available:
        values = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)}
        found.setdefault(split, {})[tag] = sorted(values.items())
  return found

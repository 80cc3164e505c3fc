"""What a run writes to TensorBoard, read back from its event files: tags whose groups lead
with the loss, each (tag, step) once, no empty runs, throughput without the tracing call,
schedules from step 0, the custom-scalars layout. (A fixed architecture's runs, without search
tags, are checked in test_pipeline.py, which trains several.)"""

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2

from helpers import counting_lines
from helpers import read_events
from helpers import write_corpus
from par.config import DataConfig
from par.config import ModelConfig
from par.config import TrainConfig
from par.data.build import build_dataset
from par.train import schedules
from par.train import summaries
from par.train import trainer

MODEL = ModelConfig(d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,))


@pytest.fixture(scope="session")
def no_test_split(tmp_path_factory):
  """Counting text with train and valid splits only."""
  root = tmp_path_factory.mktemp("no_test")
  write_corpus(root / "text", {"train": counting_lines(250), "valid": counting_lines(100, 100_000)})
  build_dataset(root / "text", root / "ds", DataConfig(vocab_size=60, batch_size=4, seq_len=8))
  return root / "ds"


def config(data_dir, **changes):
  base = TrainConfig(
    model=MODEL,
    data_dir=str(data_dir),
    train_steps=12,
    max_lr=3e-3,
    warmup_steps=3,
    steps_per_loop=4,
    log_every=4,
    checkpoint_every=12,
    plot_every=4,
    seed=3,
  )
  return dataclasses.replace(base, **changes)


def by_tag(values):
  """{tag: [(step, value)]} and {tag: plugin} (a tag's plugin is on its first value only)."""
  points, plugins = {}, {}
  for tag, step, plugin, value in values:
    points.setdefault(tag, []).append((step, value))
    plugins.setdefault(tag, plugin)
  return points, plugins


def layout_of(points):
  """The run's custom-scalars layout (written once, at step 0)."""
  (step, value), *rest = points["custom_scalars__config__"]
  assert step == 0 and not rest
  return layout_pb2.Layout.FromString(tf.make_ndarray(value.tensor).item())


def read(run_dir):
  """read_events, with the layout's and the hparams' raw bytes kept as values."""
  events = read_events(run_dir)
  raw = {}
  for path in sorted(run_dir.rglob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.tag in ("custom_scalars__config__", "_hparams_/session_start_info"):
          raw[value.tag] = value
  for run, values in events.items():
    events[run] = [
      (tag, step, plugin, raw.get(tag, number)) for tag, step, plugin, number in values
    ]
  return events


def test_a_search_writes_each_summary_once_under_tags_and_a_layout_that_lead_with_the_loss(
  tmp_path, no_test_split
):
  c = config(no_test_split, resource="flops", resource_weight=0.1)
  trainer.train_and_evaluate(c, tmp_path)
  events = read(tmp_path)
  # No empty runs: the dataset has no test split, so there is no test run at all; the
  # HParams session is the pipeline's to write (test_pipeline.py).
  assert set(events) == {"train", "valid"}
  assert all(events.values())
  for run, values in events.items():
    written = [(tag, step) for tag, step, _, _ in values]
    assert len(written) == len(set(written)), f"{run} writes a (tag, step) twice"

  points, plugins = by_tag(events["train"])
  shown = {t for t, p in plugins.items() if p in ("scalars", "images")}
  # Time Series groups cards by the tag's first part, sorted, and opens the first two.
  groups = sorted({t.split("/", 1)[0] for t in shown})
  assert groups[:2] == ["loss", "perplexity"] and set(groups) == {
    "loss",
    "perplexity",
    "search",
    "training",
  }
  steps = lambda tag: [s for s, _ in points[tag]]  # noqa: E731
  assert steps("loss") == [4, 8, 12]
  # The schedules from step 0, at the value the schedule has there.
  assert steps(summaries.LEARNING_RATE) == [0, 4, 8, 12]
  for step, value in points[summaries.LEARNING_RATE]:
    expected = schedules.learning_rate(step, c.max_lr, c.warmup_steps, c.train_steps, c.min_lr)
    assert value == pytest.approx(float(expected), rel=1e-6)
  assert points[summaries.LEARNING_RATE][0][1] < c.max_lr  # the warm-up shows
  assert steps(summaries.TAU) == [0, 4, 8, 12]
  assert points[summaries.TAU][0][1] == pytest.approx(c.tau_start)
  # The first loop call (steps 1-4) traced: no throughput for it.
  assert steps(summaries.TOKENS_PER_SECOND) == [8, 12]
  # Each block's probabilities and entropy, every 4 steps from 0, once each.
  for k in range(3):
    kinds = [summaries.block_tag(k, name) for name in ("attention", "feed_forward", "identity")]
    for tag in [*kinds, summaries.block_tag(k, "entropy"), summaries.block_tag(k, "below_uniform")]:
      assert steps(tag) == [0, 4, 8, 12]
    gaps = [v for _, v in points[summaries.block_tag(k, "below_uniform")]]
    entropies = [v for _, v in points[summaries.block_tag(k, "entropy")]]
    np.testing.assert_allclose(np.add(gaps, entropies), np.log(3), rtol=1e-6)
    totals = np.sum([[v for _, v in points[tag]] for tag in kinds], axis=0)
    np.testing.assert_allclose(totals, 1.0, rtol=1e-5)
  assert steps(summaries.HEATMAP) == [0, 4, 8, 12]
  assert steps(summaries.MEAN_ENTROPY) == [0, 4, 8, 12]

  valid, _ = by_tag(events["valid"])
  assert set(valid) == {"loss", "perplexity/token", "perplexity/word", "perplexity/bpc"}

  # The custom-scalars layout charts exactly what the run writes.
  layout = layout_of(points)
  assert [c.title for c in layout.category] == ["loss and perplexity", "architecture", "training"]
  assert layout.category[2].closed and not layout.category[0].closed
  written = {tag for values in events.values() for tag, _, _, _ in values}
  for category in layout.category:
    for chart in category.chart:
      for regex in chart.multiline.tag:
        assert any(re.fullmatch(regex, tag) for tag in written), (chart.title, regex)
  # Block k's charts: one a kind (a chart of three tags drew them in one colour, with no
  # legend), its entropy's gap to uniform after them.
  charts = layout.category[1].chart
  for k in range(3):
    for j, name in enumerate(("attention", "feed_forward", "identity")):
      chart = charts[4 * k + j]
      drawn = [t for t in written if any(re.fullmatch(r, t) for r in chart.multiline.tag)]
      assert drawn == [summaries.block_tag(k, name)], chart.title
      assert chart.title == f"block {k}: probability of {name.replace('_', '-')}"
    # How far the entropy is below uniform (the entropy itself, near ln 3, drew an axis
    # whose every tick read "1.1").
    assert list(charts[4 * k + 3].multiline.tag) == [f"^search/block{k}/below_uniform$"]
  assert "resource term" in charts[-1].title


def test_a_fixed_architectures_layout_has_no_search_charts():
  layout = summaries.layout(search=False, searched=range(4), characters=False)
  assert [c.title for c in layout.category] == ["loss and perplexity", "training"]
  regexes = [r for c in layout.category for chart in c.chart for r in chart.multiline.tag]
  assert not [r for r in regexes if "search/" in r] and "^perplexity/bpc$" not in regexes


def test_a_supernets_hparams_have_no_count_of_attention_blocks():
  import dataclasses

  from par.config import ModelConfig
  from par.config import TrainConfig

  search = summaries.hparams(TrainConfig(model=ModelConfig(n_blocks=4)))
  assert search["pattern"] == "SuperNet" and "attention_blocks" not in search  # (was -1)
  fixed = summaries.hparams(TrainConfig(model=ModelConfig(n_blocks=4, architecture="sfsf")))
  assert fixed["attention_blocks"] == 2 and set(fixed) == set(summaries.HPARAM_NAMES)
  sub = dataclasses.replace(ModelConfig(n_blocks=4), architecture="s???")
  assert "attention_blocks" not in summaries.hparams(TrainConfig(model=sub))

"""Search tools: PAR's derivation rule, the resource term and the collapse report."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from par.config import ModelConfig
from par.config import TrainConfig
from par.errors import ParError
from par.search import collapse
from par.search import costs
from par.search import patterns
from par.search import resource


@pytest.mark.parametrize(
  "n_blocks, ratio, expected",
  [
    (6, 3, "fsfsff"),  # 2 attention blocks at the centres of halves of blocks 0-3
    (12, 3, "fsfsfsfsffff"),  # 4 in the lower 8
    (16, 4, "fsffsfsffsffffff"),
    (4, 5, "fsff"),  # at least one
    (3, 1, "sss"),  # all attention: the lower part grows to hold them
    (1, 2, "s"),
    (5, 2, "sfssf"),  # 2.5 rounds half up: 3 attention blocks in the lower 4
  ],
)
def test_ratio_rule_by_hand(n_blocks, ratio, expected):
  assert patterns.derive_ratio(n_blocks, ratio) == expected


@pytest.mark.parametrize("n_blocks", range(1, 30))
@pytest.mark.parametrize("ratio", [1, 1.5, 2, 3, 5, 8])
def test_ratio_rule_invariants(n_blocks, ratio):
  pattern = patterns.derive_ratio(n_blocks, ratio)
  count = pattern.count("s")
  assert len(pattern) == n_blocks and set(pattern) <= {"s", "f"}
  # n_blocks / ratio rounded half up (Python's round() takes 2.5 to 2), by exact fractions.
  from fractions import Fraction

  wanted = int(Fraction(n_blocks) / Fraction(ratio) + Fraction(1, 2))
  assert count == max(1, min(n_blocks, wanted))
  if count <= -(-2 * n_blocks // 3):
    assert pattern.rindex("s") < -(-2 * n_blocks // 3)  # Only in the lower two-thirds.


def test_ratio_rule_rejects_nonsense():
  with pytest.raises(ValueError):
    patterns.derive_ratio(6, 0)


def test_flops_costs_are_the_counted_block_flops():
  config = ModelConfig(vocab_size=100, d_model=32, n_heads=4, d_ffn=256, n_blocks=4, mem_len=8)
  counted = costs.block_costs(config, 16, batch_size=4)
  normalised = resource.flops_costs(config, 16, batch_size=4)
  top = max(counted["s"].flops, counted["f"].flops)
  assert normalised == pytest.approx([counted["s"].flops / top, counted["f"].flops / top, 0.0])
  assert max(normalised) == 1.0


def test_latency_costs_subtract_the_identity_floor():
  assert resource.latency_costs([3.0, 2.0, 1.0]) == pytest.approx([1.0, 0.5, 0.0])
  assert resource.latency_costs([1.0, 5.0, 1.0]) == pytest.approx([0.0, 1.0, 0.0])
  with pytest.raises(ValueError):
    resource.latency_costs([1.0, 1.0, 1.0])


def test_measured_latency_is_positive_and_orders_by_work():
  config = ModelConfig(vocab_size=100, d_model=64, n_heads=4, d_ffn=2048, n_blocks=2, mem_len=16)
  seconds = costs.measure_latency(config, batch_size=8, seq_len=32, repeats=5)
  assert all(s > 0 for s in seconds)
  assert seconds[1] > seconds[2]  # A 64 -> 2048 -> 64 feed-forward outlasts a copy.
  # A training pass (forward with dropout, gradients of weights and input) does the forward's
  # matmuls and twice as many again: at this width it cannot be faster than the forward.
  trained = costs.measure_latency(config, batch_size=8, seq_len=32, repeats=5, backward=True)
  assert trained[1] > seconds[1] and all(s > 0 for s in trained)


def test_resource_penalty_against_numpy():
  logits = [tf.Variable(v) for v in ([1.0, 0.0, -1.0], [0.0, 2.0, 0.5], [3.0, 3.0, 3.0])]
  costs = [1.0, 0.4, 0.0]
  value = resource.resource_penalty(logits, costs).numpy()
  rows = np.array([v.numpy() for v in logits])
  probs = np.exp(rows) / np.exp(rows).sum(1, keepdims=True)
  assert value == pytest.approx((probs @ np.array(costs)).mean(), rel=1e-6)
  with tf.GradientTape() as tape:
    penalty = resource.resource_penalty(logits, costs)
  grads = tape.gradient(penalty, logits)
  for g in grads:  # Descending the penalty lowers s (dearest) and raises i (free).
    assert g.numpy()[0] > 0 and g.numpy()[2] < 0


def test_resource_target_penalises_only_the_cost_above_it():
  logits = [tf.Variable(v) for v in ([1.0, 0.0, -1.0], [0.0, 2.0, 0.5])]
  costs = [1.0, 0.4, 0.0]
  rows = np.array([v.numpy() for v in logits])
  probs = np.exp(rows) / np.exp(rows).sum(1, keepdims=True)
  expected = float((probs @ np.array(costs)).mean())  # R, about 0.46

  def penalty_and_grads(target):
    with tf.GradientTape() as tape:
      penalty = resource.resource_penalty(logits, costs, target)
    return float(penalty), [g.numpy() for g in tape.gradient(penalty, logits)]

  plain, plain_grads = penalty_and_grads(0.0)
  above, above_grads = penalty_and_grads(expected - 0.1)  # R over the target
  assert above == pytest.approx(0.1, abs=1e-6)
  for a, b in zip(above_grads, plain_grads):  # pulled back as hard as without a target
    np.testing.assert_allclose(a, b, rtol=1e-6)
  for target in (expected + 0.1, plain):  # below it, and exactly at it: nothing to push
    value, grads = penalty_and_grads(target)
    assert value == 0.0 and all(not g.any() for g in grads)
  assert plain == pytest.approx(expected, rel=1e-6)


def test_collapse_report():
  healthy = [[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
  blocks, message = collapse.collapse_report(healthy)
  assert blocks == [1] and message is None  # Block 3's identity is likeliest but below 0.5.
  collapsed = [[0.1, 0.2, 0.7], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]
  blocks, message = collapse.collapse_report(collapsed)
  assert blocks == [0, 1]
  assert message.startswith("search collapse: identity dominates 2 of 4 blocks")


def test_each_blocks_margin_and_a_warning_when_the_argmax_is_within_noise():
  # The tiny search's end: block 3 leads 0.348 to 0.345.
  end = [[0.6, 0.3, 0.1], [0.1, 0.7, 0.2], [0.2, 0.5, 0.3], [0.345, 0.348, 0.307]]
  np.testing.assert_allclose(collapse.margins(end), [0.3, 0.5, 0.2, 0.003], atol=1e-12)
  line, warning = collapse.margin_report(end)
  assert line.startswith("derived sfff; each block's lead over its runner-up: 0 s 0.600 vs f")
  assert "3 f 0.348 vs s 0.345" in line
  assert warning.startswith("the derived pattern sfff is within noise: block 3 leads by less")
  decided = [[0.6, 0.3, 0.1], [0.1, 0.7, 0.2]]
  assert collapse.margin_report(decided)[1] is None
  # An argmax that changed in the last quarter of the history is within noise too, one that
  # changed earlier is not.
  flip = [[0.3, 0.6, 0.1], [0.1, 0.7, 0.2]]
  history = [(k, decided) for k in range(8)]
  assert collapse.margin_report(decided, history)[1] is None
  history[1] = (1, flip)  # early
  assert collapse.margin_report(decided, history)[1] is None
  history[6] = (6, flip)  # in the last quarter (steps 6 and 7 of 8)
  _, warning = collapse.margin_report(decided, history)
  assert "block 0 changed its argmax in the last quarter" in warning


def test_resource_settings_are_checked():
  base = TrainConfig(model=ModelConfig(vocab_size=10000))
  for changes, error in [
    (dict(resource_target=0.5), "give --resource too"),
    (dict(resource="flops", resource_weight=1.0, resource_target=1.0), "resource_target must"),
    (dict(resource="flops"), "together"),
    (dict(resource_weight=1.0), "together"),
    (dict(resource="watts", resource_weight=1.0), "none, flops or latency"),
    (
      dict(
        resource="flops",
        resource_weight=1.0,
        model=dataclasses.replace(base.model, architecture="sfsfsf"),
      ),
      "nothing to steer",
    ),
  ]:
    with pytest.raises(ParError, match=error):
      dataclasses.replace(base, **changes).validate()

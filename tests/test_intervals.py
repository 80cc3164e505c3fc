"""par.search.intervals against naive loops: mean ± sd, the paired block bootstrap, positions."""

import math

import numpy as np
import pytest

from par.search import intervals


def test_mean_sd_is_the_sample_standard_deviation():
  values = [3.0, 5.0, 10.0]
  mean = sum(values) / 3
  sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
  assert intervals.mean_sd(values) == pytest.approx((mean, sd))
  assert intervals.mean_sd([4.0]) == (4.0, 0.0)
  with pytest.raises(ValueError):
    intervals.mean_sd([])


def _naive(a, b, block, resamples, seed):
  # One set of starts a resample, the same windows of every seed's tokens.
  rng = np.random.default_rng(seed)
  means = []
  for _ in range(resamples):
    total, count = 0.0, 0
    starts = intervals.block_starts(len(a[0]), block, len(a[0]) // block, rng)
    for x, y in zip(a, b):
      for s in starts:
        for t in range(s, s + block):
          total += x[t] - y[t]
          count += 1
    means.append(total / count)
  return np.percentile(means, [2.5, 97.5])


def test_the_bootstrap_is_the_naive_loop():
  rng = np.random.default_rng(3)
  a = [rng.normal(5, 1, 1000), rng.normal(5, 1, 1000)]
  b = [x - rng.normal(0.1, 0.5, x.size) for x in a]
  got = intervals.paired_bootstrap(a, b, block=64, resamples=50, seed=9)
  low, high = _naive(a, b, 64, 50, 9)
  assert (got.low, got.high) == pytest.approx((low, high), rel=1e-9)
  pooled = np.concatenate([x - y for x, y in zip(a, b)])
  assert got.difference == pytest.approx(pooled.mean())
  assert (got.tokens, got.seeds) == (2000, 2)
  assert got.ratio == pytest.approx(math.exp(pooled.mean()))


def test_a_constant_shift_has_a_point_interval_and_identical_models_zero():
  x = np.linspace(1, 9, 600)
  shift = intervals.paired_bootstrap([x + 0.25], [x], block=32, resamples=20)
  assert (shift.difference, shift.low, shift.high) == pytest.approx((0.25, 0.25, 0.25))
  same = intervals.paired_bootstrap([x], [x], block=32, resamples=20)
  assert (same.low, same.high) == (0.0, 0.0)


def test_the_interval_covers_the_true_difference_about_95_times_in_100():
  # Independent tokens, difference N(0.05, 1): the interval should hold 0.05 ~95% of the time
  # and be about 2 · 1.96 / sqrt(n) wide.
  rng = np.random.default_rng(0)
  hits, widths = 0, []
  for trial in range(100):
    d = rng.normal(0.05, 1.0, 2048)
    c = intervals.paired_bootstrap([d], [np.zeros_like(d)], block=16, resamples=300, seed=trial)
    hits += c.low <= 0.05 <= c.high
    widths.append(c.high - c.low)
  assert 88 <= hits <= 100
  assert np.mean(widths) == pytest.approx(2 * 1.96 / math.sqrt(2048), rel=0.12)


def test_pooled_over_seeds_the_interval_covers_when_tokens_are_hard_for_every_seed():
  # Three seeds score the same test tokens; each token's difference is a part every seed
  # shares (how hard the token is) and a part of its own, correlation 0.5. The interval must
  # still hold the true difference ~95% of the time and be as wide as the seeds' mean
  # difference's spread: sqrt((0.5 + 0.5 / 3) / n). (Starts drawn per seed covered ~75%.)
  rng = np.random.default_rng(1)
  n, true = 2048, 0.05
  hits, widths = 0, []
  for trial in range(100):
    shared = rng.normal(0, 1, n)
    d = [true + np.sqrt(0.5) * (shared + rng.normal(0, 1, n)) for _ in range(3)]
    zero = [np.zeros(n)] * 3
    c = intervals.paired_bootstrap(d, zero, block=16, resamples=300, seed=trial)
    hits += c.low <= true <= c.high
    widths.append(c.high - c.low)
  assert 88 <= hits <= 100
  assert np.mean(widths) == pytest.approx(2 * 1.96 * math.sqrt((0.5 + 0.5 / 3) / n), rel=0.12)


def test_unpaired_or_short_inputs_are_refused():
  with pytest.raises(ValueError, match="one pair per seed"):
    intervals.paired_bootstrap([np.zeros(300)], [])
  with pytest.raises(ValueError, match="do not pair"):
    intervals.paired_bootstrap([np.zeros(300)], [np.zeros(299)])
  with pytest.raises(ValueError, match="score the same test tokens"):
    intervals.paired_bootstrap([np.zeros(300), np.zeros(299)], [np.zeros(300), np.zeros(299)])
  with pytest.raises(ValueError, match="fewer than a block"):
    intervals.paired_bootstrap([np.zeros(100)], [np.zeros(100)], block=256)


@pytest.mark.parametrize(
  "pattern, thirds, depth",
  [
    ("sfsfsf", (1, 1, 1), (0 + 2 + 4) / 3 / 5),
    ("ssffff", (2, 0, 0), 0.1),
    ("fffffs", (0, 0, 1), 1.0),
    ("sfffffsffff", (1, 1, 0), (0 + 6 / 10) / 2),
  ],
)
def test_positions(pattern, thirds, depth):
  got = intervals.positions(pattern)
  assert got.thirds == thirds and got.depth == pytest.approx(depth)
  # The naive rule: block i is in the first third when i < n / 3, and so on.
  n = len(pattern)
  naive = [
    sum(1 for i, k in enumerate(pattern) if k == "s" and j * n <= 3 * i < (j + 1) * n)
    for j in range(3)
  ]
  assert tuple(naive) == got.thirds


def test_positions_without_attention():
  got = intervals.positions("ffffff")
  assert got.thirds == (0, 0, 0) and math.isnan(got.depth) and got.to_dict()["depth"] is None


def test_one_convention_for_thirds_the_rules_lower_two_thirds_included():
  # Block i of n is in third floor(3 i / n); PAR's rule's "lower two-thirds", the first
  # ceil(2 n / 3) blocks, are exactly the blocks of thirds 0 and 1.
  for n in range(1, 31):
    lower = [i for i in range(n) if intervals.third(i, n) < 2]
    assert lower == list(range(-(-2 * n // 3))), n
    assert [intervals.third(i, n) for i in range(n)] == [min(3 * i // n, 2) for i in range(n)]
  assert intervals.third(2.5, 6) == 1 and intervals.third(5, 6) == 2

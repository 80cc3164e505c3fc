"""Optimal cutoffs: exactness against brute force and a plain O(K·N²) program, the cost model
against the model's own FLOP count, the monotonicity the solver relies on, bad input."""

import itertools

import numpy as np
import pytest

from par import cutoffs
from par.config import ModelConfig
from par.errors import ParError
from par.search import costs


def brute_force(counts, clusters, model, min_size=1):
  """The cheapest cutoffs by trying every combination: (cost, cutoffs)."""
  n = len(counts)
  return min(
    (cutoffs.cost_of(counts, cut, model), cut)
    for cut in itertools.combinations(range(1, n), clusters - 1)
    if min(np.diff((0,) + cut + (n,))) >= min_size
  )


def plain_program(counts, clusters, model):
  """The textbook O(K·N²) dynamic program over per-token costs: the optimal cost."""
  n = len(counts)
  p = np.asarray(counts, float) / np.sum(counts)
  prefix = np.concatenate([[0.0], np.cumsum(p)])
  tails = clusters - 1
  best = [model.head(a, prefix[a], clusters) if a >= 1 else np.inf for a in range(n + 1)]
  for i in range(tails):
    fixed, rate = model.tail(i)
    new = [np.inf] * (n + 1)
    for b in range(i + 2, n + 1):
      for a in range(i + 1, b):
        new[b] = min(new[b], best[a] + (prefix[b] - prefix[a]) * (fixed + rate * (b - a)))
    best = new
  return best[n]


def zipf(n, exponent=1.0, total=None, seed=None):
  weights = 1.0 / np.arange(1, n + 1) ** exponent
  if total is None:
    return weights
  rng = np.random.default_rng(seed)
  return rng.multinomial(total, weights / weights.sum()).astype(float)


MODELS = {
  "grave": cutoffs.grave_cost(d_model=16, proj_factor=2),
  "simple": cutoffs.simple_cost(),
  "explicit": cutoffs.grave_cost(d_model=8, proj_dims=(5, 3, 1)),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("seed", range(6))
def test_exact_against_brute_force(name, seed):
  rng = np.random.default_rng(seed)
  model = MODELS[name]
  n = int(rng.integers(5, 12))
  kind = seed % 3
  if kind == 0:
    counts = rng.integers(0, 6, n).astype(float)  # Small integers: many ties, some zeros.
    counts[0] += 1
  elif kind == 1:
    counts = rng.random(n)  # Unsorted, unnormalised.
  else:
    counts = np.sort(zipf(n, 1.1, total=200, seed=seed))[::-1]
  for clusters in (1, 2, 3, 4):
    if name == "explicit" and clusters != 4:
      continue
    best, _ = cutoffs.solve(counts, model, clusters)
    expected_cost, _ = brute_force(counts, clusters, model)
    assert best.clusters == clusters
    assert best.cost == pytest.approx(expected_cost, rel=1e-12)
    # The reported cost is the one of the reported cutoffs.
    assert cutoffs.cost_of(counts, best.cutoffs, model) == pytest.approx(best.cost, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_smallest_cluster_size_against_brute_force(seed):
  rng = np.random.default_rng(50 + seed)
  counts = np.sort(rng.random(13))[::-1] ** 3
  model = cutoffs.grave_cost(d_model=16, proj_factor=2)
  for clusters, min_size in ((2, 4), (3, 3), (4, 2), (4, 3)):
    best, _ = cutoffs.solve(counts, model, clusters, min_size=min_size)
    assert min(np.diff((0,) + best.cutoffs + (13,))) >= min_size
    assert best.cost == pytest.approx(brute_force(counts, clusters, model, min_size)[0])
  _, solutions = cutoffs.solve(counts, model, "auto", max_clusters=8, min_size=3)
  assert [s.clusters for s in solutions] == [1, 2, 3, 4]
  for solution in solutions[1:]:
    assert solution.cost == pytest.approx(brute_force(counts, solution.clusters, model, 3)[0])


def test_ties_resolve_to_the_same_cutoffs_as_brute_force():
  # Equal counts and the simple model tie many cutoffs exactly (integer costs); the solver
  # takes the leftmost minimiser at every step, brute force the lexicographically first.
  counts = np.ones(9)
  model = cutoffs.simple_cost()
  for clusters in (2, 3, 4):
    best, _ = cutoffs.solve(counts, model, clusters)
    cost, _cut = brute_force(counts, clusters, model)
    assert best.cost == pytest.approx(cost)
    assert cutoffs.cost_of(counts, best.cutoffs, model) == pytest.approx(cost)


@pytest.mark.parametrize("seed", range(4))
def test_exact_against_the_plain_program(seed):
  rng = np.random.default_rng(100 + seed)
  n = 300
  inputs = {
    "random": rng.random(n) * (rng.random(n) < 0.8),  # With zeros.
    "zipf": zipf(n, 1.0 + 0.1 * seed, total=5000, seed=seed),
    "ties": np.repeat(rng.integers(1, 4, n // 10), 10).astype(float),
  }
  model = cutoffs.grave_cost(d_model=32, proj_factor=2)
  for counts in inputs.values():
    for clusters in (2, 3, 5):
      best, _ = cutoffs.solve(counts, model, clusters)
      assert best.cost == pytest.approx(plain_program(counts, clusters, model), rel=1e-12)


def test_auto_picks_the_cheapest_count_and_matches_fixed_runs():
  counts = zipf(2000, 1.05)
  model = cutoffs.grave_cost(d_model=64, proj_factor=4)
  best, solutions = cutoffs.solve(counts, model, "auto", max_clusters=5)
  assert [s.clusters for s in solutions] == [1, 2, 3, 4, 5]
  for solution in solutions:
    fixed, _ = cutoffs.solve(counts, model, solution.clusters)
    assert fixed.cutoffs == solution.cutoffs
    assert fixed.cost == pytest.approx(solution.cost, rel=1e-12)
  assert best.cost == min(s.cost for s in solutions)
  assert solutions[0].cost == solutions[0].full_cost == 2 * 64 * 2000
  assert best.speedup > 5


def test_cluster_cost_satisfies_the_quadrangle_inequality():
  """w(a, c) + w(b, e) <= w(a, e) + w(b, c) for a <= b <= c <= e, the docstring's premise."""
  rng = np.random.default_rng(11)
  counts = rng.random(40) * (rng.random(40) < 0.7)
  prefix = np.concatenate([[0.0], np.cumsum(counts)])
  fixed, rate = 5.0, 0.75

  def w(a, b):
    return (prefix[b] - prefix[a]) * (fixed + rate * (b - a))

  for a, b, c, e in np.sort(rng.integers(0, 41, size=(2000, 4)), axis=1):
    slack = w(a, e) + w(b, c) - w(a, c) - w(b, e)
    x, z = prefix[b] - prefix[a], prefix[e] - prefix[c]  # Counts of [a, b) and [c, e).
    assert slack == pytest.approx(rate * (x * (e - c) + z * (b - a)), abs=1e-9)
    assert slack >= -1e-9


def test_leftmost_minimisers_never_decrease():
  """The property divide and conquer relies on, checked by brute force on every b."""
  rng = np.random.default_rng(7)
  counts = np.sort(rng.random(60))[::-1] * (rng.random(60) < 0.9)
  prefix = np.concatenate([[0.0], np.cumsum(counts)])
  previous = np.concatenate([[np.inf], rng.random(60) * 5 + np.arange(60) * 0.3])
  for fixed, rate in ((0.0, 1.0), (3.0, 0.5), (10.0, 0.0)):
    argmins = []
    for b in range(2, 61):
      a = np.arange(1, b)
      argmins.append(
        int(a[np.argmin(previous[a] + (prefix[b] - prefix[a]) * (fixed + rate * (b - a)))])
      )
    assert all(x <= y for x, y in zip(argmins, argmins[1:]))
    layer = cutoffs._layer
    values, solver_argmins = layer(previous, prefix, fixed, rate, first=2)
    assert list(solver_argmins[2:]) == argmins
    for b in range(2, 61):
      a = np.arange(1, b)
      assert values[b] == pytest.approx(
        np.min(previous[a] + (prefix[b] - prefix[a]) * (fixed + rate * (b - a)))
      )


def test_cost_model_is_the_models_softmax_flops():
  counts = zipf(500, 1.1, total=20000, seed=3)
  config = ModelConfig(vocab_size=500, d_model=24, cutoffs=(40, 200), proj_factor=4)
  shares = [counts[40:200].sum() / counts.sum(), counts[200:].sum() / counts.sum()]
  flops = costs.softmax_cost(config, tail_shares=shares).flops
  model = cutoffs.grave_cost(24, proj_factor=4)
  assert cutoffs.cost_of(counts, (40, 200), model) == pytest.approx(flops)
  assert cutoffs.Solution((), 2 * 24 * 500, 2 * 24 * 500).speedup == 1


def test_simple_model_by_hand():
  # Head: 2 ids with 6/10 of the mass: 1.2; tail: 3 ids with 4/10: 1.2.
  assert cutoffs.cost_of([3, 3, 2, 1, 1], (2,), cutoffs.simple_cost()) == pytest.approx(2.4)


def reference_objective(counts, cut):
  """The reference implementation's objective, written out: Σ over clusters of size × mass."""
  bounds = (0,) + tuple(cut) + (len(counts),)
  mass = np.asarray(counts, float) / np.sum(counts)
  return sum((b - a) * mass[a:b].sum() for a, b in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("clusters", [2, 3, 4])
def test_simple_is_the_reference_objective_against_brute_force(seed, clusters):
  rng = np.random.default_rng(seed)
  counts = np.sort(rng.integers(1, 50, size=10))[::-1].astype(float)
  cost, cut = min(
    (reference_objective(counts, c), c) for c in itertools.combinations(range(1, 10), clusters - 1)
  )
  best, _ = cutoffs.solve(counts, cutoffs.simple_cost(), clusters)
  assert best.cost == pytest.approx(cost, rel=1e-12)
  assert reference_objective(counts, best.cutoffs) == pytest.approx(cost, rel=1e-12)
  assert cutoffs.cost_of(counts, cut, cutoffs.simple_cost()) == pytest.approx(cost, rel=1e-12)


def test_large_zipf_is_fast_enough_to_run_in_the_suite():
  counts = zipf(50_000, 1.1)
  best, _ = cutoffs.solve(counts, cutoffs.grave_cost(128, 4), 4)
  assert len(best.cutoffs) == 3 and best.speedup > 10


@pytest.mark.parametrize(
  "values, message",
  [
    ([], "no counts"),
    ([1.0, float("nan")], "value 2 is nan"),
    ([1.0, -2.0, 3.0], "value 2 is negative"),
    ([0, 0, 0], "all 3 counts are zero"),
  ],
)
def test_bad_counts(values, message):
  with pytest.raises(ParError, match=message):
    cutoffs.solve(values, cutoffs.simple_cost(), 1)


def test_too_many_clusters():
  with pytest.raises(ParError, match="4 clusters need more than 4 ids; the vocabulary has 4"):
    cutoffs.solve([4, 3, 2, 1], cutoffs.simple_cost(), 4)
  with pytest.raises(ParError, match="2 proj_dims price 3 clusters, not 4"):
    cutoffs.solve(np.ones(10), cutoffs.grave_cost(8, proj_dims=(4, 2)), 4)
  with pytest.raises(ParError, match="positive integer or 'auto'"):
    cutoffs.solve(np.ones(10), cutoffs.simple_cost(), 0)
  with pytest.raises(ParError, match="3 clusters of at least 4 ids need 12 ids; the vocab"):
    cutoffs.solve(np.ones(10), cutoffs.simple_cost(), 3, min_size=4)


def test_order_report():
  order, misplaced, spearman = cutoffs.order_report([5, 9, 9, 1, 0])
  assert list(order) == [1, 2, 0, 3, 4] and misplaced == 3
  # Ranks of ids 0..4 are 2, 0, 1, 3, 4: Spearman 1 - 6·Σd²/(n(n²-1)) = 1 - 6·6/120.
  assert spearman == pytest.approx(0.7)
  assert cutoffs.order_report([3, 3, 1])[1:] == (0, 1.0)

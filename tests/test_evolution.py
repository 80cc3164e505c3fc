"""Choosing a pattern from shared-weight scores: exhaustive up to 8 blocks, SPOS's evolution
above, under constraints, on planted score tables whose optimum brute force finds."""

import itertools

import pytest

from par.search import evolution
from par.search import ranking

TARGET = "sfsffsifss"  # 10 blocks: 59,049 patterns, beyond the exhaustive bound


def planted(target):
  """A score table whose optimum is `target`: the blocks that differ from it, each weighted by
  its place (so that every pattern has its own score)."""

  def score(pattern):
    return sum((1 + k / 100) * (a != b) for k, (a, b) in enumerate(zip(pattern, target)))

  return score


def brute_force(score, n_blocks, allows=lambda p: True):
  patterns = ("".join(p) for p in itertools.product("sfi", repeat=n_blocks))
  return min((p for p in patterns if allows(p)), key=score)


def flops(pattern):  # a stand-in cost: attention 3, feed-forward 2, identity 0
  return sum({"s": 3, "f": 2, "i": 0}[k] for k in pattern)


def test_evolution_finds_the_planted_optimum_within_its_budget():
  calls = []

  def score(pattern):
    calls.append(pattern)
    return planted(TARGET)(pattern)

  best, scores = evolution.evolve(score, 10, seed=0)
  assert best == TARGET == brute_force(planted(TARGET), 10)
  assert len(calls) == len(set(calls)) == len(scores) <= 1000  # each scored once, SPOS's budget


@pytest.mark.parametrize(
  "constraint",
  [
    evolution.Constraint(attention=2),
    evolution.Constraint(limit=14, name="flops"),
  ],
)
def test_evolution_finds_the_constrained_optimum(constraint):
  score = planted(TARGET)
  expected = brute_force(score, 10, lambda p: constraint.allows(p, flops))
  assert expected != TARGET  # the constraint binds
  best, scores = evolution.evolve(score, 10, constraint, flops, seed=1)
  assert best == expected
  assert all(constraint.allows(p, flops) for p in scores)  # nothing else was scored


def test_up_to_eight_blocks_every_pattern_is_scored():
  score = planted("ifsf")
  best, scores, how = evolution.select(score, 4)
  assert (best, how, len(scores)) == ("ifsf", "exhaustive", 81)
  constraint = evolution.Constraint(attention=0)
  best, _, _ = evolution.select(score, 4, constraint)
  assert best == brute_force(score, 4, lambda p: "s" not in p) == "ifff"
  assert evolution.select(planted(TARGET), 10)[2] == "evolution"
  assert ranking.EXHAUSTIVE_BLOCKS == 8
  with pytest.raises(ValueError, match="no pattern meets the constraint"):
    evolution.exhaustive(score, 2, evolution.Constraint(limit=-1, name="flops"), flops)

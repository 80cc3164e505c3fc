"""Choosing an architecture from shared-weight scores: every pattern up to
`ranking.EXHAUSTIVE_BLOCKS` blocks, SPOS's evolutionary search above (Guo et al. 2020,
megvii-model/SinglePathOneShot: population 50, the best 10 kept as parents, 25 mutants and
25 crossovers a generation, each block mutated with probability 0.1, 20 generations; here at
most `max_scored` patterns scored, SPOS's 1,000), under an optional constraint: at most so many
attention blocks, FLOPs per token or measured seconds per token (PAR's trade-off).

`score` is any function of a pattern, lower better (a shared-weight valid loss); every pattern
is scored once (`Scores` keeps them), so a constraint and a generation never pay twice.
"""

import dataclasses

import numpy as np

from par.config import BLOCK_KINDS
from par.search import ranking


@dataclasses.dataclass(frozen=True)
class Constraint:
  """What a chosen pattern may cost: at most `attention` attention blocks, or `limit` of a
  cost function (FLOPs per token, seconds per token) given to `allows`."""

  attention: int | None = None
  limit: float | None = None
  name: str = ""  # what `limit` limits, for the record

  def allows(self, pattern, cost=None):
    if self.attention is not None and pattern.count("s") > self.attention:
      return False
    if self.limit is not None:
      if cost is None:
        raise ValueError(f"a limit on {self.name or 'a cost'} needs the cost function")
      return cost(pattern) <= self.limit
    return True


class Scores(dict):
  """{pattern: score}, filled on demand from `score`; `order` is the scoring order."""

  def __init__(self, score, known=None):
    super().__init__(known or {})
    self.score = score
    self.order = list(self)

  def __call__(self, pattern):
    if pattern not in self:
      self[pattern] = float(self.score(pattern))
      self.order.append(pattern)
    return self[pattern]


def exhaustive(score, n_blocks, constraint=None, cost=None, kinds=None):
  """(the best pattern every pattern allowed by `constraint` gives, their scores); with
  `kinds` (a sub-SuperNet's, "?" where it searches), only the patterns it holds."""
  scores = Scores(score)
  allowed = [
    p
    for p in ranking.all_patterns(n_blocks)
    if (constraint is None or constraint.allows(p, cost))
    and (kinds is None or ranking.matches(p, kinds))
  ]
  if not allowed:
    raise ValueError("no pattern meets the constraint")
  best = min(allowed, key=lambda p: (scores(p), p))
  return best, dict(scores)


def evolve(
  score,
  n_blocks,
  constraint=None,
  cost=None,
  seed=0,
  population=50,
  parents=10,
  mutants=25,
  crossovers=25,
  mutation=0.1,
  generations=20,
  max_scored=1000,
  known=None,
  kinds=None,
):
  """SPOS's evolutionary search for the best-scoring pattern allowed by `constraint` (and, with
  `kinds`, held by that sub-SuperNet).

  Each generation scores a population, keeps the best `parents` of every pattern scored so
  far, and breeds the next population from them: `mutants` patterns each block of a parent
  resampled with probability `mutation`, `crossovers` each block taken from one of two
  parents at random, the rest random patterns; a pattern is bred only if the constraint allows
  it and it was never scored. Stops after `generations` or once `max_scored` are scored.

  Returns:
    (the best pattern scored, {pattern: score} of every pattern scored, `known` included).
  """
  rng = np.random.default_rng(seed)
  scores = Scores(score, known)
  kinds = kinds or "?" * n_blocks

  def allowed(pattern, cost=None):
    held = ranking.matches(pattern, kinds)
    return held and (constraint is None or constraint.allows(pattern, cost))

  def random_pattern():
    for _ in range(10_000):
      pattern = "".join(rng.choice(list(BLOCK_KINDS)) if k == "?" else k for k in kinds)
      if allowed(pattern, cost):
        return pattern
    raise ValueError("no pattern meets the constraint in 10,000 random draws")

  def bred(make, count, tries=10):
    made = []
    for _ in range(count * tries):
      if len(made) == count:
        break
      pattern = make()
      if pattern not in scores and pattern not in made and allowed(pattern, cost):
        made.append(pattern)
    return made

  members = bred(random_pattern, population)
  for _ in range(generations):
    for pattern in members:
      if len(scores.order) >= max_scored:
        break
      scores(pattern)
    if len(scores.order) >= max_scored:
      break
    top = sorted((p for p in scores if allowed(p, cost)), key=lambda p: (scores[p], p))[:parents]
    if not top:
      members = bred(random_pattern, population)
      continue

    def mutant(top=top):
      parent = top[rng.integers(len(top))]
      return "".join(
        rng.choice(list(BLOCK_KINDS)) if rng.random() < mutation else kind for kind in parent
      )

    def crossover(top=top):
      a, b = top[rng.integers(len(top))], top[rng.integers(len(top))]
      return "".join(x if rng.random() < 0.5 else y for x, y in zip(a, b))

    members = bred(mutant, mutants) + bred(crossover, crossovers)
    members += bred(random_pattern, population - len(members))
  candidates = [p for p in scores if allowed(p, cost)]
  if not candidates:
    raise ValueError("no pattern meets the constraint")
  return min(candidates, key=lambda p: (scores[p], p)), dict(scores)


def select(score, n_blocks, constraint=None, cost=None, seed=0, known=None, kinds=None):
  """The best pattern by `score` under `constraint` (and among those `kinds` holds): every
  pattern up to `ranking.EXHAUSTIVE_BLOCKS` blocks, SPOS's evolution above; (pattern, scores,
  how)."""
  if n_blocks <= ranking.EXHAUSTIVE_BLOCKS:
    scores = Scores(score, known)
    best, _ = exhaustive(scores, n_blocks, constraint, cost, kinds)
    return best, dict(scores), "exhaustive"
  best, scores = evolve(score, n_blocks, constraint, cost, seed=seed, known=known, kinds=kinds)
  return best, scores, "evolution"

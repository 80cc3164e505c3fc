"""Seeds and intervals: what a study reports beside each number.

- `mean_sd`: the mean and sample standard deviation (n - 1) over seeds.
- `paired_bootstrap`: model A against model B scored on the same test tokens, by a moving
  block bootstrap (Künsch 1989) over contiguous blocks of tokens, so that the dependence
  between neighbouring tokens stays inside a block. Each resample draws as many random block
  starts as the test set has blocks, *one set shared by every seed*, and takes the mean NLL
  difference over the drawn tokens of all seeds. Every seed scores the same test tokens, so
  what the interval resamples (which tokens the test set happened to hold) is one draw for
  all of them: per-token differences correlate across seeds (a hard token is hard for every
  seed's model), and starts drawn per seed would average that correlation away and shrink the
  interval by up to √seeds (simulated, 3 seeds, correlation 0.5: 75% coverage for a nominal
  95%). Shared starts bootstrap the seeds' mean difference token by token. The 95% interval
  is the 2.5 and 97.5 percentiles of the resampled means: test-token noise with the trained
  models fixed (training noise is the seeds' sd, reported beside it); the perplexity ratio is
  exp of the difference.
- `positions`: where a pattern's attention blocks sit: how many in each third of the network
  and their mean depth (0 the first block, 1 the last).

Every function is plain numpy; tests/test_intervals.py checks each against a naive loop.
"""

import math
from typing import NamedTuple

import numpy as np


def mean_sd(values):
  """(mean, sample standard deviation) of a sequence; sd is 0 for a single value."""
  values = np.asarray(values, dtype=np.float64)
  if values.size == 0:
    raise ValueError("mean_sd of no values")
  sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return float(values.mean()), sd


class Comparison(NamedTuple):
  """A's per-token NLL minus B's, in nats: mean, 95% interval, and as perplexity ratios."""

  difference: float
  low: float
  high: float
  tokens: int
  seeds: int
  resamples: int
  block: int

  @property
  def ratio(self):
    """A's perplexity over B's (exp of the mean NLL difference)."""
    return math.exp(self.difference)

  @property
  def ratio_interval(self):
    return math.exp(self.low), math.exp(self.high)

  def to_dict(self):
    return dict(self._asdict(), ratio=self.ratio, ratio_interval=list(self.ratio_interval))


def block_starts(tokens, block, count, rng):
  """`count` uniform starts of `block`-token windows inside `tokens` tokens."""
  return rng.integers(0, tokens - block + 1, size=count)


def paired_bootstrap(a, b, block=256, resamples=1000, seed=0):
  """Comparison of A with B over seeds: `a` and `b` are lists (one item per seed) of per-token
  NLL arrays, a[i] and b[i] scored on the same tokens in the same order, every seed on the
  same test tokens (one set of block starts serves all of them).

  Raises ValueError when the pairs do not line up, the seeds' test sets differ in length, or
  a test set is shorter than a block.
  """
  if len(a) != len(b) or not a:
    raise ValueError(f"paired_bootstrap needs one pair per seed: got {len(a)} and {len(b)}")
  differences = []
  for i, (x, y) in enumerate(zip(a, b)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
      raise ValueError(f"seed {i}: per-token NLLs of shapes {x.shape} and {y.shape} do not pair")
    if x.size < block:
      raise ValueError(f"seed {i}: {x.size} test tokens, fewer than a block of {block}")
    if differences and x.size != differences[0].size:
      raise ValueError(
        f"seed {i}: {x.size} test tokens, seed 0 {differences[0].size}: the seeds of one "
        "comparison score the same test tokens"
      )
    differences.append(x - y)
  rng = np.random.default_rng(seed)
  # The seeds' mean difference token by token; window sums by cumulative sums:
  # sum of d[s : s + block] = c[s + block] - c[s].
  tokens = differences[0].size
  count = tokens // block
  sums = np.concatenate([[0.0], np.cumsum(np.mean(differences, axis=0))])
  means = np.empty(resamples)
  for r in range(resamples):
    starts = block_starts(tokens, block, count, rng)
    means[r] = float(np.sum(sums[starts + block] - sums[starts])) / (count * block)
  mean = float(np.mean(np.concatenate(differences)))
  low, high = np.percentile(means, [2.5, 97.5])
  return Comparison(
    mean,
    float(low),
    float(high),
    sum(d.size for d in differences),
    len(differences),
    resamples,
    block,
  )


class Positions(NamedTuple):
  """Attention blocks in the first, middle and last third, and their mean depth in [0, 1]."""

  thirds: tuple
  depth: float  # nan without attention

  def to_dict(self):
    return {"thirds": list(self.thirds), "depth": None if math.isnan(self.depth) else self.depth}


def third(position, n_blocks):
  """The third of an n-block network a block position falls in: 0, 1 or 2, floor(3 i / n).

  The one convention for "third" everywhere (the by-third column, the ranking's strata, PAR's
  rule's lower two-thirds, the first ceil(2n / 3) blocks, which are exactly those in thirds 0
  and 1). `position` may be a mean of block indices (a pattern's attention blocks)."""
  return min(int(3 * position // n_blocks), 2)


def positions(pattern):
  """Positions of a pattern's attention blocks ('s'): block i of n sits at depth i / (n - 1)
  and in third floor(3 i / n) (`third`)."""
  n = len(pattern)
  thirds = [0, 0, 0]
  depths = []
  for i, kind in enumerate(pattern):
    if kind == "s":
      thirds[third(i, n)] += 1
      depths.append(i / (n - 1) if n > 1 else 0.0)
  return Positions(tuple(thirds), float(np.mean(depths)) if depths else math.nan)

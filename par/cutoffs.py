"""Optimal adaptive-softmax cutoffs: an exact dynamic program in O(K·N log N), in numpy.

The problem. Token ids 0..N-1 have counts n_0..n_{N-1} (their share of the targets, p_t, after
dividing by the total). K clusters split the ids into consecutive ranges: the head [0, c_1)
and tails [c_1, c_2), ..., [c_{K-1}, N); the cutoffs c_1 < ... < c_{K-1} are what
`--cutoffs` takes. We want the cutoffs that minimise the expected cost per token.

Cost model (Grave et al. 2017, "Efficient softmax approximation for GPUs", section 4, linear
in the matrix sizes), in FLOPs per target token (2 per multiply-add, as `par.search.costs`):

  head:    runs for every token:                 2·d·(c_1 + K - 1)
  tail i:  runs for the share P_i of tokens in it: P_i · 2·(d·d_i + d_i·size_i)

d is d_model, size_i the tail's number of ids and d_i its projection width (`proj_dims`, or
d // proj_factor**(i+1) as the model builds it). The head's size counts one entry per tail
cluster. The full softmax costs 2·d·N, so the speed-up is 2·d·N / cost.

`simple` is the objective of the reference implementation's optimal_cuts.py (Kernes'
PAR-Transformer-XL): every cluster, the head included, costs its number of ids times its
probability mass, Σ_c size_c · P_c, with no cluster entries and no projections. The head is
charged by its own mass, not by every token as in Grave et al.; the full softmax costs N.

Both are instances of: head(c_1) + Σ_i P_i·(fixed_i + rate_i·size_i) with non-negative
coefficients, where the head costs head_rate·(c_1 + K - 1) (grave) or c_1·P_head (simple);
that is what the solver takes (`CostModel`).

The dynamic program. In count units (multiply by the total count T, so integer counts give
exact, integer costs and exact ties), with prefix sums S[b] = n_0 + ... + n_{b-1}:

  F_0(a)     = head_rate·T·a  (grave)  or  a·S[a]  (simple)    (a head of a ids)
  F_{i+1}(b) = min_{a<b} F_i(a) + w_i(a, b)
  w_i(a, b)  = (S[b] - S[a])·(fixed_i + rate_i·(b - a))                 (tail i = ids [a, b))

F_{i+1}(b) is the cheapest cover of ids [0, b) by a head and i + 1 non-empty tails, so the
optimum with K clusters is F_{K-1}(N) plus, for grave, the cluster entries head_rate·T·(K - 1);
one pass over the layers gives the optimum for every K up to a bound (`clusters="auto"`).

Why divide and conquer is exact. w_i satisfies the quadrangle inequality: for a ≤ b ≤ c ≤ e,
with x, y, z the counts and l_x, l_y, l_z the lengths of [a, b), [b, c), [c, e),

  w(a, e) + w(b, c) - w(a, c) - w(b, e) = rate·(x·l_z + z·l_x) ≥ 0

(the `fixed` term is a difference S[e] - S[a], which cancels). Then, whatever F_i is (the
head's F_0 included), the leftmost minimiser
A(b) of F_i(a) + w_i(a, b) never decreases with b: if b < b' had A(b') = a' < a = A(b),
adding the inequality for a' ≤ a < b ≤ b' to the strict F_i(a') + w(a', b) > F_i(a) + w(a, b)
gives F_i(a) + w(a, b') < F_i(a') + w(a', b'), contradicting a' being a minimiser for b'. So
computing A at the middle b of a range splits the candidates of both halves, and each level of
that recursion looks at O(N) candidates in total: O(N log N) per layer. All nodes of a level
are evaluated at once with numpy, so Python runs O(K log N) steps, not O(K·N). tests/
test_cutoffs.py checks the monotonicity and compares with brute force and a plain O(K·N²)
program.

A smallest cluster size m (`min_size`) only narrows the candidates to a <= b - m and the head
to a >= m; the argument above still holds, since a feasible for b stays feasible for b' > b.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from par.config import tail_widths
from par.errors import ParError

COST_MODELS = ("grave", "simple")  # `grave_cost` and `simple_cost`


@dataclasses.dataclass(frozen=True)
class CostModel:
  """Cost per token: head(c_1) + Σ_i share_i·(fixed_i + rate_i·size_i).

  Attributes:
    name: "grave" or "simple", for reports.
    unit: what a cost counts, for reports.
    head_rate: cost per head entry; the full softmax costs head_rate·N.
    head_by_mass: the head costs c_1 · head_rate · its share of tokens, without cluster
      entries (simple), instead of head_rate · (c_1 + K - 1) for every token (grave).
    d_model, proj_factor, proj_dims: the tail widths (grave only).
  """

  name: str
  unit: str
  head_rate: float
  head_by_mass: bool = False
  d_model: int = 0
  proj_factor: int = 4
  proj_dims: tuple = ()

  @property
  def max_tails(self):
    """Tails the model can price: len(proj_dims) if given, else unbounded."""
    return len(self.proj_dims) if self.proj_dims else None

  def head(self, size, share, clusters):
    """Cost per token of a head of `size` ids holding `share` of the tokens, K = clusters."""
    if self.head_by_mass:
      return self.head_rate * size * share
    return self.head_rate * (size + clusters - 1)

  def tail(self, i):
    """(fixed, rate) of tail i."""
    if self.name == "simple":
      return 0.0, 1.0
    width = tail_widths(self.d_model, i + 1, self.proj_factor, self.proj_dims)[i]
    return 2.0 * self.d_model * width, 2.0 * width


def grave_cost(d_model: int, proj_factor: int = 4, proj_dims: Sequence[int] = ()) -> CostModel:
  """Grave et al.'s model with the model's projection widths, in FLOPs per token."""
  if d_model < 1 or proj_factor < 1 or any(w < 1 for w in proj_dims):
    raise ParError(
      f"d_model, proj_factor and proj_dims must be positive, got {d_model}, "
      f"{proj_factor}, {list(proj_dims)}"
    )
  return CostModel("grave", "FLOPs", 2.0 * d_model, False, d_model, proj_factor, tuple(proj_dims))


def simple_cost() -> CostModel:
  """Σ over clusters of size × probability mass, the head included: the reference's objective."""
  return CostModel("simple", "size x mass", 1.0, head_by_mass=True)


@dataclasses.dataclass(frozen=True)
class Solution:
  """Optimal cutoffs for one number of clusters."""

  cutoffs: tuple  # c_1 < ... < c_{K-1}, the vocabulary size excluded
  cost: float  # per token
  full_cost: float  # of the plain softmax over the same vocabulary

  @property
  def clusters(self):
    return len(self.cutoffs) + 1

  @property
  def speedup(self):
    return self.full_cost / self.cost


def check_counts(values: npt.ArrayLike) -> np.ndarray:
  """Counts or probabilities as float64, or a ParError naming what is wrong with them."""
  counts = np.asarray(values, dtype=np.float64).reshape(-1)
  if counts.size == 0:
    raise ParError("no counts or probabilities given")
  bad = np.flatnonzero(~np.isfinite(counts))
  if bad.size:
    raise ParError(f"value {bad[0] + 1} is {counts[bad[0]]}: counts must be finite")
  bad = np.flatnonzero(counts < 0)
  if bad.size:
    raise ParError(
      f"value {bad[0] + 1} is negative ({counts[bad[0]]:g}): counts and probabilities cannot be"
    )
  if not counts.any():
    raise ParError(f"all {counts.size} counts are zero")
  return counts


def cost_of(counts: npt.ArrayLike, cutoffs: Sequence[int], model: CostModel) -> float:
  """Cost per token of given cutoffs, straight from the definition (no dynamic program)."""
  counts = check_counts(counts)
  n = counts.size
  bounds = (0,) + tuple(int(c) for c in cutoffs) + (n,)
  if any(a >= b for a, b in zip(bounds, bounds[1:])):
    raise ParError(f"cutoffs must increase strictly between 0 and {n}, got {list(cutoffs)}")
  total = counts.sum()
  cost = model.head(bounds[1], counts[: bounds[1]].sum() / total, len(cutoffs) + 1)
  for i in range(len(cutoffs)):
    fixed, rate = model.tail(i)
    share = counts[bounds[i + 1] : bounds[i + 2]].sum() / total
    cost += share * (fixed + rate * (bounds[i + 2] - bounds[i + 1]))
  return float(cost)


def _layer(previous, prefix, fixed, rate, first, min_size=1, only_last=False):
  """One step of the program: F(b) = min_{a <= b - min_size} previous[a] + w(a, b), b >= first.

  previous[a] must be finite exactly for a >= first - min_size. Returns (F, A) over 0..N,
  +inf / -1 below `first`; A(b) is the leftmost minimiser. With only_last, just b = N.
  """
  n = prefix.size - 1
  values = np.full(n + 1, np.inf)
  argmins = np.full(n + 1, -1, np.int64)
  if only_last:  # One row: a plain vectorised minimum.
    a = np.arange(first - min_size, n - min_size + 1)
    cost = previous[a] + (prefix[n] - prefix[a]) * (fixed + rate * (n - a))
    best = int(np.argmin(cost))  # The first minimum.
    values[n], argmins[n] = cost[best], a[best]
    return values, argmins
  # Pending ranges of b, [lo, hi], each with its candidate range of a, [opt_lo, opt_hi].
  lo, hi = np.array([first]), np.array([n])
  opt_lo, opt_hi = np.array([first - min_size]), np.array([n - min_size])
  while lo.size:
    mid = (lo + hi) // 2
    sizes = np.minimum(opt_hi, mid - min_size) - opt_lo + 1  # >= 1: opt_lo <= lo - min_size.
    starts = np.cumsum(sizes) - sizes
    node = np.repeat(np.arange(mid.size), sizes)
    a = np.arange(starts[-1] + sizes[-1]) - starts[node] + opt_lo[node]
    b = mid[node]
    cost = previous[a] + (prefix[b] - prefix[a]) * (fixed + rate * (b - a))
    best = np.minimum.reduceat(cost, starts)
    hits = np.flatnonzero(cost == best[node])
    first_hit = np.ones(hits.size, bool)
    first_hit[1:] = node[hits[1:]] != node[hits[:-1]]
    arg = a[hits[first_hit]]  # The leftmost minimiser of each node, in node order.
    values[mid], argmins[mid] = best, arg
    left, right = lo < mid, mid < hi
    lo, hi, opt_lo, opt_hi = (
      np.concatenate([lo[left], mid[right] + 1]),
      np.concatenate([mid[left] - 1, hi[right]]),
      np.concatenate([opt_lo[left], arg[right]]),
      np.concatenate([arg[left], opt_hi[right]]),
    )
  return values, argmins


def solve(
  counts: npt.ArrayLike,
  model: CostModel,
  clusters: int | str = 3,
  max_clusters: int = 8,
  min_size: int = 1,
) -> tuple[Solution, list[Solution]]:
  """Exact optimal cutoffs for the ids in the order given.

  Args:
    counts: per-id counts or probabilities (non-negative, any scale), in id order.
    model: a `CostModel`.
    clusters: K, the number of clusters including the head (1 = plain softmax), or "auto"
      for the cheapest K up to `max_clusters`.
    max_clusters: the bound for "auto".
    min_size: the fewest ids in a cluster (the head's cluster entries not counted). The cost
      model counts FLOPs, which favours tiny heads; real matmuls have a floor below which
      fewer rows are not faster, and tiny clusters cost accuracy.

  Returns:
    (best, solutions): the chosen `Solution` and one `Solution` per K tried, K = 1, 2, ...
    With "auto", ties go to fewer clusters.

  Raises:
    ParError: bad counts, K not below the number of ids, or K·min_size above it.
  """
  counts = check_counts(counts)
  n = counts.size
  auto = clusters == "auto"
  limit = max_clusters if auto else clusters
  if not isinstance(limit, (int, np.integer)) or limit < 1:
    raise ParError(
      f"the number of clusters must be a positive integer or 'auto', got "
      f"{max_clusters if auto else clusters!r}"
    )
  if model.max_tails is not None:
    if not auto and limit - 1 != model.max_tails:
      raise ParError(
        f"{len(model.proj_dims)} proj_dims price {model.max_tails + 1} clusters, not {limit}"
      )
    limit = min(limit, model.max_tails + 1)
  if not isinstance(min_size, (int, np.integer)) or min_size < 1:
    raise ParError(f"the smallest cluster size must be a positive integer, got {min_size!r}")
  if not auto and limit >= n:
    raise ParError(f"{limit} clusters need more than {limit} ids; the vocabulary has {n}")
  if not auto and limit * min_size > n:
    raise ParError(
      f"{limit} clusters of at least {min_size} ids need {limit * min_size} ids; "
      f"the vocabulary has {n}"
    )
  limit = min(limit, n - 1, n // min_size) if auto else limit
  scale = counts.sum()
  prefix = np.concatenate([[0.0], np.cumsum(counts)])
  full = model.head_rate * n
  solutions = [Solution((), full, full)] if (auto or limit == 1) else []
  sizes = np.arange(n + 1, dtype=np.float64)
  if model.head_by_mass:  # F_0(a): a head of a ids, charged by its own count.
    layer = model.head_rate * sizes * prefix
  else:
    layer = model.head_rate * scale * sizes
  layer[:min_size] = np.inf  # The head holds at least min_size ids.
  entries = 0.0 if model.head_by_mass else model.head_rate * scale  # per tail cluster
  argmins = []
  for tails in range(1, limit):
    fixed, rate = model.tail(tails - 1)
    layer, argmin = _layer(
      layer,
      prefix,
      fixed,
      rate,
      (tails + 1) * min_size,
      min_size,
      only_last=not auto and tails == limit - 1,
    )
    argmins.append(argmin)
    if auto or tails == limit - 1:
      cutoffs, b = [], n
      for argmin_t in reversed(argmins):
        b = int(argmin_t[b])
        cutoffs.append(b)
      cost = (layer[n] + entries * tails) / scale
      solutions.append(Solution(tuple(reversed(cutoffs)), float(cost), full))
  best = min(solutions, key=lambda s: (s.cost, s.clusters))
  return best, solutions


def order_report(counts: npt.ArrayLike) -> tuple[np.ndarray, int, float]:
  """How far id order departs from frequency order.

  Returns:
    (order, misplaced, spearman): the ids sorted by decreasing count (ties by id), how many
    ids sit elsewhere than their frequency rank, and the Spearman correlation of id and rank
    (1 when they agree; a shuffled order gives about 0).
  """
  counts = check_counts(counts)
  order = np.argsort(-counts, kind="stable")
  ids = np.arange(counts.size)
  misplaced = int(np.count_nonzero(order != ids))
  rank = np.empty_like(order)
  rank[order] = ids
  spearman = 1.0 if misplaced == 0 else float(np.corrcoef(ids, rank)[0, 1])
  return order, misplaced, spearman

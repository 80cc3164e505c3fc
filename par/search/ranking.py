"""The SuperNet's own ranking of patterns, and how far to trust it.

A weight-sharing search is trusted as far as its shared weights rank architectures as
retraining does (Yu et al. 2020, "Evaluating the search phase of NAS", found they often do
not). `score_patterns` scores patterns with the SuperNet's *shared* weights: every block
forced to one branch (its logits set to a one-hot far beyond any learned value, evaluated in
argmax mode, so one compiled function serves every pattern), on the first tokens of the valid
split. `perturbation` is DARTS-PT's selection (Wang et al. 2021): per block, the branch whose
removal from the SuperNet's mixture hurts the valid loss most. `kendall_tau` and `spearman_rho`
compare a ranking with the retrained one, ties counted as the statistics' tie-corrected forms
define them.

Which patterns: all 3^n when n ≤ `EXHAUSTIVE_BLOCKS`; above, a sample stratified by the
number of attention blocks and the third of the network (`intervals.third`) their mean index
falls in (`stratified_patterns`).
"""

import itertools
import math

import numpy as np

from par.config import BLOCK_KINDS
from par.search import intervals

EXHAUSTIVE_BLOCKS = 8  # 3^8 = 6,561 patterns; beyond, a stratified sample
_FORCE = 30.0  # logit of the forced branch: softmax gives it 1 - 2e-13


# --- the statistics ----------------------------------------------------------------------


def ranks(values):
  """1-based ranks of `values` (the smallest ranked 1), ties given their average rank."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  result = np.empty(len(values))
  sorted_values = values[order]
  start = 0
  for end in range(1, len(values) + 1):
    if end == len(values) or sorted_values[end] != sorted_values[start]:
      result[order[start:end]] = (start + 1 + end) / 2.0
      start = end
  return result


def _has_nan(x, y):
  """Whether either side holds a NaN (a score that failed): no rank is defined then."""
  return bool(
    np.isnan(np.asarray(x, np.float64)).any() or np.isnan(np.asarray(y, np.float64)).any()
  )


def spearman_rho(x, y):
  """Spearman's ρ: Pearson's correlation of the ranks (average ranks for ties); NaN when one
  side is constant, holds a NaN, or there are fewer than two items."""
  if len(x) != len(y):
    raise ValueError(f"rankings of different lengths: {len(x)} and {len(y)}")
  if len(x) < 2 or _has_nan(x, y):
    return float("nan")
  a, b = ranks(x), ranks(y)
  a, b = a - a.mean(), b - b.mean()
  denominator = math.sqrt(float(a @ a) * float(b @ b))
  return float(a @ b / denominator) if denominator else float("nan")


def kendall_tau(x, y):
  """Kendall's τ-b: (concordant − discordant) / sqrt((n0 − ties in x)(n0 − ties in y)) over
  all pairs, n0 = n(n − 1)/2; NaN when one side is constant, holds a NaN, or there are fewer
  than two."""
  if len(x) != len(y):
    raise ValueError(f"rankings of different lengths: {len(x)} and {len(y)}")
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) < 2 or _has_nan(x, y):
    return float("nan")
  i, j = np.triu_indices(len(x), 1)
  dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
  pairs = len(i)
  ties_x, ties_y = int(np.sum(dx == 0)), int(np.sum(dy == 0))
  denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
  return float(np.sum(dx * dy) / denominator) if denominator else float("nan")


def kendall_tau_se(x, y):
  """The jackknife standard error of Kendall's τ-b (Quenouille): sqrt((n − 1)/n · Σ (τ₋ᵢ −
  mean)²) over the n leave-one-out τs; NaN below three items or where a τ₋ᵢ is undefined."""
  n = len(x)
  if n < 3:
    return float("nan")
  left_out = [
    kendall_tau(np.delete(np.asarray(x), i), np.delete(np.asarray(y), i)) for i in range(n)
  ]
  if any(math.isnan(t) for t in left_out):
    return float("nan")
  left_out = np.asarray(left_out)
  return float(math.sqrt((n - 1) / n * float(np.sum((left_out - left_out.mean()) ** 2))))


TOP_SHARE = 0.3  # the report card's τ within the best 30% of the panel


def report_card(scores, retrained, by_seed=None, top=TOP_SHARE):
  """How far a SuperNet's shared-weight scores rank a panel of patterns as retraining does.

  Args:
    scores: {pattern: shared-weight score}, lower better.
    retrained: {pattern: retrained loss}, lower better (over seeds, their mean); the panel is
      the patterns both have.
    by_seed: {seed: {pattern: retrained loss}}, two seeds or more: the seeds' spread and the
      ceiling (optional).
    top: the share of the panel, the best by retrained loss, that `top_tau` ranks.

  Returns:
    {"patterns": n; "kendall_tau" with "tau_se" (`kendall_tau_se`); "spearman_rho";
    "top_tau" over "top_patterns", the best ceil(top · n) by retrained loss (NaN below 3);
    "pick", the pattern scored best, and its "regret": its retrained loss minus the panel's
    best (nats); with by_seed, "seed_sd", the seeds' sd of a pattern's retrained loss (the
    root of the mean over the panel of each pattern's variance, ddof 1), "regret_sd" (the
    regret in those sds) and "ceiling", the mean over pairs of seeds of their retrained
    losses' τ on the panel}.
  """
  panel = [p for p in retrained if p in scores]
  x = [scores[p] for p in panel]
  y = [retrained[p] for p in panel]
  card = {
    "patterns": len(panel),
    "kendall_tau": kendall_tau(x, y),
    "tau_se": kendall_tau_se(x, y),
    "spearman_rho": spearman_rho(x, y),
  }
  best = sorted(panel, key=lambda p: (retrained[p], p))[: math.ceil(top * len(panel))]
  card["top_patterns"] = len(best)
  card["top_tau"] = (
    kendall_tau([scores[p] for p in best], [retrained[p] for p in best])
    if len(best) >= 3
    else float("nan")
  )
  pick = min(panel, key=lambda p: (scores[p], p)) if panel else None
  card["pick"] = pick
  card["regret"] = retrained[pick] - min(y) if panel else float("nan")
  seeds = sorted(by_seed or {})
  if len(seeds) >= 2:
    shared = [p for p in panel if all(p in by_seed[s] for s in seeds)]
    variances = [np.var([by_seed[s][p] for s in seeds], ddof=1) for p in shared]
    card["seed_sd"] = float(math.sqrt(np.mean(variances))) if shared else float("nan")
    card["regret_sd"] = card["regret"] / card["seed_sd"] if card["seed_sd"] else float("nan")
    card["ceiling"] = float(
      np.mean(
        [
          kendall_tau([by_seed[a][p] for p in shared], [by_seed[b][p] for p in shared])
          for a, b in itertools.combinations(seeds, 2)
        ]
      )
    )
  return card


def skip_bias(scores, retrained):
  """How a ranking treats the patterns that skip a block (hold an identity), over the
  patterns both sides have: weight-sharing searches are known to favour parameter-free
  operations (DARTS' collapse onto skip connections), which retraining need not.

  Returns:
    {"skipping": how many patterns skip a block; "rank_shift": the mean over them of their
    place in `retrained`'s order minus their place in `scores`' (1-based ranks over the whole
    panel, ties averaged; positive: `scores` puts them ahead of where `retrained` does; NaN
    without any); "skip_free": how many do not; "skip_free_tau": Kendall's τ-b over those
    alone (NaN below two)}.
  """
  panel = [p for p in retrained if p in scores]
  skipping = [k for k, p in enumerate(panel) if "i" in p]
  free = [p for p in panel if "i" not in p]
  shift = float("nan")
  if skipping:
    by_scores = ranks([scores[p] for p in panel])
    by_retraining = ranks([retrained[p] for p in panel])
    shift = float(np.mean(by_retraining[skipping] - by_scores[skipping]))
  return {
    "skipping": len(skipping),
    "rank_shift": shift,
    "skip_free": len(free),
    "skip_free_tau": kendall_tau([scores[p] for p in free], [retrained[p] for p in free]),
  }


# --- which patterns ----------------------------------------------------------------------


def attention_depth(pattern):
  """The mean depth of a pattern's attention blocks in [0, 1] (0: the first block, 1: the
  last), or None without any."""
  where = [k for k, kind in enumerate(pattern) if kind == "s"]
  if not where:
    return None
  return float(np.mean(where)) / max(len(pattern) - 1, 1)


def all_patterns(n_blocks):
  """Every pattern of n_blocks over s, f, i, in lexicographic order of BLOCK_KINDS."""
  return ["".join(p) for p in itertools.product(BLOCK_KINDS, repeat=n_blocks)]


def stratified_patterns(n_blocks, per_stratum, seed=0):
  """A sample of patterns: for every count of attention blocks and every third of the network
  (`intervals.third`) the mean index of those blocks can fall in, up to `per_stratum`
  distinct patterns (the others f or i at random), drawn with a fixed seed. Patterns without
  attention form one stratum."""
  rng = np.random.default_rng(seed)
  chosen = {}
  for attention in range(n_blocks + 1):
    strata = {}
    for _ in range(200 * per_stratum):
      positions = set(rng.choice(n_blocks, size=attention, replace=False).tolist())
      pattern = "".join(
        "s" if k in positions else ("f" if rng.random() < 0.5 else "i") for k in range(n_blocks)
      )
      stratum = -1 if not attention else intervals.third(np.mean(sorted(positions)), n_blocks)
      members = strata.setdefault(stratum, [])
      if len(members) < per_stratum and pattern not in members:
        members.append(pattern)
      if len(strata) == (1 if not attention else 3) and all(
        len(m) == per_stratum for m in strata.values()
      ):
        break
    for members in strata.values():
      chosen.update(dict.fromkeys(members))
  return list(chosen)


def candidate_patterns(n_blocks, per_stratum=8, seed=0):
  """The patterns the SuperNet's ranking scores: all of them up to EXHAUSTIVE_BLOCKS blocks,
  else a stratified sample."""
  if n_blocks <= EXHAUSTIVE_BLOCKS:
    return all_patterns(n_blocks)
  return stratified_patterns(n_blocks, per_stratum, seed)


# --- scores with the shared weights --------------------------------------------------------


def forced_logits(pattern):
  """Architecture logits that make argmax (and, to 2e-13, softmax) choose `pattern`."""
  return [
    _FORCE * np.eye(len(BLOCK_KINDS), dtype=np.float32)[BLOCK_KINDS.index(k)] for k in pattern
  ]


def matches(pattern, kinds):
  """Whether `pattern` is one a (sub-)SuperNet of these kinds holds: its letter wherever the
  SuperNet fixes one ("?" takes any)."""
  return len(pattern) == len(kinds) and all(k in ("?", p) for p, k in zip(pattern, kinds))


def score_patterns(model, evaluate, patterns, progress=None):
  """{pattern: valid loss (nats per token)} of the SuperNet `model` with each pattern forced.

  Args:
    model: a SuperNet `ParModel` whose eval_mode is "argmax" (only the forced branch runs), or
      a sub-SuperNet, which scores only the patterns it holds (`matches`).
    evaluate: a function of no argument returning an `evaluate.Result` of the model as it
      stands (a compiled evaluator over the first tokens of valid): one trace for all.
    patterns: the patterns to score.
    progress: called with (done, total) now and then, if given.

  The model's logits are restored afterwards.
  """
  others = [p for p in patterns if not matches(p, model.kinds)]
  if others:
    raise ValueError(f"{model.kinds!r} does not hold {others[0]!r}")
  logits = model.architecture_variables()
  saved = [v.numpy() for v in logits]
  scores = {}
  try:
    for k, pattern in enumerate(patterns):
      searched = "".join(pattern[b] for b in model.searched_blocks)
      for variable, value in zip(logits, forced_logits(searched)):
        variable.assign(value)
      scores[pattern] = evaluate().loss
      if progress is not None and (k + 1) % 50 == 0:
        progress(k + 1, len(patterns))
  finally:
    for variable, value in zip(logits, saved):
      variable.assign(value)
  return scores


def perturbation(model, evaluate):
  """A variant of DARTS-PT's selection (Wang et al. 2021): per block, the branch whose removal
  from the mixture hurts the valid loss most. Where it differs, named so that its results are
  not read as DARTS-PT's: the removed branch's logit goes to -1e9, so the remaining branches
  are renormalised (DARTS-PT zeroes its weight and leaves the others as they were), and every
  block is judged against the whole mixture (DARTS-PT fixes one edge at a time, in random
  order, and fine-tunes the supernet between).

  Args:
    model: a SuperNet `ParModel` whose eval_mode is "expected" (every branch mixed by the
      softmax of its logits).
    evaluate: as for `score_patterns`.

  Returns:
    (pattern, {"loss": the whole mixture's, "removed": [[loss without s, f, i] per block]}).
  """
  logits = model.architecture_variables()
  saved = [v.numpy() for v in logits]
  removed = []
  try:
    whole = evaluate().loss
    for variable, value in zip(logits, saved):
      row = []
      for k in range(len(BLOCK_KINDS)):
        variable.assign(np.where(np.arange(len(BLOCK_KINDS)) == k, -1e9, value).astype(np.float32))
        row.append(evaluate().loss)
      variable.assign(value)
      removed.append(row)
  finally:
    for variable, value in zip(logits, saved):
      variable.assign(value)
  chosen = iter(BLOCK_KINDS[int(np.argmax(row))] for row in removed)
  pattern = "".join(next(chosen) if kind == "?" else kind for kind in model.kinds)
  return pattern, {"loss": whole, "removed": removed}

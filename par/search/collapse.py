"""The collapse report of a search, and how decided its blocks are (`entropy`).

Differentiable searches tend to drift to parameter-free operations (DARTS collapse, Zela et
al. 2020; Chu et al. 2021). Identity dominates a block when it is the most likely kind with
probability at least `DOMINANT`; the report names those blocks and warns when they are at
least half of the network.
"""

import numpy as np

from par.config import BLOCK_KINDS
from par.config import argmax_pattern

DOMINANT = 0.5


def entropy(probabilities):
  """The entropy of each block's distribution over s, f, i, in nats: float64 [n_blocks].

  ln 3 (1.0986) for a block that has not chosen, 0 for one that has; 0·ln 0 counts as 0.
  """
  p = np.asarray(probabilities, np.float64)
  terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
  return terms.sum(axis=-1)


def collapse_report(probabilities):
  """Blocks where identity dominates, and a warning if they are half the network or more.

  Args:
    probabilities: [n_blocks, 3] (columns s, f, i).

  Returns:
    (blocks, message): the indices, and a one-line warning or None.
  """
  probabilities = np.asarray(probabilities)
  dominated = [b for b, row in enumerate(probabilities) if row.argmax() == 2 and row[2] >= DOMINANT]
  if 2 * len(dominated) < len(probabilities):
    return dominated, None
  listed = ", ".join(f"{b} ({probabilities[b, 2]:.2f})" for b in dominated)
  return dominated, (
    f"search collapse: identity dominates {len(dominated)} of {len(probabilities)} blocks "
    f"(block (p_identity): {listed}); consider --arch_warmup_steps, a lower --arch_lr, "
    "a higher --tau_end or --arch_weight_decay"
  )


CLOSE = 0.05  # a block whose argmax leads its runner-up by less is a coin toss


def margins(probabilities):
  """Each block's lead of its most likely kind over the runner-up: float64 [n_blocks]."""
  top = np.sort(np.asarray(probabilities, np.float64), axis=-1)
  return top[:, -1] - top[:, -2]


def margin_report(probabilities, history=()):
  """The derived pattern's margins, and a warning when some block's argmax is within noise.

  A block is undecided when its argmax leads by less than `CLOSE`, or when its argmax changed
  in the last quarter of the search's history (the probabilities recorded over the run): the
  pattern would differ with a little more or less training.

  Args:
    probabilities: [n_blocks, 3] (columns s, f, i) at the end.
    history: [(step, probabilities)] over the search, oldest first.

  Returns:
    (one log line with every block's margin, a one-line warning or None).
  """
  p = np.asarray(probabilities, np.float64)
  lead = margins(p)
  kinds = BLOCK_KINDS
  pattern = argmax_pattern(p)
  cells = []
  for b, row in enumerate(p):
    first, second = np.argsort(row)[::-1][:2]
    cells.append(f"{b} {kinds[first]} {row[first]:.3f} vs {kinds[second]} {row[second]:.3f}")
  line = f"derived {pattern}; each block's lead over its runner-up: {'; '.join(cells)}"
  recent = list(history)[len(history) - len(history) // 4 :] if history else []
  flipped = {
    b
    for _, h in recent
    for b, k in enumerate(np.asarray(h, np.float64).argmax(axis=1))
    if k != p[b].argmax()
  }
  close = {b for b in range(len(p)) if lead[b] < CLOSE}
  undecided = sorted(close | flipped)
  if not undecided:
    return line, None
  why = []
  if close:
    many = len(close) > 1
    listed = ", ".join(map(str, sorted(close)))
    why.append(f"block{'s' * many} {listed} lead{'s' * (not many)} by less than {CLOSE}")
  if flipped:
    many = len(flipped) > 1
    listed = ", ".join(map(str, sorted(flipped)))
    why.append(
      f"block{'s' * many} {listed} changed {'their' if many else 'its'} argmax in the last "
      "quarter of the search"
    )
  return line, (
    f"the derived pattern {pattern} is within noise: {'; '.join(why)}; another run or a few "
    "more steps may derive another. Rank the patterns with the shared weights (par-rank, "
    "--derive=shared_best) before trusting it"
  )


# What the known-answer benchmark found of each sampling mode that failed it (docs/SEARCH.md):
# said when such a search starts, so that its argmax is not taken on trust.
UNFIT_SAMPLING = {
  "hard": (
    "--sampling=hard did not find the known answers of docs/SEARCH.md: its argmax kept "
    "attention in every block of the pair task (9% worse than the best pattern retrained), "
    "whatever the settings; --sampling=soft found it. Its shared-weight ranking does carry "
    "information (Kendall tau 0.6-0.7 against retraining): derive with --derive=shared_best"
  ),
  "single_path": (
    "--sampling=single_path did not find the known answers of docs/SEARCH.md: its "
    "architecture collapsed to identity in every block of the pair task (5x worse), whatever "
    "the settings; --sampling=soft found them. Its shared weights still rank patterns (the "
    "ranking's best was within 2% of the best): derive with --derive=shared_best"
  ),
}

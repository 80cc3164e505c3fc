"""The collapse report of a search, and how decided its blocks are (`entropy`).

Differentiable searches tend to drift to parameter-free operations (DARTS collapse, Zela et
al. 2020; Chu et al. 2021). Identity dominates a block when it is the most likely kind with
probability at least `DOMINANT`; the report names those blocks and warns when they are at
least half of the network.
"""

import numpy as np

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

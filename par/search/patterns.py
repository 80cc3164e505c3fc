"""Architecture patterns: one letter per block, "s" self-attention, "f" feed-forward, "i"
identity (Transformer-XL's interleaving is "sf" repeated), and the ways the pipeline derives
one from a search.

`par.config.argmax_pattern` is the SuperNet's own derivation (each block's most likely kind,
what eval_mode argmax computes); PAR's rule (`derive_ratio`) turns the finding of Mandava et
al. (2020) into a pattern.
"""

import math

from par.config import BLOCK_KINDS
from par.config import argmax_pattern
from par.errors import ParError

SEARCH = "search"  # The pipeline's search directory, search-split<F>/ for a held-out split.


def search_name(arch_split):
  """The directory of the search with this held-out split: search/, search-split0.2/, …"""
  return SEARCH if not arch_split else f"{SEARCH}-split{arch_split:g}"


def check_plan(ratios, arch_splits):
  """Raises ParError unless the pipeline's ratios and held-out splits make a plan: finite
  ratios of 0 or more, splits in [0, 1) that name distinct searches. Checked before anything
  trains (a clash found after the first search had trained it for nothing)."""
  for ratio in ratios:
    if not (math.isfinite(ratio) and ratio >= 0):
      raise ParError(f"--ratio must be 0 (from the search) or a positive number, got {ratio}")
  names = {}
  for split in arch_splits:
    if not (math.isfinite(split) and 0 <= split < 1):
      raise ParError(f"--arch_splits must lie in [0, 1), got {split}")
    if search_name(split) in names:
      raise ParError(
        f"--arch_splits {names[search_name(split)]!r} and {split!r} both name the search "
        f"{search_name(split)}/: give distinct splits"
      )
    names[search_name(split)] = split


def parse_pattern(pattern, n_blocks=None):
  """Checks a pattern string; returns it."""
  if not pattern or set(pattern) - set(BLOCK_KINDS):
    raise ValueError(f"a pattern is a non-empty string over {BLOCK_KINDS!r}, got {pattern!r}")
  if n_blocks is not None and len(pattern) != n_blocks:
    raise ValueError(f"pattern {pattern!r} has {len(pattern)} blocks, expected {n_blocks}")
  return pattern


def derive_ratio(n_blocks, ratio):
  """PAR's rule: one attention block per `ratio` blocks, spread over the lower two-thirds.

  Mandava et al. (2020) found that a searched network needs attention in about one block in
  p and only in its lower two-thirds. The rule keeps A = max(1, round(n_blocks / ratio))
  attention blocks, at the centres of A equal parts of the first ceil(2·n_blocks / 3)
  blocks, and makes every other block feed-forward.

  Args:
    n_blocks: blocks in the network.
    ratio: p > 0, blocks per attention block (e.g. 3 for 1 in 3).
  """
  if n_blocks < 1 or not ratio > 0:
    raise ValueError(f"need n_blocks >= 1 and ratio > 0, got {n_blocks} and {ratio}")
  attention = max(1, min(n_blocks, round(n_blocks / ratio)))
  lower = max(attention, -(-2 * n_blocks // 3))
  positions = {int((k + 0.5) * lower / attention) for k in range(attention)}
  return "".join("s" if b in positions else "f" for b in range(n_blocks))


def baseline_pattern(n_blocks):
  """Transformer-XL's interleaving of attention and feed-forward, "sfsf…", n_blocks long."""
  return ("sf" * n_blocks)[:n_blocks]


def derivations(searches, ratios, n_blocks):
  """{label: pattern}: each search's argmax, PAR's rule at each ratio, the baseline.

  Args:
    searches: {search name: its probabilities [n_blocks, 3] (columns s, f, i) at the end}.
      With one search its argmax is labelled "argmax", with several "argmax of <name>".
    ratios: blocks per attention block for the rule ("rule p=<ratio>"); 0 takes each
      search's argmax ratio (at least one attention block).
    n_blocks: blocks in the network.
  """
  argmaxes = {name: argmax_pattern(p) for name, p in searches.items()}
  derived = {
    ("argmax" if len(argmaxes) == 1 else f"argmax of {name}"): pattern
    for name, pattern in argmaxes.items()
  }
  for ratio in ratios:
    chosen = [ratio] if ratio else [n_blocks / max(1, a.count("s")) for a in argmaxes.values()]
    for p in chosen:
      derived[f"rule p={p:.3g}"] = derive_ratio(n_blocks, p)
  derived["baseline"] = baseline_pattern(n_blocks)
  return derived

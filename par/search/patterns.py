"""Architecture patterns: one letter per block, "s" self-attention, "f" feed-forward, "i"
identity (Transformer-XL's interleaving is "sf" repeated), and the ways the pipeline derives
one from a search.

`par.config.argmax_pattern` is the SuperNet's own derivation (each block's most likely kind,
what eval_mode argmax computes); PAR's rule (`derive_ratio`) turns the finding of Mandava et
al. (2020) into a pattern.
"""

import math

import numpy as np

from par.config import BLOCK_KINDS
from par.config import COUPLED_SAMPLING
from par.config import SAMPLING_MODES
from par.config import argmax_pattern
from par.errors import ParError

SEARCH = "search"  # The pipeline's search directory: search-<sampling>-split<F>/ in general.
PLACES = ("low", "middle", "high", "even")  # where `placements` puts attention


def search_name(arch_split, sampling="soft"):
  """The directory of the search with this sampling and held-out split: search/ (soft,
  single-level), search-split0.2/, search-uniform/, search-hard-split0.2/, …"""
  name = SEARCH if sampling == "soft" else f"{SEARCH}-{sampling}"
  return name if not arch_split else f"{name}-split{arch_split:g}"


def search_plan(samplings, arch_splits):
  """[(sampling, arch_split)]: the pipeline's searches, each coupled sampling once per
  held-out split, each decoupled one once (it learns no architecture: nothing to hold out
  for). Raises ParError on a sampling it does not know or a plan that names a search twice."""
  samplings = tuple(samplings)
  for sampling in samplings:
    if sampling not in SAMPLING_MODES:
      raise ParError(f"--samplings takes {', '.join(SAMPLING_MODES)}; got {sampling!r}")
  if len(set(samplings)) != len(samplings):
    raise ParError(f"--samplings lists a sampling twice: {','.join(samplings)}")
  coupled = [s for s in samplings if s in COUPLED_SAMPLING]
  if not coupled and any(arch_splits):
    raise ParError(
      f"--arch_splits hold data out for a coupled search's architecture step; "
      f"--samplings={','.join(samplings)} learns no architecture logits"
    )
  return [(s, split) for s in samplings for split in (arch_splits if s in coupled else (0.0,))]


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


def parse_pattern(pattern, n_blocks=None, searched=False):
  """Checks a pattern string (with `searched`, "?" may mark searched blocks); returns it."""
  letters = BLOCK_KINDS + ("?" if searched else "")
  if not pattern or set(pattern) - set(letters):
    raise ValueError(f"a pattern is a non-empty string over {letters!r}, got {pattern!r}")
  if n_blocks is not None and len(pattern) != n_blocks:
    raise ValueError(f"pattern {pattern!r} has {len(pattern)} blocks, expected {n_blocks}")
  return pattern


def derive_ratio(n_blocks, ratio):
  """PAR's rule: one attention block per `ratio` blocks, spread over the lower two-thirds.

  Mandava et al. (2020) found that a searched network needs attention in about one block in
  p and only in its lower two-thirds. The rule keeps A = max(1, n_blocks / ratio rounded
  half up: 2.5 gives 3, as a reader of "one in p" would count, not Python's half-to-even 2)
  attention blocks, at the centres of A equal parts of the first ceil(2·n_blocks / 3)
  blocks, and makes every other block feed-forward.

  Args:
    n_blocks: blocks in the network.
    ratio: p > 0, blocks per attention block (e.g. 3 for 1 in 3).
  """
  if n_blocks < 1 or not ratio > 0:
    raise ValueError(f"need n_blocks >= 1 and ratio > 0, got {n_blocks} and {ratio}")
  attention = max(1, min(n_blocks, math.floor(n_blocks / ratio + 0.5)))
  lower = max(attention, -(-2 * n_blocks // 3))
  positions = {int((k + 0.5) * lower / attention) for k in range(attention)}
  return "".join("s" if b in positions else "f" for b in range(n_blocks))


def baseline_pattern(n_blocks):
  """Transformer-XL's interleaving of attention and feed-forward, "sfsf…", n_blocks long."""
  return ("sf" * n_blocks)[:n_blocks]


def sandwich_pattern(n_blocks, k):
  """Press, Smith & Levy (2020)'s sandwich transformer: k attention blocks first, then the
  interleaving, then k feed-forward blocks, s^k (sf)^(n−k) f^k for 2n blocks; k = 0 is the
  baseline. Each kind keeps the baseline's count."""
  if not 0 <= k <= n_blocks // 2:
    raise ValueError(f"a sandwich of {n_blocks} blocks takes k from 0 to {n_blocks // 2}, got {k}")
  return "s" * k + baseline_pattern(n_blocks - 2 * k) + "f" * k


def placement_pattern(n_blocks, place, k):
  """k attention blocks placed `place` among n_blocks, every other block feed-forward: low
  (the first k, where PAR's searches put it), high (the last k), middle (k together, centred,
  rounded down), even (spread evenly and never first or last: the other blocks cut into k + 1
  runs as equal as rounding half up allows, one attention block between each two, as
  Megatron-LM's hybrid allocator spaces its attention layers and Jamba puts one in the middle
  of each block of eight)."""
  if place not in PLACES:
    raise ValueError(f"a placement is one of {', '.join(PLACES)}, got {place!r}")
  if not 1 <= k <= n_blocks:
    raise ValueError(f"place 1 to {n_blocks} attention blocks, got {k}")
  if place == "low":
    where = range(k)
  elif place == "high":
    where = range(n_blocks - k, n_blocks)
  elif place == "middle":
    where = range((n_blocks - k) // 2, (n_blocks - k) // 2 + k)
  else:
    run = (n_blocks - k) / (k + 1)  # feed-forward blocks before each attention block
    where = [math.floor(i * run + 0.5) + i - 1 for i in range(1, k + 1)]
  where = set(where)
  return "".join("s" if b in where else "f" for b in range(n_blocks))


def most_placed(n_blocks):
  """The most attention blocks `placement_pattern` spreads evenly without putting one first
  or last (0 when none fits)."""
  k = 0
  while k < n_blocks:
    even = placement_pattern(n_blocks, "even", k + 1)
    if even[0] + even[-1] != "ff":
      break
    k += 1
  return k


def random_orderings(n_blocks, count, seed=0):
  """`count` distinct orderings of the baseline's blocks (its attention blocks at random
  places, feed-forward elsewhere), the baseline itself left out, drawn with `seed`: the
  random orderings of the same sublayers Press et al. (2020) compare with. Fewer when fewer
  exist."""
  baseline = baseline_pattern(n_blocks)
  attention = baseline.count("s")
  possible = math.comb(n_blocks, attention) - 1
  rng = np.random.default_rng(seed)
  found = []
  while len(found) < min(count, possible):
    where = set(rng.choice(n_blocks, size=attention, replace=False).tolist())
    pattern = "".join("s" if k in where else "f" for k in range(n_blocks))
    if pattern != baseline and pattern not in found:
      found.append(pattern)
  return found


DERIVATIONS = (
  "argmax",
  "rule",
  "perturbation",
  "shared_best",
  "sandwich=K",
  "random=N",
  "placements=K",
  "pattern=P",
)


def parse_derivations(values, n_blocks):
  """The pipeline's --derive values as (kind, number or None) pairs, checked.

  argmax (each search's most likely kind per block), rule (PAR's rule at each --ratio),
  perturbation (DARTS-PT's selection on each search), shared_best (the best pattern of each
  search's shared-weight ranking), sandwich=K (Press et al.'s, K attention blocks moved to the
  bottom and as many feed-forward to the top), random=N (N seeded random orderings of the
  baseline's blocks), placements=K (1 to K attention blocks placed low, middle, high and
  evenly spaced, `placement_pattern`: labelled "low 2", "even 1", …), pattern=P (the pattern
  P itself: a study's panel named outright). The baseline is always trained.
  """
  parsed = []
  for value in values:
    kind, _, number = value.partition("=")
    if kind in ("sandwich", "random", "placements"):
      if not (number.isascii() and number.isdigit()):
        raise ParError(f"--derive={kind}=N takes a whole number, got {value!r}")
      number = int(number)
      if kind == "sandwich" and number > n_blocks // 2:
        raise ParError(f"--derive=sandwich=K takes K up to {n_blocks // 2} for {n_blocks} blocks")
      if kind == "placements" and not 1 <= number <= most_placed(n_blocks):
        raise ParError(
          f"--derive=placements=K takes K from 1 to {most_placed(n_blocks)} for {n_blocks} "
          "blocks (evenly spaced attention is never first or last)"
        )
      parsed.append((kind, number))
    elif kind == "pattern":
      if len(number) != n_blocks or set(number) - set(BLOCK_KINDS):
        raise ParError(
          f"--derive=pattern=P takes {n_blocks} letters of {''.join(BLOCK_KINDS)}, got {value!r}"
        )
      parsed.append((kind, number))
    elif kind in DERIVATIONS and not number:
      parsed.append((kind, None))
    else:
      raise ParError(f"--derive takes {', '.join(DERIVATIONS)}; got {value!r}")
  return parsed


def derivations(
  searches, ratios, n_blocks, derive=(("argmax", None), ("rule", None)), found=None, seed=0
):
  """{label: pattern}: what each derivation gives, the baseline last.

  Args:
    searches: {search name: its probabilities [n_blocks, 3] (columns s, f, i) at the end, or
      None for a decoupled SuperNet, which learns none and has no argmax}. A derivation from a
      search is labelled by its kind ("argmax") with one search, "argmax of <name>" with
      several.
    ratios: blocks per attention block for the rule ("rule p=<ratio>"); 0 takes each
      search's argmax ratio (a decoupled SuperNet's: its shared best's, once `found`; at least
      one attention block).
    n_blocks: blocks in the network.
    derive: `parse_derivations`' pairs, in the order they are listed.
    found: {search name: {"perturbation": pattern, "shared_best": pattern}}, what the
      pipeline found with each search's SuperNet, for those two derivations (a None
      perturbation, a few-shot group's, derives nothing).
    seed: of the random orderings.
  """
  argmaxes = {name: argmax_pattern(p) for name, p in searches.items() if p is not None}

  def of(kind, name):
    return kind if len(searches) == 1 else f"{kind} of {name}"

  derived = {}
  for kind, number in derive:
    if kind == "argmax":
      derived.update({of("argmax", name): pattern for name, pattern in argmaxes.items()})
    elif kind in ("perturbation", "shared_best"):
      for name in searches:  # (a few-shot group has no perturbation)
        if (found or {})[name][kind]:
          derived[of(kind, name)] = found[name][kind]
    elif kind == "rule":
      for ratio in ratios:
        picks = [argmaxes.get(n) or (found or {}).get(n, {}).get("shared_best") for n in searches]
        chosen = [ratio] if ratio else [n_blocks / max(1, a.count("s")) for a in picks if a]
        for p in chosen:
          derived[f"rule p={p:.3g}"] = derive_ratio(n_blocks, p)
    elif kind == "sandwich":
      derived[f"sandwich k={number}"] = sandwich_pattern(n_blocks, number)
    elif kind == "random":
      for k, pattern in enumerate(random_orderings(n_blocks, number, seed), start=1):
        derived[f"random {k}"] = pattern
    elif kind == "placements":
      for k in range(1, number + 1):
        for place in PLACES:
          derived[f"{place} {k}"] = placement_pattern(n_blocks, place, k)
    elif kind == "pattern":
      derived[f"pattern {number}"] = number
  derived["baseline"] = baseline_pattern(n_blocks)
  return derived

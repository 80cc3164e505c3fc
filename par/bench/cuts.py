"""Suite `cuts`: the exact cutoff solver of par/cutoffs.py (docs/BENCHMARKS.md, "Optimal
cutoffs").

On Zipfian counts (exponent 1, 10^8 tokens drawn) for N = 12,000 with K = 3 and N = 267,735
(WikiText-103's vocabulary) with K = 4 and auto, in both cost models, `repeats` times; and
the whole par-optimal-cuts process on a file of the 267,735 counts.
"""

import time

from par.bench import measure


def _zipf_counts(n, tokens, seed=0):
  """Token counts of a Zipfian (exponent 1) vocabulary of n ids, `tokens` tokens drawn."""
  import numpy as np

  weights = 1.0 / np.arange(1, n + 1)
  return np.random.default_rng(seed).multinomial(tokens, weights / weights.sum())


def run(work, options):
  from par import cutoffs

  rows = []
  cases = [
    ("N = 12,000, K = 3", 12_000, 3),
    ("N = 267,735, K = 4", 267_735, 4),
    ("N = 267,735, auto K <= 6", 267_735, "auto"),
  ]
  for name, n, clusters in cases:
    counts = _zipf_counts(n, 100_000_000)
    for model in (cutoffs.grave_cost(128, 4), cutoffs.simple_cost()):
      times = []
      for _ in range(options.repeats):
        start = time.perf_counter()
        best, _ = cutoffs.solve(counts, model, clusters, max_clusters=6)
        times.append(time.perf_counter() - start)
      rows.append(
        (
          f"solve, Zipfian {name}, {model.name} cost, s (median; max)",
          f"{measure.median(times):.3f} ({max(times):.3f}); {best.clusters} clusters, "
          f"cutoffs {list(best.cutoffs)}, speed-up {best.speedup:.1f}x",
        )
      )
  # The whole script, as a user runs it, on WikiText-103's vocabulary size.
  values = work / "counts.txt"
  values.write_text("\n".join(str(c) for c in _zipf_counts(267_735, 100_000_000)) + "\n")
  walls = [
    measure.run_measured(measure.command("optimal_cuts", f"--filename={values}", "--clusters=4"))[0]
    for _ in range(options.repeats)
  ]
  rows.append(
    (
      "par-optimal-cuts --filename (267,735 counts) --clusters=4, wall s (median; max)",
      f"{measure.median(walls):.2f} ({max(walls):.2f})",
    )
  )
  return rows

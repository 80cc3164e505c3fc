"""Retrained models compared on the same test tokens: each one's per-token test NLL, kept
beside its results, and the paired block bootstrap of one model against another, for one
seed or pooled over seeds (par/search/intervals.py has the statistics)."""

import io
import math
from pathlib import Path

import numpy as np
from absl import logging

from par import runs
from par.errors import ParError
from par.search import intervals
from par.study import workdir

BOOTSTRAP_BLOCK = 256  # test tokens per block of the paired bootstrap


def test_nll(model_dir):
  """A finished run's per-token test NLL (`evaluate.split_token_nlls` of its export), computed
  once and kept as model_dir/test_nll.npy.

  The kept array is a cache, and is trusted only when it is the run's: as many tokens as its
  results.json's test split counts, summing to its test NLL. One that is not (another run's,
  truncated, unreadable) is computed again, with a warning; a computed one that does not
  match either (results.json from other weights than the export) raises ParError.
  """
  path = Path(model_dir) / workdir.TEST_NLL
  expected = (runs.read_results(model_dir) or {}).get("test")
  if path.exists():
    try:
      kept = np.load(path)
    except (ValueError, OSError, EOFError) as e:
      problem = f"unreadable ({e})"
    else:
      problem = _mismatch(kept, expected)
      if problem is None:
        return kept
    logging.warning("%s is not this run's test NLL: %s; computing it again", path, problem)
  from par.train import evaluate  # TensorFlow: only when something is scored.

  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  nll = evaluate.split_token_nlls(model, run, "test")
  problem = _mismatch(nll, expected)
  if problem is not None:
    raise ParError(
      f"{model_dir}: the exported model's test NLL is not its results.json's: {problem}"
    )
  with io.BytesIO() as buffer:
    np.save(buffer, nll)
    runs.write_bytes(path, buffer.getvalue())
  return nll


def _mismatch(nll, expected):
  """Why per-token NLLs are not those a results.json's test split reports, or None."""
  if expected is None:
    return None  # nothing to check against (a run scored before results held its test)
  if nll.ndim != 1 or nll.size != expected["tokens"]:
    return f"{nll.size} tokens where the run scored {expected['tokens']}"
  total = float(np.sum(nll, dtype=np.float64))
  if not math.isclose(total, expected["nll"], rel_tol=1e-5, abs_tol=1e-3):
    return f"they sum to {total:.6g} nats where the run's test NLL is {expected['nll']:.6g}"
  return None


def paired(mine, theirs):
  """`intervals.paired_bootstrap` of per-token NLLs, one pair of arrays per seed, in blocks of
  BOOTSTRAP_BLOCK tokens, or of an eighth of a test split too short for eight of them."""
  block = min(BOOTSTRAP_BLOCK, max(1, min(t.size for t in theirs) // 8))
  return intervals.paired_bootstrap(mine, theirs, block)


def over_seeds(mine, theirs):
  """`paired` pooled over seeds, as a dict, with each seed's own mean difference
  (`by_seed`) and their sd (`seed_sd`): the bootstrap's interval holds the trained models
  fixed and resamples test tokens only, the seeds' spread is the training noise."""
  comparison = paired(mine, theirs).to_dict()
  by_seed = [float(np.mean(np.asarray(m, np.float64) - t)) for m, t in zip(mine, theirs)]
  comparison["by_seed"] = by_seed
  comparison["seed_sd"] = intervals.mean_sd(by_seed)[1]
  return comparison

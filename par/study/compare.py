"""Retrained models compared on the same test tokens: each one's per-token test NLL, kept
beside its results, and the paired block bootstrap of one model against another, for one
seed or pooled over seeds (par/search/intervals.py has the statistics)."""

import io
from pathlib import Path

import numpy as np

from par import runs
from par.search import intervals
from par.study import workdir

BOOTSTRAP_BLOCK = 256  # test tokens per block of the paired bootstrap


def test_nll(model_dir):
  """A finished run's per-token test NLL (`evaluate.split_token_nlls` of its export), computed
  once and kept as model_dir/test_nll.npy."""
  path = Path(model_dir) / workdir.TEST_NLL
  if path.exists():
    return np.load(path)
  from par.train import evaluate  # TensorFlow: only when something is scored.

  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  nll = evaluate.split_token_nlls(model, run, "test")
  with io.BytesIO() as buffer:
    np.save(buffer, nll)
    runs.write_bytes(path, buffer.getvalue())
  return nll


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

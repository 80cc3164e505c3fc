"""A search's own ranking of patterns, from its run directory (par/search/ranking.py has the
pieces): every candidate pattern scored with the SuperNet's shared weights on the first
tokens of the valid split, DARTS-PT's perturbation, the best and the argmax.

  <search run>/ranking.json       {"tokens", "scores": {pattern: valid loss}, "order",
                                   "shared_best", "argmax", "perturbation": {...}}
  <search run>/plots/ranking.png, .pdf

`python3 scripts/rank.py --model_dir=runs/search` writes them; the pipeline ranks each search
the same way, then compares the ranking with retraining (Kendall τ and Spearman ρ).
"""

import math
from pathlib import Path

import numpy as np
from absl import logging

from par import runs
from par.data import records
from par.errors import ParError
from par.search import plots
from par.search import ranking

RANKING_FILE = "ranking.json"
FIGURE = "ranking"
DEFAULT_TOKENS = 16_384  # valid tokens each pattern is scored on


def _first_records(model, run, tokens):
  """A function scoring `model` as it stands on the first records of valid holding at least
  `tokens` targets (all of valid if fewer): one compiled evaluator for every call."""
  from par.train import evaluate  # TensorFlow: only when something is scored.

  data_dir = run.config.data_dir
  meta = records.check_dataset(data_dir, "valid", run.tokenizer_sha256, records=True)
  count = min(
    meta.splits["valid"].records, max(1, math.ceil(tokens / (meta.batch_size * meta.seq_len)))
  )
  evaluator = evaluate.Evaluator(model, run.eval_mem_len, sampled_paths=False)  # forced
  dataset = records.load_dataset(data_dir, "valid", run.tokenizer_sha256).take(count)

  def score():  # (each call iterates the dataset afresh, from its first record)
    return evaluator(dataset, meta.batch_size, records=count)

  return score, count * meta.batch_size * meta.seq_len


def _saved(model_dir, n_blocks, tokens, extra, per_stratum, seed):
  """(the saved ranking record, or {} if scored on other tokens; the patterns it lacks)."""
  wanted = ranking.candidate_patterns(n_blocks, per_stratum, seed) + list(extra)
  wanted = list(dict.fromkeys(wanted))
  path = Path(model_dir) / RANKING_FILE
  saved = runs.read_json(path) if path.is_file() else {}
  if saved.get("requested_tokens") != tokens:
    saved = {}  # Scored on other tokens: not comparable.
  return saved, [p for p in wanted if p not in saved.get("scores", {})]


def saved_ranking(model_dir, tokens=DEFAULT_TOKENS, extra=(), per_stratum=8, seed=0):
  """What `rank_search` would return without scoring anything: the saved record when it has
  every pattern asked for on the same tokens, else None."""
  run = runs.read_run(model_dir)
  saved, missing = _saved(model_dir, run.config.model.n_blocks, tokens, extra, per_stratum, seed)
  return None if missing else saved


def rank_search(model_dir, tokens=DEFAULT_TOKENS, extra=(), per_stratum=8, seed=0):
  """Ranks a search's patterns with its shared weights; writes ranking.json and its figure.

  Args:
    model_dir: a finished (or at least checkpointed) SuperNet run.
    tokens: valid tokens each pattern is scored on (at least; whole records).
    extra: patterns to score besides the candidates (those a pipeline retrains).
    per_stratum, seed: the sample of patterns above `ranking.EXHAUSTIVE_BLOCKS` blocks.

  Returns:
    The record written to ranking.json. One already there for the same tokens is kept, and
    only the patterns it lacks are scored.
  """
  model_dir = Path(model_dir)
  run = runs.read_run(model_dir)
  if run.config.model.architecture:
    raise ParError(f"{model_dir} trained a fixed pattern: only a search's SuperNet ranks patterns")
  saved, missing = _saved(model_dir, run.config.model.n_blocks, tokens, extra, per_stratum, seed)
  if not missing:
    return saved
  model, origin = runs.load_model(run, "checkpoint", eval_mode="argmax")
  score, scored_tokens = _first_records(model, run, tokens)
  logging.info(
    "ranking %d patterns of %s on %d valid tokens", len(missing), model_dir, scored_tokens
  )
  scores = dict(saved.get("scores", {}))
  scores.update(
    ranking.score_patterns(
      model, score, missing, lambda done, total: logging.info("ranked %d of %d", done, total)
    )
  )
  if "perturbation" in saved:
    perturbation = saved["perturbation"]
  else:
    expected, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
    mixture_score, _ = _first_records(expected, run, tokens)
    pattern, detail = ranking.perturbation(expected, mixture_score)
    perturbation = {"pattern": pattern, **detail}
  order = sorted(scores, key=lambda p: (scores[p], p))
  record = {
    "model": origin,
    "requested_tokens": tokens,
    "tokens": scored_tokens,
    "scores": scores,
    "order": order,
    "shared_best": order[0],
    "argmax": model.derived_pattern() or None,  # (none for a decoupled SuperNet)
    "perturbation": perturbation,
  }
  runs.write_json(model_dir / RANKING_FILE, record)
  figures = plots.ranking(
    scores,
    {
      label: pattern
      for label, pattern in (
        ("argmax", record["argmax"]),
        ("shared best", order[0]),
        ("perturbation", perturbation["pattern"]),
      )
      if pattern
    },
    f"{model_dir.name}: valid loss with the shared weights ({scored_tokens:,} tokens)",
  )
  for kind, data in figures.items():
    runs.write_bytes(model_dir / runs.PLOTS_DIR / f"{FIGURE}.{kind}", data)
  return record


def agreement(scores, retrained, by_seed=None):
  """The report card (`ranking.report_card`) of shared-weight scores against retrained
  losses, over the patterns both have."""
  return ranking.report_card(scores, retrained, by_seed)


def card_cells(card):
  """A report card's τ ± SE, ρ, top τ and pick with its regret, as markdown cells."""
  top = "–" if np.isnan(card["top_tau"]) else f"{card['top_tau']:.2f} ({card['top_patterns']})"
  regret = f"{card['regret']:+.4f}"
  if card.get("regret_sd") is not None and np.isfinite(card["regret_sd"]):
    regret += f" ({card['regret_sd']:.1f} seed sd)"
  return (
    f"{card['kendall_tau']:.2f} ± {card['tau_se']:.2f} | {card['spearman_rho']:.2f} | {top} | "
    f"`{card['pick']}` {regret}"
  )

"""A search's own ranking of patterns, from its run directory (par/search/ranking.py has the
pieces): every candidate pattern scored with the SuperNet's shared weights on the first
tokens of the valid split, DARTS-PT's perturbation, the best and the argmax.

  <search run>/ranking.json       {"model": the checkpoint scored, "tokens": targets scored
                                   (no padding), "scored_on": lanes, segments, memory, clamp
                                   and same_length, "scores": {pattern: valid loss}, "order",
                                   "shared_best", "argmax", "perturbation": {...}}
  <search run>/plots/ranking.png, .pdf

The valid tokens are read as the run's own evaluations read them (--eval_batch_size lanes,
its evaluation memory, --eval_clamp_len, --eval_same_length), so that a pattern's score and
its retrained valid loss are on the same terms. A ranking is reused only for the checkpoint
it scored: a run trained further is ranked again.

`par-rank --model_dir=runs/search` writes them; the pipeline ranks each search the same
way, then compares the ranking with retraining (the report card: `ranking.report_card`).
"""

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
from absl import logging

from par import runs
from par.data import records
from par.errors import ParError
from par.search import evolution
from par.search import plots
from par.search import ranking

RANKING_FILE = "ranking.json"
FIGURE = "ranking"
DEFAULT_TOKENS = 16_384  # valid tokens each pattern is scored on


def _first_segments(model, run, tokens):
  """(a function scoring `model` as it stands, what it scores): the first segments of valid
  that hold at least `tokens` targets (all of valid if fewer), read as the run's own
  evaluations read valid, so that a shared-weight score and a retrained valid loss are on the
  same terms: its --eval_batch_size lanes, its evaluation memory (cut to the longest lane),
  --eval_clamp_len and --eval_same_length. One compiled evaluator serves every call; the
  patterns are forced through the logits, never sampled."""
  from par.train import evaluate  # TensorFlow: only when something is scored.

  config = run.config
  meta = records.check_dataset(config.data_dir, "valid", run.tokenizer_sha256, records=True)
  split = evaluate.layout(meta, "valid", config.eval_batch_size)
  segments = min(split.segments, max(1, math.ceil(tokens / (split.lanes * split.seq_len))))
  terms = {
    "lanes": split.lanes,
    "segments": segments,
    "seq_len": split.seq_len,
    "mem_len": evaluate.memory_for(run.eval_mem_len, [split]),
    "clamp_len": None if config.eval_clamp_len < 0 else config.eval_clamp_len,
    "same_length": bool(config.eval_same_length or config.model.same_length),
  }
  evaluator = evaluate.Evaluator(
    model,
    terms["mem_len"],
    clamp_len=terms["clamp_len"],
    same_length=terms["same_length"],
    sampled_paths=False,
  )
  dataset = split.dataset(config.data_dir, "valid", run.tokenizer_sha256).take(segments)

  def score():  # (each call iterates the dataset afresh, from its first segment)
    return evaluator(dataset, split.lanes, records=segments)

  return score, terms


def _saved(model_dir, kinds, tokens, extra, per_stratum, seed):
  """(the saved ranking record, or {} if it is not comparable; the patterns it lacks). A
  record is comparable when it scored the same tokens with the weights of the run's newest
  checkpoint: one made from an earlier checkpoint of a run trained further is never reused."""
  wanted = ranking.candidate_patterns(len(kinds), per_stratum, seed) + list(extra)
  wanted = [p for p in dict.fromkeys(wanted) if ranking.matches(p, kinds)]  # what it holds
  path = Path(model_dir) / RANKING_FILE
  saved = runs.read_json_cache(path, "the ranking") or {}
  newest = runs.checkpoints(Path(model_dir) / runs.CHECKPOINT_DIR)[:1]
  if saved.get("requested_tokens") != tokens or [saved.get("model")] != newest:
    saved = {}
  return saved, [p for p in wanted if p not in saved.get("scores", {})]


def saved_ranking(model_dir, tokens=DEFAULT_TOKENS, extra=(), per_stratum=8, seed=0):
  """What `rank_search` would return without scoring anything: the saved record when it has
  every pattern asked for on the same tokens, else None."""
  run = runs.read_run(model_dir)
  saved, missing = _saved(model_dir, run.config.model.kinds, tokens, extra, per_stratum, seed)
  return None if missing else saved


def rank_search(model_dir, tokens=DEFAULT_TOKENS, extra=(), per_stratum=8, seed=0, constraint=None):
  """Ranks a search's patterns with its shared weights and chooses the best; writes
  ranking.json and its figure.

  Args:
    model_dir: a finished (or at least checkpointed) SuperNet run.
    tokens: valid tokens each pattern is scored on (at least; whole segments).
    extra: patterns to score besides the candidates (those a pipeline retrains).
    per_stratum, seed: the sample of patterns above `ranking.EXHAUSTIVE_BLOCKS` blocks, and
      the seed of the evolution that chooses there (`evolution.evolve`).
    constraint: an `evolution.Constraint` on the pattern chosen besides the best
      ("constrained_best"); a limit on "flops" counts FLOPs per token, on "us" the forward
      microseconds per token of each block kind, measured here.

  Returns:
    The record written to ranking.json. One already there for the same tokens and checkpoint
    is kept, and only the patterns it lacks are scored.
  """
  model_dir = Path(model_dir)
  run = runs.read_run(model_dir)
  if not run.config.model.is_supernet:
    raise ParError(f"{model_dir} trained a fixed pattern: only a search's SuperNet ranks patterns")
  kinds = run.config.model.kinds
  n_blocks = len(kinds)
  saved, missing = _saved(model_dir, kinds, tokens, extra, per_stratum, seed)
  if not missing and constraint is None:
    return saved
  model, origin = runs.load_model(run, "checkpoint", eval_mode="argmax")
  score, terms = _first_segments(model, run, tokens)
  scored_tokens = saved.get("tokens") or score().tokens  # targets scored, without padding
  logging.info(
    "ranking %d patterns of %s on %d valid tokens", len(missing), model_dir, scored_tokens
  )
  scores = dict(saved.get("scores", {}))
  start = time.perf_counter()
  scores.update(
    ranking.score_patterns(
      model, score, missing, lambda done, total: logging.info("ranked %d of %d", done, total)
    )
  )

  def shared(pattern):  # one more pattern's score, for the evolution
    return ranking.score_patterns(model, score, [pattern])[pattern]

  best, scores, how = evolution.select(shared, n_blocks, seed=seed, known=scores, kinds=kinds)
  if "perturbation" in saved:
    perturbation = saved["perturbation"]
  else:
    expected, _ = runs.load_model(run, "checkpoint", eval_mode="expected")
    mixture_score, _ = _first_segments(expected, run, tokens)
    pattern, detail = ranking.perturbation(expected, mixture_score)
    perturbation = {"pattern": pattern, **detail}
  record_constraint = None
  if constraint is not None:
    cost = _cost(run, constraint)
    constrained, scores, _ = evolution.select(
      shared, n_blocks, constraint, cost, seed, scores, kinds
    )
    record_constraint = {**dataclasses.asdict(constraint), "best": constrained}
  seconds = time.perf_counter() - start + saved.get("seconds", 0.0)
  order = sorted(scores, key=lambda p: (scores[p], p))
  record = {
    "model": origin,
    "requested_tokens": tokens,
    "tokens": scored_tokens,
    "scored_on": terms,
    "scores": scores,
    "seconds": seconds,
    "order": order,
    "selection": how,  # every pattern, or SPOS's evolution above EXHAUSTIVE_BLOCKS
    "shared_best": best,
    "constraint": record_constraint,
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


def _cost(run, constraint):
  """The cost function a constraint's limit is on: FLOPs per token ("flops", counted at the
  run's shapes) or forward microseconds per token ("us", each block kind measured once)."""
  if constraint.limit is None:
    return None
  from par.search import costs

  meta = records.load_meta(run.config.data_dir)
  shapes = dict(seq_len=meta.seq_len, batch_size=meta.batch_size)
  if constraint.name == "flops":
    return lambda p: costs.model_cost(run.config.model, p, **shapes)["total"].flops
  if constraint.name == "us":
    seconds = costs.measure_latency(run.config.model, meta.batch_size, meta.seq_len)
    per_token = dict(zip("sfi", (s * 1e6 / (meta.batch_size * meta.seq_len) for s in seconds)))
    return lambda p: sum(per_token[k] for k in p)
  raise ValueError(f"unknown cost {constraint.name!r}: flops or us")


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

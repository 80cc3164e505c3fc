"""From search to a PAR model in one call: search, derive, retrain, compare with Transformer-XL.

  work_dir/
    search/            the SuperNet search (a run directory, par/runs.py)
    argmax/, rule/     the derived patterns retrained from scratch (run directories)
    baseline/          Transformer-XL's interleaving, "sf" repeated, retrained the same way
    results.json       the comparison, one entry per model
    results.md         the same as a markdown table
    architecture.png   the searched architecture at the end; probabilities.png its history

Derivations: `argmax` keeps each block's most likely kind; `rule` is PAR's rule
(`patterns.derive_ratio`) with one attention block per `ratio` blocks, by default the
ratio the argmax pattern has. Every retrained model gets the search's data, schedule and
budget (epochs or steps), from scratch; patterns that coincide are trained once. Running the
same call again skips finished runs and resumes unfinished ones.
"""

import dataclasses
import json
import shutil
import time
from pathlib import Path

from absl import logging

from par import runs
from par.data import records
from par.errors import ParError
from par.search import costs
from par.search import patterns as patterns_lib
from par.train import evaluate
from par.train import trainer

SEARCH = "search"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def _finished(config, model_dir):
  """The results of a finished run of `config` in model_dir, None if unfinished or absent."""
  if not runs.is_finished(model_dir):
    return None
  run = runs.read_run(model_dir)
  mine = dataclasses.replace(
    config, model=dataclasses.replace(config.model, vocab_size=run.config.model.vocab_size)
  )
  changed = runs.changed_settings(run.config, mine)
  if run.dataset != runs.dataset_summary(records.load_meta(config.data_dir)):
    changed.append("the dataset")
  if changed:
    raise ParError(
      f"{model_dir} holds a run with other settings ({', '.join(changed)}); "
      "choose another work directory"
    )
  return runs.read_results(model_dir)


def _train(config, model_dir, strategy):
  results = _finished(config, model_dir)
  if results is not None:
    logging.info("%s is finished: reusing its results", model_dir)
    return results
  return trainer.train_and_evaluate(config, model_dir, strategy)


def _eval_speed(model_dir, split, repeats=3):
  """Evaluation tokens/s of a run's export on a split: the fastest of `repeats` passes.

  One untimed pass traces first. On a shared machine a pass can only be slowed down by
  others, so the fastest is the best estimate of what the model itself needs.
  """
  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  evaluator = evaluate.Evaluator(model, run.eval_mem_len)
  meta = records.load_meta(run.config.data_dir)
  evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)  # Traces.
  speeds = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)
    speeds.append(result.tokens / (time.perf_counter() - start))
  return max(speeds)


def _row(name, pattern, config, model_dir, results, tail_shares, meta):
  cost = costs.model_cost(
    config.model, pattern, seq_len=meta.seq_len, batch_size=meta.batch_size, tail_shares=tail_shares
  )
  row = {
    "model": name,
    "pattern": pattern or "SuperNet",
    "run": str(model_dir),
    "attention_blocks": (pattern or "").count("s") if pattern else None,
    "params": cost["total"].params,
    "flops_per_token": cost["total"].flops,
    "train_tokens_per_second": results.get("train_tokens_per_second"),
    "eval_tokens_per_second": _eval_speed(model_dir, "valid"),
  }
  for split in ("valid", "test"):
    if split in results:
      row[split] = {
        k: results[split][k]
        for k in ("loss", "token_perplexity", "word_perplexity", "tokens", "words")
      }
  return row


def markdown(rows):
  """The comparison as a markdown table."""

  def ppl(row, split, key):
    return f"{row[split][key]:.2f}" if split in row else "–"

  def speed(value):
    return f"{value:,.0f}" if value else "–"

  lines = [
    "| model | pattern | attention blocks | parameters | FLOPs/token | train tok/s | "
    "eval tok/s | valid ppl | valid word ppl | test ppl | test word ppl |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    blocks = "–" if row["attention_blocks"] is None else str(row["attention_blocks"])
    lines.append(
      f"| {row['model']} | `{row['pattern']}` | {blocks} | {row['params']:,} | "
      f"{row['flops_per_token'] / 1e6:.2f} M | {speed(row['train_tokens_per_second'])} | "
      f"{speed(row['eval_tokens_per_second'])} | {ppl(row, 'valid', 'token_perplexity')} | "
      f"{ppl(row, 'valid', 'word_perplexity')} | {ppl(row, 'test', 'token_perplexity')} | "
      f"{ppl(row, 'test', 'word_perplexity')} |"
    )
  return "\n".join(lines) + "\n"


def retrain_config(config, pattern):
  """The search's config for retraining `pattern` from scratch: the same data, schedule and
  budget, without what only a search has (the resource term, the held-out split)."""
  return dataclasses.replace(
    config,
    model=dataclasses.replace(config.model, architecture=pattern),
    resource="none",
    resource_weight=0.0,
    resource_target=0.0,
    arch_split=0.0,
  )


def run_pipeline(config, work_dir, ratio=0.0, strategy=None):
  """Searches, derives, retrains and compares; returns the rows of the comparison.

  Args:
    config: the search's TrainConfig (no fixed architecture). Retrained models use it with
      their pattern and without the resource term.
    work_dir: the pipeline's directory (see the module docstring).
    ratio: the rule's blocks per attention block; 0 takes the argmax pattern's.
    strategy: the tf.distribute strategy of every training (evaluation speeds are measured
      on one device); None for the default.
  """
  if config.model.architecture:
    raise ParError("the pipeline starts with a search: leave --architecture empty")
  work_dir = Path(work_dir)
  search_results = _train(config, work_dir / SEARCH, strategy)
  record = json.loads((work_dir / SEARCH / runs.ARCHITECTURE_FILE).read_text())
  patterns, ratio = patterns_lib.derive(record["probabilities"], ratio)
  patterns["baseline"] = patterns_lib.baseline_pattern(config.model.n_blocks)
  logging.info(
    "derived: argmax %s, rule (1 attention block in %.2f) %s; baseline %s",
    patterns["argmax"],
    ratio,
    patterns["rule"],
    patterns["baseline"],
  )

  meta = records.load_meta(config.data_dir)
  resolved = dataclasses.replace(config.model, vocab_size=meta.vocab_size)
  counts, _ = records.target_counts(config.data_dir, "train")
  bounds = (0,) + tuple(resolved.cutoffs) + (resolved.vocab_size,)
  shares = [counts[a:b].sum() / counts.sum() for a, b in zip(bounds[1:], bounds[2:])]

  search_config = dataclasses.replace(config, model=resolved)
  rows = [
    _row("search (SuperNet)", None, search_config, work_dir / SEARCH, search_results, shares, meta)
  ]
  trained = {}  # pattern -> names
  for name in ("argmax", "rule", "baseline"):
    trained.setdefault(patterns[name], []).append(name)
  for pattern, names in trained.items():
    fixed = retrain_config(config, pattern)
    results = _train(fixed, work_dir / names[0], strategy)
    rows.append(
      _row(
        " = ".join(names),
        pattern,
        dataclasses.replace(
          fixed, model=dataclasses.replace(fixed.model, vocab_size=meta.vocab_size)
        ),
        work_dir / names[0],
        results,
        shares,
        meta,
      )
    )

  summary = {
    "patterns": patterns,
    "ratio": ratio,
    "rows": rows,
    "collapse": record.get("identity_dominates", []),
  }
  (work_dir / RESULTS_JSON).write_text(json.dumps(summary, indent=2) + "\n")
  (work_dir / RESULTS_MD).write_text(markdown(rows))
  plots = work_dir / SEARCH / runs.PLOTS_DIR
  heatmaps = sorted(plots.glob("architecture-*.png"))
  if heatmaps:
    shutil.copyfile(heatmaps[-1], work_dir / "architecture.png")
  if (plots / runs.PROBABILITIES_FILE).is_file():
    shutil.copyfile(plots / runs.PROBABILITIES_FILE, work_dir / runs.PROBABILITIES_FILE)
  return rows

"""From search to a PAR model in one call: search, derive, retrain, compare with Transformer-XL.

  work_dir/
    search/              the single-level SuperNet search (a run directory, par/runs.py)
    search-split0.2/     a search with a held-out architecture split (--arch_split=0.2)
    models/<pattern>/    each derived pattern and the baseline, retrained from scratch;
                         test_nll.npy beside its results: its per-token test NLL
    results.json         the comparison, one row per search and per retrained pattern
    results.md           the same as a markdown table
    tradeoff.png, .pdf   valid perplexity against measured time per token, a point per model
    <search>-architecture.png/.pdf, <search>-probabilities.png/.pdf
                         each search's architecture at the end, and its history

Derivations: `argmax` keeps each block's most likely kind (one per search); `rule p=P` is
PAR's rule (`patterns.derive_ratio`) with one attention block per P blocks, for each P
asked (P = 0 takes each search's argmax ratio); `baseline` is Transformer-XL's "sf"
repeated. Every retrained model gets the searches' data, schedule, budget (epochs or
steps) and seed, from scratch; a pattern is trained once whatever derivations give it,
which is why runs are named by pattern. Running the same call again skips finished runs and
resumes unfinished ones; a call with more searches or ratios adds to the same directory.

Each retrained model is compared with the interleaved baseline on the same test tokens by
a paired block bootstrap (`intervals.paired_bootstrap`: 1,000 resamples of 256-token blocks):
the mean NLL difference, its 95% interval and the perplexity ratio, in results.json
(`vs_baseline`) and results.md, beside where its attention sits (`positions`).

Time per token is measured at the end, in one process, in three rounds that each measure
every model in turn (`measure_all`), keeping each model's fastest: training as compiled
forward and backward passes (`costs.measure_train_time`), evaluation as passes over the
valid split. The throughput each run saw while training is kept in results.json too, but it
depends on whatever else the machine was doing then.
"""

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from par import locks
from par import rank
from par import runs
from par.data import records
from par.errors import ParError
from par.search import costs
from par.search import intervals
from par.search import patterns as patterns_lib
from par.search import plots
from par.train import evaluate
from par.train import summaries
from par.train import trainer

MODELS = "models"
FIGURE = "tradeoff"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
BOOTSTRAP_BLOCK = 256  # test tokens per block of the paired bootstrap
TEST_NLL = "test_nll.npy"  # beside each retrained model's results: its per-token test NLL


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


def _eval_speed(model, run, split, repeats=2):
  """Evaluation seconds per token of `model` (a run's export) on a split: the fastest of
  `repeats` passes, after an untimed pass that traces."""
  evaluator = evaluate.Evaluator(model, run.eval_mem_len)
  meta = records.load_meta(run.config.data_dir)
  evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)  # Traces.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    result = evaluator(records.load_dataset(run.config.data_dir, split), meta.batch_size)
    best = min(best, (time.perf_counter() - start) / result.tokens)
  return best


def measure_times(model_dir):
  """(train, eval) seconds per token of a finished run's export, one measurement."""
  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  meta = records.load_meta(run.config.data_dir)
  train = costs.measure_train_time(model, meta.batch_size, meta.seq_len)
  return train, _eval_speed(model, run, "valid")


def measure_all(model_dirs, rounds=3):
  """{model_dir: (train, eval) seconds per token}: the fastest of `rounds` measurements,
  each round measuring every run once, in turn.

  On a shared CPU one measurement can be 1.7 times another of the same model (seen here:
  a freshly loaded model sometimes runs slow throughout); interleaved rounds spread such
  spells over all models instead of charging one of them.
  """
  best = {d: (float("inf"), float("inf")) for d in model_dirs}
  for _ in range(rounds):
    for d in model_dirs:
      train, evaluation = measure_times(d)
      best[d] = (min(best[d][0], train), min(best[d][1], evaluation))
  return best


def test_nll(model_dir):
  """A finished run's per-token test NLL (`evaluate.split_token_nlls` of its export), computed
  once and kept as model_dir/test_nll.npy."""
  path = Path(model_dir) / TEST_NLL
  if path.exists():
    return np.load(path)
  run = runs.read_run(model_dir)
  model, _ = runs.load_model(run, "export")
  nll = evaluate.split_token_nlls(model, run, "test")
  with io.BytesIO() as buffer:
    np.save(buffer, nll)
    runs.write_bytes(path, buffer.getvalue())
  return nll


def against_baseline(rows, baseline):
  """Each retrained row's `vs_baseline`: its per-token test NLL against the baseline's by the
  paired block bootstrap (`intervals.paired_bootstrap`), and its attention `positions`."""
  scored = any("test" in row for row in rows if row["run"] == str(baseline))
  reference = [test_nll(baseline)] if scored else None
  for row in rows:
    if row["pattern"] == "SuperNet":
      continue
    row["positions"] = intervals.positions(row["pattern"]).to_dict()
    if reference is not None and row["run"] != str(baseline) and "test" in row:
      # 256-token blocks, or an eighth of a split too short for eight of them.
      block = min(BOOTSTRAP_BLOCK, max(1, reference[0].size // 8))
      comparison = intervals.paired_bootstrap([test_nll(row["run"])], reference, block)
      row["vs_baseline"] = comparison.to_dict()


def baseline_markdown(rows):
  """Each model against the baseline: the paired bootstrap's mean NLL difference with its
  95% interval, the perplexity ratio, and where its attention sits."""
  lines = [
    "",
    "Against the interleaved baseline (test tokens, paired block bootstrap, 95% intervals; "
    "negative is better):",
    "",
    "| model | pattern | Δ NLL (nats/token) | 95% interval | ppl ratio | attention by third | "
    "attention depth |",
    "|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    if "positions" not in row:
      continue
    thirds = " / ".join(map(str, row["positions"]["thirds"]))
    depth = row["positions"]["depth"]
    depth = "–" if depth is None else f"{depth:.2f}"
    c = row.get("vs_baseline")
    if c is None:
      cells = "(the baseline) | | 1 "
    else:
      cells = f"{c['difference']:+.4f} | [{c['low']:+.4f}, {c['high']:+.4f}] | {c['ratio']:.4f} "
    lines.append(f"| {row['model']} | `{row['pattern']}` | {cells}| {thirds} | {depth} |")
  return "\n".join(lines) + "\n"


def _metrics(results):
  return {
    split: {
      k: results[split][k]
      for k in ("loss", "token_perplexity", "word_perplexity", "tokens", "words")
      if k in results[split]
    }
    for split in ("valid", "test")
    if split in results
  }


def _row(name, pattern, config, model_dir, results, tail_shares, meta, times):
  cost = costs.model_cost(
    config.model, pattern, seq_len=meta.seq_len, batch_size=meta.batch_size, tail_shares=tail_shares
  )
  train_time, eval_time = times
  summaries.write_hparams(model_dir, config)
  summaries.write_timing(model_dir, results.get("steps", 0), train_time, eval_time)
  row = {
    "model": name,
    "pattern": pattern or "SuperNet",
    "run": str(model_dir),
    "attention_blocks": pattern.count("s") if pattern else None,
    "params": cost["total"].params,
    "flops_per_token": cost["total"].flops,
    "steps": results.get("steps"),
    "train_seconds_per_token": train_time,
    "eval_seconds_per_token": eval_time,
    "train_tokens_per_second_seen": results.get("train_tokens_per_second"),
    **_metrics(results),
  }
  if "best" in results:
    row["best"] = {"step": results["best"]["step"], **_metrics(results["best"])}
  return row


def markdown(rows):
  """The comparison as a markdown table: perplexities of the last weights, and of the best
  (by valid loss, --keep_best) after a slash where they differ."""

  def ppl(row, split, key):
    if split not in row or row[split].get(key) is None:
      return "–"
    last = f"{row[split][key]:.2f}"
    best = row.get("best", {}).get(split, {}).get(key)
    return last if best is None or row["best"]["step"] == row["steps"] else f"{last} / {best:.2f}"

  def micro(seconds):
    return f"{seconds * 1e6:.1f}"

  lines = [
    "| model | pattern | attention blocks | parameters | FLOPs/token | train µs/token | "
    "eval µs/token | valid ppl | test ppl | test word ppl |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    blocks = "–" if row["attention_blocks"] is None else str(row["attention_blocks"])
    lines.append(
      f"| {row['model']} | `{row['pattern']}` | {blocks} | {row['params']:,} | "
      f"{row['flops_per_token'] / 1e6:.2f} M | {micro(row['train_seconds_per_token'])} | "
      f"{micro(row['eval_seconds_per_token'])} | {ppl(row, 'valid', 'token_perplexity')} | "
      f"{ppl(row, 'test', 'token_perplexity')} | {ppl(row, 'test', 'word_perplexity')} |"
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


def meta_line(meta, config):
  """What a figure's title says of the setting: segment, memory and batch."""
  return f"{meta.seq_len}-token segments, memory {config.model.mem_len}, batch {meta.batch_size}"


def _write_experiment(work_dir):
  """The HParams experiment at the work directory's root (once): its runs' settings against
  their final perplexities and measured times (`tensorboard --logdir=<work_dir>`)."""
  if list(work_dir.glob("events.out.tfevents.*")):
    return
  writer = tf.summary.create_file_writer(str(work_dir))
  with writer.as_default():
    summaries.write_hparams_config()
  writer.close()


def run_pipeline(
  config,
  work_dir,
  ratios=(0.0,),
  strategy=None,
  arch_splits=None,
  rounds=3,
  derive=("argmax", "rule"),
  ranking_tokens=rank.DEFAULT_TOKENS,
):
  """Searches, ranks, derives, retrains and compares; returns the rows of the comparison.

  Args:
    config: the searches' TrainConfig (no fixed architecture). Retrained models use it with
      their pattern and without what only a search has (`retrain_config`).
    work_dir: the pipeline's directory (see the module docstring).
    ratios: the rule's blocks per attention block, one retrained model each; 0 takes each
      search's argmax ratio.
    strategy: the tf.distribute strategy of every training (times are measured on one
      device); None for the default.
    arch_splits: one search per held-out split (0: single-level); None: config.arch_split.
    rounds: rounds of time measurements (`measure_all`).
    derive: the derivations (`patterns.parse_derivations`); the baseline always trains.
    ranking_tokens: valid tokens each pattern of a search's shared-weight ranking is scored on.
  """
  if config.model.architecture:
    raise ParError("the pipeline starts with a search: leave --architecture empty")
  ratios = tuple(ratios) or (0.0,)
  arch_splits = tuple(arch_splits) if arch_splits else (config.arch_split,)
  patterns_lib.check_plan(ratios, arch_splits)
  derive = patterns_lib.parse_derivations(derive, config.model.n_blocks)
  work_dir = Path(work_dir)
  with locks.hold(work_dir / runs.LOCK_FILE, work_dir, f"the pipeline's work directory {work_dir}"):
    searches = _search(config, work_dir, arch_splits, strategy)
    derived, rankings = _derive(config, work_dir, searches, ratios, derive, ranking_tokens)
    return _retrain_and_compare(config, work_dir, searches, derived, rankings, strategy, rounds)


def _search(config, work_dir, arch_splits, strategy):
  """{name: (config, results, architecture record)} of each search, trained or reused."""
  searches = {}
  for split in arch_splits:
    name = patterns_lib.search_name(split)
    search = dataclasses.replace(config, arch_split=split)
    results = _train(search, work_dir / name, strategy)
    record = json.loads((work_dir / name / runs.ARCHITECTURE_FILE).read_text())
    searches[name] = (search, results, record)
  return searches


def _derive(config, work_dir, searches, ratios, derive, ranking_tokens):
  """({label: pattern}, {search name: its ranking record}): the derivations, with each
  search ranked by its shared weights first (every pattern the others derive included)."""
  probabilities = {name: record["probabilities"] for name, (_, _, record) in searches.items()}
  n_blocks = config.model.n_blocks
  without = [(kind, n) for kind, n in derive if kind not in ("perturbation", "shared_best")]
  others = patterns_lib.derivations(probabilities, ratios, n_blocks, without, seed=config.seed)
  rankings = {
    name: rank.rank_search(work_dir / name, ranking_tokens, extra=others.values())
    for name in searches
  }
  found = {
    name: {"perturbation": r["perturbation"]["pattern"], "shared_best": r["shared_best"]}
    for name, r in rankings.items()
  }
  derived = patterns_lib.derivations(probabilities, ratios, n_blocks, derive, found, config.seed)
  logging.info("derived: %s", ", ".join(f"{k} {v}" for k, v in derived.items()))
  return derived, rankings


def _retrain_and_compare(config, work_dir, searches, derived, rankings, strategy, rounds):
  """Retrains every derived pattern once, measures, and writes the comparison; its rows."""
  meta = records.load_meta(config.data_dir)
  resolved = dataclasses.replace(config.model, vocab_size=meta.vocab_size)
  counts, _ = records.target_counts(config.data_dir, "train")
  bounds = (0,) + tuple(resolved.cutoffs) + (resolved.vocab_size,)
  shares = [counts[a:b].sum() / counts.sum() for a, b in zip(bounds[1:], bounds[2:])]

  labels = {}  # pattern -> the derivations that gave it
  for label, pattern in derived.items():
    labels.setdefault(pattern, []).append(label)
  trained = {}
  for pattern in labels:  # Everything trains before anything is timed.
    fixed = retrain_config(config, pattern)
    trained[pattern] = (fixed, _train(fixed, work_dir / MODELS / pattern, strategy))

  entries = [  # (name, pattern, config, run directory, results)
    (f"{name} (SuperNet)", None, dataclasses.replace(search, model=resolved), work_dir / name, r)
    for name, (search, r, _) in searches.items()
  ] + [
    (
      " = ".join(labels[pattern]),
      pattern,
      dataclasses.replace(
        fixed, model=dataclasses.replace(fixed.model, vocab_size=meta.vocab_size)
      ),
      work_dir / MODELS / pattern,
      r,
    )
    for pattern, (fixed, r) in trained.items()
  ]
  times = measure_all([entry[3] for entry in entries], rounds)
  rows = [_row(*entry, shares, meta, times[entry[3]]) for entry in entries]
  against_baseline(rows, work_dir / MODELS / patterns_lib.baseline_pattern(config.model.n_blocks))
  retrained = {p: r["valid"]["loss"] for p, (_, r) in trained.items() if "valid" in r}
  agreements = {name: rank.agreement(r["scores"], retrained) for name, r in rankings.items()}

  summary = {
    "seed": config.seed,
    "searches": {
      name: {
        "arch_split": search.arch_split,
        "argmax": patterns_lib.argmax_pattern(record["probabilities"]),
        "probabilities": record["probabilities"],
        "collapse": record.get("identity_dominates", []),
        "shared_best": rankings[name]["shared_best"],
        "perturbation": rankings[name]["perturbation"]["pattern"],
        "ranking_tokens": rankings[name]["tokens"],
        "ranking_agreement": agreements[name],
      }
      for name, (search, _, record) in searches.items()
    },
    "patterns": derived,
    "rows": rows,
  }
  runs.write_json(work_dir / RESULTS_JSON, summary)
  _write_experiment(work_dir)
  runs.write_bytes(
    work_dir / RESULTS_MD,
    (markdown(rows) + baseline_markdown(rows) + agreement_markdown(summary)).encode(),
  )
  figures = plots.tradeoff(
    [(f"seed {config.seed}", rows)], title=f"{work_dir.name}: {meta_line(meta, config)}"
  )
  for kind, data in figures.items():
    runs.write_bytes(work_dir / f"{FIGURE}.{kind}", data)
  for name, (_, results, record) in searches.items():
    _search_figures(work_dir, name, record, results["steps"])
  return rows


def agreement_markdown(summary):
  """How each search's shared-weight ranking agrees with retraining, as markdown."""
  lines = [
    "",
    "Shared-weight ranking against retraining (valid loss of every retrained pattern; "
    "1 is the same order, 0 none):",
    "",
    "| search | patterns | Kendall τ | Spearman ρ | shared best | perturbation | scored on |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, search in summary["searches"].items():
    a = search["ranking_agreement"]
    lines.append(
      f"| {name} | {a['patterns']} | {a['kendall_tau']:.2f} | {a['spearman_rho']:.2f} | "
      f"`{search['shared_best']}` | `{search['perturbation']}` | "
      f"{search['ranking_tokens']:,} valid tokens |"
    )
  return "\n".join(lines) + "\n"


def _search_figures(work_dir, name, record, step):
  """<name>-architecture and <name>-probabilities (.png and .pdf), drawn from the search's
  architecture record: the final heatmap and each block's probabilities over the search."""
  title = f"{work_dir.name}/{name}"
  figures = {
    "architecture": plots.heatmap(
      record["probabilities"], step, title, record["pattern"], kinds=("png", "pdf")
    ),
    "probabilities": plots.trajectories(
      [(h["step"], np.array(h["probabilities"])) for h in record["history"]],
      title,
      record["pattern"],
    ),
  }
  for figure, files in figures.items():
    for kind, data in files.items():
      runs.write_bytes(work_dir / f"{name}-{figure}.{kind}", data)

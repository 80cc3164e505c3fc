"""From search to a PAR model in one call: search, derive, retrain, compare with Transformer-XL.

The work directory's layout is par/study/workdir.py's. With seeds (`--seeds=1,2,3`), each
seed's pipeline runs in work_dir/seed-<s>/ and work_dir holds the comparison over seeds
(par/study/seeds.py). With `--jobs=N` (or `--ray_address`), the trainings and rankings of
every seed run N at a time as Ray tasks, each in a process of its own (par/study/jobs.py),
here or on a cluster: all searches first, then all rankings, then all retrainings, then the
time measurements (here).

Derivations: `argmax` keeps each block's most likely kind (one per search); `rule p=P` is
PAR's rule (`patterns.derive_ratio`) with one attention block per P blocks, for each P
asked (P = 0 takes each search's argmax ratio); `baseline` is Transformer-XL's "sf"
repeated; the random orderings (`random=N`) are drawn with RANDOM_ORDERINGS_SEED whatever the
training seed, so that every seed retrains the same ones. Every retrained model gets the
searches' data, schedule, budget (epochs or steps) and seed, from scratch; a pattern is
trained once whatever derivations give it, which is why runs are named by pattern. Running
the same call again skips finished runs and resumes unfinished ones; a call with more
searches or ratios adds to the same directory.

Each retrained model is compared with the interleaved baseline on the same test tokens by
a paired block bootstrap (`intervals.paired_bootstrap`: 1,000 resamples of 256-token blocks):
the mean NLL difference, its 95% interval and the perplexity ratio, in results.json
(`vs_baseline`) and results.md, beside where its attention sits (`positions`).

Several SuperNets (`samplings`, e.g. soft, uniform and fair): each is searched with the same
data, schedule and budget (a coupled one once per held-out split), ranked and derived from,
against one retrained panel: search/, search-split0.2/, search-uniform/, search-fair/.

Few-shot NAS (`few_shot_steps` > 0): each search's SuperNet (or those of `few_shot_of`) is
split on its first block into three sub-SuperNets, each warm-started from it and trained that
many steps further
(par/study/fewshot.py), in <search>-few-shot/{s,f,i}/; the group ranks every pattern with the
sub-SuperNet that holds it and counts as one more search ("<search>-few-shot": its shared
best, its report card), without an argmax or a perturbation.

Time per token is measured at the end, every model in interleaved rounds
(par/study/timing.py). The throughput each run saw while training is kept in results.json
too, but it depends on whatever else the machine was doing then.
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from par import locks
from par import runs
from par.data import records
from par.errors import ParError
from par.search import costs
from par.search import intervals
from par.search import patterns as patterns_lib
from par.search import plots
from par.study import compare
from par.study import fewshot
from par.study import jobs as jobs_lib
from par.study import rank
from par.study import seeds as seeds_lib
from par.study import timing
from par.study import workdir
from par.train import summaries
from par.train import trainer

RANDOM_ORDERINGS_SEED = 0  # the same random orderings in every seed's panel


def _finished(config, model_dir):
  """The results of a finished run of `config` in model_dir, None if unfinished or absent."""
  if not runs.is_finished(model_dir):
    return None
  run = runs.read_run(model_dir)
  mine = dataclasses.replace(
    config, model=dataclasses.replace(config.model, vocab_size=run.config.model.vocab_size)
  )
  changed = runs.changed_settings(run.config, mine)
  if not runs.same_dataset(run.dataset, runs.dataset_summary(records.load_meta(config.data_dir))):
    changed.append("the dataset")
  if changed:
    raise ParError(
      f"{model_dir} holds a run with other settings ({', '.join(changed)}); "
      "choose another work directory"
    )
  return runs.read_results(model_dir)


def against_baseline(rows, baseline):
  """Each retrained row's `vs_baseline`: its per-token test NLL against the baseline's by the
  paired block bootstrap (`compare.paired`), and its attention `positions`."""
  scored = any("test" in row for row in rows if row["run"] == str(baseline))
  reference = [compare.test_nll(baseline)] if scored else None
  for row in rows:
    if row["pattern"] == "SuperNet":
      continue
    row["positions"] = intervals.positions(row["pattern"]).to_dict()
    row["is_baseline"] = row["run"] == str(baseline)
    if reference is not None and row["run"] != str(baseline) and "test" in row:
      comparison = compare.paired([compare.test_nll(row["run"])], reference)
      row["vs_baseline"] = comparison.to_dict()


def baseline_markdown(rows):
  """Each model against the baseline: the paired bootstrap's mean NLL difference with its
  95% interval, the perplexity ratio, and where its attention sits."""
  tested = any("test" in row for row in rows)
  lines = [
    "",
    "Against the interleaved baseline (test tokens, paired block bootstrap, 95% intervals; "
    "negative is better):"
    if tested
    else "Against the interleaved baseline: not compared, the dataset has no test split (the "
    "valid perplexities above are the only comparison; valid is what the search and the "
    "rankings read, so it is not a held-out one):",
    "",
    "| model | pattern | Δ NLL (nats/token) | 95% interval | ppl ratio | "
    "attention blocks by third | attention depth |",
    "|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    if "positions" not in row:
      continue
    thirds = " / ".join(map(str, row["positions"]["thirds"]))
    depth = row["positions"]["depth"]
    depth = "–" if depth is None else f"{depth:.2f}"
    c = row.get("vs_baseline")
    if row.get("is_baseline"):
      cells = "(the baseline) | | 1 "
    elif c is None:
      cells = "– | – | – "
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


class Plan(NamedTuple):
  """One seed's share of a pipeline: its searches' config (that seed) and its directory."""

  seed: int
  config: object  # TrainConfig
  dir: Path


def plans(config, work_dir, seeds=()):
  """One Plan per seed: work_dir/seed-<s>/ for each of `seeds`; without seeds, config's own
  seed in work_dir itself (the layout of a one-seed pipeline)."""
  work_dir = Path(work_dir)
  seeds = tuple(seeds)
  if len(set(seeds)) != len(seeds):
    raise ParError(f"--seeds lists a seed twice: {','.join(map(str, seeds))}")
  for seed in seeds:
    dataclasses.replace(config, seed=seed).validate()  # (a seed outside [0, 2^32))
  if not seeds:
    return [Plan(config.seed, config, work_dir)]
  return [
    Plan(s, dataclasses.replace(config, seed=s), workdir.seed_dir(work_dir, s)) for s in seeds
  ]


def run_pipeline(
  config,
  work_dir,
  ratios=(0.0,),
  strategy=None,
  arch_splits=None,
  rounds=3,
  derive=("argmax", "rule"),
  ranking_tokens=rank.DEFAULT_TOKENS,
  seeds=(),
  jobs=1,
  few_shot_steps=0,
  samplings=None,
  few_shot_of=None,
):
  """Searches, ranks, derives, retrains and compares; returns the rows of the comparison.

  Args:
    config: the searches' TrainConfig (no fixed architecture). Retrained models use it with
      their pattern and without what only a search has (`retrain_config`).
    work_dir: the pipeline's directory (see the module docstring).
    ratios: the rule's blocks per attention block, one retrained model each; 0 takes each
      search's argmax ratio.
    strategy: the tf.distribute strategy of every training run in this process (times are
      measured on one device); None for the default. Ray's workers use the default.
    arch_splits: one search per held-out split (0: single-level) of each coupled sampling;
      None: config.arch_split.
    rounds: rounds of time measurements (`timing.measure_all`).
    derive: the derivations (`patterns.parse_derivations`); the baseline always trains.
    ranking_tokens: valid tokens each pattern of a search's shared-weight ranking is scored on.
    seeds: the whole pipeline once per seed, in work_dir/seed-<s>/, and the comparison over
      seeds in work_dir (`par.study.seeds`); empty: once, with config.seed, in work_dir.
    jobs: a `par.study.jobs.Engine` (or a number of trainings and rankings at once on this
      machine): where the trainings and rankings run (1: here, one after another).
    few_shot_steps: steps of each few-shot sub-SuperNet (0: no split).
    samplings: the SuperNets searched, each with the same data, schedule and budget
      (`patterns.search_plan`: a coupled one per held-out split, a decoupled one once);
      None: config's own sampling.
    few_shot_of: the samplings whose searches are split into few-shot sub-SuperNets (with
      few_shot_steps); None: every search.

  Returns:
    The rows of results.json: one per model of the one seed, or (with seeds) one per
    derivation over the seeds.
  """
  if config.model.architecture:
    raise ParError("the pipeline starts with a search: leave --architecture empty")
  jobs = jobs_lib.engine_of(jobs)
  if few_shot_steps < 0:
    raise ParError(f"--few_shot_steps must be 0 or more, got {few_shot_steps}")
  ratios = tuple(ratios) or (0.0,)
  arch_splits = tuple(arch_splits) if arch_splits else (config.arch_split,)
  patterns_lib.check_plan(ratios, arch_splits)
  samplings = tuple(samplings) if samplings else (config.model.sampling,)
  plan = patterns_lib.search_plan(samplings, arch_splits)
  few_shot_of = samplings if few_shot_of is None else tuple(few_shot_of)
  if set(few_shot_of) - set(samplings):
    raise ParError(
      f"--few_shot_of={','.join(few_shot_of)} names a sampling --samplings does not search "
      f"({','.join(samplings)})"
    )
  for sampling, split in plan:  # each search's settings, before anything trains
    _search_config(config, sampling, split).validate()
  derive = patterns_lib.parse_derivations(derive, config.model.n_blocks)
  work_dir = Path(work_dir)
  if (work_dir / runs.CONFIG_FILE).is_file():
    raise ParError(
      f"{work_dir} is a training run's directory (it holds {runs.CONFIG_FILE}): a pipeline "
      "writes its own results.json there; give it a directory of its own"
    )
  _check_layout(work_dir, bool(seeds))
  seeded = plans(config, work_dir, seeds)
  with locks.hold(work_dir / runs.LOCK_FILE, work_dir, f"the pipeline's work directory {work_dir}"):
    searches = _search(seeded, plan, strategy, jobs)
    groups = _split(seeded, searches, few_shot_steps, strategy, jobs, few_shot_of)
    derived = _derive(seeded, searches, groups, ratios, derive, ranking_tokens, jobs)
    trained = _retrain(seeded, derived, strategy, jobs)
    entries = {plan.dir: _entries(plan, searches[plan.dir], trained[plan.dir]) for plan in seeded}
    dirs = [entry[3] for e in entries.values() for entry in e]
    times = timing.measure_all(dirs, rounds, cache=work_dir / workdir.TIMES_FILE)
    summaries = {
      plan.seed: _compare(
        plan, searches[plan.dir], groups[plan.dir], *derived[plan.dir], entries[plan.dir], times
      )
      for plan in seeded
    }
    if not seeds:
      return summaries[config.seed]["rows"]
    return seeds_lib.write(
      work_dir, summaries, meta_line(records.load_meta(config.data_dir), config)
    )


def _check_layout(work_dir, over_seeds):
  """ParError when work_dir holds the other layout: a one-seed pipeline keeps its runs and
  figures at the top, one over seeds in seed-<s>/ beside the study's own results.json and
  depth figure, and one written over the other left the other's figures stale beside it."""
  one_seed = [p.name for p in work_dir.glob("search*") if p.is_dir()] + [
    p.name for p in [work_dir / workdir.MODELS] if p.is_dir()
  ]
  study = [p.name for p in work_dir.glob("seed-*") if p.is_dir()]
  found, want = (one_seed, "over seeds") if over_seeds else (study, "of one seed")
  if found:
    kind = "a one-seed pipeline" if over_seeds else "a pipeline over seeds"
    raise ParError(
      f"{work_dir} holds {kind} ({', '.join(sorted(found)[:3])}): a pipeline {want} "
      "would mix its results and figures with those; give it a --work_dir of its own"
    )


def _search_config(config, sampling, arch_split):
  """The config of the search with this sampling and held-out split."""
  model = dataclasses.replace(config.model, sampling=sampling)
  return dataclasses.replace(config, model=model, arch_split=arch_split)


def _search(seeded, plan, strategy, jobs):
  """{plan dir: {name: (config, results, architecture record)}} of each seed's searches, one
  per (sampling, held-out split) of `plan`."""
  todo = [
    (seed, patterns_lib.search_name(split, sampling), _search_config(seed.config, sampling, split))
    for seed in seeded
    for sampling, split in plan
  ]
  results = _trainings([(config, seed.dir / name) for seed, name, config in todo], strategy, jobs)
  searches = {seed.dir: {} for seed in seeded}
  for (seed, name, config), result in zip(todo, results):
    record = runs.read_json(seed.dir / name / runs.ARCHITECTURE_FILE)
    searches[seed.dir][name] = (config, result, record)
  return searches


def _split(seeded, searches, steps, strategy, jobs, samplings):
  """{plan dir: {group name: group directory}}: each search of `samplings` split into few-shot
  sub-SuperNets, trained (nothing without steps)."""
  groups = {plan.dir: {} for plan in seeded}
  if not steps:
    return groups
  todo = []
  for plan in seeded:
    for name, (search, _, _) in searches[plan.dir].items():
      if search.model.sampling not in samplings:
        continue
      group = fewshot.group_dir(plan.dir / name)
      groups[plan.dir][group.name] = group
      subs = fewshot.sub_configs(plan.dir / name, steps)
      todo += [(config, group / letter) for letter, config in subs.items()]
  _trainings(todo, strategy, jobs)
  return groups


def _trainings(todo, strategy, jobs):
  """The results of each (config, model_dir) of `todo`, finished runs reused (their settings
  checked first, so that a clash stops the pipeline before anything trains), the others
  trained `jobs` at a time (worker processes with the default strategy)."""
  here = strategy if jobs.here else None
  return jobs_lib.fill(
    [_finished(config, model_dir) for config, model_dir in todo],
    [(trainer.train_and_evaluate, (config, model_dir, here)) for config, model_dir in todo],
    jobs,
    [str(model_dir) for _, model_dir in todo],
  )


def _derive(seeded, searches, groups, ratios, derive, ranking_tokens, jobs):
  """{plan dir: ({label: pattern}, {search name: its ranking record})}: each seed's
  derivations, every search (and few-shot group) ranked by its shared weights first (every
  pattern the others derive included). Random orderings are drawn with
  RANDOM_ORDERINGS_SEED, whatever the seed: every seed retrains the same ones."""
  n_blocks = seeded[0].config.model.n_blocks
  without = [(kind, n) for kind, n in derive if kind not in ("perturbation", "shared_best")]
  probabilities, others = {}, {}
  for plan in seeded:
    probabilities[plan.dir] = {
      name: s[2]["probabilities"] for name, s in searches[plan.dir].items()
    } | dict.fromkeys(groups[plan.dir])  # a few-shot group learns no probabilities
    others[plan.dir] = patterns_lib.derivations(
      probabilities[plan.dir], ratios, n_blocks, without, seed=RANDOM_ORDERINGS_SEED
    )
  todo = [(plan, name) for plan in seeded for name in probabilities[plan.dir]]
  calls = [
    (
      fewshot.rank_group if name in groups[plan.dir] else rank.rank_search,
      (plan.dir / name, ranking_tokens, list(others[plan.dir].values())),
    )
    for plan, name in todo
  ]
  saved = {fewshot.rank_group: fewshot.saved_group_ranking, rank.rank_search: rank.saved_ranking}
  ranked = jobs_lib.fill(
    [saved[call](*args) for call, args in calls],
    calls,
    jobs,
    [f"ranking {plan.dir / name}" for plan, name in todo],
  )
  derived = {}
  for plan in seeded:
    rankings = {name: r for (p, name), r in zip(todo, ranked) if p is plan}
    found = {
      name: {
        "perturbation": (r["perturbation"] or {}).get("pattern"),  # none for a few-shot group
        "shared_best": r["shared_best"],
      }
      for name, r in rankings.items()
    }
    patterns = patterns_lib.derivations(
      probabilities[plan.dir], ratios, n_blocks, derive, found, RANDOM_ORDERINGS_SEED
    )
    logging.info(
      "seed %d derived: %s", plan.seed, ", ".join(f"{k} {v}" for k, v in patterns.items())
    )
    derived[plan.dir] = (patterns, rankings)
  return derived


def _retrain(seeded, derived, strategy, jobs):
  """{plan dir: {pattern: (config, results)}}: every derived pattern of every seed retrained
  once (runs named by pattern: derivations that agree share one)."""
  todo = [
    (plan, pattern, retrain_config(plan.config, pattern))
    for plan in seeded
    for pattern in dict.fromkeys(derived[plan.dir][0].values())
  ]
  results = _trainings(
    [(config, plan.dir / workdir.MODELS / pattern) for plan, pattern, config in todo],
    strategy,
    jobs,
  )
  trained = {plan.dir: {} for plan in seeded}
  for (plan, pattern, config), result in zip(todo, results):
    trained[plan.dir][pattern] = (config, result)
  return trained


def _entries(plan, searches, trained):
  """(name, pattern, config, run directory, results) of each model of one seed: its searches'
  SuperNets, then its retrained patterns."""
  meta = records.load_meta(plan.config.data_dir)

  def resolved(config):
    return dataclasses.replace(
      config, model=dataclasses.replace(config.model, vocab_size=meta.vocab_size)
    )

  return [
    (f"{name} (SuperNet)", None, resolved(search), plan.dir / name, results)
    for name, (search, results, _) in searches.items()
  ] + [
    (None, pattern, resolved(config), plan.dir / workdir.MODELS / pattern, results)
    for pattern, (config, results) in trained.items()
  ]


def _compare(plan, searches, groups, derived, rankings, entries, times):
  """Writes one seed's comparison (results.json, results.md, figures) to its directory; the
  summary written to results.json."""
  config, work_dir = plan.config, plan.dir
  meta = records.load_meta(config.data_dir)
  resolved = dataclasses.replace(config.model, vocab_size=meta.vocab_size)
  counts, _ = records.target_counts(config.data_dir, "train")
  bounds = (0,) + tuple(resolved.cutoffs) + (resolved.vocab_size,)
  shares = [counts[a:b].sum() / counts.sum() for a, b in zip(bounds[1:], bounds[2:])]
  labels = {}  # pattern -> the derivations that gave it
  for label, pattern in derived.items():
    labels.setdefault(pattern, []).append(label)
  rows = [
    _row(name or " = ".join(labels[pattern]), pattern, c, d, r, shares, meta, times[d])
    for name, pattern, c, d, r in entries
  ]
  against_baseline(
    rows, work_dir / workdir.MODELS / patterns_lib.baseline_pattern(config.model.n_blocks)
  )
  retrained = {
    r["pattern"]: r["valid"]["loss"]
    for r in rows
    if r["attention_blocks"] is not None and "valid" in r
  }
  agreements = {name: rank.agreement(r["scores"], retrained) for name, r in rankings.items()}

  def entry(name, run, arch_split, record):
    return {
      "run": str(run),
      "arch_split": arch_split,
      "argmax": record["probabilities"] and patterns_lib.argmax_pattern(record["probabilities"]),
      "probabilities": record["probabilities"],
      "collapse": record.get("identity_dominates", []),
      "shared_best": rankings[name]["shared_best"],
      "perturbation": (rankings[name]["perturbation"] or {}).get("pattern"),
      "ranking_tokens": rankings[name]["tokens"],
      "ranking_agreement": agreements[name],
    }

  entries_of = {
    name: entry(name, work_dir / name, search.arch_split, record)
    for name, (search, _, record) in searches.items()
  }
  for name, group in groups.items():
    source = name.removesuffix(fewshot.GROUP_SUFFIX)
    entries_of[name] = entry(name, group, searches[source][0].arch_split, {"probabilities": None})
  summary = {
    "seed": config.seed,
    "searches": entries_of,
    "patterns": derived,
    "rows": rows,
  }
  runs.write_json(work_dir / workdir.RESULTS_JSON, summary)
  _write_experiment(work_dir)
  runs.write_bytes(
    work_dir / workdir.RESULTS_MD,
    (markdown(rows) + baseline_markdown(rows) + agreement_markdown(summary)).encode(),
  )
  figures = plots.tradeoff(
    [(f"seed {config.seed}", rows)], title=f"{work_dir.name}: {meta_line(meta, config)}"
  )
  for kind, data in figures.items():
    runs.write_bytes(work_dir / f"{workdir.TRADEOFF_FIGURE}.{kind}", data)
  for name, (_, results, record) in searches.items():
    if record["probabilities"] is not None:  # (a decoupled SuperNet learns none)
      _search_figures(work_dir, name, record, results["steps"])
  return summary


def agreement_markdown(summary):
  """How each search's shared-weight ranking agrees with retraining, as markdown."""
  lines = [
    "",
    "Shared-weight ranking against retraining (valid loss of every retrained pattern; "
    "1 is the same order, 0 none; τ ± its jackknife standard error; τ in the best 30% of "
    "the retrained; the regret of the pattern the shared weights score best: its retrained "
    "loss minus the best retrained, nats):",
    "",
    "| search | patterns | Kendall τ | Spearman ρ | τ in the best 30% | pick, regret | "
    "shared best | perturbation | scored on |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, search in summary["searches"].items():
    a = search["ranking_agreement"]
    lines.append(
      f"| {name} | {a['patterns']} | {rank.card_cells(a)} | "
      f"`{search['shared_best']}` | {_code(search['perturbation'])} | "
      f"{search['ranking_tokens']:,} valid tokens |"
    )
  return "\n".join(lines) + "\n"


def _code(pattern):
  return f"`{pattern}`" if pattern else "–"


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

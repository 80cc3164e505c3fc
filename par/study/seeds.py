"""A pipeline over seeds, reported as the field reports a study (`par-pipeline --seeds`).

  work_dir/
    seed-<s>/            each seed's whole pipeline (par/study/workdir.py's layout and files)
    results.json         {"seeds", "rows", "agreement"}: one row per derivation over the seeds
    results.md           the same as markdown tables
    tradeoff.png, .pdf   valid perplexity against time per token, means with ± sd bars
    depth.png, .pdf      retrained test perplexity against attention depth, a point per
                         pattern and seed
    agreement.png, .pdf  each search's shared-weight scores against the retrained valid
                         losses of the panel, a panel per search, a point per pattern and seed

A row is a derivation (`argmax of search`, `rule p=3`, `random 2`, `baseline`, …) or a
search's SuperNet, followed over the seeds: the pattern each seed gave it (searched
derivations may differ between seeds; the others do not), every perplexity and time as mean
± sample standard deviation over seeds (a pattern's time is measured once for all seeds,
`timing.measure_all`, so a row with one pattern has no spread in time), where its attention
sits, and its per-token test NLL against the interleaved baseline's by the paired block
bootstrap pooled over seeds (each seed's model against that seed's baseline, on the same
tokens), beside each seed's own mean difference and their standard deviation: the
bootstrap's interval holds the trained models fixed and resamples test tokens, so only the
seeds' spread shows the training noise (a difference counts when it stands out of both).
With random orderings (`random=N`), a row pools them all, and every other retrained row is
also compared with the average random ordering (`vs_random`: against the token-by-token mean
NLL of its seed's random orderings), the comparison Yu et al. (2020) ask of a search; and
with the best random ordering and the best of PAR's rule (each chosen by mean valid
perplexity, so that the choice does not read the test tokens), every other fixed row against
them (`vs_best_random`, `vs_best_rule`), the bars a derived pattern has to clear.

How far the SuperNet's ranking can be trusted, over the patterns every seed retrained (the
panel): for each search and seed, Kendall's τ and Spearman's ρ between the shared-weight
scores and that seed's retrained valid losses; beside them, the noise ceiling, the same
statistics between two seeds' retrained losses (every pair). A ranking predicts retraining
as well as retraining predicts itself when its τ reaches the ceiling. Each search's cost is
counted in trainings of the baseline (`search_cost`).
"""

import itertools
from pathlib import Path

import numpy as np

from par import runs
from par.config import BLOCK_KINDS
from par.data import records
from par.search import intervals
from par.search import plots
from par.search import ranking
from par.study import compare
from par.study import fewshot
from par.study import rank
from par.study import workdir

# Each row's metrics over seeds: name -> value of one seed's row (None when it has none).
METRICS = {
  "valid_ppl": lambda r: r.get("valid", {}).get("token_perplexity"),
  "test_ppl": lambda r: r.get("test", {}).get("token_perplexity"),
  "test_word_ppl": lambda r: r.get("test", {}).get("word_perplexity"),
  "train_us": lambda r: r["train_seconds_per_token"] * 1e6,
  "eval_us": lambda r: r["eval_seconds_per_token"] * 1e6,
  "params": lambda r: r["params"],
  "flops_per_token": lambda r: r["flops_per_token"],
}


def by_label(summary):
  """{label: row} of one seed's results.json: each search's SuperNet by its name, each
  derivation by its label (derivations that gave one pattern share its row)."""
  fixed = {row["pattern"]: row for row in summary["rows"] if row["attention_blocks"] is not None}
  labelled = {row["model"]: row for row in summary["rows"] if row["attention_blocks"] is None}
  labelled.update({label: fixed[p] for label, p in summary["patterns"].items()})
  return labelled


def _over_seeds(values):
  values = [v for v in values if v is not None]
  if not values:
    return None
  mean, sd = intervals.mean_sd(values)
  return {"mean": mean, "sd": sd, "n": len(values)}


def _pattern_label(patterns):
  """The seeds' patterns of a derivation: `p` when one, else each with its count."""
  counts = {p: patterns.count(p) for p in dict.fromkeys(patterns)}
  if len(counts) == 1:
    return patterns[0]
  return ", ".join(f"{p} ×{n}" for p, n in counts.items())


def aggregate(summaries):
  """The rows over seeds (see the module docstring) of {seed: one seed's results.json}."""
  seeds = sorted(summaries)
  labelled = {s: by_label(summaries[s]) for s in seeds}
  labels = list(dict.fromkeys(label for s in seeds for label in labelled[s]))
  baselines = {s: labelled[s]["baseline"] for s in seeds}
  rows = []
  for label in labels:
    present = [s for s in seeds if label in labelled[s]]
    rows.append(
      _row(label, [labelled[s][label] for s in present], present, [baselines[s] for s in present])
    )
  _against_random(rows, labelled, seeds)
  for prefix, key in BEST_OF:
    _against_best(rows, seeds, prefix, key)
  return rows


# The strongest fixed references, each the best of its family by mean valid perplexity over
# seeds (valid: the choice must not read the test tokens it is compared on): every other
# fixed row against it, on test (`vs_best_random`, `vs_best_rule`).
BEST_OF = (("random ", "vs_best_random"), ("rule ", "vs_best_rule"))


def _against_best(rows, seeds, prefix, key):
  """Each fixed row's `key`: its per-token test NLL against the best row whose label starts
  with `prefix` (by mean valid perplexity over seeds), by the paired block bootstrap pooled
  over seeds, with that row's label (`against`). Nothing when no such row has every seed."""
  whole = [  # every seed, one model each (not the average random ordering's pool)
    r for r in rows if r["fixed"] and r["seeds"] == list(seeds) and r["model"] != AVERAGE_RANDOM
  ]
  family = [  # one pattern in every seed
    r for r in whole if r["model"].startswith(prefix) and len(set(r["patterns"])) == 1
  ]
  tested = all(r["test_ppl"] and r["test_ppl"]["n"] == len(seeds) for r in whole)
  if not family or not tested:
    return
  best = min(family, key=lambda r: (r["valid_ppl"]["mean"], r["model"]))
  theirs = [compare.test_nll(run) for run in best["runs"]]
  for row in whole:
    if row is best or row["model"].startswith(prefix):
      continue
    comparison = compare.over_seeds([compare.test_nll(run) for run in row["runs"]], theirs)
    row[key] = dict(comparison, against=best["model"], pattern=best["pattern_label"])


def _row(model, seed_rows, seeds, baselines):
  """The row over `seed_rows` (one per model; seeds[k] trained seed_rows[k], whose baseline
  is baselines[k]): metrics over them, and for a fixed pattern where its attention sits and
  its comparison with the baselines."""
  fixed = seed_rows[0]["attention_blocks"] is not None
  patterns = [r["pattern"] for r in seed_rows]
  row = {
    "model": model,
    "fixed": fixed,
    "seeds": sorted(set(seeds)),
    "patterns": patterns,
    "pattern_label": _pattern_label(patterns),
    "runs": [r["run"] for r in seed_rows],
    **{name: _over_seeds([get(r) for r in seed_rows]) for name, get in METRICS.items()},
  }
  if fixed:
    where = [intervals.positions(p) for p in patterns]
    row["attention_blocks"] = _over_seeds([p.count("s") for p in patterns])
    row["thirds"] = np.mean([w.thirds for w in where], axis=0).tolist()
    row["depth"] = _over_seeds([None if np.isnan(w.depth) else w.depth for w in where])
    if all("test" in r for r in seed_rows + baselines):
      comparison = _against(seed_rows, baselines)
      if comparison:
        row["vs_baseline"] = comparison
  return row


RANDOM = "random "  # the labels of the random orderings: "random 1", "random 2", …
AVERAGE_RANDOM = "random orderings (average)"  # the row that follows their average


def _against_random(rows, labelled, seeds):
  """Adds "random orderings (average)", the average random ordering of each seed followed
  over the seeds, and each fixed row's `vs_random`: its per-token test NLL against the mean,
  token by token, of its seed's random orderings' (the average random ordering), by the
  paired block bootstrap pooled over seeds. Nothing without random orderings."""
  randoms = {s: [r for label, r in labelled[s].items() if label.startswith(RANDOM)] for s in seeds}
  if not all(randoms.values()) or not all("test" in r for s in seeds for r in randoms[s]):
    return
  average = {s: np.mean([compare.test_nll(r["run"]) for r in randoms[s]], axis=0) for s in seeds}
  rows.insert(
    len(rows) - 1 if rows[-1]["model"] == "baseline" else len(rows),
    _average_random(randoms, average, {s: labelled[s]["baseline"] for s in seeds}, seeds),
  )
  for row in rows:
    if row["fixed"] and not row["model"].startswith(RANDOM) and set(row["seeds"]) == set(seeds):
      mine = [compare.test_nll(run) for run in row["runs"]]
      row["vs_random"] = compare.over_seeds(mine, [average[s] for s in row["seeds"]])


def _average_random(randoms, average, baselines, seeds):
  """The row of the average random ordering: each metric the mean over a seed's orderings,
  then mean ± sd over seeds (so the sd is training noise, not the orderings' spread); against
  the baseline, each seed's orderings' per-token NLL averaged token by token, one array a
  seed, by the paired bootstrap pooled over seeds."""

  def mean(values):
    return None if None in values else float(np.mean(values))

  per_seed = {
    name: [mean([get(r) for r in randoms[s]]) for s in seeds] for name, get in METRICS.items()
  }
  where = {s: [intervals.positions(r["pattern"]) for r in randoms[s]] for s in seeds}
  depths = [float(np.mean([w.depth for w in where[s]])) for s in seeds]
  count = len(randoms[seeds[0]])
  row = {
    "model": AVERAGE_RANDOM,
    "fixed": True,
    "seeds": list(seeds),
    "patterns": [r["pattern"] for s in seeds for r in randoms[s]],
    "pattern_label": f"{count} orderings",
    "runs": [r["run"] for s in seeds for r in randoms[s]],
    **{name: _over_seeds(values) for name, values in per_seed.items()},
    "attention_blocks": _over_seeds(
      [float(np.mean([r["pattern"].count("s") for r in randoms[s]])) for s in seeds]
    ),
    "thirds": np.mean([w.thirds for s in seeds for w in where[s]], axis=0).tolist(),
    "depth": _over_seeds([d for d in depths if not np.isnan(d)]),
    "vs_baseline": compare.over_seeds(
      [average[s] for s in seeds], [compare.test_nll(baselines[s]["run"]) for s in seeds]
    ),
  }
  return row


def _against(rows, baselines):
  """The paired block bootstrap of rows' test NLLs against their seeds' baselines, pooled."""
  if all(r["pattern"] == b["pattern"] for r, b in zip(rows, baselines)):
    return None  # The baseline's own pattern in every seed: no comparison to make.
  return compare.over_seeds(
    [compare.test_nll(r["run"]) for r in rows], [compare.test_nll(b["run"]) for b in baselines]
  )


def training_seconds(run_dir):
  """A finished run's training time: its steps at the throughput it reported (evaluations
  and checkpoints left out; a resumed run's last process's pace), or None without one."""
  results = runs.read_results(run_dir) or {}
  speed = results.get("train_tokens_per_second")
  if not speed or not results.get("steps"):
    return None
  run = runs.read_run(run_dir)
  meta = records.load_meta(run.config.data_dir)
  return results["steps"] * meta.batch_size * meta.seq_len / speed


def search_cost(summary, name):
  """What one seed's search `name` cost, in trainings of its baseline: its SuperNet's
  training (a few-shot group's: the SuperNet it splits and its sub-SuperNets') and its
  shared-weight ranking, over the baseline's training time in the same study (each timed as
  it ran, beside whatever else ran then). {"seconds", "trainings"}, or None when a time is
  missing."""
  search = summary["searches"][name]
  run = Path(search["run"])
  parts = []
  if run.name.endswith(fewshot.GROUP_SUFFIX):
    parent = summary["searches"][name.removesuffix(fewshot.GROUP_SUFFIX)]["run"]
    parts += [training_seconds(parent)] + [training_seconds(run / k) for k in BLOCK_KINDS]
  else:
    parts.append(training_seconds(run))
  parts.append(runs.read_json(run / rank.RANKING_FILE)["seconds"])
  baseline = next((r for r in summary["rows"] if r.get("is_baseline")), None)
  unit = baseline and training_seconds(baseline["run"])
  if None in parts or not unit:
    return None
  return {"seconds": float(sum(parts)), "trainings": float(sum(parts) / unit)}


def agreement(summaries):
  """The SuperNets' rankings against retraining over the panel, and the noise ceiling."""
  seeds = sorted(summaries)
  retrained = {
    s: {
      r["pattern"]: r["valid"]["loss"]
      for r in summaries[s]["rows"]
      if r["attention_blocks"] is not None and "valid" in r
    }
    for s in seeds
  }
  panel = sorted(set.intersection(*(set(retrained[s]) for s in seeds)))

  def statistics(x, y):
    return {"kendall_tau": ranking.kendall_tau(x, y), "spearman_rho": ranking.spearman_rho(x, y)}

  on_panel = {s: {p: retrained[s][p] for p in panel} for s in seeds}
  searches, skips = {}, {}
  for s in seeds:
    for name, search in summaries[s]["searches"].items():  # few-shot groups among them
      scores = runs.read_json(Path(search["run"]) / rank.RANKING_FILE)["scores"]
      card = ranking.report_card(scores, on_panel[s], on_panel)
      card["cost"] = search_cost(summaries[s], name)
      searches.setdefault(name, {})[s] = card
      skips.setdefault(name, {})[s] = ranking.skip_bias(scores, on_panel[s])
  pairs = {
    f"{a}-{b}": statistics([retrained[a][p] for p in panel], [retrained[b][p] for p in panel])
    for a, b in itertools.combinations(seeds, 2)
  }
  seed_skips = {
    f"{a}-{b}": ranking.skip_bias(on_panel[a], on_panel[b])
    for a, b in itertools.combinations(seeds, 2)
  }
  return {
    "panel": panel,
    "searches": searches,
    "seed_to_seed": pairs,
    "skips": {"searches": skips, "seed_to_seed": seed_skips},
  }


def _difference(comparison):
  """A comparison's mean difference, ± the sd of the seeds' own differences when several."""
  if comparison["seeds"] > 1:
    return f"{comparison['difference']:+.4f} ± {comparison['seed_sd']:.4f}"
  return f"{comparison['difference']:+.4f}"


def _cell(stat, digits=2):
  if stat is None:
    return "–"
  if stat["n"] == 1:
    return f"{stat['mean']:.{digits}f}"
  return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def _short(value):
  """A mean count to two decimals without trailing zeros: 1, 1.67, 10.5 (not .2g's "10")."""
  return f"{value:.2f}".rstrip("0").rstrip(".")


def _time(stat):
  """A time over seeds: mean ± sd, or the one value when every seed shares one measurement
  (a spread of exactly 0 is not training noise, it is the same number)."""
  if stat is not None and stat["n"] > 1 and stat["sd"] == 0:
    return f"{stat['mean']:.1f}"
  return _cell(stat, 1)


def markdown(rows, agreed, seeds):
  """results.md of a study: the rows over seeds, then the ranking against retraining."""
  lines = [
    f"Over {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± sd over seeds; Δ NLL is "
    "test nats/token against the interleaved baseline (negative is better), ± the sd of the "
    "seeds' own differences (training noise); the 95% interval is the paired block "
    "bootstrap's pooled over seeds, which resamples test tokens with the models fixed. "
    "Attention blocks by third are means over seeds; attention depth is the mean position of "
    "the attention blocks, 0 the bottom block and 1 the top. A time without ± is one "
    "measurement that every seed shares (the same pattern is timed once).",
    "",
    "| model | pattern | attention blocks by third | attention depth | valid ppl | test ppl "
    "| Δ NLL | 95% interval | ppl ratio | train µs/token | eval µs/token |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    if row["fixed"]:
      thirds = " / ".join(_short(t) for t in row["thirds"])
      depth = _cell(row["depth"])
    else:
      thirds = depth = "–"
    c = row.get("vs_baseline")
    if c:
      versus = f"{_difference(c)} | [{c['low']:+.4f}, {c['high']:+.4f}] | {c['ratio']:.4f}"
    else:
      versus = "– | – | –"
    lines.append(
      f"| {row['model']} | `{row['pattern_label']}` | {thirds} | {depth} | "
      f"{_cell(row['valid_ppl'])} | {_cell(row['test_ppl'])} | {versus} | "
      f"{_time(row['train_us'])} | {_time(row['eval_us'])} |"
    )
  lines += _versus_table(
    rows,
    "vs_random",
    "Against the average random ordering (each seed's random orderings' per-token test NLL "
    "averaged token by token; Δ ± the sd of the seeds' own differences; paired block "
    "bootstrap pooled over seeds, 95% interval; negative is better):",
  )
  for _, key in BEST_OF:
    reference = next((row[key] for row in rows if row.get(key)), None)
    if reference is not None:
      lines += _versus_table(
        rows,
        key,
        f"Against the best {reference['against'].split()[0]} ({reference['against']}, "
        f"`{reference['pattern']}`, the best of its kind by mean valid perplexity; test NLL, "
        "Δ ± the sd of the seeds' own differences, paired block bootstrap pooled over seeds, "
        "95% interval; negative is better):",
      )
  lines += [
    "",
    f"The SuperNets' shared-weight ranking against retraining, over the {len(agreed['panel'])} "
    "patterns every seed retrained (valid loss), beside the noise ceiling (one seed's "
    "retraining against another's); τ ± its jackknife standard error, τ in the best 30% of "
    "the panel, and the regret of the pattern the shared weights score best (its retrained "
    "loss minus the panel's best, nats, and in seed standard deviations); the search's cost "
    "is its SuperNet's training (with a split's sub-SuperNets) and its ranking, in trainings "
    "of the baseline, each timed as it ran in the study:",
    "",
    "| ranking | against | Kendall τ | Spearman ρ | τ in the best 30% | pick, regret | cost |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, per_seed in agreed["searches"].items():
    for s, card in per_seed.items():
      cost = card.get("cost")
      cost = "–" if cost is None else f"{cost['trainings']:.1f} trainings"
      lines.append(
        f"| {name} of seed {s} | seed {s}'s retraining | {rank.card_cells(card)} | {cost} |"
      )
  for pair, stats in agreed["seed_to_seed"].items():
    a, b = pair.split("-")
    lines.append(
      f"| seed {a}'s retraining (noise ceiling) | seed {b}'s retraining | "
      f"{stats['kendall_tau']:.2f} | {stats['spearman_rho']:.2f} | – | – | – |"
    )
  summary = _agreement_summary(agreed)
  if summary:
    lines += ["", summary]
  goal = goal_lines(agreed)
  if goal:
    lines += ["", *goal]
  skips = skip_lines(agreed)
  if skips:
    lines += ["", skips]
  return "\n".join(lines) + "\n"


GOAL_TAU = 0.5  # a ranking good enough to select with (the [5/5] study's goal)
GOAL_REGRET_SD = 1.0  # its pick within one seed sd of the panel's best


def goal_lines(agreed):
  """For each search, whether it meets the study's goal, as list items: its mean τ over seeds
  against GOAL_TAU, and in how many seeds its pick's regret is within GOAL_REGRET_SD seed
  standard deviations of the panel's best (none without a seed sd: one seed)."""
  lines = []
  for name, per_seed in agreed["searches"].items():
    taus = [card["kendall_tau"] for card in per_seed.values()]
    mean = float(np.mean(taus))
    close = [card.get("regret_sd") for card in per_seed.values()]
    known = [r for r in close if r is not None and np.isfinite(r)]
    within = sum(r <= GOAL_REGRET_SD for r in known)
    met = mean >= GOAL_TAU and known and within == len(per_seed)
    lines.append(
      f"- {name}: mean τ {mean:.2f} (goal ≥ {GOAL_TAU}); its pick within "
      f"{GOAL_REGRET_SD:g} seed sd of the panel's best in {within} of {len(per_seed)} seeds: "
      f"{'meets the goal' if met else 'does not meet the goal'}"
    )
  if lines:
    lines.insert(
      0, "The goal: a ranking with τ ≥ 0.5 whose pick is within one seed sd of the best:"
    )
  return lines


def skip_lines(agreed):
  """One paragraph: where the rankings put the patterns that skip a block, and their τ
  without them (`ranking.skip_bias`), beside the same between seeds; "" when the panel has no
  such pattern, or fewer than three others."""
  skips = agreed.get("skips")
  if not skips or not skips["searches"]:
    return ""
  first = next(iter(next(iter(skips["searches"].values())).values()))
  if not first["skipping"] or first["skip_free"] < 3:
    return ""
  parts = []
  for name, per_seed in skips["searches"].items():
    shifts = [b["rank_shift"] for b in per_seed.values()]
    taus = [b["skip_free_tau"] for b in per_seed.values()]
    parts.append(f"{name} {_cell(_over_seeds(shifts), 1)} places, τ {_cell(_over_seeds(taus))}")
  pairs = skips["seed_to_seed"].values()
  shifts = [abs(b["rank_shift"]) for b in pairs]
  taus = [b["skip_free_tau"] for b in pairs]
  between = (
    f"; one seed's retraining against another's: {_cell(_over_seeds(shifts), 1)} places "
    f"(absolute), τ {_cell(_over_seeds(taus))}"
    if pairs
    else ""
  )
  return (
    f"The {first['skipping']} patterns of the panel that skip a block (an identity): how many "
    f"places of {first['skipping'] + first['skip_free']} each ranking puts them ahead of its "
    "seed's retraining (their mean over them, then mean ± sd over seeds; weight sharing is "
    "known to favour parameter-free operations), and its τ over the other "
    f"{first['skip_free']} patterns alone: {'; '.join(parts)}{between}."
  )


def _versus_table(rows, key, heading):
  """The markdown lines of every row's comparison `key` (none without one)."""
  compared = [row for row in rows if row.get(key)]
  if not compared:
    return []
  lines = [
    "",
    heading,
    "",
    "| model | pattern | Δ NLL | 95% interval | ppl ratio |",
    "|---|---|---|---|---|",
  ]
  for row in compared:
    c = row[key]
    lines.append(
      f"| {row['model']} | `{row['pattern_label']}` | {_difference(c)} | "
      f"[{c['low']:+.4f}, {c['high']:+.4f}] | {c['ratio']:.4f} |"
    )
  return lines


def _agreement_summary(agreed):
  """One line: each search's mean τ over seeds against the ceiling's mean over pairs."""
  parts = []
  for name, per_seed in agreed["searches"].items():
    taus = [v["kendall_tau"] for v in per_seed.values()]
    costs = [v["cost"]["trainings"] for v in per_seed.values() if v.get("cost")]
    cost = f" ({_cell(_over_seeds(costs), 1)} trainings)" if costs else ""
    parts.append(f"{name} τ {_cell(_over_seeds(taus))}{cost}")
  ceiling = [v["kendall_tau"] for v in agreed["seed_to_seed"].values()]
  if not parts or not ceiling:
    return ""
  return f"Mean over seeds: {'; '.join(parts)}; noise ceiling τ {_cell(_over_seeds(ceiling))}."


def score_panels(summaries, panel):
  """{search name: {seed: [(pattern, shared-weight score, retrained valid loss)]}} over the
  panel: what `plots.scores_against_retrained` draws."""
  panels = {}
  for s, summary in sorted(summaries.items()):
    retrained = {
      r["pattern"]: r["valid"]["loss"]
      for r in summary["rows"]
      if r["attention_blocks"] is not None and "valid" in r
    }
    for name, search in summary["searches"].items():
      scores = runs.read_json(Path(search["run"]) / rank.RANKING_FILE)["scores"]
      panels.setdefault(name, {})[s] = [(p, scores[p], retrained[p]) for p in panel if p in scores]
  return panels


def depth_points(summaries):
  """([(pattern, seed, perplexity)] of each retrained pattern of each seed, once; the split
  they are on): test, or valid when the dataset has no test split."""
  retrained = [
    (s, row)
    for s, summary in sorted(summaries.items())
    for row in summary["rows"]
    if row["attention_blocks"] is not None
  ]
  split = "test" if any("test" in row for _, row in retrained) else "valid"
  points = [
    (row["pattern"], s, row[split]["token_perplexity"]) for s, row in retrained if split in row
  ]
  return points, split


def write(work_dir, summaries, setting):
  """Writes the study's results.json, results.md and figures to work_dir; its rows.

  Args:
    work_dir: the pipeline's directory.
    summaries: {seed: that seed's results.json}.
    setting: what the figures' titles say of the setting (`pipeline.meta_line`).
  """
  work_dir = Path(work_dir)
  seeds = sorted(summaries)
  rows = aggregate(summaries)
  agreed = agreement(summaries)
  runs.write_json(
    work_dir / workdir.RESULTS_JSON, {"seeds": seeds, "rows": rows, "agreement": agreed}
  )
  runs.write_bytes(work_dir / workdir.RESULTS_MD, markdown(rows, agreed, seeds).encode())
  title = f"{work_dir.name}: {setting}"
  figures = {
    workdir.TRADEOFF_FIGURE: plots.tradeoff_over_seeds(rows, title),
    workdir.DEPTH_FIGURE: plots.depth(*depth_points(summaries), title=title),
  }
  if agreed["searches"] and agreed["panel"]:
    figures[workdir.AGREEMENT_FIGURE] = plots.scores_against_retrained(
      score_panels(summaries, agreed["panel"]), title
    )
  for name, files in figures.items():
    for kind, data in files.items():
      runs.write_bytes(work_dir / f"{name}.{kind}", data)
  return rows

"""Does the search find known answers? The benchmark of `par-search-benchmark`.

For each known-answer task (par/data/tasks.py) every pattern of a 4-block network is trained
from scratch with a few seeds: the mean valid loss ranks all 81, and the best is the task's
established answer (with the seeds' spread beside it). Then the SuperNet is searched with the
same budget, in every sampling mode and with each family of search settings (`SETTINGS`),
and what each derivation gives (argmax, the shared-weight ranking's best, DARTS-PT's
perturbation) is looked up among the retrained patterns: its perplexity, its rank among the
81 and its ratio to the best. Kendall's τ between the SuperNet's shared-weight ranking of the
81 and the retrained one says whether its preferences carry information.

  work_dir/<task>/text/, ds/           the corpus and its dataset
  work_dir/<task>/models/<p>-seed<k>/  every pattern, retrained
  work_dir/<task>/search-<mode>-<settings>-seed<k>/   the searches (and their ranking.json)
  work_dir/<task>/search-uniform-defaults-seed<k>-few-shot/   few-shot NAS: the uniform
                                       SuperNet split on its first block (par/study/fewshot.py)
  work_dir/benchmark.json, benchmark.md

Everything resumes: finished runs are reused. Two processes may share a work directory when
they take different tasks (`tasks=`); `report` then reads everything there is.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
from absl import logging

from par import runs
from par.config import DECOUPLED_SAMPLING
from par.config import SAMPLING_MODES
from par.config import DataConfig
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import build
from par.data import records
from par.data import tasks as tasks_lib
from par.search import ranking
from par.study import fewshot
from par.study import rank

MODEL = ModelConfig(
  d_model=32, n_heads=2, d_ffn=64, n_blocks=4, mem_len=32, cutoffs=(), dropout=0.0
)
DATA = DataConfig(tokenizer="word", batch_size=16, seq_len=16)
STEPS = 2500
TRAIN = dict(
  train_steps=STEPS,
  max_lr=3e-3,
  warmup_steps=100,
  steps_per_loop=100,
  log_every=500,
  checkpoint_every=STEPS,
  plot_every=0,
)
# The search settings compared: today's defaults, and PAR's recipe (architecture Adam at
# 1e-2, L2 5e-4, frozen for the first 20% of the steps, a held-out fifth of the lanes for the
# architecture step, as FBNet).
_PAR = dict(arch_lr=1e-2, arch_weight_decay=5e-4, arch_warmup_steps=STEPS // 5, arch_split=0.2)
SETTINGS = {
  "defaults": {},
  "par": _PAR,
  # Variants tried to close the gap to the known answers (docs/SEARCH.md says what each did).
  "par-half": dict(_PAR, arch_warmup_steps=STEPS // 2),
  "par-flops": dict(_PAR, resource="flops", resource_weight=0.05),
  "gdas": dict(tau_start=10.0, tau_schedule="linear", arch_split=0.5),
  "tau10": dict(tau_start=10.0, tau_schedule="linear"),
  "gdas-par": dict(_PAR, tau_start=10.0, tau_schedule="linear"),
}
# With a resource term the unigram task's search should not pay for attention.
RESOURCE = dict(resource="flops", resource_weight=0.5)
DERIVED = ("argmax", "shared_best", "perturbation")
# Few-shot NAS is a mode of the benchmark, not of the SuperNet: the uniform one-shot SuperNet
# of the same seed split on one block, each of its three sub-SuperNets trained a third of the
# one-shot's steps further (the split costs one more one-shot training, as in Zhao et al.).
FEW_SHOT = "few_shot"
FEW_SHOT_FROM = "uniform"
MODES = SAMPLING_MODES + (FEW_SHOT,)


def prepare(task, work_dir):
  """The task's dataset under work_dir/<task>/ds (written and built once)."""
  root = Path(work_dir) / task.name
  if not (root / "ds" / "meta.json").is_file():
    task.write(root / "text")
    build.build_dataset(root / "text", root / "ds", DATA, reuse_existing=True)
  return root / "ds"


def evaluation_lane(data_dir, split="valid"):
  """The tokens of each lane the benchmark's runs evaluate `split` in (`records.lane_length`
  of the dataset's records, or of --eval_batch_size lanes): each lane starts without
  context, which the attainable bound must count (`tasks.process_nll`)."""
  meta = records.load_meta(data_dir)
  lanes = TrainConfig().eval_batch_size or meta.batch_size
  return records.lane_length(meta.splits[split].tokens, lanes, meta.seq_len)


def _config(data_dir, seed, **changes):
  config = TrainConfig(model=MODEL, data_dir=str(data_dir), seed=seed, **TRAIN)
  model = dataclasses.replace(config.model, **changes.pop("model", {}))
  return dataclasses.replace(config, model=model, **changes)


def _train(config, model_dir):
  from par.train import trainer  # TensorFlow: only when something trains.

  results = runs.read_results(model_dir) if runs.is_finished(model_dir) else None
  return results or trainer.train_and_evaluate(config, model_dir)


def retrain_all(task, work_dir, seeds):
  """{pattern: [valid loss per seed]} of every 4-block pattern trained from scratch."""
  data_dir = prepare(task, work_dir)
  losses = {}
  patterns = ranking.all_patterns(MODEL.n_blocks)
  for k, pattern in enumerate(patterns):
    logging.info("%s: retraining pattern %d of %d, %s", task.name, k + 1, len(patterns), pattern)
    losses[pattern] = []
    for seed in seeds:
      # No figures: nothing reads them, and a second or two of each is minutes over a task.
      config = _config(data_dir, seed, plots=False, model={"architecture": pattern})
      run = Path(work_dir) / task.name / "models" / f"{pattern}-seed{seed}"
      losses[pattern].append(_train(config, run)["valid"]["loss"])
    logging.info("%s %s: %s", task.name, pattern, losses[pattern])
  return losses


def search(task, work_dir, mode, settings, seed):
  """One search of `task` in sampling `mode` with the named settings: (run directory, its
  ranking record)."""
  data_dir = prepare(task, work_dir)
  changes = dict(SETTINGS[settings.removesuffix("+flops")])
  if settings.endswith("+flops"):
    changes.update(RESOURCE)
  config = _config(data_dir, seed, model={"sampling": mode}, **changes)
  run = Path(work_dir) / task.name / f"search-{mode}-{settings}-seed{seed}"
  _train(config, run)
  return run, rank.rank_search(run, tokens=10**9)  # all of valid


def few_shot(task, work_dir, seed):
  """The few-shot split of the uniform search of `seed`: (its group directory, its ranking
  record)."""
  one_shot, _ = search(task, work_dir, FEW_SHOT_FROM, "defaults", seed)
  group = fewshot.group_dir(one_shot)
  for letter, config in fewshot.sub_configs(one_shot, STEPS // 3).items():
    _train(config, group / letter)
  saved = fewshot.saved_group_ranking(group, tokens=10**9)
  return group, saved or fewshot.rank_group(group, tokens=10**9)


def search_dir(work_dir, task_name, mode, settings, seed):
  """Where the benchmark keeps a search (or a few-shot group) and its ranking.json."""
  if mode == FEW_SHOT:
    one_shot = search_dir(work_dir, task_name, FEW_SHOT_FROM, "defaults", seed)
    return fewshot.group_dir(one_shot)
  return Path(work_dir) / task_name / f"search-{mode}-{settings}-seed{seed}"


def settings_for(task, names=("defaults", "par"), mode="soft"):
  """The settings families each task is searched with (unigram: with a resource term too); a
  decoupled SuperNet (uniform, fair, few-shot) has no architecture step to set: its defaults
  only."""
  if mode in DECOUPLED_SAMPLING or mode == FEW_SHOT:
    return ["defaults"]
  names = list(names)
  extra = [f"{n}+flops" for n in names if "resource" not in SETTINGS[n]]
  return names + extra if task.name == "unigram" else names


def benchmark(
  work_dir, names=tuple(tasks_lib.TASKS), seeds=(1, 2), modes=SAMPLING_MODES, settings=None
):
  """Trains what is missing for the named tasks, then writes the report; returns its rows."""
  settings = settings or ("defaults", "par")
  for name in names:
    task = tasks_lib.TASKS[name]
    retrain_all(task, work_dir, seeds)
    todo = [
      (mode, family, seed)
      for mode in modes
      for family in settings_for(task, settings, mode)
      for seed in seeds
    ]
    for k, (mode, family, seed) in enumerate(todo):
      logging.info("%s: search %d of %d, %s %s seed %d", name, k + 1, len(todo), mode, family, seed)
      if mode == FEW_SHOT:
        few_shot(task, work_dir, seed)
      else:
        search(task, work_dir, mode, family, seed)
  return report(work_dir, seeds, modes)


def report(work_dir, seeds=(1, 2), modes=MODES):
  """Reads every finished run under work_dir: writes benchmark.json and benchmark.md."""
  work_dir = Path(work_dir)
  rows, answers = [], {}
  for name, task in tasks_lib.TASKS.items():
    losses = _retrained(work_dir / name, seeds)
    if len(losses) < 3**MODEL.n_blocks:
      continue
    mean = {p: float(np.mean(v)) for p, v in losses.items()}
    order = sorted(mean, key=lambda p: (mean[p], p))
    best = order[0]
    spread = (
      float(np.mean([np.std(v, ddof=1) for v in losses.values()])) if len(seeds) > 1 else None
    )
    answers[name] = {
      "bound_ppl": math.exp(task.process_nll("valid", evaluation_lane(work_dir / name / "ds"))),
      "bound_ppl_one_lane": math.exp(task.process_nll("valid")),
      "best": best,
      "best_ppl": math.exp(mean[best]),
      "runner_up": order[1],
      "runner_up_ratio": math.exp(mean[order[1]] - mean[best]),
      "seed_sd_of_loss": spread,
      "order": order,
    }
    by_seed = {s: {p: v[i] for p, v in losses.items()} for i, s in enumerate(seeds)}
    for mode in modes:
      for settings in settings_for(task, SETTINGS, mode):
        for seed in seeds:
          run = search_dir(work_dir, name, mode, settings, seed)
          if not (run / rank.RANKING_FILE).is_file():
            continue
          rows.append(_row(name, mode, settings, seed, run, mean, order, by_seed))
  value = {"model": MODEL.to_dict(), "steps": STEPS, "answers": answers, "rows": rows}
  runs.write_json(work_dir / "benchmark.json", value)
  runs.write_bytes(work_dir / "benchmark.md", markdown(value).encode())
  return rows


def _retrained(task_dir, seeds):
  losses = {}
  for pattern in ranking.all_patterns(MODEL.n_blocks):
    found = [runs.read_results(task_dir / "models" / f"{pattern}-seed{s}") for s in seeds]
    if all(found):
      losses[pattern] = [r["valid"]["loss"] for r in found]
  return losses


def _row(name, mode, settings, seed, run, mean, order, by_seed=None):
  record = runs.read_json(run / rank.RANKING_FILE)
  # A few-shot group has no architecture.json of its own (its sub-SuperNets have).
  architecture_file = run / runs.ARCHITECTURE_FILE
  architecture = runs.read_json(architecture_file) if architecture_file.is_file() else {}
  derived = {
    "argmax": record["argmax"],  # None for a decoupled SuperNet
    "shared_best": record["shared_best"],
    "perturbation": (record["perturbation"] or {}).get("pattern"),  # none when split
  }
  card = ranking.report_card(record["scores"], mean, by_seed)
  return {
    "task": name,
    "mode": mode,
    "settings": settings,
    "seed": seed,
    "probabilities": architecture.get("probabilities"),
    "kendall_tau": card["kendall_tau"],
    "card": card,
    **{
      kind: {
        "pattern": pattern,
        "ppl": math.exp(mean[pattern]),
        "rank": order.index(pattern) + 1,
        "ratio": math.exp(mean[pattern] - mean[order[0]]),
      }
      for kind, pattern in derived.items()
      if pattern
    },
  }


def markdown(value):
  """The benchmark as markdown: each task's answer, then one row per search."""
  lines = [
    "| task | bound ppl (in the evaluation's lanes) | best (retrained) | its ppl | "
    "runner-up, ratio | seed sd of loss |",
    "|---|---|---|---|---|---|",
  ]
  for name, a in value["answers"].items():
    sd = "–" if a["seed_sd_of_loss"] is None else f"{a['seed_sd_of_loss']:.4f}"
    lines.append(
      f"| {name} | {a['bound_ppl']:.3f} | `{a['best']}` | {a['best_ppl']:.3f} | "
      f"`{a['runner_up']}`, {a['runner_up_ratio']:.4f} | {sd} |"
    )
  lines += [
    "",
    "Each search's derivations among the retrained (rank of 81, perplexity ratio to the best), "
    "and its shared-weight ranking's report card against the retrained one over all 81 "
    "patterns (τ ± jackknife SE, ρ, τ in the best 30%, the regret of its best-scored pattern "
    "in nats and seed sds):",
    "",
    "| task | sampling | settings | seed | argmax (rank, ratio) | shared best (rank, ratio) | "
    "perturbation (rank, ratio) | Kendall τ | Spearman ρ | τ in the best 30% | pick, regret |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]

  def cell(d):
    return "–" if d is None else f"`{d['pattern']}` ({d['rank']}, {d['ratio']:.3f})"

  for r in value["rows"]:
    lines.append(
      f"| {r['task']} | {r['mode']} | {r['settings']} | {r['seed']} | "
      f"{cell(r.get('argmax'))} | {cell(r['shared_best'])} | {cell(r.get('perturbation'))} | "
      f"{rank.card_cells(r['card'])} |"
    )
  return "\n".join(lines) + "\n"

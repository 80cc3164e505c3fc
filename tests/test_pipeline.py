"""The pipeline: derivations on hand-made probabilities, and search -> rank -> derive ->
retrain -> compare end to end on a tiny config: one study over two seeds, each with a
single-level and a held-out search and every kind of derivation, read by several tests
(each seed a whole pipeline; the shared-weight ranking and what derives from it; the
comparison over seeds; a rerun that trains nothing)."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import counting_dataset
from helpers import error_line
from helpers import read_events
from helpers import run_script
from helpers import training_flags
from helpers import with_tests
from par.config import ModelConfig
from par.config import TrainConfig
from par.errors import ParError
from par.search import intervals
from par.search import patterns
from par.search import ranking
from par.study import fewshot
from par.study import pipeline
from par.study import timing
from par.train import summaries


def test_derivations_from_hand_made_probabilities():
  probabilities = [
    [0.5, 0.3, 0.2],  # s
    [0.2, 0.7, 0.1],  # f
    [0.1, 0.2, 0.7],  # i
    [0.4, 0.5, 0.1],  # f
    [0.6, 0.2, 0.2],  # s
    [0.3, 0.3, 0.4],
  ]  # i
  derived = patterns.derivations({"search": probabilities}, [0.0], 6)
  # The argmax has 2 attention blocks in 6: the rule at p = 3 (one in three, lower 2/3).
  assert derived == {"argmax": "sfifsi", "rule p=3": "fsfsff", "baseline": "sfsfsf"}
  derived = patterns.derivations({"search": probabilities}, [2, 6], 6)
  assert derived["rule p=2"] == "sfssff" and derived["rule p=6"] == "ffsfff"
  no_attention = np.tile([0.1, 0.8, 0.1], (4, 1))
  sfsf = np.asarray(probabilities)[[0, 1, 4, 3]]
  two = patterns.derivations({"search": no_attention, "search-split0.2": sfsf}, [0], 4)
  assert two == {
    "argmax of search": "ffff",
    "argmax of search-split0.2": "sfsf",
    "rule p=4": "fsff",  # at least one attention block
    "rule p=2": "sfsf",
    "baseline": "sfsf",
  }
  assert patterns.baseline_pattern(6) == "sfsfsf" and patterns.baseline_pattern(5) == "sfsfs"


def tiny_search(data_dir, **schedule):
  """The pipelines' tiny search: a 3-block model of width 16 on `data_dir`."""
  return TrainConfig(
    model=ModelConfig(d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,)),
    data_dir=str(data_dir),
    max_lr=3e-3,
    warmup_steps=2,
    arch_lr=0.05,
    **schedule,
  )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("pipeline"), valid_lines=60, test_lines=50)


# --- one pipeline over seeds, end to end --------------------------------------------------------
# Trained once (a session fixture) and read by the tests below, which share one xdist group so
# that one worker trains it: two seeds, each with a single-level and a held-out search, and
# every kind of derivation.

STUDY_SEEDS = (3, 4)
STUDY_DERIVE = ["argmax", "rule", "perturbation", "shared_best", "sandwich=1", "random=1"]
SEARCHES = ("search", "search-split0.5")


def study_config(data_dir):
  config = tiny_search(
    data_dir, train_steps=6, steps_per_loop=3, log_every=3, checkpoint_every=6, plot_every=3
  )
  return dataclasses.replace(config, keep_best=True)


def run_study(config, work_dir, seeds=STUDY_SEEDS):
  return pipeline.run_pipeline(
    config,
    work_dir,
    ratios=[2],
    arch_splits=[0.0, 0.5],
    rounds=1,
    derive=STUDY_DERIVE,
    ranking_tokens=64,
    seeds=seeds,
  )


LOOPS = []  # every training and evaluation loop the study made, to count their traces


@pytest.fixture(scope="session")
def study(tmp_path_factory, data_dir):
  """(work directory, the searches' config, the rows over seeds) of the pipeline above."""
  from par.train import evaluate
  from par.train import steps

  work = tmp_path_factory.mktemp("study")
  config = study_config(data_dir)
  with pytest.MonkeyPatch.context() as patch:
    for kind in (steps.StepLoop, evaluate.Evaluator):
      made = kind.__init__
      patch.setattr(
        kind,
        "__init__",
        lambda self, *a, _made=made, **k: (LOOPS.append(self), _made(self, *a, **k))[1],
      )
    return work, config, run_study(config, work)


@pytest.mark.slow
def test_every_loop_is_traced_once_for_each_shape_it_runs(study):
  # TensorFlow warns of retracing when a pipeline trains many models in one process: each
  # model's loops are traced once, and it counts those traces together. Hidden, with a line
  # saying so (`cli.one_trace_per_model`): true only while no loop object is traced more
  # than once for each shape of data it runs (training: one; evaluation: one per layout).
  from par.train import evaluate

  assert len(LOOPS) > 20
  for loop in LOOPS:
    function = loop._run if isinstance(loop, evaluate.Evaluator) else loop.run
    limit = 2 if isinstance(loop, evaluate.Evaluator) else 1  # the valid and test layouts
    assert function.experimental_get_tracing_count() <= limit, loop


def nll(run):
  return np.load(Path(run) / "test_nll.npy").astype(np.float64)


@pytest.mark.slow
def test_each_seed_holds_a_whole_pipeline(study):
  # Each seed's directory is a one-seed pipeline: its searches, retrained patterns, table,
  # comparison with the baseline, figures and TensorBoard runs.
  work, _, _ = study
  seed_dir = work / "seed-3"
  summary = json.loads((seed_dir / "results.json").read_text())
  rows, derived = summary["rows"], summary["patterns"]
  assert summary["seed"] == 3
  assert derived["rule p=2"] == derived["sandwich k=1"] == "ssf" and derived["baseline"] == "sfs"
  names = [row["model"] for row in rows]
  assert names[:2] == ["search (SuperNet)", "search-split0.5 (SuperNet)"]
  held_out = json.loads((seed_dir / "search-split0.5" / "config.json").read_text())["config"]
  assert held_out["arch_split"] == 0.5
  assert summary["searches"]["search-split0.5"]["arch_split"] == 0.5
  assert {"argmax of search", "argmax of search-split0.5"} <= set(derived)
  assert any("rule p=2" in name and "sandwich k=1" in name for name in names)  # Trained once.
  assert len(rows) == 2 + len(set(derived.values()))
  for row in rows[2:]:
    assert row["run"] == str(seed_dir / "models" / row["pattern"])
    saved = TrainConfig.from_dict(json.loads(Path(row["run"], "config.json").read_text())["config"])
    assert saved.model.architecture == row["pattern"]
    assert (saved.train_steps, saved.max_lr, saved.seed) == (6, 3e-3, 3)  # Same budget.
    assert saved.arch_split == 0.0  # what only a search has, left out
    assert row["attention_blocks"] == row["pattern"].count("s")
  for row in rows:
    assert row["train_seconds_per_token"] > 0 and row["eval_seconds_per_token"] > 0
    assert row["train_tokens_per_second_seen"] > 0
    assert row["valid"]["token_perplexity"] > 1 and "test" in row and row["steps"] == 6
    assert row["best"]["valid"]["loss"] <= row["valid"]["loss"] and "test" in row["best"]
  assert rows[0]["flops_per_token"] > max(r["flops_per_token"] for r in rows[2:])
  table, agreement = (seed_dir / "results.md").read_text().split("\n\nShared-weight ranking")
  table, against = table.split("\n\nAgainst the interleaved baseline")
  assert table.count("\n") == 1 + len(rows) and "`sfs`" in table
  # Against the baseline: each retrained model's saved per-token test NLL scores what its
  # results.json reports, and the bootstrap's difference is the mean of the paired arrays.
  baseline = nll(seed_dir / "models" / "sfs")
  for row in rows[2:]:
    mine = nll(row["run"])
    assert mine.size == row["test"]["tokens"]
    assert mine.mean() == pytest.approx(row["test"]["loss"], rel=1e-5)
    assert row["positions"]["thirds"] == list(intervals.positions(row["pattern"]).thirds)
    if row["pattern"] == "sfs":
      assert "vs_baseline" not in row
      continue
    c = row["vs_baseline"]
    assert c["difference"] == pytest.approx(float(np.mean(mine - baseline)), rel=1e-6)
    assert c["low"] <= c["difference"] <= c["high"] and c["seeds"] == 1
    assert f"`{row['pattern']}` | {c['difference']:+.4f}" in against
  assert against.count("\n| ") == 1 + len(rows) - 2
  assert agreement.count("\n| search") == 3  # the header, then one row per search
  for name in SEARCHES:
    for figure in ("architecture", "probabilities"):
      assert (seed_dir / f"{name}-{figure}.png").is_file()
      assert (seed_dir / f"{name}-{figure}.pdf").read_bytes()[:5] == b"%PDF-"
  assert (seed_dir / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (seed_dir / "tradeoff.pdf").read_bytes()[:5] == b"%PDF-"

  # TensorBoard over the seed's directory: the HParams experiment at its root, and each run's
  # measured times once (a rerun's measurement replaces the one before).
  events = read_events(seed_dir)
  assert [tag for tag, *_ in events["."]] == ["_hparams_/experiment"]
  for row in rows:
    run = Path(row["run"]).relative_to(seed_dir)
    ((tag, _, _, _),) = events[str(run)]  # the run's HParams session, written once
    assert tag == "_hparams_/session_start_info"
    session = session_hparams(Path(row["run"]))
    assert session["pattern"].string_value == row["pattern"]
    if row["attention_blocks"] is None:  # a SuperNet: no count to show (it was -1)
      assert set(session) == set(summaries.HPARAM_NAMES) - {"attention_blocks"}
    else:
      assert set(session) == set(summaries.HPARAM_NAMES)
      assert session["attention_blocks"].number_value == row["attention_blocks"]
    timing = events[str(run / "timing")]
    assert sorted(tag for tag, *_ in timing) == [summaries.EVAL_TIME, summaries.TRAIN_TIME]
    assert {tag: value for tag, _, _, value in timing}[summaries.TRAIN_TIME] == (
      pytest.approx(row["train_seconds_per_token"] * 1e6, rel=1e-6)
    )
  assert all(events.values())  # no empty run
  # A retrained (fixed) model writes no search tags, and has no search figures.
  fixed = Path(rows[-1]["run"])
  train_tags = {tag for tag, *_ in events[str(fixed.relative_to(seed_dir) / "train")]}
  assert "loss" in train_tags and not [t for t in train_tags if t.startswith("search/")]
  assert sorted(p.name for p in (fixed / "plots").iterdir()) == ["curves.pdf", "curves.png"]


@pytest.mark.slow
def test_each_search_ranks_every_pattern_and_derives_from_its_ranking(study):
  work, _, _ = study
  summary = json.loads((work / "seed-4" / "results.json").read_text())
  derived = summary["patterns"]
  retrained = {
    r["pattern"]: r["valid"]["loss"] for r in summary["rows"] if r["attention_blocks"] is not None
  }
  for name in SEARCHES:
    search = work / "seed-4" / name
    ranked = json.loads((search / "ranking.json").read_text())
    assert len(ranked["scores"]) == 27 and ranked["tokens"] == 64  # every pattern of 3 blocks
    assert ranked["order"] == sorted(ranked["scores"], key=lambda p: (ranked["scores"][p], p))
    assert (search / "plots" / "ranking.png").is_file()
    assert derived[f"shared_best of {name}"] == ranked["order"][0]
    assert derived[f"perturbation of {name}"] == ranked["perturbation"]["pattern"]
    # How far the ranking agrees with retraining, over every retrained pattern.
    agreement = summary["searches"][name]["ranking_agreement"]
    assert agreement["patterns"] == len(retrained)
    x = [ranked["scores"][p] for p in retrained]
    y = list(retrained.values())
    assert agreement["kendall_tau"] == pytest.approx(ranking.kendall_tau(x, y), nan_ok=True)
    assert agreement["spearman_rho"] == pytest.approx(ranking.spearman_rho(x, y), nan_ok=True)
  assert derived["sandwich k=1"] == "ssf" and derived["baseline"] == "sfs"
  # A random ordering of the baseline's blocks that is not the baseline.
  assert sorted(derived["random 1"]) == sorted("sfs") and derived["random 1"] != "sfs"
  assert "Kendall τ" in (work / "seed-4" / "results.md").read_text()


@pytest.mark.slow
def test_soft_and_uniform_searches_and_a_few_shot_split_share_one_retrained_panel(
  tmp_path, data_dir
):
  # The soft SuperNet and SPOS's uniform one searched side by side with one budget, only the
  # uniform one split into few-shot sub-SuperNets on block 0: neither decoupled search has
  # an argmax; the group is one more search with its shared best and report card; every
  # search is judged against the same retrained panel.
  config = tiny_search(
    data_dir, train_steps=6, steps_per_loop=3, log_every=3, checkpoint_every=6, plot_every=0
  )
  config = dataclasses.replace(config, plots=False)
  rows = pipeline.run_pipeline(
    config,
    tmp_path,
    ratios=[0],
    rounds=1,
    derive=["argmax", "shared_best", "perturbation"],
    ranking_tokens=64,
    few_shot_steps=2,
    samplings=["soft", "uniform"],
    few_shot_of=["uniform"],
  )
  summary = json.loads((tmp_path / "results.json").read_text())
  group = tmp_path / "search-uniform-few-shot"
  assert set(summary["searches"]) == {"search", "search-uniform", "search-uniform-few-shot"}
  for name, sampling in (("search", "soft"), ("search-uniform", "uniform")):
    saved = json.loads((tmp_path / name / "config.json").read_text())["config"]
    assert saved["model"]["sampling"] == sampling and saved["train_steps"] == 6
  assert not (tmp_path / "search-few-shot").exists()  # few_shot_of: the uniform one only
  split = summary["searches"]["search-uniform-few-shot"]
  assert (split["argmax"], split["perturbation"], split["run"]) == (None, None, str(group))
  for letter in "sfi":
    saved = json.loads((group / letter / "config.json").read_text())["config"]
    assert saved["model"]["architecture"] == f"{letter}??" and saved["train_steps"] == 2
    assert saved["warm_start"] == str((tmp_path / "search-uniform").resolve())
  record = json.loads((group / "ranking.json").read_text())
  # Every pattern scored by the sub-SuperNet that holds its block 0, as that one scored it.
  assert len(record["scores"]) == 27 and record["split_block"] == 0
  for pattern, score in record["scores"].items():
    own = json.loads((group / fewshot.held_by(pattern) / "ranking.json").read_text())["scores"]
    assert len(own) == 9 and own[pattern] == score
  assert fewshot.saved_group_ranking(group, tokens=64) == record
  # A damaged ranking.json is a cache: ranked again (the same), not a traceback.
  (group / "ranking.json").write_text("{")
  assert fewshot.saved_group_ranking(group, tokens=64) is None
  (group / "s" / "ranking.json").write_bytes(b"\xff")
  assert fewshot.rank_group(group, tokens=64)["scores"] == record["scores"]
  derived = summary["patterns"]
  best = derived["shared_best of search-uniform-few-shot"]
  assert best == record["shared_best"] == record["order"][0]
  assert "perturbation of search-uniform-few-shot" not in derived
  assert "perturbation of search-uniform" in derived and "perturbation of search" in derived
  # Only the soft search learns logits: one argmax, its own.
  assert [label for label in derived if label.startswith("argmax")] == ["argmax of search"]
  assert summary["searches"]["search-uniform"]["argmax"] is None
  # Each report card over the same retrained patterns, from its own scores.
  retrained = {r["pattern"]: r["valid"]["loss"] for r in rows if r["attention_blocks"] is not None}
  for name, path in (("search-uniform-few-shot", group), ("search", tmp_path / "search")):
    scores = json.loads((path / "ranking.json").read_text())["scores"]
    x = [scores[p] for p in retrained]
    assert summary["searches"][name]["ranking_agreement"]["kendall_tau"] == pytest.approx(
      ranking.kendall_tau(x, list(retrained.values())), nan_ok=True
    )
    assert summary["searches"][name]["ranking_agreement"]["patterns"] == len(retrained)
  assert "| search-uniform-few-shot |" in (tmp_path / "results.md").read_text()
  with pytest.raises(ParError, match="--few_shot_steps must be 0 or more, got -1"):
    pipeline.run_pipeline(config, tmp_path, few_shot_steps=-1)
  with pytest.raises(ParError, match="--few_shot_of=fair names a sampling --samplings does not"):
    pipeline.run_pipeline(config, tmp_path, samplings=["soft"], few_shot_of=["fair"])


def test_without_a_test_split_nothing_is_labelled_the_baseline_but_the_baseline(tmp_path):
  # wt2-small has train and valid only: no model is compared on test, the table says why,
  # only the baseline is "(the baseline)", and the depth figure plots valid, saying so.
  from par.study import seeds as seeds_lib

  def row(model, pattern):
    run = str(tmp_path / pattern)
    return {"model": model, "pattern": pattern, "run": run, "valid": {"token_perplexity": 9.0}}

  rows = [row("rule p=2", "ssf"), row("baseline", "sfs"), row("argmax", "fff")]
  pipeline.against_baseline(rows, tmp_path / "sfs")
  table = pipeline.baseline_markdown(rows)
  assert "not compared, the dataset has no test split" in table
  assert table.count("(the baseline)") == 1 and "| baseline | `sfs` | (the baseline) |" in table
  assert "| rule p=2 | `ssf` | – | – | – |" in table
  summary = {"rows": [dict(r, attention_blocks=r["pattern"].count("s")) for r in rows]}
  points, split = seeds_lib.depth_points({1: summary})
  assert split == "valid" and sorted(points) == [("fff", 1, 9.0), ("sfs", 1, 9.0), ("ssf", 1, 9.0)]


def test_a_damaged_json_par_wrote_is_one_line_naming_it(tmp_path):
  from par import runs
  from par.errors import DamagedFile

  for content in (b'{"probabilities": [[0.3', b"\xff\xfe", b""):
    (tmp_path / "architecture.json").write_bytes(content)
    with pytest.raises(DamagedFile, match=r"architecture.json is damaged \(") as raised:
      runs.read_json(tmp_path / "architecture.json")
    assert "\n" not in str(raised.value) and "remove it" in str(raised.value)
  assert runs.read_results(tmp_path) is None  # absent: no results yet


def test_study_cells_print_counts_whole_and_shared_times_without_a_spread():
  from par.study import seeds as seeds_lib

  assert [seeds_lib._short(v) for v in (10.5, 1.0, 5 / 3, 0.4)] == ["10.5", "1", "1.67", "0.4"]
  assert seeds_lib._time({"mean": 36.4, "sd": 0.0, "n": 3}) == "36.4"  # measured once
  assert seeds_lib._time({"mean": 36.4, "sd": 1.23, "n": 3}) == "36.4 ± 1.2"
  assert seeds_lib._time({"mean": 36.4, "sd": 0.0, "n": 1}) == "36.4"


def test_the_average_random_ordering_is_followed_over_seeds_not_over_orderings(tmp_path):
  # Two seeds of two orderings: each metric is the mean over a seed's orderings, then mean ±
  # sd over the seeds; against the baseline, one array a seed (its orderings' NLL averaged
  # token by token), so "seeds" and the seeds' sd count seeds, not orderings × seeds.
  from par.study import seeds as seeds_lib

  rng = np.random.default_rng(0)
  labelled = {}
  for s in (1, 2):
    labelled[s] = {}
    for label, pattern, ppl in (("random 1", "fsfs", 10 + s), ("random 2", "ssff", 20 + 3 * s)):
      run = tmp_path / f"{s}-{label}"
      run.mkdir()
      np.save(run / "test_nll.npy", rng.normal(3, 1, 512))
      labelled[s][label] = {
        "pattern": pattern,
        "run": str(run),
        "valid": {"token_perplexity": ppl},
        "test": {"token_perplexity": ppl},
        "train_seconds_per_token": 1e-6,
        "eval_seconds_per_token": 1e-6,
        "params": 5,
        "flops_per_token": 7,
      }
    labelled[s]["baseline"] = dict(labelled[s]["random 1"], run=str(tmp_path / f"{s}-base"))
    (tmp_path / f"{s}-base").mkdir()
    np.save(tmp_path / f"{s}-base" / "test_nll.npy", rng.normal(3, 1, 512))
  bases = [str(tmp_path / f"{s}-base") for s in (1, 2)]
  rows = [{"model": "baseline", "fixed": True, "seeds": [1, 2], "runs": bases}]
  seeds_lib._against_random(rows, labelled, [1, 2])
  row, baseline = rows
  assert row["model"] == "random orderings (average)" and row["pattern_label"] == "2 orderings"
  means = [np.mean([10 + s, 20 + 3 * s]) for s in (1, 2)]  # 16.5 and 18
  assert row["valid_ppl"] == {
    "mean": pytest.approx(np.mean(means)),
    "sd": pytest.approx(np.std(means, ddof=1)),
    "n": 2,
  }
  c = row["vs_baseline"]
  average = [
    (nll(tmp_path / f"{s}-random 1") + nll(tmp_path / f"{s}-random 2")) / 2 for s in (1, 2)
  ]
  by_seed = [float(np.mean(average[k] - nll(tmp_path / f"{s}-base"))) for k, s in enumerate((1, 2))]
  assert c["seeds"] == 2 and c["tokens"] == 1024
  assert c["by_seed"] == pytest.approx(by_seed) and c["difference"] == pytest.approx(
    np.mean(by_seed)
  )
  assert c["seed_sd"] == pytest.approx(np.std(by_seed, ddof=1))
  assert row["depth"]["n"] == 2 and row["attention_blocks"]["mean"] == 2.0
  assert baseline["vs_random"]["seeds"] == 2


def session_hparams(run_dir):
  """The hparams of the HParams session in a run's own directory."""
  import tensorflow as tf
  from tensorboard.plugins.hparams import plugin_data_pb2

  (path,) = run_dir.glob("events.out.tfevents.*")
  for event in tf.compat.v1.train.summary_iterator(str(path)):
    for value in event.summary.value:
      if value.tag == "_hparams_/session_start_info":
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        return dict(data.session_start_info.hparams.items())
  raise AssertionError(f"no HParams session in {run_dir}")


def test_times_are_each_models_fastest_over_interleaved_rounds(monkeypatch, tmp_path):
  measured = iter([(5, 9), (7, 1), (4, 8), (6, 3), (5, 2), (8, 4)])  # a, b, a, b, a, b
  calls = []
  monkeypatch.setattr(timing, "measure_times", lambda d: calls.append(d) or next(measured))
  # "a2" is "a" with another seed: one setting, measured once, through "a".
  monkeypatch.setattr(timing, "_timing_key", lambda d: d[0])
  cache = tmp_path / "times.json"
  expected = {"a": (4, 2), "b": (6, 1), "a2": (4, 2)}
  assert timing.measure_all(["a", "b", "a2"], rounds=3, cache=cache) == expected
  assert calls == ["a", "b"] * 3
  # Called again: every time is in the cache, from as many rounds on this machine.
  assert timing.measure_all(["a2", "b"], rounds=2, cache=cache) == {"a2": (4, 2), "b": (6, 1)}
  assert calls == ["a", "b"] * 3
  # A new run, more rounds or another machine: everything is measured again.
  for change in ("new run", "more rounds", "other machine"):
    measured = iter([(1, 1)] * 8)
    del calls[:]
    dirs, rounds = (["a", "b", "c"], 1) if change == "new run" else (["a", "b"], 3)
    if change == "other machine":
      monkeypatch.setattr(timing, "_machine", lambda: "elsewhere")
    rounds += change == "more rounds"
    times = timing.measure_all(dirs, rounds=rounds, cache=cache)
    assert calls == dirs * rounds, change
    assert set(times.values()) == {(1, 1)}, change
    del calls[:]
    timing.measure_all(dirs, rounds=rounds, cache=cache)  # now kept
    assert calls == [], change
  # A damaged cache is measured again (with a warning), not a traceback.
  measured = iter([(2, 2)] * 8)
  monkeypatch.setattr(timing, "measure_times", lambda d: calls.append(d) or next(measured))
  cache.write_text('{"machine": "else')
  assert timing.measure_all(["a", "b"], rounds=1, cache=cache) == {"a": (2, 2), "b": (2, 2)}
  assert calls == ["a", "b"]
  assert "--timing_rounds must be at least 1, got 0" in error_line(
    run_script("scripts/pipeline.py", "--work_dir=x", "--timing_rounds=0")
  )


def test_markdown_shows_the_best_weights_where_they_differ():
  def row(model, steps, valid, best_step, best_valid):
    return {
      "model": model,
      "pattern": "sfsf",
      "attention_blocks": 2,
      "params": 1234567,
      "flops_per_token": 2.5e6,
      "train_seconds_per_token": 41.25e-6,
      "eval_seconds_per_token": 9.04e-6,
      "steps": steps,
      "valid": {"token_perplexity": valid},
      "best": {"step": best_step, "valid": {"token_perplexity": best_valid}},
    }

  table = pipeline.markdown([row("a", 100, 120.456, 60, 110.0), row("b", 100, 99.0, 100, 99.0)])
  lines = table.splitlines()
  assert lines[2] == (
    "| a | `sfsf` | 2 | 1,234,567 | 2.50 M | 41.2 | 9.0 | 120.46 / 110.00 | – | – |"
  )
  assert lines[3].endswith("| 99.00 | – | – |")  # the last weights are the best


def test_retrained_models_leave_out_what_only_a_search_has():
  search = TrainConfig(
    model=ModelConfig(vocab_size=100, n_blocks=4, cutoffs=(20,)),
    arch_split=0.2,
    resource="latency",
    resource_weight=0.5,
    resource_target=0.3,
    keep_best=True,
    max_lr=3e-4,
  ).validate()
  fixed = pipeline.retrain_config(search, "sfff").validate()
  assert fixed.model.architecture == "sfff" and fixed.arch_split == 0.0
  assert (fixed.resource, fixed.resource_weight, fixed.resource_target) == ("none", 0.0, 0.0)
  assert fixed.keep_best and fixed.max_lr == 3e-4  # the rest as the search had it


def test_pipeline_script_refuses_a_fixed_architecture(tmp_path):
  assert "leave --architecture empty" in error_line(
    run_script(
      "scripts/pipeline.py",
      f"--work_dir={tmp_path}",
      "--flagfile=configs/tiny.flags",
      "--architecture=sfsf",
    )
  )
  assert "--ratio must be 0" in error_line(
    run_script("scripts/pipeline.py", f"--work_dir={tmp_path}", "--ratio=3", "--ratio=-1")
  )
  assert "--arch_splits must lie in [0, 1), got 1.0" in error_line(
    run_script(
      "scripts/pipeline.py", f"--work_dir={tmp_path}", "--arch_splits=0", "--arch_splits=1"
    )
  )


def test_tradeoff_script_refuses_a_directory_without_results(tmp_path):
  line = error_line(
    run_script("scripts/tradeoff.py", f"--work_dirs={tmp_path}", f"--output={tmp_path}/f")
  )
  assert line == f"error: {tmp_path}/results.json does not exist: run par-pipeline to the end first"
  (tmp_path / "results.json").write_text("{}")
  line = error_line(
    run_script("scripts/tradeoff.py", f"--work_dirs={tmp_path}", f"--output={tmp_path}/f")
  )
  assert line.startswith(f"error: {tmp_path}/results.json is not a pipeline's results")
  # A row without a key it draws; no row with a valid perplexity (it drew empty figures and
  # exited 0); --output a directory or with a suffix (it wrote dir.png beside it, f.png.png).
  row = {
    "model": "m",
    "pattern": "sf",
    "attention_blocks": 1,
    "train_seconds_per_token": 1e-6,
    "eval_seconds_per_token": 1e-6,
  }
  for rows, message in (
    ([dict(row, valid={"token_perplexity": 9.0}), {"model": "x"}], "row 2 has no pattern, "),
    ([], "has no model with a valid perplexity: nothing to draw"),
    ([row], "has no model with a valid perplexity: nothing to draw"),
  ):
    (tmp_path / "results.json").write_text(json.dumps({"seed": 1, "rows": rows}))
    line = error_line(
      run_script("scripts/tradeoff.py", f"--work_dirs={tmp_path}", f"--output={tmp_path}/f")
    )
    assert line.startswith(f"error: {tmp_path}/results.json") and message in line, line
  (tmp_path / "results.json").write_text(
    json.dumps({"seed": 1, "rows": [dict(row, valid={"token_perplexity": 9.0})]})
  )
  for output, message in (
    (f"{tmp_path}/", "not a directory"),
    (str(tmp_path), "not a directory"),
    (f"{tmp_path}/f.png", "without a suffix"),
  ):
    line = error_line(
      run_script("scripts/tradeoff.py", f"--work_dirs={tmp_path}", f"--output={output}")
    )
    assert line.startswith("error: --output") and message in line, line
  assert not list(tmp_path.parent.glob(f"{tmp_path.name}.*")) and not list(tmp_path.glob("f.*"))


def test_pipeline_refuses_repeated_searches(tmp_path):
  config = TrainConfig(model=ModelConfig(n_blocks=4), data_dir=str(tmp_path))
  with pytest.raises(ParError, match="both name the search"):
    pipeline.run_pipeline(config, tmp_path, arch_splits=[0.2, 0.2])


@pytest.mark.slow
def test_the_study_over_seeds_compares_every_derivation(study):
  from par.study import seeds

  work, config, rows = study
  per_seed = {s: json.loads((work / f"seed-{s}" / "results.json").read_text()) for s in (3, 4)}
  for s, summary in per_seed.items():
    assert summary["seed"] == s
    for row in summary["rows"]:
      saved = json.loads(Path(row["run"], "config.json").read_text())["config"]
      assert saved["seed"] == s and Path(row["run"]).parent.name in ("models", f"seed-{s}")
  # The random ordering is the same in both seeds; the fixed derivations too.
  assert per_seed[3]["patterns"]["random 1"] == per_seed[4]["patterns"]["random 1"]
  assert per_seed[3]["patterns"]["sandwich k=1"] == "ssf"
  summary = json.loads((work / "results.json").read_text())
  assert summary["seeds"] == [3, 4] and summary["rows"] == json.loads(json.dumps(rows))
  by_model = {row["model"]: row for row in rows}
  pooled = by_model.pop("random orderings (average)")
  supernets = {f"{name} (SuperNet)" for name in SEARCHES}
  assert set(by_model) == supernets | set(per_seed[3]["patterns"])
  assert [row["model"] for row in rows][-2:] == ["random orderings (average)", "baseline"]
  assert pooled["patterns"] == [per_seed[3]["patterns"]["random 1"]] * 2
  assert pooled["vs_baseline"]["difference"] == by_model["random 1"]["vs_baseline"]["difference"]
  assert pooled["valid_ppl"] == by_model["random 1"]["valid_ppl"]  # one ordering: its own row

  for label, row in by_model.items():
    seed_rows = [seeds.by_label(per_seed[s])[label] for s in (3, 4)]
    valid = [r["valid"]["token_perplexity"] for r in seed_rows]
    assert row["valid_ppl"]["mean"] == pytest.approx(np.mean(valid), rel=1e-12)
    assert row["valid_ppl"]["sd"] == pytest.approx(np.std(valid, ddof=1), rel=1e-9)
    assert row["patterns"] == [r["pattern"] for r in seed_rows]
    if len(set(row["patterns"])) == 1:  # one pattern, one time: measured once for both seeds
      assert seed_rows[0]["train_seconds_per_token"] == seed_rows[1]["train_seconds_per_token"]
    if row["fixed"] and label != "random 1":
      # Against the average random ordering (here the only one), pooled over seeds.
      randoms = [seeds.by_label(per_seed[s])["random 1"]["run"] for s in (3, 4)]
      pairs = [nll(r["run"]) - nll(q) for r, q in zip(seed_rows, randoms)]
      assert row["vs_random"]["difference"] == pytest.approx(
        float(np.concatenate(pairs).mean()), rel=1e-6, abs=1e-12
      )
    else:
      assert "vs_random" not in row
    if not row["fixed"] or label == "baseline" or set(row["patterns"]) == {"sfs"}:
      assert "vs_baseline" not in row
      continue
    # Pooled over seeds: the difference is the mean over both seeds' tokens of each model's
    # NLL minus its own seed's baseline's.
    differences = [
      nll(r["run"]) - nll(work / f"seed-{s}" / "models" / "sfs") for s, r in zip((3, 4), seed_rows)
    ]
    c = row["vs_baseline"]
    assert c["seeds"] == 2 and c["tokens"] == sum(d.size for d in differences)
    assert c["difference"] == pytest.approx(float(np.concatenate(differences).mean()), rel=1e-6)
    assert c["low"] <= c["difference"] <= c["high"]
    assert c["by_seed"] == pytest.approx([float(d.mean()) for d in differences], rel=1e-6)
    assert c["seed_sd"] == pytest.approx(float(np.std(c["by_seed"], ddof=1)), rel=1e-9)
  # Against the strongest fixed references: the best random ordering and the best rule (here
  # one of each), pooled over seeds on test, the difference written out from the NLLs.
  for key, label in (("vs_best_random", "random 1"), ("vs_best_rule", "rule p=2")):
    reference = by_model[label]
    for model, row in by_model.items():
      skipped = model == label or model.startswith(label.split()[0])
      if not row["fixed"] or skipped or model == "random orderings (average)":
        assert key not in row
        continue
      if row["patterns"] == reference["patterns"]:
        continue  # (the same pattern: a difference of 0 either way)
      differences = [nll(r) - nll(q) for r, q in zip(row["runs"], reference["runs"])]
      c = row[key]
      assert c["against"] == label and c["seeds"] == 2
      assert c["difference"] == pytest.approx(float(np.concatenate(differences).mean()), rel=1e-6)
  # The noise ceiling: τ between the two seeds' retrained valid losses over the shared panel;
  # each SuperNet's τ over the same panel against its own seed's retraining.
  agreed = summary["agreement"]
  losses = {
    s: {
      r["pattern"]: r["valid"]["loss"]
      for r in per_seed[s]["rows"]
      if r["attention_blocks"] is not None
    }
    for s in (3, 4)
  }
  panel = sorted(set(losses[3]) & set(losses[4]))
  assert agreed["panel"] == panel and "sfs" in panel and "ssf" in panel
  tau = ranking.kendall_tau([losses[3][p] for p in panel], [losses[4][p] for p in panel])
  assert agreed["seed_to_seed"]["3-4"]["kendall_tau"] == pytest.approx(tau, nan_ok=True)
  for name in SEARCHES:
    scores = json.loads((work / "seed-4" / name / "ranking.json").read_text())["scores"]
    tau = ranking.kendall_tau([scores[p] for p in panel], [losses[4][p] for p in panel])
    assert agreed["searches"][name]["4"]["kendall_tau"] == pytest.approx(tau, nan_ok=True)
    skips = agreed["skips"]["searches"][name]["4"]
    free = [p for p in panel if "i" not in p]
    assert skips["skipping"] + skips["skip_free"] == len(panel) and skips["skip_free"] == len(free)
    tau = ranking.kendall_tau([scores[p] for p in free], [losses[4][p] for p in free])
    assert skips["skip_free_tau"] == pytest.approx(tau, nan_ok=True)

    # Its cost: its training (its steps' tokens at the pace it reported) and its ranking,
    # over the baseline's training, worked out here from the files.
    def seconds(run):
      results = json.loads((run / "results.json").read_text())
      meta = json.loads((Path(config.data_dir) / "meta.json").read_text())
      tokens = meta["batch_size"] * meta["seq_len"]
      return results["steps"] * tokens / results["train_tokens_per_second"]

    ranked = json.loads((work / "seed-4" / name / "ranking.json").read_text())["seconds"]
    spent = seconds(work / "seed-4" / name) + ranked
    cost = agreed["searches"][name]["4"]["cost"]
    assert cost["seconds"] == pytest.approx(spent, rel=1e-9)
    assert cost["trainings"] == pytest.approx(spent / seconds(work / "seed-4/models/sfs"), rel=1e-9)
  table = (work / "results.md").read_text()
  # The three tables: a header and a line per row; a header and a line per row compared with
  # the random orderings; a header, a line per search and seed, one per pair of seeds.
  against_random = sum("vs_random" in row for row in rows)
  against_best = sum(key in row for row in rows for key in ("vs_best_random", "vs_best_rule"))
  assert table.count("\n| ") == (
    (1 + len(rows)) + (1 + against_random) + (2 + against_best) + (1 + 2 * 2 + 1)
  )
  assert "noise ceiling" in table and "average random ordering" in table
  # The goal's verdict for each search, from its cards: mean τ ≥ 0.5 and every seed's pick
  # within one seed sd of the panel's best.
  for name in SEARCHES:
    cards = agreed["searches"][name].values()
    mean = np.mean([c["kendall_tau"] for c in cards])
    within = sum(c["regret_sd"] <= 1 for c in cards if np.isfinite(c["regret_sd"]))
    verdict = "meets the goal" if mean >= 0.5 and within == 2 else "does not meet the goal"
    line = f"- {name}: mean τ {mean:.2f} (goal ≥ 0.5); its pick within 1 seed sd of the "
    assert f"{line}panel's best in {within} of 2 seeds: {verdict}" in table
  for name in ("tradeoff", "depth", "agreement"):
    assert (work / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_the_skip_paragraph_gives_each_searchs_shift_and_tau_over_seeds():
  from par.study import seeds

  def bias(shift, tau):
    return {"skipping": 2, "rank_shift": shift, "skip_free": 4, "skip_free_tau": tau}

  agreed = {
    "skips": {
      "searches": {"search": {1: bias(3.0, 0.2), 2: bias(1.0, 0.4)}, "fair": {1: bias(-1, 0)}},
      "seed_to_seed": {"1-2": bias(-0.5, 0.6)},
    }
  }
  line = seeds.skip_lines(agreed)
  # Mean ± sd (ddof 1) over seeds: shifts 3 and 1 → 2.0 ± 1.4; τ 0.2 and 0.4 → 0.30 ± 0.14.
  assert line.startswith("The 2 patterns of the panel that skip a block") and "of 6 each" in line
  assert "search 2.0 ± 1.4 places, τ 0.30 ± 0.14; fair -1.0 places, τ 0.00;" in line
  assert line.endswith("another's: 0.5 places (absolute), τ 0.60.")
  for searches in (
    {"search": {1: dict(bias(1, 0), skipping=0)}},
    {"s": {1: bias(1, 0) | {"skip_free": 2}}},
  ):
    assert seeds.skip_lines({"skips": {"searches": searches, "seed_to_seed": {}}}) == ""


@pytest.mark.slow
def test_a_finished_pipeline_run_again_trains_nothing(study, monkeypatch):
  work, config, rows = study
  logs = {p: p.read_bytes() for p in work.rglob("training.log")}
  assert len(logs) == 2 * 2 + len({r for row in rows if row["fixed"] for r in row["runs"]})

  # One seed's directory is a one-seed pipeline: the script on it, with that seed, reuses
  # every run and ranking (and, given the study's times.json, every time) and prints its
  # table.
  seed_dir = work / "seed-3"
  shutil.copy(work / "times.json", seed_dir / "times.json")
  flags = training_flags(dataclasses.replace(config, seed=3)) + [
    "--ratio=2",
    "--arch_splits=0",
    "--arch_splits=0.5",
    "--timing_rounds=1",
    "--ranking_tokens=64",
    *[f"--derive={d}" for d in STUDY_DERIVE],
  ]
  before = json.loads((seed_dir / "results.json").read_text())
  result = run_script("scripts/pipeline.py", f"--work_dir={seed_dir}", *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((seed_dir / "results.json").read_text()) == before
  assert any(
    "rule p=2" in line and "sandwich k=1" in line and "| `ssf` |" in line
    for line in result.stdout.splitlines()
  )
  assert result.stdout == pipeline.markdown(before["rows"])

  # The whole study again, here: nothing trains, every time comes from times.json, and the
  # rows come out the same.
  monkeypatch.setattr(pipeline.trainer, "train_and_evaluate", _refuse_to_train)
  assert run_study(config, work) == rows
  assert {p: p.read_bytes() for p in work.rglob("training.log")} == logs

  # par-tradeoff draws two pipelines in one figure, and redraws a study's alone.
  for work_dirs, output in (
    (f"{seed_dir},{work / 'seed-4'}", work / "both"),
    (str(work), work / "again"),
  ):
    result = run_script("scripts/tradeoff.py", f"--work_dirs={work_dirs}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert Path(f"{output}.pdf").read_bytes()[:5] == b"%PDF-" and Path(f"{output}.png").is_file()
  result = run_script(
    "scripts/tradeoff.py", f"--work_dirs={work},{seed_dir}", f"--output={work / 'mixed'}"
  )
  assert "drawn alone: give it as the only --work_dirs" in error_line(result)

  # Other settings in the same work directory are refused, and a seed given twice.
  with pytest.raises(ParError, match="holds a run with other settings"):
    pipeline.run_pipeline(dataclasses.replace(config, seed=2), seed_dir)
  with pytest.raises(ParError, match="lists a seed twice"):
    pipeline.run_pipeline(config, work, seeds=[3, 3])
  # A training run's directory is not a work directory: its results.json stays its own.
  run = Path(rows[-1]["runs"][0])
  before = (run / "results.json").read_bytes()
  with pytest.raises(ParError, match="is a training run's directory"):
    pipeline.run_pipeline(config, run)
  assert (run / "results.json").read_bytes() == before


@pytest.mark.slow
def test_a_kept_test_nll_that_is_not_the_runs_is_computed_again(study, tmp_path, caplog):
  # test_nll.npy is a cache: another model's array of the same length, or a truncated file,
  # is computed again from the export (with a warning), never trusted.
  from par.study import compare

  work, _, _ = study
  models = work / "seed-3" / "models"
  run = shutil.copytree(models / "sfs", tmp_path / "sfs")
  own = nll(run)
  other = next(p for p in models.iterdir() if p.name != "sfs")
  for damage in (
    lambda: shutil.copy(other / "test_nll.npy", run / "test_nll.npy"),
    lambda: (run / "test_nll.npy").write_bytes(b"\x93NUMPY"),
  ):
    damage()
    caplog.clear()
    np.testing.assert_array_equal(compare.test_nll(run), own)
    assert "is not this run's test NLL" in caplog.text
    np.testing.assert_array_equal(nll(run), own)  # kept again, right this time
  # A results.json that is not the export's: one clear error, no array kept.
  results = json.loads((run / "results.json").read_text())
  results["test"]["nll"] += 1.0
  (run / "results.json").write_text(json.dumps(results))
  (run / "test_nll.npy").unlink()
  with pytest.raises(ParError, match="the exported model's test NLL is not its results"):
    compare.test_nll(run)
  assert not (run / "test_nll.npy").exists()


def _refuse_to_train(config, model_dir, strategy=None):
  raise AssertionError(f"{model_dir} trained again")


def test_pipeline_script_refuses_bad_seeds_and_jobs(tmp_path):
  for flags, message in (
    (["--seeds=1,x"], "--seeds takes whole numbers separated by commas, got 1,x"),
    (["--seeds=2,2"], "--seeds lists a seed twice: 2,2"),
    (["--seeds=1,-1"], "--seeds must lie in [0, 2^32), got -1"),
    (["--seed=4294967296"], "seed must lie in [0, 2^32), got 4294967296"),
    (["--few_shot_steps=-1"], "--few_shot_steps must be 0 or more, got -1"),
    (["--jobs=0"], "--jobs must be at least 1, got 0"),
    (["--jobs=2", "--strategy=mirrored"], "leave --strategy=mirrored out, or use --jobs=1"),
    (["--jobs=2", "--ray_address=auto"], "give --jobs or --ray_address"),
    (["--jobs=2", "--job_cpus=0"], "--job_cpus must be at least 1"),
    (["--ray_address=127.0.0.1:1"], "cannot connect to Ray at 127.0.0.1:1: Connection refused"),
    (["--ray_address=nowhere"], "--ray_address takes auto or HOST:PORT, got nowhere"),
    (["--sampling=fair", "--samplings=soft,uniform"], "--sampling=fair is not among --sa"),
    (["--samplings=soft,spos"], "--samplings takes soft, hard, single_path, uniform, fair; "),
    (["--samplings=uniform", "--arch_splits=0.2"], "--arch_splits hold data out for a coupled"),
    (["--samplings=soft", "--few_shot_of=fair"], "--few_shot_of=fair names a sampling"),
  ):
    result = run_script(
      "scripts/pipeline.py", "--flagfile=configs/tiny.flags", f"--work_dir={tmp_path}", *flags
    )
    assert result.returncode != 0 and message in error_line(result), flags
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_work_directory_keeps_one_layout(tmp_path):
  # One seed's pipeline keeps its runs and figures at the top; one over seeds in seed-<s>/
  # with the study's results.json and depth figure at the top. Written over each other, the
  # other layout's figures stayed beside the new results.json (a stale depth.png): refused.
  from par.config import TrainConfig
  from par.study import pipeline

  config = TrainConfig()
  (tmp_path / "one" / "models").mkdir(parents=True)
  (tmp_path / "study" / "seed-1").mkdir(parents=True)
  with pytest.raises(pipeline.ParError, match="holds a one-seed pipeline \\(models\\)"):
    pipeline.run_pipeline(config, tmp_path / "one", seeds=(1, 2))
  with pytest.raises(pipeline.ParError, match="holds a pipeline over seeds \\(seed-1\\)"):
    pipeline.run_pipeline(config, tmp_path / "study")
  assert sorted(p.name for p in tmp_path.rglob("*")) == ["models", "one", "seed-1", "study"]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_pipeline_on_a_ray_cluster_equals_the_one_in_this_process(
  ray_cluster, data_dir, tmp_path, monkeypatch
):
  # Two searches (single-level and held-out), their rankings and the retrained baseline as
  # tasks of a cluster of two nodes (two tasks at once: both nodes): every run's numbers are
  # those of the pipeline run here, in one process, one after another; a rerun trains nothing.
  from par.study import jobs

  config = tiny_search(
    data_dir,
    train_steps=4,
    steps_per_loop=2,
    log_every=2,
    checkpoint_every=4,
    plot_every=0,
    plots=False,
  )
  plan = dict(rounds=1, derive=[], ranking_tokens=32, arch_splits=[0.0, 0.5])
  pipeline.run_pipeline(config, tmp_path / "here", **plan)
  monkeypatch.setenv("RAY_AUTH_MODE", "token")
  monkeypatch.setenv("PYTHONPATH", with_tests(os.environ)["PYTHONPATH"])
  engine = jobs.Engine(address=ray_cluster)
  pipeline.run_pipeline(config, tmp_path / "there", jobs=engine, **plan)
  here, there = (
    json.loads((tmp_path / where / "results.json").read_text())["rows"]
    for where in ("here", "there")
  )
  assert [r["model"] for r in here] == [r["model"] for r in there]
  assert len(here) == 3  # two SuperNets and the baseline
  for a, b in zip(here, there):
    for split in ("valid", "test"):
      assert b[split]["loss"] == pytest.approx(a[split]["loss"], rel=1e-5), a["model"]
  started = []
  monkeypatch.setattr(jobs, "run_all", lambda calls, *a, **k: started.extend(calls) or [])
  pipeline.run_pipeline(config, tmp_path / "there", jobs=engine, **plan)
  assert not started

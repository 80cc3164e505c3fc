"""The SuperNet's ranking and the derivations beyond argmax: rank statistics against hand
computations, shared-weight scores against fixed models holding those weights, DARTS-PT's
perturbation on a SuperNet whose answer is built in, sandwich and random orderings by hand."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError
from par.model.par_model import ParModel
from par.search import evolution
from par.search import patterns
from par.search import ranking
from par.train import evaluate

# --- rank statistics ---------------------------------------------------------------------


def test_ranks_average_ties():
  np.testing.assert_array_equal(ranking.ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def test_kendall_tau_b_by_hand():
  # Pairs of (1, 2, 3, 4) against (1, 3, 2, 4): 5 concordant, 1 discordant, no ties.
  assert ranking.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
  assert ranking.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  # x = (1, 1, 2, 3), y = (1, 2, 2, 3): 6 pairs; x ties one pair, y ties one; the tied pairs
  # count neither way: concordant 4 ((0,2), (0,3), (1,3), (2,3)), discordant 0.
  # τ-b = 4 / sqrt((6 - 1)(6 - 1)) = 0.8.
  assert ranking.kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
  assert math.isnan(ranking.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_spearman_rho_by_hand():
  # No ties: 1 - 6 Σd² / (n (n² - 1)); d = (0, 1, -1, 0): 1 - 12 / 60 = 0.8.
  assert ranking.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
  # Ties: ranks x = (1.5, 1.5, 3, 4), y = (1, 2.5, 2.5, 4); Pearson of those by hand:
  # centred x = (-1, -1, 0.5, 1.5), y = (-1.5, 0, 0, 1.5); Σxy = 1.5 + 2.25 = 3.75,
  # Σx² = 4.5, Σy² = 4.5: ρ = 3.75 / 4.5.
  assert ranking.spearman_rho([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(3.75 / 4.5)
  # A NaN (a score that failed) has no rank: neither statistic pretends it does.
  for x, y in (([1, float("nan"), 3], [1, 2, 3]), ([1, 2, 3], [3, float("nan"), 1])):
    assert math.isnan(ranking.spearman_rho(x, y)) and math.isnan(ranking.kendall_tau(x, y))


def test_the_report_card_against_hand_computations_with_ties():
  from scipy import stats

  rng = np.random.default_rng(4)
  patterns = ranking.all_patterns(2)  # 9
  retrained = {p: float(rng.integers(0, 5)) for p in patterns}  # ties
  scores = {p: retrained[p] + float(rng.integers(0, 3)) for p in patterns}  # ties too
  by_seed = {s: {p: retrained[p] + rng.normal(0, 0.1) for p in patterns} for s in (1, 2, 3)}
  card = ranking.report_card(scores, retrained, by_seed)
  x, y = [scores[p] for p in patterns], [retrained[p] for p in patterns]
  assert card["patterns"] == 9
  assert card["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic)  # τ-b
  assert card["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
  # The jackknife, by a loop of scipy's τ-b on each panel less one pattern.
  left_out = [stats.kendalltau(x[:i] + x[i + 1 :], y[:i] + y[i + 1 :]).statistic for i in range(9)]
  expected = math.sqrt(8 / 9 * sum((t - np.mean(left_out)) ** 2 for t in left_out))
  assert card["tau_se"] == pytest.approx(expected)
  # τ in the best 30%: ceil(2.7) = 3 patterns, the lowest retrained losses (ties by name).
  best = sorted(patterns, key=lambda p: (retrained[p], p))[:3]
  assert card["top_patterns"] == 3
  top = stats.kendalltau([scores[p] for p in best], [retrained[p] for p in best]).statistic
  assert card["top_tau"] == pytest.approx(top, nan_ok=True)
  # The pick is the best score (ties by name); its regret against the panel's best.
  pick = min(patterns, key=lambda p: (scores[p], p))
  assert card["pick"] == pick and card["regret"] == pytest.approx(retrained[pick] - min(y))
  # The seeds: their sd (pooled over patterns) and the ceiling (mean τ over the 3 pairs).
  variances = [np.var([by_seed[s][p] for s in (1, 2, 3)], ddof=1) for p in patterns]
  assert card["seed_sd"] == pytest.approx(math.sqrt(np.mean(variances)))
  assert card["regret_sd"] == pytest.approx(card["regret"] / card["seed_sd"])
  pairs = [
    stats.kendalltau([by_seed[a][p] for p in patterns], [by_seed[b][p] for p in patterns])
    for a, b in ((1, 2), (1, 3), (2, 3))
  ]
  assert card["ceiling"] == pytest.approx(np.mean([t.statistic for t in pairs]))
  # A perfect ranking: τ 1, no spread, no regret; too few patterns: no SE, no top τ.
  perfect = ranking.report_card({"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "b": 2, "c": 3, "d": 4})
  assert perfect["kendall_tau"] == 1.0 and perfect["tau_se"] == 0.0 and perfect["regret"] == 0
  assert "ceiling" not in perfect and math.isnan(perfect["top_tau"])
  assert math.isnan(ranking.report_card({"a": 1, "b": 2}, {"a": 1, "b": 2})["tau_se"])


def test_the_skip_bias_by_hand():
  from scipy import stats

  # Retraining orders sf < fs < si < ii < ff (places 1 to 5; xx and extra are on one side
  # only); the scores order ii < si = fs < sf < ff: ii at place 1, si and fs tied at 2.5.
  retrained = {"sf": 1.0, "fs": 2.0, "si": 3.0, "ii": 4.0, "ff": 5.0, "xx": 0.0}
  scores = {"ii": 1.0, "si": 2.0, "fs": 2.0, "sf": 3.0, "ff": 4.0, "extra": 0.0}
  bias = ranking.skip_bias(scores, retrained)
  # Places of si: retraining 3, scores 2.5; of ii: 4 and 1: a mean shift of (0.5 + 3) / 2.
  assert bias["skipping"] == 2 and bias["rank_shift"] == pytest.approx(1.75)
  # Without them: sf, fs, ff retrain 1, 2, 5 and score 3, 2, 4: two pairs of three concordant.
  free = ["sf", "fs", "ff"]
  tau = stats.kendalltau([scores[p] for p in free], [retrained[p] for p in free]).statistic
  assert bias["skip_free"] == 3 and bias["skip_free_tau"] == pytest.approx(tau) == 1 / 3
  # A ranking that agrees with retraining shifts nothing; a panel without skips has no shift.
  assert ranking.skip_bias(retrained, retrained)["rank_shift"] == 0.0
  none = ranking.skip_bias({"sf": 1, "fs": 2}, {"sf": 2, "fs": 1})
  assert none["skipping"] == 0 and math.isnan(none["rank_shift"]) and none["skip_free_tau"] == -1


# --- which patterns ----------------------------------------------------------------------


def test_all_patterns_up_to_eight_blocks_then_a_stratified_sample():
  assert len(ranking.candidate_patterns(4)) == 81 == len(set(ranking.candidate_patterns(4)))
  assert len(ranking.candidate_patterns(8)) == 3**8
  sample = ranking.candidate_patterns(12, per_stratum=2, seed=3)
  assert sample == ranking.candidate_patterns(12, per_stratum=2, seed=3)  # seeded
  assert len(sample) == len(set(sample)) and all(len(p) == 12 for p in sample)
  strata = {}
  for pattern in sample:
    where = [k for k, kind in enumerate(pattern) if kind == "s"]
    # The third of the mean attention index, by hand: floor(3 m / n), the top one holding n.
    third = None if not where else min(math.floor(3 * (sum(where) / len(where)) / 12), 2)
    key = (pattern.count("s"), third)
    strata[key] = strata.get(key, 0) + 1
  assert all(v <= 2 for v in strata.values())
  assert {a for a, _ in strata} == set(range(13))  # every count of attention blocks
  assert {(3, 0), (3, 1), (3, 2)} <= set(strata)  # low, middle and high attention
  assert ranking.attention_depth("sffs") == 0.5 and ranking.attention_depth("ffff") is None


# --- derivations by hand -------------------------------------------------------------------


def test_sandwich_and_random_orderings_by_hand():
  assert patterns.sandwich_pattern(6, 0) == "sfsfsf" == patterns.baseline_pattern(6)
  assert patterns.sandwich_pattern(6, 1) == "ssfsff"
  assert patterns.sandwich_pattern(6, 2) == "sssfff"
  assert patterns.sandwich_pattern(8, 2) == "sssfsfff"  # s^2 (sf)^2 f^2
  with pytest.raises(ValueError):
    patterns.sandwich_pattern(6, 4)
  five = patterns.random_orderings(6, 5, seed=1)
  assert five == patterns.random_orderings(6, 5, seed=1) != patterns.random_orderings(6, 5, 2)
  assert len(set(five)) == 5 and "sfsfsf" not in five
  assert all(p.count("s") == 3 and set(p) == {"s", "f"} for p in five)
  assert len(patterns.random_orderings(4, 50)) == math.comb(4, 2) - 1  # all there are
  parsed = patterns.parse_derivations(["argmax", "sandwich=2", "random=3", "shared_best"], 6)
  assert parsed == [("argmax", None), ("sandwich", 2), ("random", 3), ("shared_best", None)]
  for bad in (
    "sandwich=4",
    "random=x",
    "median",
    "argmax=2",
    "random=²",
    "sandwich=¹",
    "pattern=sfsf",  # 4 blocks of 6
    "pattern=sfsfsx",
    "pattern=",
  ):
    with pytest.raises(ParError, match="--derive"):
      patterns.parse_derivations([bad], 6)
  # A panel named outright: the pattern itself, labelled by it.
  panel = patterns.parse_derivations(["pattern=fsffff", "pattern=iiffss"], 6)
  assert panel == [("pattern", "fsffff"), ("pattern", "iiffss")]
  assert patterns.derivations({"search": None}, [], 6, panel) == {
    "pattern fsffff": "fsffff",
    "pattern iiffss": "iiffss",
    "baseline": "sfsfsf",
  }
  derived = patterns.derivations(
    {"search": np.tile([0.1, 0.8, 0.1], (6, 1))},
    [],
    6,
    parsed,
    {"search": {"perturbation": "sfffff", "shared_best": "ssffff"}},
    seed=1,
  )
  assert derived == {
    "argmax": "ffffff",
    "sandwich k=2": "sssfff",
    "random 1": five[0],
    "random 2": five[1],
    "random 3": five[2],
    "shared_best": "ssffff",
    "baseline": "sfsfsf",
  }


def test_attention_placements_by_hand():
  table = {  # (place, k): the pattern of 6 blocks, written out by hand
    ("low", 1): "sfffff",
    ("middle", 1): "ffsfff",
    ("high", 1): "fffffs",
    ("even", 1): "fffsff",  # five feed-forward blocks cut 3 + 2 (2.5 rounded half up)
    ("low", 2): "ssffff",
    ("middle", 2): "ffssff",
    ("high", 2): "ffffss",
    ("even", 2): "fsffsf",  # four cut 1 + 2 + 1
    ("low", 3): "sssfff",
    ("middle", 3): "fsssff",
    ("high", 3): "fffsss",
    ("even", 3): "fsfssf",  # three cut 1 + 1 + 0 + 1
  }
  for (place, k), pattern in table.items():
    assert patterns.placement_pattern(6, place, k) == pattern
  # Jamba's one attention layer in eight sits in the middle of its block.
  assert patterns.placement_pattern(8, "even", 1) == "ffffsfff"
  # Evenly spaced is never first or last, up to most_placed; the next one would be.
  for n in range(3, 25):
    top = patterns.most_placed(n)
    for k in range(1, top + 1):
      even = patterns.placement_pattern(n, "even", k)
      assert even.count("s") == k and even[0] == even[-1] == "f", (n, k)
    beyond = patterns.placement_pattern(n, "even", top + 1)
    assert "s" in (beyond[0], beyond[-1]), n
  assert patterns.most_placed(6) == 3
  derived = patterns.derivations({"search": None}, [], 6, [("placements", 3)])
  assert {label: derived[label] for label in derived if label != "baseline"} == {
    f"{place} {k}": pattern for (place, k), pattern in table.items()
  }
  assert patterns.parse_derivations(["placements=3"], 6) == [("placements", 3)]
  for bad in ("placements=4", "placements=0", "placements=x"):
    with pytest.raises(ParError, match="--derive"):
      patterns.parse_derivations([bad], 6)


def test_search_plans_name_each_sampling_and_split_once():
  plan = patterns.search_plan(["soft", "uniform", "fair"], [0, 0.2])
  assert plan == [("soft", 0), ("soft", 0.2), ("uniform", 0.0), ("fair", 0.0)]
  names = [patterns.search_name(split, sampling) for sampling, split in plan]
  assert names == ["search", "search-split0.2", "search-uniform", "search-fair"]
  assert patterns.search_name(0.2, "hard") == "search-hard-split0.2"
  assert patterns.search_plan(["uniform"], [0]) == [("uniform", 0)]
  for samplings, splits, message in (
    (["soft", "soft"], [0], "lists a sampling twice"),
    (["softer"], [0], "--samplings takes soft, "),
    (["uniform", "fair"], [0.2], "--arch_splits hold data out for a coupled search"),
  ):
    with pytest.raises(ParError, match=message):
      patterns.search_plan(samplings, splits)


# --- shared weights ----------------------------------------------------------------------

MODEL = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("data"))


def _scorer(model, data_dir, count=3):
  evaluator = evaluate.Evaluator(model, MODEL.mem_len)
  return lambda: evaluator(records.load_dataset(data_dir, "valid").take(count), 4, records=count)


def test_a_patterns_shared_weight_score_is_a_fixed_model_with_those_weights(data_dir):
  supernet = ParModel(MODEL)
  supernet.build()
  rng = np.random.default_rng(0)
  for variable in supernet.architecture_variables():  # Learned-looking logits, restored after.
    variable.assign(rng.normal(size=3).astype(np.float32))
  before = [v.numpy().copy() for v in supernet.architecture_variables()]
  wanted = ["sfs", "fff", "iis", "sss"]
  scores = ranking.score_patterns(supernet, _scorer(supernet, data_dir), wanted)
  for pattern in wanted:
    fixed = supernet.to_fixed(pattern)
    assert scores[pattern] == pytest.approx(_scorer(fixed, data_dir)().loss, rel=1e-6)
  assert len(set(scores.values())) == 4
  for variable, value in zip(supernet.architecture_variables(), before):
    np.testing.assert_array_equal(variable.numpy(), value)


class _BuiltIn:
  """A SuperNet stand-in whose valid loss is built in: each block's mixture weights times a
  known usefulness of each branch (removing a useful branch hurts by its usefulness)."""

  def __init__(self, usefulness):
    self.usefulness = np.asarray(usefulness, np.float64)
    self.logits = [tf.Variable(np.zeros(3, np.float32)) for _ in self.usefulness]

  def architecture_variables(self):
    return self.logits

  @property
  def kinds(self):
    return "?" * len(self.logits)

  def evaluate(self):
    loss = 10.0
    for logits, useful in zip(self.logits, self.usefulness):
      loss -= float(tf.nn.softmax(tf.cast(logits, tf.float64)).numpy() @ useful)
    return evaluate.Result(loss, 1, 0)


def test_perturbation_keeps_the_branch_whose_removal_hurts_most():
  # Removing branch k of a block leaves the others at 1/2 each: the loss rises most where the
  # removed branch was the most useful, so the answer is each row's most useful branch.
  usefulness = [[3.0, 1.0, 0.0], [0.5, 2.0, 0.1], [0.0, 0.2, 1.5], [2.0, 2.1, 0.0]]
  model = _BuiltIn(usefulness)
  pattern, detail = ranking.perturbation(model, model.evaluate)
  assert pattern == "sfif"
  assert detail["loss"] == pytest.approx(10.0 - sum(sum(row) / 3 for row in usefulness))
  for block, row in enumerate(usefulness):
    others = [sum(r) / 3 for b, r in enumerate(usefulness) if b != block]
    for k in range(3):
      kept = [row[j] for j in range(3) if j != k]
      assert detail["removed"][block][k] == pytest.approx(10.0 - sum(others) - sum(kept) / 2)
  assert all(not np.any(v.numpy()) for v in model.logits)  # restored


def test_a_search_is_ranked_on_its_own_evaluation_terms_and_for_its_newest_checkpoint(
  tmp_path, data_dir
):
  from par import runs
  from par.study import rank
  from par.train import trainer

  config = TrainConfig(
    model=MODEL,
    data_dir=str(data_dir),
    train_steps=8,
    steps_per_loop=4,
    checkpoint_every=4,
    plot_every=0,
    plots=False,
    eval_batch_size=3,  # other lanes than the dataset's 4
    eval_mem_len=6,
    eval_clamp_len=2,
    eval_same_length=True,
    seed=2,
  )
  trainer.train_and_evaluate(config, tmp_path / "run")
  record = rank.rank_search(tmp_path / "run", tokens=40)
  terms = record["scored_on"]
  assert record["model"].endswith("ckpt-8")
  assert (terms["lanes"], terms["mem_len"], terms["clamp_len"], terms["same_length"]) == (
    3,
    6,
    2,
    True,
  )
  # A pattern's score: the fixed model with the SuperNet's weights, evaluated as the run
  # evaluates valid (3 lanes of the split's text, memory 6, clamp 2, same length), on the
  # first segments holding 40 targets; the tokens counted are real targets, no padding.
  meta = records.load_meta(data_dir)
  split = evaluate.layout(meta, "valid", 3)
  assert terms["segments"] == math.ceil(40 / (3 * split.seq_len))
  supernet, _ = runs.load_model(runs.read_run(tmp_path / "run"), "checkpoint")
  fixed = supernet.to_fixed("sfs")
  evaluator = evaluate.Evaluator(fixed, 6, clamp_len=2, same_length=True)
  dataset = split.dataset(data_dir, "valid").take(terms["segments"])
  result = evaluator(dataset, 3, records=terms["segments"])
  assert record["scores"]["sfs"] == pytest.approx(result.loss, rel=1e-5)
  targets = np.concatenate([t.numpy().ravel() for _, t in dataset])
  assert record["tokens"] == result.tokens == int((targets >= 0).sum())
  # Every pattern of 3 blocks scored, the best chosen among them; under a constraint, the
  # best it allows.
  assert record["selection"] == "exhaustive" and len(record["scores"]) == 27
  assert record["shared_best"] == record["order"][0] and record["constraint"] is None
  for constraint, allows in (
    (evolution.Constraint(attention=0), lambda p: "s" not in p),
    (
      evolution.Constraint(limit=costs_of("sfs", data_dir), name="flops"),
      lambda p: costs_of(p, data_dir) <= costs_of("sfs", data_dir),
    ),
  ):
    constrained = rank.rank_search(tmp_path / "run", tokens=40, constraint=constraint)
    scores = constrained["scores"]
    expected = min((p for p in scores if allows(p)), key=lambda p: (scores[p], p))
    assert constrained["constraint"]["best"] == expected and scores == record["scores"]
  # Kept for the checkpoint it scored, and only for it.
  assert rank.saved_ranking(tmp_path / "run", tokens=40)["scores"] == record["scores"]
  state = tmp_path / "run" / "checkpoints" / "checkpoint"
  state.write_text('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
  assert rank.saved_ranking(tmp_path / "run", tokens=40) is None


def costs_of(pattern, data_dir):
  """FLOPs per token of a pattern of MODEL on the dataset's shapes."""
  from par.search import costs

  meta = records.load_meta(data_dir)
  return costs.model_cost(MODEL, pattern, seq_len=meta.seq_len, batch_size=meta.batch_size)[
    "total"
  ].flops


def test_rank_script_refuses_contradictory_constraints():
  for flags, message in (
    (["--max_mflops=1", "--max_us=2"], "give one of --max_mflops and --max_us"),
    (["--max_attention=-1"], "--max_attention must be 0 or more, got -1"),
    (["--max_us=0"], "--max_us must be positive, got 0.0"),
  ):
    assert message in error_line(run_script("scripts/rank.py", "--model_dir=nowhere", *flags))


def test_the_known_answer_report_ranks_what_each_search_derives(tmp_path):
  # A work directory as the benchmark leaves it, without training: every pattern's retrained
  # results and one search's ranking; the report finds the answer, ranks and ratios.
  from par import runs
  from par.data import tasks
  from par.study import known_answers

  known_answers.prepare(tasks.TASKS["pair"], tmp_path)  # its dataset: the lanes of the bound
  rng = np.random.default_rng(0)
  all_patterns = ranking.all_patterns(4)
  true = {p: 1.0 + 0.01 * k for k, p in enumerate(sorted(all_patterns, key=lambda p: p[::-1]))}
  for pattern in all_patterns:
    for seed in (1, 2):
      loss = true[pattern] + (0.001 if seed == 1 else -0.001)
      run = tmp_path / "pair" / "models" / f"{pattern}-seed{seed}"
      runs.write_json(run / "results.json", {"valid": {"loss": loss}})
      (run / "export").mkdir()
      (run / "export" / "model.keras").write_bytes(b"")
  order = sorted(all_patterns, key=lambda p: true[p])
  search = tmp_path / "pair" / "search-soft-par-seed1"
  shared = {p: true[p] + rng.normal(0, 0.001) for p in all_patterns}
  runs.write_json(
    search / "ranking.json",
    {
      "scores": shared,
      "argmax": order[4],
      "shared_best": min(shared, key=shared.get),
      "perturbation": {"pattern": order[0]},
    },
  )
  runs.write_json(search / "architecture.json", {"probabilities": [[1, 0, 0]] * 4})
  # A few-shot group beside its uniform search: no architecture.json, no argmax, no
  # perturbation; its pick is the runner-up.
  group = tmp_path / "pair" / "search-uniform-defaults-seed1-few-shot"
  runs.write_json(
    group / "ranking.json",
    {"scores": true, "argmax": None, "shared_best": order[1], "perturbation": None},
  )
  rows = known_answers.report(tmp_path, seeds=(1, 2), modes=("soft", "few_shot"))
  row, split = rows
  assert (split["mode"], split["probabilities"], split["kendall_tau"]) == ("few_shot", None, 1.0)
  assert "argmax" not in split and "perturbation" not in split
  assert split["shared_best"]["rank"] == 2
  assert row["argmax"] == {
    "pattern": order[4],
    "ppl": pytest.approx(math.exp(true[order[4]])),
    "rank": 5,
    "ratio": pytest.approx(math.exp(0.04)),
  }
  assert row["perturbation"]["rank"] == 1 and row["perturbation"]["ratio"] == pytest.approx(1.0)
  assert row["kendall_tau"] > 0.9
  saved = json.loads((tmp_path / "benchmark.json").read_text())
  answer = saved["answers"]["pair"]
  assert answer["best"] == order[0] and answer["runner_up"] == order[1]
  assert answer["seed_sd_of_loss"] == pytest.approx(np.std([0.001, -0.001], ddof=1))
  # The bound its 16 evaluation lanes of 752 tokens can reach, and the one-lane bound.
  pair = tasks.TASKS["pair"]
  assert answer["bound_ppl"] == pytest.approx(math.exp(pair.process_nll("valid", 752)))
  assert answer["bound_ppl_one_lane"] == pytest.approx(math.exp(pair.process_nll("valid")))
  assert f"`{order[0]}`" in (tmp_path / "benchmark.md").read_text()


def test_search_benchmark_refuses_bad_seeds(tmp_path):
  for seeds, message in (
    ("²", "--seeds takes whole numbers, got ²"),
    ("1,1", "--seeds lists a seed twice: 1,1"),
    ("", "--seeds takes whole numbers, got none"),
  ):
    result = run_script("scripts/search_benchmark.py", f"--work_dir={tmp_path}", f"--seeds={seeds}")
    assert result.returncode == 1 and error_line(result) == f"error: {message}", seeds
  assert not any(tmp_path.iterdir())

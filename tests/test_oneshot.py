"""Decoupled (one-shot) SuperNets: the path samplers against their exact distributions, the
fair step's gradients against each path's own, evaluation over sampled paths against a hand
loop, and a run of each mode end to end."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from helpers import counting_dataset
from helpers import summary_tags
from par import runs
from par.config import ModelConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError
from par.model import paths
from par.model.par_model import ParModel
from par.train import evaluate
from par.train import steps
from par.train import summaries
from par.train import trainer

MODEL = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("data"))


def _draws(function, n_blocks, count):
  """`function(seed, n_blocks)` at the seeds (0, 0) … (0, count − 1)."""
  seeds = tf.stack([tf.zeros([count], tf.int64), tf.range(count, dtype=tf.int64)], axis=1)
  return tf.vectorized_map(lambda s: function(s, n_blocks), seeds).numpy()


def _chi_square_bound(cells):
  """Chi-square's 99.99% quantile with cells − 1 degrees of freedom (Wilson-Hilferty)."""
  k = cells - 1
  return k * (1 - 2 / (9 * k) + 3.719 * math.sqrt(2 / (9 * k))) ** 3


def _stratified_probability(pattern):
  """The uniform sampler's probability of a pattern, from its definition: the count k of
  attention blocks uniform over 0..n, its places uniform among C(n, k), each other block f or
  i with probability 1/2."""
  n, k = len(pattern), pattern.count("s")
  return 1 / ((n + 1) * math.comb(n, k) * 2 ** (n - k))


def test_the_uniform_sampler_draws_each_count_of_attention_blocks_equally_often():
  n = 3
  # Exact, by enumerating the sampler's choices: every (k, places, f/i of the others).
  exact = {}
  for k in range(n + 1):
    for places in itertools.combinations(range(n), k):
      for others in itertools.product("fi", repeat=n - k):
        rest = iter(others)
        pattern = "".join("s" if b in places else next(rest) for b in range(n))
        weight = 1 / ((n + 1) * math.comb(n, k) * 2 ** (n - k))
        exact[pattern] = exact.get(pattern, 0.0) + weight
  assert len(exact) == 27 and sum(exact.values()) == pytest.approx(1.0)
  assert all(exact[p] == pytest.approx(_stratified_probability(p)) for p in exact)
  for k in range(n + 1):  # every count of attention blocks with probability 1 / (n + 1)
    assert sum(v for p, v in exact.items() if p.count("s") == k) == pytest.approx(1 / (n + 1))
  # Drawn: within a chi-square bound of the exact frequencies.
  draws = 40_000
  drawn = _draws(paths.uniform_path, n, draws)
  counts = {}
  for row in drawn:
    pattern = "".join("sfi"[b] for b in row)
    counts[pattern] = counts.get(pattern, 0) + 1
  assert set(counts) <= set(exact)
  statistic = sum((counts.get(p, 0) - draws * q) ** 2 / (draws * q) for p, q in exact.items())
  assert statistic < _chi_square_bound(len(exact)), statistic
  # At 8 blocks, the strata stay equal (a uniform draw over 3^8 would give 0 attention
  # blocks 3.9% of the time, here 1/9).
  per_count = np.bincount((_draws(paths.uniform_path, 8, 9_000) == 0).sum(axis=1), minlength=9)
  statistic = float(((per_count - 1000) ** 2 / 1000).sum())
  assert statistic < _chi_square_bound(9), per_count


def test_fair_paths_use_every_branch_of_every_block_once_in_uniform_orders():
  drawn = _draws(paths.fair_paths, 4, 12_000)  # [draws, 3 paths, 4 blocks]
  assert drawn.shape == (12_000, 3, 4)
  assert (np.sort(drawn, axis=1) == np.arange(3)[None, :, None]).all()  # a permutation each
  orders = {order: k for k, order in enumerate(itertools.permutations(range(3)))}
  for block in range(4):
    counts = np.bincount([orders[tuple(d[:, block])] for d in drawn], minlength=6)
    statistic = float(((counts - 2000) ** 2 / 2000).sum())
    assert statistic < _chi_square_bound(6), counts


def test_paths_are_functions_of_the_seed():
  seed = tf.constant([3, 17], tf.int64)
  assert (paths.uniform_path(seed, 6).numpy() == paths.uniform_path(seed, 6).numpy()).all()
  assert (paths.fair_paths(seed, 6).numpy() == paths.fair_paths(seed, 6).numpy()).all()
  assert paths.training_paths("uniform", seed, 6).shape == (1, 6)
  assert paths.training_paths("fair", seed, 6).shape == (3, 6)


def _loop(config, data_dir):
  """A StepLoop of a decoupled SuperNet, built as train_and_evaluate builds it."""
  import keras

  keras.utils.set_random_seed(config.seed)
  model = ParModel(config.model)
  model.build()
  state = steps.TrainState(model.initial_memory(4), [config.model.n_blocks, 3])
  optimizers = steps.make_optimizers(config, 20, model.weight_variables(), state.step)
  optimizers[0].build(model.weight_variables())
  optimizers[1].build(model.architecture_variables())
  return steps.StepLoop(model, optimizers, state, config, 20, tf.distribute.get_strategy())


def _branch_variables(model, block, branch):
  """The variables of one branch of one stochastic block (none for identity)."""
  layer = model.blocks[block]
  sub = [layer.attention_block, layer.feed_forward_block, None][branch]
  return [] if sub is None else sub.trainable_variables


def test_a_fair_step_gives_every_branch_exactly_one_paths_gradient(data_dir):
  config = TrainConfig(
    model=dataclasses.replace(MODEL, sampling="fair"), data_dir=str(data_dir), seed=5
  )
  loop = _loop(config, data_dir)
  model = loop.model
  inputs, targets = next(iter(records.load_dataset(data_dir, "train")))
  memory = model.initial_memory(4)
  step_paths = paths.training_paths("fair", tf.constant([5, 0], tf.int64), 3)
  count = tf.reduce_sum(tf.cast(targets >= 0, tf.float32))
  grads, (nll, tokens), _, _, _ = loop._path_gradients(
    inputs, targets, memory, step_paths, (count, count), tf.constant(1.0)
  )
  summed = dict(zip([id(v) for v in model.weight_variables()], grads))
  # Each path alone, its own mean NLL's gradient.
  alone, losses = [], []
  for j in range(3):
    with tf.GradientTape() as tape:
      hidden, _ = model(inputs, memory=memory, training=True, path=step_paths[j])
      path_nll, _ = model.nll(hidden, targets)
      loss = path_nll / count
    losses.append(float(path_nll))
    grad = tape.gradient(loss, model.weight_variables())
    alone.append({id(v): g for v, g in zip(model.weight_variables(), grad) if g is not None})
  assert float(nll) == pytest.approx(sum(losses), rel=1e-5) and float(tokens) == 3 * float(count)
  for block in range(3):
    for branch in range(3):
      users = [j for j in range(3) if int(step_paths[j, block]) == branch]
      assert len(users) == 1  # exactly one path ran this branch of this block
      for variable in _branch_variables(model, block, branch):
        np.testing.assert_allclose(
          tf.convert_to_tensor(summed[id(variable)]).numpy(),
          tf.convert_to_tensor(alone[users[0]][id(variable)]).numpy(),
          rtol=1e-4,
          atol=1e-7,
        )
        assert all(id(variable) not in alone[j] for j in range(3) if j != users[0])
  # The weights every path shares get the sum of the three paths' gradients.
  for variable in model.embedding.trainable_variables + model.softmax.trainable_variables:
    expected = sum(tf.convert_to_tensor(a[id(variable)]) for a in alone if id(variable) in a)
    np.testing.assert_allclose(
      tf.convert_to_tensor(summed[id(variable)]).numpy(), expected.numpy(), rtol=1e-4, atol=1e-7
    )


def test_a_uniform_step_computes_and_trains_only_its_paths_branches(data_dir):
  config = TrainConfig(
    model=dataclasses.replace(MODEL, sampling="uniform"), data_dir=str(data_dir), seed=2
  )
  loop = _loop(config, data_dir)
  model = loop.model
  inputs, targets = next(iter(records.load_dataset(data_dir, "train")))
  step_paths = tf.constant([[0, 1, 2]], tf.int32)  # s, f, i
  count = tf.reduce_sum(tf.cast(targets >= 0, tf.float32))
  grads, _, _, _, _ = loop._path_gradients(
    inputs, targets, model.initial_memory(4), step_paths, (count, count), tf.constant(1.0)
  )
  grads = dict(zip([id(v) for v in model.weight_variables()], grads))
  for block in range(3):
    for branch in range(2):
      moved = [
        float(tf.reduce_max(tf.abs(tf.convert_to_tensor(grads[id(v)]))))
        for v in _branch_variables(model, block, branch)
      ]
      assert (max(moved) > 0) == (branch == block), (block, branch)
  assert not loop.arch_variables  # no logits to train


def test_a_decoupled_supernets_evaluation_follows_one_sampled_path_per_record(data_dir):
  model = ParModel(dataclasses.replace(MODEL, sampling="uniform"))
  model.build()
  result = evaluate.Evaluator(model, 4)(records.load_dataset(data_dir, "valid"), 4)
  # By hand: record r follows uniform_path((PATHS_SEED, r)), the memory carried.
  memory, nll, count = model.initial_memory(4), 0.0, 0
  for r, (inputs, targets) in enumerate(records.load_dataset(data_dir, "valid")):
    path = paths.uniform_path(tf.constant([evaluate.PATHS_SEED, r], tf.int64), 3)
    hidden, memory = model(inputs, memory=memory, path=path)
    record_nll, record_count = model.nll(hidden, targets)
    nll, count = nll + float(record_nll), count + int(record_count)
  assert result.tokens == count and result.nll == pytest.approx(nll, rel=1e-5)
  # The ranking forces its patterns through the logits: no sampled paths there.
  forced = evaluate.Evaluator(model, 4, sampled_paths=False)
  assert forced(records.load_dataset(data_dir, "valid"), 4).nll != pytest.approx(nll, rel=1e-5)


def _decoupled(data_dir, sampling, **changes):
  """An 8-step run of a decoupled SuperNet of MODEL's shape, seed 1, no figures."""
  settings = dict(
    train_steps=8,
    max_lr=3e-3,
    warmup_steps=2,
    steps_per_loop=4,
    checkpoint_every=8,
    plot_every=0,
    plots=False,
    seed=1,
  )
  return TrainConfig(
    model=dataclasses.replace(MODEL, sampling=sampling),
    data_dir=str(data_dir),
    **dict(settings, **changes),
  )


@pytest.mark.parametrize("sampling", ["uniform", "fair"])
def test_a_decoupled_run_trains_its_paths_and_records_what_ran(tmp_path, data_dir, sampling):
  config = _decoupled(data_dir, sampling, log_every=4, plot_every=4)
  results = trainer.train_and_evaluate(config, tmp_path)
  assert results["pattern"] == "" and math.isfinite(results["valid"]["loss"])
  record = json.loads((tmp_path / "architecture.json").read_text())
  draws = np.array(record["draws"])
  assert record["sampling"] == sampling and record["probabilities"] is None
  assert (draws.sum(axis=1) == 8 * paths.PATHS_PER_STEP[sampling]).all()
  if sampling == "fair":
    assert (draws == 8).all()
  # Exactly the paths the step draws from (seed, step), counted.
  expected = np.zeros([3, 3], np.int64)
  for step in range(8):
    for path in paths.training_paths(sampling, tf.constant([1, step], tf.int64), 3).numpy():
      expected[np.arange(3), path] += 1
  np.testing.assert_array_equal(draws, expected)
  tags = summary_tags(tmp_path / "train")
  assert summaries.block_tag(2, "ran_identity") in tags and summaries.TAU not in tags
  assert summaries.ARCH_LOSS not in tags and summaries.block_tag(0, "attention") not in tags
  # The logits learned nothing.
  model, _ = runs.load_model(runs.read_run(tmp_path), "checkpoint")
  assert model.is_decoupled and model.derived_pattern() == ""
  assert all(not np.any(v.numpy()) for v in model.architecture_variables())


def test_decoupled_sampling_has_no_architecture_step_to_configure():
  for changes in (dict(arch_split=0.2), dict(resource="flops", resource_weight=0.5)):
    with pytest.raises(ParError, match="learns no architecture logits"):
      TrainConfig(model=dataclasses.replace(MODEL, sampling="uniform"), **changes).validate()


# --- few-shot: sub-SuperNets split on one block ------------------------------------------


def test_a_sub_supernets_score_is_a_fixed_model_with_its_weights(data_dir):
  from par.search import ranking

  sub = ParModel(dataclasses.replace(MODEL, architecture="s??", sampling="uniform"))
  sub.build()
  assert sub.searched_blocks == (1, 2) and sub.is_decoupled and sub.kinds == "s??"

  def scorer(model):
    evaluator = evaluate.Evaluator(model, 4, sampled_paths=False)
    return lambda: evaluator(records.load_dataset(data_dir, "valid").take(3), 4, records=3)

  held = ["sfi", "ssf", "sii"]
  scores = ranking.score_patterns(sub, scorer(sub), held)
  for pattern in held:
    assert scores[pattern] == pytest.approx(scorer(sub.to_fixed(pattern))().loss, rel=1e-6)
  with pytest.raises(ValueError, match="does not hold 'fsf'"):
    ranking.score_patterns(sub, scorer(sub), ["fsf"])


def _one_shot(tmp_path, data_dir, sampling="uniform"):
  trainer.train_and_evaluate(_decoupled(data_dir, sampling), tmp_path / "one-shot")
  return tmp_path / "one-shot"


def test_sub_supernets_start_from_the_one_shot_weights(tmp_path, data_dir):
  from par.study import fewshot

  one_shot = _one_shot(tmp_path, data_dir)
  subs = fewshot.sub_configs(one_shot, steps=4)
  assert {k: c.model.architecture for k, c in subs.items()} == {"s": "s??", "f": "f??", "i": "i??"}
  assert all(c.warm_start == str(one_shot.resolve()) and c.train_steps == 4 for c in subs.values())
  # Warm-started: the block it fixes holds the one-shot's branch of that kind, the others the
  # one-shot's blocks whole, the embedding and softmax the one-shot's.
  source, _ = runs.load_model(runs.read_run(one_shot), "checkpoint")
  for letter, config in subs.items():
    model = ParModel(dataclasses.replace(config.model, vocab_size=60))
    model.build()
    trainer.warm_start(model, one_shot)
    branch = {"s": source.blocks[0].attention_block, "f": source.blocks[0].feed_forward_block}
    pairs = [(model.blocks[k], source.blocks[k]) for k in (1, 2)] + [
      (model.embedding, source.embedding),
      (model.softmax, source.softmax),
    ]
    if letter in branch:
      pairs.append((model.blocks[0], branch[letter]))
    for mine, theirs in pairs:
      for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
  sub = dataclasses.replace(subs["s"], model=dataclasses.replace(subs["s"].model, vocab_size=60))
  runs.prepare(tmp_path / "sub", sub, records.load_meta(data_dir))
  with pytest.raises(ParError, match="not a one-shot SuperNet"):
    fewshot.sub_configs(tmp_path / "sub", steps=4)
  with pytest.raises(ParError, match="another shape"):
    other = ParModel(dataclasses.replace(MODEL, d_model=32, architecture="s??"))
    other.build()
    trainer.warm_start(other, one_shot)

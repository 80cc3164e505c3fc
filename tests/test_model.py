"""The PAR model: memory, fixed patterns, derivation, saving, precision and costs."""

import dataclasses
import json
import math
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from par.config import ModelConfig
from par.model import blocks
from par.model.par_model import ParModel
from par.search import costs

CONFIG = ModelConfig(
  vocab_size=61,
  d_model=24,
  n_heads=3,
  d_ffn=40,
  n_blocks=4,
  mem_len=5,
  cutoffs=(9, 30),
  dropout=0.0,
)


def make(config=CONFIG, **changes):
  model = ParModel(dataclasses.replace(config, **changes))
  model.build()
  return model


def tokens(shape, seed=0):
  return tf.constant(
    np.random.default_rng(seed).integers(0, CONFIG.vocab_size, size=shape), tf.int32
  )


@pytest.mark.parametrize(
  "changes",
  [
    dict(eval_mode="expected"),  # SuperNet: every branch of every block contributes.
    dict(architecture="sfis"),
    dict(architecture="ssss", untie_rel_bias=True),
  ],
)
def test_segments_with_full_memory_equal_one_pass(changes):
  """15 tokens as three segments of 5 with memory 10 == one segment of 15 without memory."""
  model = make(**changes, mem_len=10)
  sequence = tokens([2, 15])
  whole, _ = model(sequence, memory=model.initial_memory(2, 0))
  memory = model.initial_memory(2)
  parts = []
  for start in range(0, 15, 5):
    hidden, memory = model(sequence[:, start : start + 5], memory=memory)
    parts.append(hidden)
  np.testing.assert_allclose(np.concatenate(parts, 1), whole.numpy(), rtol=1e-4, atol=1e-5)
  assert int(memory.length) == 10


def test_memory_shorter_than_the_context_changes_outputs():
  """The invariance above is not vacuous: a 3-token memory sees less and differs."""
  model = make(eval_mode="expected", mem_len=3)
  sequence = tokens([2, 10])
  whole, _ = model(sequence, memory=model.initial_memory(2, 0))
  memory = model.initial_memory(2)
  _, memory = model(sequence[:, :5], memory=memory)
  second, _ = model(sequence[:, 5:], memory=memory)
  assert not np.allclose(second.numpy(), whole.numpy()[:, 5:], atol=1e-3)


def test_one_trace_serves_the_first_and_later_segments():
  model = make(sampling="single_path", dropout=0.1)
  step = tf.function(
    lambda x, memory, seed: model(x, memory=memory, tau=tf.constant(0.5), seed=seed, training=True)
  )
  memory = model.initial_memory(2)
  for i in range(4):
    _, memory = step(tokens([2, 7], i), memory, tf.constant([0, i]))
  assert step.experimental_get_tracing_count() == 1
  assert int(memory.length) == CONFIG.mem_len


def test_fixed_pattern_holds_only_what_it_needs():
  model = make(architecture="sfif")
  kinds = [type(b).__name__ for b in model.blocks]
  assert kinds == ["AttentionBlock", "FeedForwardBlock", "IdentityBlock", "FeedForwardBlock"]
  assert model.attending_blocks == (0,) and len(model.initial_memory(2).tensors) == 1
  assert model.architecture_variables() == [] and model.derived_pattern() == "sfif"
  no_attention = make(architecture="ffii")
  assert not hasattr(no_attention, "rel_bias_u") and no_attention.initial_memory(2).tensors == ()
  hidden, _ = no_attention(tokens([2, 7]))
  assert hidden.shape == (2, 7, 24)


@pytest.mark.parametrize("pattern", ["sfis", "iiii", "ffss"])
def test_supernet_initialises_a_fixed_model_from_its_weights(pattern):
  supernet = make()
  for variable, kind in zip(supernet.architecture_variables(), pattern):
    variable.assign(3.0 * np.eye(3)[blocks.BRANCHES.index(kind)])
  assert supernet.derived_pattern() == pattern
  fixed = supernet.to_fixed()
  assert fixed.config.architecture == pattern
  x = tokens([2, 7], 3)
  memory = supernet.initial_memory(2)
  _, memory = supernet(x, memory=memory)  # A memory with states in it.
  fixed_memory = fixed.initial_memory(2).with_tensors(
    [memory.states[k] for k in fixed.attending_blocks], memory.length
  )
  expected, _ = supernet(x, memory=memory)  # eval_mode argmax: the derived architecture
  got, _ = fixed(x, memory=fixed_memory)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_nll_equals_log_probs_at_the_targets():
  model = make()
  x = tokens([2, 7], 4)
  targets = tokens([2, 7], 5).numpy()
  targets[1, 3:] = -1
  hidden, _ = model(x)
  total, count = model.nll(hidden, tf.constant(targets))
  log_probs = model.log_probs(hidden).numpy()
  keep = targets >= 0
  np.testing.assert_allclose(total.numpy(), -log_probs[keep, targets[keep]].sum(), rtol=1e-5)
  assert count.numpy() == keep.sum()


@pytest.mark.parametrize(
  "changes",
  [dict(), dict(architecture="sfsi", untie_rel_bias=True), dict(cutoffs=(), sampling="hard")],
)
def test_save_and_load_reproduce_outputs_exactly_without_pickle(tmp_path, changes):
  model = make(**changes)
  for variable in model.architecture_variables():
    variable.assign(np.random.default_rng(7).normal(size=3))
  x = tokens([2, 7], 6)
  expected, _ = model(x)
  path = tmp_path / "model.keras"
  model.save(path)
  with zipfile.ZipFile(path) as archive:
    assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
  loaded = keras.saving.load_model(path, safe_mode=True)
  assert isinstance(loaded, ParModel) and loaded.config == model.config
  got, _ = loaded(x)
  np.testing.assert_array_equal(got.numpy(), expected.numpy())
  assert loaded.derived_pattern() == model.derived_pattern()


@pytest.mark.parametrize("sampling", ["soft", "hard", "single_path"])
def test_training_gradients_are_finite_at_low_temperature(sampling):
  model = make(sampling=sampling, dropout=0.1)
  for variable, logits in zip(
    model.architecture_variables(), [[1e4, -1e4, 0], [0, 0, 0], [-50, 50, 50], [1e4, 1e4, -1e4]]
  ):
    variable.assign(logits)
  x, y = tokens([2, 7], 8), tokens([2, 7], 9)
  with tf.GradientTape() as tape:
    hidden, _ = model(x, tau=tf.constant(0.05), seed=tf.constant([1, 2]), training=True)
    total, count = model.nll(hidden, y)
    loss = total / count
  gradients = tape.gradient(loss, model.trainable_variables)
  assert np.isfinite(loss.numpy())
  # single_path leaves the unsampled branches without gradient (None).
  assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients if g is not None)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_close_to_float32(policy):
  reference = make(eval_mode="expected")
  x, y = tokens([2, 7], 10), tokens([2, 7], 11)
  expected = reference.nll(reference(x)[0], y)[0].numpy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    model = make(eval_mode="expected")
    model.set_weights(reference.get_weights())
    hidden, memory = model(x)
    total, _ = model.nll(hidden, y)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert hidden.dtype == tf.as_dtype(policy.split("_")[1]) and total.dtype == tf.float32
  assert memory.tensors[0].dtype == hidden.dtype
  assert np.isfinite(total.numpy())
  np.testing.assert_allclose(total.numpy(), expected, rtol=0.02)


@pytest.mark.parametrize(
  "changes",
  [
    dict(),
    dict(architecture="sfsi"),
    dict(architecture="ffii"),
    dict(architecture="siss", untie_rel_bias=True),
    dict(cutoffs=()),
    dict(cutoffs=(9,), proj_dims=(4,)),
    dict(d_head=5),
    dict(div_val=1),
    dict(div_val=1, tie_weight=True),
    dict(div_val=1, tie_weight=True, cutoffs=()),
    dict(div_val=2),
    dict(div_val=2, tie_weight=True, tie_projs=True),
    dict(div_val=4, tie_projs=True, architecture="sfsi"),
  ],
)
def test_parameter_counts_match_the_model(changes):
  model = make(**changes)
  cost = costs.model_cost(model.config, model.config.architecture or None, seq_len=7, batch_size=2)
  assert cost["total"].params == model.count_params()


@pytest.mark.parametrize("batch", [1, 3])
def test_flops_per_token_against_a_count_of_every_matrix_product(batch):
  c = CONFIG
  t, m = 7, c.mem_len
  k, nh, d, n, h = m + t, c.n_heads * c.head_width, c.d_model, c.n_heads, c.head_width
  products = [  # (rows, inner, columns) of each product of one segment in one attention block
    (batch * t, d, nh),  # queries
    (batch * k, d, nh),
    (batch * k, d, nh),  # keys, values over memory and segment
    (k, d, nh),  # relative encodings: one per distance, shared by the whole batch
    (batch * n * t, h, k),
    (batch * n * t, h, k),  # content and position scores
    (batch * n * t, k, h),  # weights times values
    (batch * t, nh, d),  # output projection
  ]
  attention = sum(2 * a * b * e for a, b, e in products) / (batch * t)
  per_kind = costs.block_costs(c, seq_len=t, batch_size=batch)
  assert per_kind["s"].flops == pytest.approx(attention)
  assert per_kind["f"].flops == 2 * (d * c.d_ffn + c.d_ffn * d)
  assert per_kind["i"].flops == 0
  assert per_kind["?"].flops == per_kind["s"].flops + per_kind["f"].flops
  total = costs.model_cost(c, "sfis", seq_len=t, batch_size=batch)["blocks"].flops
  assert total == pytest.approx(2 * per_kind["s"].flops + per_kind["f"].flops)


def test_softmax_flops_count_tails_by_their_share():
  c = CONFIG
  full = costs.softmax_cost(c).flops
  head_only = costs.softmax_cost(c, tail_shares=(0.0, 0.0)).flops
  assert head_only == 2 * c.d_model * (9 + 2)
  half = costs.softmax_cost(c, tail_shares=(0.5, 0.5)).flops
  assert half == pytest.approx((full + head_only) / 2)


def test_bad_model_settings_are_refused():
  from par.errors import ParError

  with pytest.raises(ParError, match="only use the letters"):
    make(architecture="sxfs")
  with pytest.raises(ParError, match="has 3 blocks"):
    make(architecture="sfs")
  with pytest.raises(ParError, match="cutoffs must increase"):
    make(cutoffs=(30, 9))
  with pytest.raises(ParError, match="not divisible"):
    make(n_heads=5)


@pytest.mark.parametrize("name", ["supernet", "fixed_sfi", "fixed_untied"])
def test_exports_written_before_the_redesign_still_load(name):
  # tests/data/exports holds Keras exports saved by par at commit 34ff35a, before the code
  # moved into subpackages (tests/data/README.md): registered names and weight paths must
  # stay what they were, so that users' trained models keep loading.
  exports = Path(__file__).parent / "data" / "exports"
  expected = np.load(exports / "expected.npz")
  patterns = json.loads((exports / "patterns.json").read_text())
  model = keras.saving.load_model(exports / f"{name}.keras", safe_mode=True)
  tokens = expected["tokens"]
  memory = model.initial_memory(2)
  _, memory = model(tokens[:, :4], memory=memory)
  hidden, _ = model(tokens[:, 4:], memory=memory)
  assert model.pattern == patterns[name]
  np.testing.assert_allclose(
    model.log_probs(hidden).numpy(), expected[f"{name}_log_probs"], rtol=1e-5, atol=1e-6
  )


def _std(variable):
  return float(np.std(variable.numpy()))


def _assert_std(variable, expected):
  """The standard deviation of a variable's N i.i.d. entries is `expected`, within five
  standard errors of the estimate (relative error 1/sqrt(2N) for normal entries, less for
  uniform ones): a 1,024-entry projection gets 11%, a 4,096-entry kernel 5.5%."""
  size = variable.numpy().size
  assert _std(variable) == pytest.approx(expected, rel=5 / math.sqrt(2 * size)), variable.path


@pytest.mark.parametrize("init", ["glorot", "transformer_xl"])
def test_initialisation_is_glorot_over_the_matrices_or_transformer_xls(init):
  d, n, h, f = 64, 4, 16, 128
  model = make(
    ModelConfig(
      vocab_size=300,
      d_model=d,
      n_heads=n,
      d_ffn=f,
      n_blocks=2,
      architecture="sf",
      cutoffs=(100, 200),
      div_val=2,
      tie_projs=True,
      init=init,
    )
  )
  attention, ffn = model.blocks[0].attention, model.blocks[1]
  txl = init == "transformer_xl"
  # Glorot's uniform over [fan_in, fan_out] has std sqrt(2 / (fan_in + fan_out)): the [D, N, H]
  # kernels are [D, N·H] matrices (Keras's GlorotUniform took them for convolutions: 0.0625).
  for kernel, fans in (
    (attention.w_q, (d, n * h)),
    (attention.w_r, (d, n * h)),
    (attention.w_o, (n * h, d)),
    (ffn.inner.kernel, (d, f)),
    (ffn.outer.kernel, (f, d)),
  ):
    _assert_std(kernel, 0.02 if txl else math.sqrt(2.0 / sum(fans)))
  for norm in (model.blocks[0].norm, ffn.norm):
    assert float(np.mean(norm.gamma.numpy())) == pytest.approx(1.0, abs=0.01)
    if txl:
      _assert_std(norm.gamma, 0.02)
    else:
      assert _std(norm.gamma) == 0.0
    assert not np.any(norm.beta.numpy())
  for projection in model.embedding.projections[1:] + model.softmax.own_projections[:1]:
    _assert_std(projection, 0.01 if txl else 0.02)
  for weight in model.softmax.own_weights + [model.softmax.cluster_weight]:
    _assert_std(weight, 0.02)
  # Every weight drawn on its own: no two of the same shape start alike (one shared
  # initializer gave w_q, w_k, w_v and w_r the same values, and u and v too).
  drawn = [attention.w_q, attention.w_k, attention.w_v, attention.w_r, attention.w_o]
  drawn += [model.rel_bias_u, model.rel_bias_v, ffn.inner.kernel]
  for k, a in enumerate(drawn):
    for b in drawn[k + 1 :]:
      if a.shape == b.shape:
        correlation = np.corrcoef(a.numpy().ravel(), b.numpy().ravel())[0, 1]
        assert abs(correlation) < 5 / math.sqrt(a.numpy().size), (a.path, b.path)
  assert not any(np.any(b.numpy()) for b in model.softmax.biases + [ffn.inner.bias])


@pytest.mark.parametrize(
  "changes,pattern",
  [({}, None), ({}, "sfif"), (dict(div_val=1, tie_weight=True, cutoffs=(9, 30)), "ssff")],
)
def test_the_steps_matrix_products_are_its_counted_flops(changes, pattern):
  config = dataclasses.replace(CONFIG, **changes)
  shares = [0.25, 0.125]
  # 32 tokens a step: each tail's share is a whole number of rows.
  products = costs.step_matmuls(config, pattern, seq_len=8, batch_size=4, tail_shares=shares)
  counted = costs.model_cost(config, pattern, seq_len=8, batch_size=4, tail_shares=shares)
  total = sum(2 * m * k * n * count for (m, k, n), count in products.items())
  assert total == pytest.approx(counted["total"].flops * 4 * 8)

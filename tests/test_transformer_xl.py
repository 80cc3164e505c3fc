"""Transformer-XL parity: adaptive input, tied weights and projections, same_length against
a naive mask, and the published parameter counts of its WikiText-103 and enwik8 models."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT
from helpers import run_script
from par.config import ModelConfig
from par.model import attention
from par.model.adaptive_softmax import AdaptiveEmbedding
from par.model.par_model import ParModel
from par.search import costs

CONFIG = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=2, mem_len=6, cutoffs=(10, 30)
)


def make(**changes):
  model = ParModel(dataclasses.replace(CONFIG, architecture="sf", **changes))
  model.build()
  return model


def test_adaptive_input_with_div_val_1_is_a_plain_embedding():
  layer = AdaptiveEmbedding(60, 16, (10, 30), div_val=1)
  layer.build()
  table = np.random.default_rng(0).normal(size=[60, 16]).astype(np.float32)
  layer.table.assign(table)
  ids = np.array([[0, 9, 10, 29, 30, 59]])
  np.testing.assert_array_equal(layer(ids).numpy(), table[ids])
  assert [w.shape for w in layer.weights] == [(60, 16)]  # no projection


def test_adaptive_input_embeds_each_cluster_at_its_width():
  layer = AdaptiveEmbedding(60, 16, (10, 30), div_val=2)
  layer.build()
  assert [tuple(t.shape) for t in layer.tables()] == [(10, 16), (20, 8), (30, 4)]
  ids = np.array([[3, 12, 45], [29, 0, 30]])
  got = layer(ids).numpy()
  for (b, t), token in np.ndenumerate(ids):  # a loop over tokens: its cluster, row, projection
    i = int(token >= 10) + int(token >= 30)
    low = (0, 10, 30)[i]
    row = layer.tables()[i].numpy()[token - low]
    np.testing.assert_allclose(
      got[b, t], row @ layer.projections[i].numpy().T, rtol=1e-5, atol=1e-9
    )


def test_tied_weights_are_one_variable_with_gradients_from_both_uses():
  model = make(div_val=1, tie_weight=True)
  table = model.embedding.table
  assert [v.path for v in model.weights if v.shape == (60, 16)] == [table.path]
  ids = tf.constant([[1, 12, 40, 59]])

  def gradient(through_input):
    with tf.GradientTape() as tape:
      hidden, _ = model(ids)
      loss, _ = model.nll(hidden if through_input else tf.stop_gradient(hidden), ids)
    return tf.convert_to_tensor(tape.gradient(loss, table)).numpy()

  both, output = gradient(True), gradient(False)
  through_input = both - output
  used = np.isin(np.arange(60), ids.numpy())
  assert (np.abs(through_input[used]).sum(axis=1) > 0).all()  # the input's rows
  assert np.abs(through_input[~used]).max() < 1e-6
  assert (np.abs(output).sum(axis=1) > 0).all()  # the softmax scores every row: all learn


def _tied_pair(vocab, width, cutoffs):
  from par.model.adaptive_softmax import TransformerXLSoftmax

  embedding = AdaptiveEmbedding(vocab, width, cutoffs)
  embedding.build()
  softmax = TransformerXLSoftmax(vocab, width, cutoffs, tie_weight=True)
  softmax.build()
  return embedding, softmax


def test_the_tied_tables_gradient_is_the_full_softmaxs_written_out():
  # The table's gradient through the embedding and the tied softmax, against numpy's: the
  # full log-softmax of every word written out (head of the shortlist and one entry per tail,
  # each tail's words scored against their cluster), differentiated by hand.
  embedding, softmax = _tied_pair(60, 8, (10, 30))
  rng = np.random.default_rng(3)
  for variable in (embedding.table, softmax.cluster_weight):
    variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  for variable in softmax.biases + [softmax.cluster_bias]:
    variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.1)
  tokens, targets = np.array([1, 12, 40, 59, 12]), np.array([12, 59, 3, 30, 9])
  with tf.GradientTape() as tape:
    nll, _ = softmax.nll(embedding(tokens[None]), targets[None], embedding)
  got = tf.convert_to_tensor(tape.gradient(nll, embedding.table)).numpy()

  table = embedding.table.numpy().astype(np.float64)
  cluster_w = softmax.cluster_weight.numpy().astype(np.float64)
  biases = [b.numpy().astype(np.float64) for b in softmax.biases]
  cluster_b = softmax.cluster_bias.numpy().astype(np.float64)
  bounds = (0, 10, 30, 60)
  expected = np.zeros_like(table)
  total = 0.0
  for token, target in zip(tokens, targets):
    h = table[token]
    head_w = np.concatenate([table[:10], cluster_w])
    head_logits = head_w @ h + np.concatenate([biases[0], cluster_b])
    head_p = np.exp(head_logits - np.logaddexp.reduce(head_logits))
    k = int(target >= 10) + int(target >= 30)
    entry = target if k == 0 else 10 + k - 1
    # d(-log p_head[entry]) / d(logits) = p - onehot; then into the rows and into h.
    d_head = head_p.copy()
    d_head[entry] -= 1
    total -= np.log(head_p[entry])
    expected[:10] += np.outer(d_head[:10], h)
    d_h = head_w.T @ d_head
    if k:
      low, high = bounds[k], bounds[k + 1]
      logits = table[low:high] @ h + biases[k]
      p = np.exp(logits - np.logaddexp.reduce(logits))
      total -= np.log(p[target - low])
      d_tail = p.copy()
      d_tail[target - low] -= 1
      expected[low:high] += np.outer(d_tail, h)
      d_h += table[low:high].T @ d_tail
    expected[token] += d_h  # through the embedding's row
  assert float(nll) == pytest.approx(total, rel=1e-5)
  np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_the_tied_tables_gradient_holds_few_copies_of_the_table():
  # Each cluster's rows were a slice of the table, whose gradient is a zero-padded copy of the
  # whole table: four clusters made four, and their sum (6.7 tables at the peak). Split once,
  # the rows' gradients are one concatenation (3.6 with the embedding's and their sum).
  try:
    tf.config.experimental.get_memory_info("CPU:0")
  except ValueError:
    pytest.skip("this TensorFlow keeps no allocator statistics for the CPU (oneDNN off)")
  vocab, width = 60_000, 64
  embedding, softmax = _tied_pair(vocab, width, (2_000, 10_000, 40_000))
  tokens = tf.random.stateless_uniform([64], [1, 2], 0, vocab, tf.int32)
  targets = tf.random.stateless_uniform([64], [3, 4], 0, vocab, tf.int32)

  @tf.function
  def gradient():
    with tf.GradientTape() as tape:
      nll, _ = softmax.nll(embedding(tokens), targets, embedding)
    return tf.reduce_sum(tape.gradient(nll, embedding.table))

  float(gradient())  # traced
  tf.config.experimental.reset_memory_stats("CPU:0")
  before = tf.config.experimental.get_memory_info("CPU:0")["current"]
  float(gradient())
  peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
  assert (peak - before) / (vocab * width * 4) < 4.5


def test_tied_projections_are_shared_but_the_heads_is_its_own():
  model = make(div_val=2, tie_weight=True, tie_projs=True)
  names = sorted(v.path.split("/", 1)[1] for v in model.weights if "projection" in v.path)
  assert names == [
    "embedding/projection0",
    "embedding/projection1",
    "embedding/projection2",
    "softmax/projection0",
  ]


@pytest.mark.parametrize("changes", [dict(div_val=1, tie_weight=True), dict(div_val=2)])
def test_transformer_xl_softmax_is_exact(changes):
  model = make(**changes)
  ids = tf.constant(np.random.default_rng(1).integers(0, 60, [2, 7]), tf.int32)
  hidden, _ = model(ids)
  log_probs = model.log_probs(hidden)
  np.testing.assert_allclose(tf.reduce_logsumexp(log_probs, -1).numpy(), 0.0, atol=1e-5)
  nll, count = model.nll(hidden, ids)
  expected = -tf.reduce_sum(tf.gather(log_probs, ids, batch_dims=2))
  assert count == 14
  np.testing.assert_allclose(nll.numpy(), expected.numpy(), rtol=1e-5)


def test_porting_transformer_xl_weights_reverses_the_heads_cluster_rows():
  # Transformer-XL's head scores tail i (1-based) at column -i: its last cluster_weight row
  # is the first tail. Ours keeps tails in order. Its log-probabilities, computed its way
  # from our weights with cluster_weight and cluster_bias reversed, are ours exactly.
  model = make(div_val=1)
  softmax = model.softmax
  hidden = np.random.default_rng(2).normal(size=[5, 16]).astype(np.float32)
  ours = model.log_probs(tf.constant(hidden)).numpy()
  weight, biases = softmax.weight.numpy(), [b.numpy() for b in softmax.biases]
  theirs_cluster_weight = softmax.cluster_weight.numpy()[::-1]  # the port
  theirs_cluster_bias = softmax.cluster_bias.numpy()[::-1]
  bounds = softmax.bounds

  def log_softmax(x):
    return (
      x
      - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
      - x.max(-1, keepdims=True)
    )

  head = log_softmax(
    hidden @ np.concatenate([weight[: bounds[1]], theirs_cluster_weight]).T
    + np.concatenate([biases[0], theirs_cluster_bias])
  )
  parts = [head[:, : bounds[1]]]
  for i in range(1, len(bounds) - 1):  # pytorch/utils/proj_adaptive_softmax.py, line by line
    tail = log_softmax(hidden @ weight[bounds[i] : bounds[i + 1]].T + biases[i])
    parts.append(head[:, -i, None] + tail)
  np.testing.assert_allclose(np.concatenate(parts, 1), ours, atol=1e-5)


def naive_same_length_mask(seg_len, mem_len, memory_length):
  """Transformer-XL's mask, its own way: keys [real memory ; segment], triu(1 + mlen) and
  tril(-shift) masked, placed in our [M + T] keys (the first M - mlen slots empty)."""
  qlen, mlen = seg_len, memory_length
  klen = mlen + qlen
  mask_len = klen - mem_len
  shift = qlen - mask_len if mask_len > 0 else qlen
  visible = np.zeros([qlen, mem_len + qlen], bool)
  for i in range(qlen):
    for j in range(klen):
      masked = j >= i + 1 + mlen or j <= i - shift
      visible[i, mem_len - mlen + j] = not masked
  return visible


@pytest.mark.parametrize("seg_len", [1, 3, 5])
@pytest.mark.parametrize("memory_length", [0, 2, 4])
def test_same_length_mask_is_transformer_xls(seg_len, memory_length):
  mem_len = 4
  got = attention.attention_mask(seg_len, mem_len, memory_length, same_length=True).numpy()
  np.testing.assert_array_equal(got, naive_same_length_mask(seg_len, mem_len, memory_length))
  if memory_length == mem_len:  # full memory: every query sees exactly M keys
    assert (got.sum(axis=1) == mem_len).all()


def test_clamp_len_and_same_length_change_nothing_when_they_cannot_bind():
  model = make(div_val=1)
  ids = tf.constant([[1, 2, 3]])
  memory = model.initial_memory(1, 8)  # empty memory, 3 tokens: nothing to clamp or limit
  base, _ = model(ids, memory=memory)
  other, _ = model(ids, memory=memory, clamp_len=50, same_length=True)
  np.testing.assert_allclose(base.numpy(), other.numpy(), rtol=1e-6)
  clamped, _ = model(ids, memory=memory, clamp_len=1)
  assert not np.allclose(base.numpy(), clamped.numpy())


# Transformer-XL's published models: 16 layers of attention and feed-forward (32 PAR blocks).
WT103_BASE = ModelConfig(
  vocab_size=267_735,
  d_model=410,
  n_heads=10,
  d_head=41,
  d_ffn=2100,
  n_blocks=32,
  mem_len=150,
  cutoffs=(20_000, 40_000, 200_000),
  div_val=1,
  tie_weight=True,
  architecture="sf" * 16,
)
ENWIK8_BASE = ModelConfig(
  vocab_size=204,
  d_model=512,
  n_heads=8,
  d_head=64,
  d_ffn=2048,
  n_blocks=24,
  mem_len=512,
  cutoffs=(),
  div_val=1,
  tie_weight=True,
  architecture="sf" * 12,
)


def test_published_parameter_counts():
  # Dai et al. 2019: 151M for the WikiText-103 base model, 41M for the 12-layer enwik8 one.
  wt103 = costs.model_cost(WT103_BASE, WT103_BASE.architecture, seq_len=150, batch_size=60)
  assert wt103["total"].params == pytest.approx(151e6, rel=0.005)
  enwik8 = costs.model_cost(ENWIK8_BASE, ENWIK8_BASE.architecture, seq_len=512, batch_size=22)
  assert enwik8["total"].params == pytest.approx(41e6, rel=0.005)


def test_print_config_gives_parameters_and_flops_without_a_dataset(tmp_path):
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/txl_wt103_base.flags",
    f"--data_dir={tmp_path / 'none'}",
    "--vocab_size=267735",
    "--print_config",
  )
  assert result.returncode == 0, result.stderr
  printed = json.loads(result.stdout)
  model = ModelConfig.from_dict(printed["model"])
  assert printed["counted_at"] == {"seq_len": 150, "batch_size": 1, "mem_len": 150}
  expected = costs.model_cost(model, model.architecture, seq_len=150, batch_size=1)["total"]
  assert printed["parameters"] == expected.params
  assert printed["parameters"] == pytest.approx(151e6, rel=0.005)
  assert printed["flops_per_token"] == expected.flops
  from par.search import memory

  estimate = memory.step_memory(model, expected.params, 1, 150)
  assert printed["memory_mib_per_replica"] == dict(
    memory.describe(estimate), replicas=1, lanes_per_replica=1
  )
  result = run_script(
    "scripts/train.py",
    "--flagfile=configs/txl_enwik8_base.flags",
    f"--data_dir={tmp_path / 'none'}",
    "--vocab_size=204",  # Transformer-XL's enwik8 vocabulary
    "--print_config",
  )
  assert json.loads(result.stdout)["parameters"] == pytest.approx(41e6, rel=0.005)


@pytest.mark.slow
def test_a_tied_adaptive_run_trains_and_evaluates_with_transformer_xls_protocol(tmp_path):
  from helpers import wt2_sample
  from par.config import DataConfig
  from par.config import TrainConfig
  from par.data.build import build_dataset
  from par.train import trainer

  config = DataConfig(tokenizer="word", batch_size=4, seq_len=16, max_vocab=500)
  build_dataset(wt2_sample(tmp_path / "text", lines=600), tmp_path / "ds", config)
  model = dataclasses.replace(
    CONFIG, cutoffs=(50, 200), div_val=2, tie_weight=True, tie_projs=True, architecture="sfsf"
  )
  model = dataclasses.replace(model, n_blocks=4, vocab_size=500)
  train = TrainConfig(
    model=model,
    data_dir=str(tmp_path / "ds"),
    train_steps=4,
    plot_every=0,
    plots=False,
    eval_mem_len=24,
    eval_clamp_len=10,
    eval_same_length=True,
  )
  trained = trainer.train_and_evaluate(train, tmp_path / "run")
  assert np.isfinite(trained["valid"]["nll"])
  # evaluate.py with the run's own protocol gives training's number; another protocol another.
  result = run_script("scripts/evaluate.py", f"--model_dir={tmp_path / 'run'}")
  assert result.returncode == 0, result.stderr[-2000:]
  same = json.loads(result.stdout)
  assert (same["clamp_len"], same["same_length"], same["mem_len"]) == (10, True, 24)
  assert same["nll"] == pytest.approx(trained["valid"]["nll"], rel=1e-9)
  result = run_script(
    "scripts/evaluate.py", f"--model_dir={tmp_path / 'run'}", "--nosame_length", "--clamp_len=0"
  )
  assert result.returncode == 0, result.stderr[-2000:]
  other = json.loads(result.stdout)
  assert other["same_length"] is False and other["nll"] != same["nll"]


def test_the_memory_estimate_of_a_step():
  from par.search import memory

  config = dataclasses.replace(CONFIG, architecture="sf", mem_len=6, dropatt=0.0)
  whole = memory.step_memory(config, 1000, lanes=8, seq_len=5)
  assert (whole["parameters"], whole["gradients"], whole["optimizer"]) == (4000, 4000, 8000)
  assert whole["memory"] == 1 * 8 * 6 * 16 * 4  # one attending block's [8, 6, 16] states
  assert whole["total"] == sum(v for k, v in whole.items() if k != "total")
  # By hand: the softmax over [8 lanes, 2 heads, 5, 11] scores, kept as float32.
  scores = 8 * 2 * 5 * 11
  dropped = memory.step_memory(dataclasses.replace(config, dropatt=0.1), 1000, 8, 5)
  assert dropped["activations"] - whole["activations"] == scores * (2 + 4) * 2  # mask, output
  # Micro-batches keep a quarter of the activations at a time; float16 about half.
  quarter = memory.step_memory(config, 1000, lanes=8, seq_len=5, accumulate_steps=4)
  assert quarter["activations"] == memory.step_memory(config, 1000, 2, 5)["activations"]
  assert quarter["memory"] == whole["memory"]  # every lane's states stay
  half = memory.step_memory(config, 1000, 8, 5, precision="mixed_float16")["activations"]
  assert 0.4 < half / whole["activations"] < 0.8
  supernet = memory.step_memory(dataclasses.replace(config, architecture=""), 1000, 8, 5)
  assert supernet["activations"] > 1.4 * whole["activations"]  # both branches of both blocks


_EXPORT_PEAK = """
import resource, sys, tempfile
import keras, numpy as np, tensorflow as tf
from par.model import adaptive_softmax
if sys.argv[1] == "keras":  # Keras's own conversion, for the comparison
  adaptive_softmax.AdaptiveEmbedding.save_own_variables = keras.layers.Layer.save_own_variables
embedding = adaptive_softmax.AdaptiveEmbedding(200_000, 128)
inputs = keras.Input((None,), dtype="int32")
model = keras.Model(inputs, embedding(inputs))
embedding.table.assign(tf.random.stateless_normal([200_000, 128], [1, 2]))
resident = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
open("/proc/self/clear_refs", "w").write("5")  # the peak below starts here (Linux >= 4.0)
run = tempfile.mkdtemp()
if sys.argv[1] == "keras":  # and Keras's own archive, as export wrote it before
  path = run + "/m.keras"
  model.save(path)
else:
  from par import runs
  runs.export(model, run)
  path = run + "/export/model.keras"
# VmHWM: the peak of this process's own memory (ru_maxrss keeps the pytest worker's over exec)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
grown = peak * 1024 - resident
loaded = keras.saving.load_model(path)
same = np.array_equal(loaded.weights[0].numpy(), embedding.table.numpy())
print(grown / (200_000 * 128 * 4), same)
"""


def test_an_export_copies_no_table():
  # Keras converts a variable to numpy as a copy of a copy, and may build the weights file in
  # memory: two tables at the export's peak (840 MiB at WikiText-103's vocabulary). Read once,
  # handed to Keras as its own copy and written to disk before zipping (runs.export), none;
  # the archive loads back to the same table.
  def tables_grown(mode):
    done = subprocess.run(
      [sys.executable, "-c", _EXPORT_PEAK, mode], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown, same = done.stdout.split()
    assert same == "True"
    return float(grown)

  assert tables_grown("ours") < 0.25 and tables_grown("keras") > 1.75

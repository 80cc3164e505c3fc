"""The pieces train_and_evaluate wires together, each alone: the compiled step and loop
(without a run directory), the step boundaries, the interval meter and the run's plan."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import counting_dataset
from par.config import ModelConfig
from par.config import RuntimeConfig
from par.config import TrainConfig
from par.data import records
from par.errors import ParError
from par.model.par_model import ParModel
from par.train import boundaries
from par.train import plan as plan_lib
from par.train import report
from par.train import steps

MODEL = ModelConfig(
  vocab_size=60, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return counting_dataset(tmp_path_factory.mktemp("data"))


def make_loop(config, total_steps=20, costs=None):
  """A StepLoop on a fresh model, built as train_and_evaluate builds it, on one device."""
  keras.utils.set_random_seed(config.seed)
  model = ParModel(config.model)
  model.build()
  state = steps.TrainState(model.initial_memory(4))
  optimizers = steps.make_optimizers(
    config, total_steps, model.weight_variables(), state.step, model.no_decay_variables()
  )
  optimizers[0].build(model.weight_variables())
  optimizers[1].build(model.architecture_variables())
  return steps.StepLoop(
    model, optimizers, state, config, total_steps, tf.distribute.get_strategy(), costs=costs
  )


def weights(loop):
  return [v.numpy().copy() for v in loop.model.variables]


@pytest.mark.parametrize("architecture", ["", "sfs"])
def test_one_call_of_n_steps_equals_n_calls_of_one(data_dir, architecture):
  config = TrainConfig(
    model=dataclasses.replace(MODEL, architecture=architecture),
    data_dir=str(data_dir),
    train_steps=20,
    max_lr=3e-3,
    warmup_steps=2,
    arch_lr=0.05,
    seed=4,
  )
  whole, single = make_loop(config), make_loop(config)
  initial = weights(make_loop(config))
  dataset = records.load_dataset(data_dir, "train")
  result = whole.run(iter(dataset), whole.model.initial_memory(4), tf.constant(4))
  iterator, memory, nll, tokens = iter(dataset), single.model.initial_memory(4), 0.0, 0.0
  for _ in range(4):
    one = single.run(iterator, memory, tf.constant(1))
    memory, nll, tokens = one.memory, nll + float(one.nll), tokens + float(one.tokens)
  assert int(whole.state.step.numpy()) == int(single.state.step.numpy()) == 4
  assert bool(result.finite) and float(result.nll) == pytest.approx(nll, rel=1e-6)
  assert float(result.tokens) == tokens == 4 * 4 * 8
  for a, b in zip(weights(whole), weights(single)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert all(np.abs(a - b).max() > 0 for a, b in zip(weights(whole)[:3], initial[:3]))  # moved
  for a, b in zip(result.memory.tensors, memory.tensors):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
  if not architecture:  # The search moved the architecture logits.
    assert np.abs(whole.model.architecture_probabilities() - 1 / 3).max() > 1e-4


def _while_loops(concrete):
  """The parallel_iterations of every while loop of a traced function's graph."""
  return [
    op.get_attr("parallel_iterations")
    for op in concrete.graph.get_operations()
    if op.type in ("While", "StatelessWhile")
  ]


def test_the_training_and_evaluation_loops_run_one_iteration_at_a_time(data_dir):
  # A while loop runs up to ten iterations at once where their dependencies allow, each
  # holding its tensors: at WikiText-103's base shape the evaluation's peak grew by 1.9 GB a
  # call of 12 segments (docs/BENCHMARKS.md). Every loop over steps or segments runs one.
  from par.train import evaluate

  config = TrainConfig(model=MODEL, data_dir=str(data_dir), train_steps=20, warmup_steps=2)
  loop = make_loop(config)
  dataset = records.load_dataset(data_dir, "train")
  memory = loop.model.initial_memory(4)
  traced = loop.run.get_concrete_function(iter(dataset), memory, tf.constant(2))
  evaluator = evaluate.Evaluator(loop.model, 4, stop=tf.Variable(False))
  valid = records.load_dataset(data_dir, "valid")
  counted = evaluator._run.get_concrete_function(iter(valid), 4, tf.constant(2, tf.int64))
  inputs = tf.zeros([3, 4, 8], tf.int32)
  segments = tf.function(evaluator._segments_loop).get_concrete_function(
    inputs, inputs, loop.model.initial_memory(4, 4), tf.constant(0, tf.int64)
  )
  for concrete in (traced, counted, segments):
    assert _while_loops(concrete) == [1], concrete.name


def test_the_first_step_reports_the_loss_of_the_initial_weights(data_dir):
  config = TrainConfig(
    model=dataclasses.replace(MODEL, architecture="sfs"),
    data_dir=str(data_dir),
    train_steps=20,
    max_lr=3e-3,
    warmup_steps=2,
  )
  loop = make_loop(config)
  inputs, targets = next(iter(records.load_dataset(data_dir, "train")))
  hidden, _ = loop.model(inputs, memory=loop.model.initial_memory(4))
  log_probs = loop.model.log_probs(hidden).numpy()
  expected = -np.take_along_axis(log_probs, targets.numpy()[..., None], -1).sum()
  before = weights(loop)
  result = loop.run(
    iter(records.load_dataset(data_dir, "train")), loop.model.initial_memory(4), tf.constant(1)
  )
  assert float(result.nll) == pytest.approx(expected, rel=1e-5)
  assert any(np.abs(a - b).max() > 0 for a, b in zip(before, weights(loop)))  # It trained.


def test_a_non_finite_loss_stops_the_loop_without_counting_the_step(data_dir):
  config = TrainConfig(
    model=dataclasses.replace(MODEL, architecture="sfs"), data_dir=str(data_dir), train_steps=20
  )
  loop = make_loop(config)
  loop.model.embedding.embeddings.assign(tf.fill(loop.model.embedding.embeddings.shape, np.nan))
  result = loop.run(
    iter(records.load_dataset(data_dir, "train")), loop.model.initial_memory(4), tf.constant(3)
  )
  assert not bool(result.finite) and int(loop.state.step.numpy()) == 0
  assert float(result.tokens) == 0


def test_train_state_keeps_the_attending_blocks_memory_in_its_layout():
  model = ParModel(dataclasses.replace(MODEL, architecture="fsi"))
  model.build()
  memory = model.initial_memory(2)
  state = steps.TrainState(memory)
  assert len(state.memory_states) == 1
  filled = memory.with_tensors([tf.fill([2, 4, 16], 3.0)], tf.constant(4))
  state.save_memory(filled)
  back = state.memory()
  assert back.states[0] == () and back.states[2] == () and int(back.length) == 4
  np.testing.assert_array_equal(back.states[1].numpy(), filled.states[1].numpy())


# --- boundaries ----------------------------------------------------------------------------------

BOOKS = TrainConfig(
  steps_per_loop=50, log_every=100, eval_every=0, checkpoint_every=1000, plot_every=250
)


@pytest.mark.parametrize(
  "step, position, expected",
  [
    (0, 0, 50),  # steps_per_loop
    (90, 90, 10),  # the next log
    (240, 240, 10),  # the next plot (250) comes before the log at 300
    (990, 990, 10),  # log and checkpoint at 1000
    (1180, 80, 20),  # the epoch of 100 records ends (with a log) at 1200
    (1995, 95, 5),  # the run ends at 2000
  ],
)
def test_the_loop_stops_at_the_next_boundary(step, position, expected):
  steps_per_epoch = 100 if step == 1180 else 1000
  assert boundaries.steps_to_next_stop(step, position, steps_per_epoch, 2000, BOOKS) == expected


def test_what_is_due_at_a_step():
  assert boundaries.due(100, False, 2000, BOOKS) == boundaries.Due(True, False, False, False)
  assert boundaries.due(250, False, 2000, BOOKS) == boundaries.Due(False, True, False, False)
  assert boundaries.due(1000, False, 2000, BOOKS) == boundaries.Due(True, True, False, True)
  assert boundaries.due(130, True, 2000, BOOKS) == boundaries.Due(True, False, True, False)
  assert boundaries.due(2000, False, 2000, BOOKS) == boundaries.Due(True, True, False, True)
  never = dataclasses.replace(BOOKS, plot_every=0, eval_every=30)
  assert boundaries.due(250, False, 2000, never) == boundaries.Due(False, False, False, False)
  assert boundaries.due(90, False, 2000, never).evaluate


# --- the meter and the plan ------------------------------------------------------------------


def loop_result(nll, tokens, norm=2.0, skipped=0.0):
  return steps.LoopResult(None, nll, tokens, nll, tokens, 0.0, norm, skipped, True)


def test_meter_sums_an_interval_and_times_all_but_the_first_call():
  meter = report.Meter(tokens_per_step=100)
  meter.add(loop_result(30.0, 10.0, norm=4.0), num_steps=2, seconds=9.0)  # traced: not timed
  meter.add(loop_result(10.0, 10.0, norm=2.0, skipped=1.0), num_steps=2, seconds=1.0)
  # The interval's throughput leaves the tracing call out too (200 tokens in 1 s, not 400
  # in 10 s).
  assert meter.loss == pytest.approx(2.0) and meter.speed == pytest.approx(200 / 1.0)
  assert meter.mean_norm == pytest.approx(6.0 / 3)  # one of four steps skipped
  assert meter.tokens_per_second == pytest.approx(200 / 1.0)
  meter.next_interval()
  assert meter.steps == 0 and meter.loss == 0 and meter.tokens_per_second == 200
  assert meter.speed is None  # nothing timed yet in this interval
  meter.add(loop_result(10.0, 10.0), num_steps=2, seconds=4.0)
  assert meter.speed == pytest.approx(50.0) and meter.tokens_per_second == pytest.approx(80.0)
  traced = report.Meter(tokens_per_step=100)
  traced.add(loop_result(30.0, 10.0), num_steps=2, seconds=9.0)
  assert traced.speed is None and traced.tokens_per_second is None


def test_the_status_line_and_the_eta_leave_the_tracing_call_out():
  import io

  from par.train import host

  meter = report.Meter(tokens_per_step=100)
  one = steps.LoopResult((), 50.0, 20.0, 0.0, 0.0, 0.0, 3.0, 0.0, True)
  meter.add(one, 5, seconds=30.0)  # the first call traces: not timed
  assert (
    report.status_text(5, 10, meter)
    == "[############............] 5/10 | loss 2.500 | – tok/s | ETA ?"
  )
  meter.add(one, 5, seconds=2.0)  # 0.4 s a step
  assert meter.seconds_per_step == pytest.approx(0.4) and meter.eta(10, 1010) == "0:06:40"
  expected = "| loss 2.500 | 250 tok/s | ETA 0:00:00"
  assert report.status_text(10, 10, meter).endswith(expected)
  stream, status = io.StringIO(), host.StatusLine()
  status.enabled, status.stream = True, stream
  status.update("[#.] 1/2")
  status.update("[##] 2/2")
  around = host._AroundStatus(stream, status)
  around.write("I1205 a log record\n")
  assert stream.getvalue() == "[#.] 1/2\r\x1b[K[##] 2/2\r\x1b[KI1205 a log record\n[##] 2/2"


def test_plan_of_a_run(data_dir):
  meta = records.load_meta(data_dir)
  records_per_epoch = meta.splits["train"].records
  plan = plan_lib.make_plan(TrainConfig(epochs=3), meta, replicas=2)
  assert plan == plan_lib.Plan(records_per_epoch, 3 * records_per_epoch, 2, 2, 4 * 8)
  assert plan_lib.make_plan(TrainConfig(train_steps=7), meta, 1).total_steps == 7
  with pytest.raises(ParError, match="does not split into 3 replicas"):
    plan_lib.make_plan(TrainConfig(), meta, 3)
  assert plan_lib.make_plan(TrainConfig(accumulate_steps=2), meta, 2).lanes == 2
  with pytest.raises(
    ParError,
    match=r"--accumulate_steps 3 does not divide the 4 lanes of each "
    r"replica \(batch_size 4, 1 replica\)",
  ):
    plan_lib.make_plan(TrainConfig(accumulate_steps=3), meta, 1)
  with pytest.raises(ParError, match="holds out 0 of the 4 lanes"):
    plan_lib.make_plan(TrainConfig(arch_split=0.1), meta, 1)
  # The replicas a command knows before TensorFlow starts, to check the plan with.
  for runtime, replicas in (
    (RuntimeConfig(), 1),
    (RuntimeConfig(strategy="one_device"), 1),
    (RuntimeConfig(strategy="mirrored", cpu_devices=2), 2),
    (RuntimeConfig(strategy="mirrored"), None),  # the GPUs decide
    (RuntimeConfig(strategy="multi_worker"), None),
  ):
    assert plan_lib.known_replicas(runtime) == replicas, runtime


def test_lamb_scales_adams_step_by_each_tensors_trust_ratio():
  # LAMB (You et al. 2020), first step, no weight decay: Adam's bias-corrected direction
  # r = m / (sqrt(v) + eps) = g / (|g| + eps), scaled per tensor by ||w|| / ||r||.
  config = TrainConfig(model=MODEL, optimizer="lamb", max_lr=1e-2, warmup_steps=0, train_steps=5)
  w0 = np.array([[3.0, -4.0], [1.0, 2.0]], np.float32)
  g = np.array([[0.5, 0.1], [-2.0, 0.0]], np.float32)
  variable = tf.Variable(w0, name="kernel")
  weights, _ = steps.make_optimizers(config, 5, [variable], tf.Variable(0, dtype=tf.int64))
  weights.build([variable])
  weights.apply([tf.constant(g)], [variable])
  rate = float(steps.schedules.learning_rate(0, 1e-2, 0, 5))
  r = g / (np.abs(g) + weights.epsilon)
  expected = w0 - rate * np.linalg.norm(w0) / np.linalg.norm(r) * r
  np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5)
  # Adam's first step would move every entry by the rate, whatever the weight's size.
  assert np.abs(variable.numpy() - w0).max() > 2 * rate


def test_min_lr_and_optimizer_settings_are_checked():
  with pytest.raises(ParError, match=r"min_lr must lie in \[0, max_lr = 0.001\], got 0.002"):
    TrainConfig(model=MODEL, max_lr=1e-3, min_lr=2e-3).validate()
  TrainConfig(model=MODEL, optimizer="lamb", weight_decay=0.01).validate()
  with pytest.raises(ParError, match="weight_decay needs optimizer adamw or lamb"):
    TrainConfig(model=MODEL, optimizer="adam", weight_decay=0.01).validate()


def test_accumulated_micro_batches_equal_the_large_batch(data_dir):
  # A search with a resource term (whose gradient must count once) and a held-out split (two
  # losses), dropout off, 4 lanes in micro-batches of one.
  arch_split = 0.5
  config = TrainConfig(
    model=MODEL,
    data_dir=str(data_dir),
    train_steps=20,
    max_lr=3e-3,
    warmup_steps=2,
    arch_lr=0.05,
    resource="flops",
    resource_weight=0.5,
    arch_split=arch_split,
    seed=4,
  )
  costs = [1.0, 0.6, 0.0]
  dataset = records.load_dataset(data_dir, "train")
  if arch_split:
    held = tf.constant(np.array([[False], [True], [False], [True]]))
    dataset = dataset.map(lambda x, t: (x, t, held))
  runs = {}
  for k in (1, 4):  # 4: one lane per micro-batch
    loop = make_loop(dataclasses.replace(config, accumulate_steps=k), costs=costs)
    result = loop.run(iter(dataset), loop.model.initial_memory(4), tf.constant(3))
    runs[k] = (loop, result)
  large, large_result = runs[1]
  moved = np.abs(large.model.architecture_probabilities() - 1 / 3).max()
  assert moved > 1e-3
  for k in (4,):
    loop, result = runs[k]
    # (Adam divides by |g|: a weight whose gradient is ~0 moves by float noise, up to 1e-5;
    # a wrong gradient would move it by the rate, 3e-3 a step.)
    for a, b in zip(weights(loop), weights(large)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for name in ("nll", "tokens", "arch_nll", "arch_tokens", "penalty", "norm"):
      assert float(getattr(result, name)) == pytest.approx(
        float(getattr(large_result, name)), rel=1e-5
      ), name
    for a, b in zip(result.memory.tensors, large_result.memory.tensors):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_schedules_follow_the_training_step_not_the_optimizers_count():
  # A step skipped for a float16 overflow advances the training step, not the optimizers'
  # iteration counts: the rates applied must be those of the step the log reports.
  config = TrainConfig(
    model=MODEL, max_lr=1e-2, min_lr=1e-3, warmup_steps=4, train_steps=20, arch_warmup_steps=6
  )
  loop = make_loop(config, total_steps=20)
  weights, arch = loop.weights_optimizer, loop.arch_optimizer
  for step in (0, 3, 6, 19):
    loop.state.step.assign(step)
    assert int(weights.iterations.numpy()) == 0
    expected = float(steps.schedules.learning_rate(step, 1e-2, 4, 20, 1e-3))
    assert float(weights.learning_rate) == pytest.approx(expected, rel=1e-6)
    assert float(arch.learning_rate) == pytest.approx(config.arch_lr if step >= 6 else 0.0)
  assert float(weights.learning_rate) == pytest.approx(1e-3)  # the last step's is min_lr


def test_the_architecture_l2_term_is_added_to_its_gradient():
  # DARTS and FBNet add L2 · α to the logits' gradient, which Adam then normalises: with a
  # zero data gradient the first step moves each logit by the whole rate towards 0 (a
  # decoupled decay would move it by rate · weight · α, about 1e-5 here).
  config = TrainConfig(model=MODEL, arch_lr=0.01, arch_weight_decay=0.1, train_steps=5)
  loop = make_loop(config, total_steps=5)
  alpha = [np.array([0.5, -1.0, 2.0], np.float32) * (k + 1) for k in range(3)]
  for variable, value in zip(loop.arch_variables, alpha):
    variable.assign(value)
  zeros = [tf.zeros_like(v) for v in loop.weight_variables]
  data = [[np.zeros(3, np.float32)] * 3, [np.array([0.3, -0.2, 0.05], np.float32)] * 3]
  m = [np.zeros(3)] * 3
  v = [np.zeros(3)] * 3
  expected = [a.astype(np.float64) for a in alpha]
  epsilon = loop.arch_optimizer.epsilon
  for t, grads in enumerate(data, start=1):  # Keras's Adam, written out
    loop._apply(zeros, [tf.constant(g) for g in grads])
    for k in range(3):
      g = grads[k] + 0.1 * expected[k]
      m[k] = m[k] + (g - m[k]) * (1 - 0.5)
      v[k] = v[k] + (g * g - v[k]) * (1 - 0.999)
      rate = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.5**t)
      expected[k] = expected[k] - rate * m[k] / (np.sqrt(v[k]) + epsilon)
    if t == 1:
      for variable, a in zip(loop.arch_variables, alpha):
        np.testing.assert_allclose(variable.numpy(), a - 0.01 * np.sign(a), rtol=1e-5)
  for variable, value in zip(loop.arch_variables, expected):
    np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5)


def test_weight_decay_leaves_out_biases_norms_and_attention_biases_by_role():
  # Transformer-XL's softmax names its biases bias0, bias1, ... and cluster_bias: a rule by
  # name missed them. With a zero gradient AdamW only decays: w <- w (1 - rate · decay).
  model_config = dataclasses.replace(
    MODEL, architecture="sf", n_blocks=2, cutoffs=(20, 40), div_val=2, untie_rel_bias=True
  )
  config = TrainConfig(
    model=model_config, optimizer="adamw", weight_decay=0.5, max_lr=0.1, warmup_steps=0
  )
  loop = make_loop(config, total_steps=5)
  model = loop.model
  before = {id(v): v.numpy().copy() for v in loop.weight_variables}
  loop.weights_optimizer.apply(
    [tf.zeros_like(v) for v in loop.weight_variables], loop.weight_variables
  )
  rate = float(steps.schedules.learning_rate(0, 0.1, 0, 5))
  attention = model.blocks[0].attention
  exempt = {id(attention.u), id(attention.v)}
  names = set()
  for variable in loop.weight_variables:
    old = before[id(variable)]
    if len(variable.shape) <= 1 or id(variable) in exempt:
      names.add(variable.name)
      np.testing.assert_array_equal(variable.numpy(), old)
    else:
      np.testing.assert_allclose(variable.numpy(), old * (1 - rate * 0.5), rtol=1e-6)
  assert {"bias0", "bias1", "bias2", "cluster_bias", "gamma", "beta", "u", "v"} <= names
  assert {id(v) for v in model.no_decay_variables()} == {
    id(v) for v in loop.weight_variables if len(v.shape) <= 1 or id(v) in exempt
  }

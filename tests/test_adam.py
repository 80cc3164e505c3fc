"""par.train.adam: Keras's Adam with one fused kernel per update, against Adam written out in
numpy and against Keras's own."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from par.train import adam

SHAPES = [(3, 4), (5,), (2, 3, 2), (1,)]


def _setup(seed=0, steps=6):
  rng = np.random.default_rng(seed)
  start = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
  # Gradients of every size, a zero one among them (Adam's division by sqrt(v) + eps).
  grads = [
    [rng.normal(scale=10.0 ** rng.integers(-3, 2), size=s).astype(np.float32) for s in SHAPES]
    for _ in range(steps)
  ]
  grads[2][1][:] = 0.0
  return start, grads


def _run(optimizer_class, start, grads, rates, **kwargs):
  variables = [keras.Variable(x) for x in start]
  step = tf.Variable(0)
  optimizer = optimizer_class(lambda: tf.gather(rates, step), **kwargs)
  optimizer.build(variables)

  @tf.function
  def apply(gradients):
    optimizer.apply(gradients, variables)
    step.assign_add(1)

  for gradients in grads:
    apply([tf.constant(g) for g in gradients])
  return [v.numpy() for v in variables], optimizer


def _numpy_adam(start, grads, rates, beta_1, beta_2, epsilon):
  w = [x.astype(np.float64) for x in start]
  m = [np.zeros_like(x) for x in w]
  v = [np.zeros_like(x) for x in w]
  for t, gradients in enumerate(grads, start=1):
    for k, g in enumerate(gradients):
      m[k] = beta_1 * m[k] + (1 - beta_1) * g
      v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
      rate = rates[t - 1] * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w[k] = w[k] - rate * m[k] / (np.sqrt(v[k]) + epsilon)
  return w


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.999)])
def test_fused_adam_is_adam_written_out_and_keras_adam(betas):
  start, grads = _setup()
  rates = tf.constant([1e-3, 5e-3, 2e-2, 1e-2, 3e-3, 0.0])  # a schedule, read every step
  fused, optimizer = _run(adam.Adam, start, grads, rates, beta_1=betas[0], beta_2=betas[1])
  reference = _numpy_adam(start, grads, rates.numpy(), *betas, optimizer.epsilon)
  ours, _ = _run(keras.optimizers.Adam, start, grads, rates, beta_1=betas[0], beta_2=betas[1])
  for f, r, k, s in zip(fused, reference, ours, start):
    assert np.abs(f - s).max() > 1e-3  # the weights moved
    np.testing.assert_allclose(f, r, rtol=2e-6, atol=1e-7)
    # Keras rounds its own way (m += (g - m)(1 - b1), its bias correction on the rate).
    np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)
  assert int(optimizer.iterations.numpy()) == len(grads)


def test_each_dense_update_is_one_fused_kernel():
  # Guards the fast path against a Keras release that no longer calls the method it overrides:
  # the traced update holds one ResourceApplyAdam per variable and no assignment of its own.
  variables = [keras.Variable(np.ones(s, np.float32)) for s in SHAPES]
  optimizer = adam.Adam(1e-3)
  optimizer.build(variables)
  apply = tf.function(lambda grads: optimizer.apply(grads, variables))
  graph = apply.get_concrete_function([tf.TensorSpec(s, tf.float32) for s in SHAPES]).graph
  ops = [op.type for op in graph.get_operations()]
  assert ops.count("ResourceApplyAdam") == len(SHAPES)
  # The only other write is the step count's.
  assert ops.count("AssignVariableOp") == 1
  assert ops.count("AssignSubVariableOp") == ops.count("AssignAddVariableOp") == 0


def test_sparse_gradients_give_keras_result():
  start, _ = _setup()
  values = tf.constant([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
  rows = tf.IndexedSlices(values, tf.constant([0, 2]), tf.constant([3, 4]))
  results = []
  for optimizer_class in (adam.Adam, keras.optimizers.Adam):
    variables = [keras.Variable(x) for x in start[:1]]
    optimizer = optimizer_class(0.1)
    optimizer.build(variables)
    optimizer.apply([rows], variables)
    results.append(variables[0].numpy())
  np.testing.assert_array_equal(results[0], results[1])
  np.testing.assert_array_equal(results[0][1], start[0][1])  # row 1 had no gradient

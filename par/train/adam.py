"""Keras's Adam with each variable's update as one fused kernel.

Keras 3's Adam updates a variable with about twenty small ops (the step count read and cast,
two powers, the bias correction, three reads, squares, subtractions, three assignments), and
the base SuperNet has 95 variables: some 2,000 op executions a step, a third of the step's
ops, for 3% of its FLOPs. `Adam` computes the step's scalars once and updates each variable
with TensorFlow's `ResourceApplyAdam` (one kernel per variable, on CPU, GPU and under XLA):

  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g²;
  w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)

which is Keras's update written the other way round (Keras adds (g - m)(1 - b1) to m): the
same function, equal up to float rounding (tests/test_adam.py). Everything else (the
schedule, the slots and their order in checkpoints, weight decay, clipping options,
distribution) is Keras's: old checkpoints resume. Sparse gradients and amsgrad take Keras's
own path.
"""

import keras
import tensorflow as tf


class Adam(keras.optimizers.Adam):
  """keras.optimizers.Adam, each dense update one `ResourceApplyAdam`."""

  def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
    # Keras's TensorFlow optimizer calls this once a step, in cross-replica context, with every
    # (gradient, variable) pair; the scalars made here are shared by all the updates.
    if self.amsgrad:
      return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
    t = tf.cast(self.iterations + 1, tf.float32)
    scalars = {
      "beta1_power": tf.pow(tf.constant(self.beta_1, tf.float32), t),
      "beta2_power": tf.pow(tf.constant(self.beta_2, tf.float32), t),
      "beta1": tf.constant(self.beta_1, tf.float32),
      "beta2": tf.constant(self.beta_2, tf.float32),
      "epsilon": tf.constant(self.epsilon, tf.float32),
    }

    def update(variable, gradient, learning_rate):
      # Under a MirroredStrategy learning_rate is a per-replica value: `update` gets each
      # device's own (a no-op cast where it is float32 already).
      if isinstance(gradient, tf.IndexedSlices) or variable.dtype != tf.float32:
        return self.update_step(gradient, variable, learning_rate)
      index = self._get_variable_index(variable)
      return tf.raw_ops.ResourceApplyAdam(
        var=variable.handle,
        m=self._momentums[index].handle,
        v=self._velocities[index].handle,
        lr=tf.cast(learning_rate, tf.float32),
        grad=tf.cast(gradient, tf.float32),
        **scalars,
      )

    for gradient, variable in grads_and_vars:
      distribution.extended.update(variable, update, args=(gradient, learning_rate), group=False)

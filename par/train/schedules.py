"""Learning-rate and temperature schedules: pure functions of the step, tested at fixed steps.

`step` counts the updates made before the current one: 0 for the first, total - 1 for the
last. Both schedules hit their end values exactly at those two steps:

  learning_rate: linear warm-up, max_lr · (step + 1) / warmup_steps, reaching max_lr at step
    warmup_steps - 1; then a cosine from max_lr down to exactly min_lr (0 by default) at
    step total - 1.
  temperature:   tau_start at step 0, tau_end at step total - 1, geometrically ("exp") or
    linearly in between.

They accept Python numbers or tensors, so the same code serves tests and the training step.
"""

import math

import keras
import tensorflow as tf


def learning_rate(step, max_lr, warmup_steps, total_steps, min_lr=0.0):
  step = tf.cast(step, tf.float32)
  warmup = float(max(warmup_steps, 0))
  decay = float(max(total_steps - warmup_steps, 1))
  rising = max_lr * (step + 1.0) / max(warmup, 1.0)
  progress = tf.clip_by_value((step + 1.0 - warmup) / decay, 0.0, 1.0)
  falling = min_lr + (max_lr - min_lr) * 0.5 * (1.0 + tf.cos(math.pi * progress))
  return tf.where(step + 1.0 <= warmup, rising, falling)


def temperature(step, tau_start, tau_end, total_steps, kind="exp"):
  last = float(max(total_steps - 1, 1))
  progress = tf.clip_by_value(tf.cast(step, tf.float32) / last, 0.0, 1.0)
  if kind == "exp":
    tau = tau_start * (tau_end / tau_start) ** progress
  elif kind == "linear":
    tau = tau_start + (tau_end - tau_start) * progress
  else:
    raise ValueError(f"tau_schedule must be exp or linear, got {kind!r}")
  return tf.where(progress >= 1.0, tf.constant(tau_end, tf.float32), tau)


@keras.saving.register_keras_serializable(package="par")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
  """`learning_rate` as a Keras schedule of the optimizer's iteration count."""

  def __init__(self, max_lr, warmup_steps, total_steps, min_lr=0.0):
    self.max_lr = max_lr
    self.warmup_steps = warmup_steps
    self.total_steps = total_steps
    self.min_lr = min_lr

  def __call__(self, step):
    return learning_rate(step, self.max_lr, self.warmup_steps, self.total_steps, self.min_lr)

  def get_config(self):
    return {
      "max_lr": self.max_lr,
      "warmup_steps": self.warmup_steps,
      "total_steps": self.total_steps,
      "min_lr": self.min_lr,
    }


@keras.saving.register_keras_serializable(package="par")
class Delayed(keras.optimizers.schedules.LearningRateSchedule):
  """A constant learning rate that is 0 before `start_step`: the architecture warm-up.

  A zero rate rather than zeroed gradients: Adam's moments keep learning from real
  gradients, so the first real update has a calibrated size (with zeroed gradients and
  Keras' bias correction by iteration count, it would be about (1 - beta1) / sqrt(1 - beta2)
  times too large: 16x for DARTS' betas 0.5, 0.999). Decoupled weight decay, scaled by the
  rate, waits too.
  """

  def __init__(self, rate, start_step):
    self.rate = rate
    self.start_step = start_step

  def __call__(self, step):
    return tf.where(tf.cast(step, tf.float32) >= self.start_step, float(self.rate), 0.0)

  def get_config(self):
    return {"rate": self.rate, "start_step": self.start_step}

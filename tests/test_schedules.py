"""Learning-rate and temperature schedules at fixed steps."""

import math

import numpy as np
import pytest

from par.train import schedules


def lr(step, max_lr=1e-3, warmup=10, total=110):
  return float(schedules.learning_rate(step, max_lr, warmup, total))


def test_warmup_rises_linearly_to_the_peak():
  assert lr(0) == pytest.approx(1e-4)  # the first update already moves
  assert lr(4) == pytest.approx(5e-4)
  assert lr(9) == pytest.approx(1e-3)  # warmup_before: the last warm-up step is the peak


def test_cosine_falls_to_exactly_zero_at_the_last_step():
  assert lr(10) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 1 / 100)))
  assert lr(59) == pytest.approx(5e-4)  # halfway through the decay
  assert lr(109) == 0.0  # cooldown_after: the last step
  assert lr(500) == 0.0  # and beyond, never negative
  values = [lr(s) for s in range(110)]
  assert all(a <= b for a, b in zip(values[:10], values[1:10]))
  assert all(a >= b for a, b in zip(values[9:], values[10:]))


def test_without_warmup_the_first_step_is_near_the_peak():
  assert lr(0, warmup=0, total=100) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 100)))
  assert lr(99, warmup=0, total=100) == 0.0


@pytest.mark.parametrize("kind", ["exp", "linear"])
def test_temperature_hits_both_ends_exactly(kind):
  def tau(step):
    return float(schedules.temperature(step, 1.0, 0.1, 201, kind))

  assert tau(0) == 1.0
  assert tau(200) == np.float32(0.1)  # exactly, in the float32 the step computes in
  assert tau(1000) == tau(200)
  middle = math.sqrt(1.0 * 0.1) if kind == "exp" else 0.55
  assert tau(100) == pytest.approx(middle, rel=1e-5)


def test_temperature_end_value_is_the_float_given():
  # Not tau_start * tau_end, not a rounding of it: exactly the configured end.
  for end in (0.1, 0.05, 0.3333):
    assert float(schedules.temperature(49, 2.0, end, 50)) == np.float32(end)


def test_delayed_rate_is_zero_during_the_architecture_warmup():
  schedule = schedules.Delayed(3e-4, 5)
  assert [float(schedule(s)) for s in (0, 4, 5, 100)] == [
    0.0,
    0.0,
    pytest.approx(3e-4),
    pytest.approx(3e-4),
  ]


def test_keras_schedule_is_the_function():
  schedule = schedules.WarmupCosine(1e-3, 10, 110)
  assert float(schedule(59)) == lr(59)
  assert schedules.WarmupCosine(**schedule.get_config()).get_config() == schedule.get_config()


def test_min_lr_is_the_floor_the_cosine_ends_on():
  def floored(step):
    return float(schedules.learning_rate(step, 1e-3, 10, 110, min_lr=1e-4))

  assert floored(9) == pytest.approx(1e-3)  # the peak is unchanged
  assert floored(109) == pytest.approx(1e-4)  # the last step is the floor
  assert floored(500) == pytest.approx(1e-4)
  # In between, the same cosine shape over [min_lr, max_lr]: half way, the mean of the two.
  assert floored(59) == pytest.approx(5.5e-4)
  assert floored(30) == pytest.approx(1e-4 + (lr(30) / 1e-3) * 9e-4)
  schedule = schedules.WarmupCosine(1e-3, 10, 110, min_lr=1e-4)
  assert float(schedule(109)) == pytest.approx(1e-4)
  assert schedules.WarmupCosine(**schedule.get_config()).min_lr == 1e-4

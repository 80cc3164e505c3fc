"""When the host acts between calls of the compiled loop: pure functions of the step.

The loop runs uninterrupted up to the next step at which something must happen on the host
(a log line, an evaluation, a checkpoint, a plot, an epoch's end, the run's end, or simply
`steps_per_loop` steps), so the metrics of every logged interval are exact sums over it.
"""

import dataclasses


def steps_to_next_stop(step, position, steps_per_epoch, total_steps, config):
  """How many steps the next loop call runs, from `step`, `position` records into the epoch.

  Args:
    step: steps done so far.
    position: records of the current epoch already read.
    steps_per_epoch: records in the train split.
    total_steps: the run's length.
    config: the `TrainConfig` (steps_per_loop and the *_every intervals; 0 means never).
  """
  stops = [total_steps, step + config.steps_per_loop, step + steps_per_epoch - position]
  for every in (config.log_every, config.eval_every, config.checkpoint_every, config.plot_every):
    if every:
      stops.append((step // every + 1) * every)
  return min(stops) - step


@dataclasses.dataclass(frozen=True)
class Due:
  """What the host does after a loop call that ended at a step."""

  log: bool  # log the interval and write its summaries (and record the architecture)
  plot: bool  # draw the architecture heatmap
  evaluate: bool  # evaluate on valid
  checkpoint: bool  # save


def due(step, epoch_done, total_steps, config):
  """What is due at `step`, where a loop call ended; `epoch_done` if it ended an epoch."""
  last = step == total_steps
  return Due(
    log=step % config.log_every == 0 or last or epoch_done,
    plot=bool(config.plot_every) and step % config.plot_every == 0,
    evaluate=bool(config.eval_every and step % config.eval_every == 0) or epoch_done,
    checkpoint=step % config.checkpoint_every == 0 or last,
  )

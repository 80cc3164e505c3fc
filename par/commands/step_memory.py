"""The memory of training steps in one process, as TensorFlow's allocator counts it.

  par-step-memory --flagfile=configs/txl_wt103_base.flags \
      --data_dir=data/zipf-wt103_word_bsz4 --steps=3

Builds the model, its optimizers and its step loop as par-train does, runs `--steps` steps
of the train split one call each, and prints one JSON line, in MiB: the allocator's bytes in
use after building (parameters, optimizer slots), its peak over the steps (and apart over the
first, which traces, and the later ones) and in use after them; the process's resident memory
after building, after the steps and at its peak; and the wall time of a step after the first
(seconds). The allocator's counts exist where TensorFlow keeps them for the CPU (oneDNN on,
its default on x86); elsewhere they are null.
"""

import json
import resource
import sys
import time

from absl import flags

from par import cli
from par import config_flags

FLAGS = flags.FLAGS
_MIB = 1 << 20


def _rss():
  """The process's resident memory now, in MiB (Linux; None elsewhere)."""
  try:
    with open("/proc/self/statm") as statm:
      return int(statm.read().split()[1]) * resource.getpagesize() / _MIB
  except OSError:
    return None


def _peak_rss():
  """The process's peak resident memory, in MiB: Linux's VmHWM (ru_maxrss carries a large
  parent's over fork and exec: a probe started from a test worker read the worker's)."""
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, bytes on macOS
  return maxrss / (_MIB if sys.platform == "darwin" else 1024)


def _allocator(tf):
  try:
    info = tf.config.experimental.get_memory_info("CPU:0")
  except ValueError:  # no statistics kept for this device
    return None
  return {"current": info["current"] / _MIB, "peak": info["peak"] / _MIB}


def main(argv):
  del argv
  tf = cli.import_tensorflow()
  from par.data import records
  from par.train import trainer

  runtime = config_flags.runtime_config()
  config_flags.configure_threads(runtime)
  meta = records.load_meta(FLAGS.data_dir)
  loop, meta = trainer.bench_loop(config_flags.training_config(meta.vocab_size))
  built, rss_built = _allocator(tf), _rss()
  model, config = loop.model, loop.config
  batches = iter(records.load_dataset(config.data_dir, "train").repeat())
  memory = model.initial_memory(meta.batch_size)
  first = None
  for step in range(FLAGS.steps):
    if step == 1:
      start = time.perf_counter()
    result = loop.run(batches, memory, tf.constant(1))
    float(result.nll)
    memory = result.memory
    if step == 0 and FLAGS.steps > 1 and built:  # the first call traces: its own peak
      first = _allocator(tf)["peak"]
      tf.config.experimental.reset_memory_stats("CPU:0")
  later = (time.perf_counter() - start) / (FLAGS.steps - 1) if FLAGS.steps > 1 else None
  after = _allocator(tf)
  print(
    json.dumps(
      {
        "allocator_after_build": built and built["current"],
        "allocator_peak": after and max(after["peak"], first or 0),
        "allocator_peak_first_step": first,
        "allocator_peak_later_steps": first and after["peak"],
        "allocator_after_steps": after and after["current"],
        "rss_after_build": rss_built,
        "rss_after_steps": _rss(),
        "seconds_per_later_step": later,
        "peak_rss": _peak_rss(),
      }
    )
  )


def define_flags():
  flags.DEFINE_string("model_dir", None, "Unused (flagfiles for par-train set it).")
  flags.DEFINE_integer("steps", 3, "Training steps, one call each (the first traces).")
  config_flags.define_training()


def run():
  """The command's entry point: `par-step-memory`, `python -m par step_memory`."""
  cli.run(main, __name__, define_flags)

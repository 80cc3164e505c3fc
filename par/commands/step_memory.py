"""The memory of training steps in one process, as TensorFlow's allocator counts it.

  par-step-memory --flagfile=configs/txl_wt103_base.flags \
      --data_dir=data/zipf-wt103_word_bsz4 --steps=3

Builds the model, its optimizers and its step loop as par-train does, runs `--steps` steps
of the train split one call each, and prints one JSON line: the allocator's bytes in use
after building (parameters, optimizer slots), its peak over the steps and in use after them,
and the process's peak RSS, in MiB. The allocator's counts exist where TensorFlow keeps them
for the CPU (oneDNN on, its default on x86); elsewhere they are null.
"""

import json
import resource

from absl import flags

from par import cli
from par import config_flags

FLAGS = flags.FLAGS
_MIB = 1 << 20


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
  built = _allocator(tf)
  model, config = loop.model, loop.config
  batches = iter(records.load_dataset(config.data_dir, "train").repeat())
  memory = model.initial_memory(meta.batch_size)
  for _ in range(FLAGS.steps):
    result = loop.run(batches, memory, tf.constant(1))
    float(result.nll)
    memory = result.memory
  after = _allocator(tf)
  print(
    json.dumps(
      {
        "allocator_after_build": built and built["current"],
        "allocator_peak": after and after["peak"],
        "allocator_after_steps": after and after["current"],
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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

"""Trains a PAR SuperNet (architecture search) or a fixed architecture; resumes if interrupted.

  par-train --flagfile=configs/base_model.flags --model_dir=runs/base
  par-train --flagfile=configs/tiny.flags --model_dir=runs/tiny

Running the same command again resumes from the last checkpoint in --model_dir, under any
--strategy. Every flag below but --model_dir and --print_config sets the field of the same
name in par.config.ModelConfig, TrainConfig or RuntimeConfig, where each is described once.
"""

import json
import sys

from absl import flags

from par import cli
from par import config_flags

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "Run directory (created or resumed).")
  flags.DEFINE_bool(
    "print_config",
    False,
    "Print the configuration the flags give, as JSON, with the model's exact parameter count, "
    "its forward FLOPs per token and an estimate of the memory one training step needs per "
    "replica (par/search/memory.py), and exit.",
  )
  flags.DEFINE_integer(
    "vocab_size",
    None,
    "For --print_config: the vocabulary to count with (default: the dataset's; training "
    "always takes the dataset's).",
  )

  config_flags.define_training()
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def _with_costs(config, meta, counted, replicas=1):
  """The config as a dict, plus `parameters` (exact) and `flops_per_token` (forward, every
  tail computed: full log-probabilities), counted at the dataset's segment length and batch,
  else at segments as long as the memory and batch 1; None without a vocabulary size."""
  from par.search import costs
  from par.search.memory import describe
  from par.search.memory import step_memory

  value = config.to_dict()
  if not counted:
    print(
      "warning: no vocabulary size (no dataset at --data_dir, no --vocab_size): parameters "
      "and FLOPs are not counted",
      file=sys.stderr,
    )
    return dict(value, parameters=None, flops_per_token=None)
  model = config.model
  seq_len, batch_size = (meta.seq_len, meta.batch_size) if meta else (model.mem_len or 1, 1)
  total = costs.model_cost(model, model.kinds, seq_len=seq_len, batch_size=batch_size)["total"]
  counted_at = {"seq_len": seq_len, "batch_size": batch_size, "mem_len": model.mem_len}
  lanes = batch_size // max(replicas, 1)
  memory = step_memory(
    model, total.params, lanes, seq_len, config.mixed_precision, config.accumulate_steps
  )
  return dict(
    value,
    parameters=total.params,
    flops_per_token=total.flops,
    counted_at=counted_at,
    memory_mib_per_replica=dict(describe(memory), replicas=replicas, lanes_per_replica=lanes),
  )


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.vocab_size is not None and not FLAGS.print_config:
    raise cli.ParError("--vocab_size is for --print_config; training takes the dataset's")
  from par.data import records

  meta = missing = None
  try:
    meta = records.load_meta(FLAGS.data_dir)
  except cli.ParError as e:
    missing = e
  vocab_size = FLAGS.vocab_size or (meta.vocab_size if meta else None)
  if vocab_size is None and not FLAGS.print_config:
    config_flags.training_config(2**31 - 1)  # The flags' own errors first (any vocabulary),
    raise missing  # then the missing dataset's.
  config = config_flags.training_config(vocab_size)
  runtime = config_flags.runtime_config()
  if FLAGS.print_config:
    replicas = runtime.cpu_devices if runtime.strategy == "mirrored" and runtime.cpu_devices else 1
    print(json.dumps(_with_costs(config, meta, vocab_size is not None, replicas), indent=2))
    return
  if not FLAGS.model_dir:
    raise cli.ParError("--model_dir is required")
  _check_before_tensorflow(config, runtime, meta)
  cli.import_tensorflow()
  config_flags.configure_threads(runtime)
  strategy = config_flags.strategy(runtime)
  from par.train import trainer  # After the quiet import.

  results = trainer.train_and_evaluate(config, FLAGS.model_dir, strategy)
  for split in ("valid", "test"):
    if split in results:
      r = results[split]
      words = r.get("word_perplexity")
      words = f", word perplexity {words:.2f}" if words is not None else ""
      bpc = f", bpc {r['bpc']:.4f}" if r.get("bpc") is not None else ""
      print(f"{split}: token perplexity {r['token_perplexity']:.2f}{words}{bpc}")
  print(
    f"architecture: {results['pattern']}"
    if results["pattern"]
    else "architecture: none derived (a decoupled SuperNet: par-rank ranks its patterns)"
  )


def _check_before_tensorflow(config, runtime, meta):
  """What can be refused before TensorFlow's start-up (seconds): a cluster without TF_CONFIG,
  and a batch that does not split over the replicas, where their count is known already."""
  from par.train import plan

  if runtime.strategy == "multi_worker":
    plan.tf_config()
  replicas = plan.known_replicas(runtime)
  if replicas:
    plan.make_plan(config, meta, replicas)


def run():
  """The command's entry point: `par-train`, `python -m par train`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

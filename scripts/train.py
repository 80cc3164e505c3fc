"""Trains a PAR SuperNet (architecture search) or a fixed architecture; resumes if interrupted.

  python scripts/train.py --flagfile=configs/base_model.flags --model_dir=runs/base
  python scripts/train.py --flagfile=configs/tiny.flags --model_dir=runs/tiny

Running the same command again resumes from the last checkpoint in --model_dir, under any
--strategy. Every flag below but --model_dir and --print_config sets the field of the same
name in par.config.ModelConfig, TrainConfig or RuntimeConfig, where each is described once.
"""

from absl import flags

from par import cli
from par import config_flags

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory (created or resumed).")
_PRINT_CONFIG = flags.DEFINE_bool(
  "print_config",
  False,
  "Print the configuration the flags give, as JSON, and exit "
  "(the vocabulary size is the dataset's at training time).",
)

config_flags.define_training()
flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = config_flags.training_config()
  runtime = config_flags.runtime_config()
  if _PRINT_CONFIG.value:
    print(config.to_json())
    return
  if not _MODEL_DIR.value:
    raise cli.ParError("--model_dir is required")
  cli.import_tensorflow()
  config_flags.configure_threads(runtime)
  strategy = config_flags.strategy(runtime)
  from par.train import trainer  # After the quiet import.

  results = trainer.train_and_evaluate(config, _MODEL_DIR.value, strategy)
  for split in ("valid", "test"):
    if split in results:
      r = results[split]
      bpc = f", bpc {r['bpc']:.4f}" if r.get("bpc") is not None else ""
      print(
        f"{split}: token perplexity {r['token_perplexity']:.2f}, word perplexity "
        f"{r['word_perplexity']:.2f}{bpc}"
      )
  print(f"architecture: {results['pattern']}")


if __name__ == "__main__":
  cli.run(main)

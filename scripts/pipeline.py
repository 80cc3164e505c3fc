"""The search, the derived PAR models and the Transformer-XL baseline, compared in one command.

  python scripts/pipeline.py --flagfile=configs/base_model.flags --work_dir=runs/pipeline
  python scripts/pipeline.py --flagfile=configs/tiny.flags --work_dir=runs/p --ratio=3

Runs the SuperNet search with the training flags (every flag of scripts/train.py), derives
the argmax pattern and PAR's rule-based one (one attention block per --ratio blocks, in the
lower two-thirds), retrains both and the interleaved baseline ("sf" repeated) from scratch
with the same budget, and writes results.md, results.json and the architecture figures to
--work_dir (layout in par/pipeline.py). Running it again resumes where it stopped.
"""

from absl import flags

from par import cli
from par import config_flags

_WORK_DIR = flags.DEFINE_string("work_dir", None, "The pipeline's directory.", required=True)
flags.DEFINE_string(
  "model_dir", None, "Unused (flagfiles for scripts/train.py set it): runs go under --work_dir."
)
_RATIO = flags.DEFINE_float(
  "ratio",
  0.0,
  "Blocks per attention block for the rule-based pattern (0: as many as the argmax pattern has).",
)

config_flags.define_training()
flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _RATIO.value < 0:
    raise cli.ParError(f"--ratio must be 0 (from the search) or more, got {_RATIO.value}")
  config = config_flags.training_config()
  runtime = config_flags.runtime_config()
  if config.model.architecture:
    raise cli.ParError("the pipeline starts with a search: leave --architecture empty")
  cli.import_tensorflow()
  config_flags.configure_threads(runtime)
  strategy = config_flags.strategy(runtime)
  from par import pipeline  # After the quiet import.

  rows = pipeline.run_pipeline(config, _WORK_DIR.value, _RATIO.value, strategy)
  print(pipeline.markdown(rows), end="")


if __name__ == "__main__":
  cli.run(main)

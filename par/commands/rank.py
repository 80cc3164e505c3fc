"""Ranks every pattern with a search's shared weights: ranking.json and plots/ranking.png.

  par-rank --model_dir=runs/base_model
  par-rank --model_dir=runs/pipeline/search --tokens=65536

Each pattern (all 3^n up to 8 blocks, a stratified sample above) is scored on the first
--tokens tokens of the valid split with the SuperNet's own weights, every block forced to one
branch; DARTS-PT's perturbation (per block, the branch whose removal hurts most) is scored
too. Prints the ten best patterns, the argmax and the perturbation's as JSON. A ranking made
before on the same tokens is kept and only completed.
"""

import json

from absl import flags

from par import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A search's run directory.", required=True)
  flags.DEFINE_integer(
    "tokens", 16_384, "Valid tokens every pattern is scored on (whole records, at least this)."
  )


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.tokens < 1:
    raise cli.ParError(f"--tokens must be at least 1, got {FLAGS.tokens}")
  from par import runs

  runs.read_run(FLAGS.model_dir)  # A clear error before TensorFlow's import.
  cli.import_tensorflow()
  cli.configure_threads()
  from par.study import rank

  record = rank.rank_search(FLAGS.model_dir, FLAGS.tokens)
  best = record["order"][:10]
  print(
    json.dumps(
      {
        "tokens": record["tokens"],
        "patterns": len(record["scores"]),
        "best": {p: record["scores"][p] for p in best},
        "argmax": record["argmax"],
        "perturbation": record["perturbation"]["pattern"],
      }
    )
  )


def run():
  """The command's entry point: `par-rank`, `python -m par rank`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

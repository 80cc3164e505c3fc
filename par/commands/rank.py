"""Ranks every pattern with a search's shared weights and chooses the best: ranking.json and
plots/ranking.png.

  par-rank --model_dir=runs/base_model
  par-rank --model_dir=runs/pipeline/search --tokens=65536
  par-rank --model_dir=runs/uniform --max_attention=2      # the best with at most 2
  par-rank --model_dir=runs/uniform --max_mflops=3.5       # or at most 3.5 MFLOP a token

Each pattern (all 3^n up to 8 blocks, a stratified sample above) is scored on the first
--tokens tokens of the valid split, read as the run's evaluations read it, with the
SuperNet's own weights, every block forced to one branch; above 8 blocks SPOS's evolution
chooses the best (at most 1,000 patterns scored). DARTS-PT's perturbation (per block, the
branch whose removal hurts most) is scored too. Works on every kind of SuperNet, coupled or
decoupled. Prints the ten best patterns, the chosen one (and the best under a constraint),
the argmax and the perturbation's as JSON. A ranking made before of the same checkpoint on
the same tokens is kept and only completed.
"""

import json

from absl import flags

from par import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A search's run directory.", required=True)
  flags.DEFINE_integer(
    "tokens", 16_384, "Valid tokens every pattern is scored on (whole segments, at least this)."
  )
  flags.DEFINE_integer(
    "max_attention", None, "Also choose the best pattern with at most this many attention blocks."
  )
  flags.DEFINE_float(
    "max_mflops",
    None,
    "Also choose the best pattern of at most this many forward MFLOPs per token (counted).",
  )
  flags.DEFINE_float(
    "max_us",
    None,
    "Also choose the best pattern of at most this many forward microseconds per token (each "
    "block kind's time measured here, summed over the pattern).",
  )


def _constraint():
  """The `evolution.Constraint` the flags give, or None."""
  from par.search import evolution

  limits = [
    (n, FLAGS[f"max_{n}"].value) for n in ("mflops", "us") if FLAGS[f"max_{n}"].value is not None
  ]
  if FLAGS.max_attention is not None and FLAGS.max_attention < 0:
    raise cli.ParError(f"--max_attention must be 0 or more, got {FLAGS.max_attention}")
  if len(limits) > 1:
    raise cli.ParError("give one of --max_mflops and --max_us")
  if any(value <= 0 for _, value in limits):
    raise cli.ParError(f"--max_{limits[0][0]} must be positive, got {limits[0][1]}")
  if FLAGS.max_attention is None and not limits:
    return None
  name, limit = limits[0] if limits else ("", None)
  if name == "mflops":
    name, limit = "flops", limit * 1e6
  return evolution.Constraint(attention=FLAGS.max_attention, limit=limit, name=name)


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.tokens < 1:
    raise cli.ParError(f"--tokens must be at least 1, got {FLAGS.tokens}")
  constraint = _constraint()
  from par import runs

  runs.read_run(FLAGS.model_dir)  # A clear error before TensorFlow's import.
  cli.import_tensorflow()
  cli.configure_threads()
  from par.study import rank

  record = rank.rank_search(FLAGS.model_dir, FLAGS.tokens, constraint=constraint)
  best = record["order"][:10]
  printed = {
    "tokens": record["tokens"],
    "patterns": len(record["scores"]),
    "best": {p: record["scores"][p] for p in best},
    "shared_best": record["shared_best"],
    "argmax": record["argmax"],
    "perturbation": record["perturbation"]["pattern"],
  }
  if record["constraint"]:
    printed["constrained_best"] = record["constraint"]["best"]
  print(json.dumps(printed))


def run():
  """The command's entry point: `par-rank`, `python -m par rank`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

"""Measures what docs/BENCHMARKS.md records; prints a markdown table (par/bench/ has a module
per suite, each saying what it measures).

  par-benchmark --suite=data --text_dir=../shared/data/wt2-small
  par-benchmark --suite=train --text_dir=../shared/data/wt2-small
  par-benchmark --suite=cuts
  par-benchmark --suite=blocks
  par-benchmark --suite=scale --corpus=data/zipf-wt103
  par-benchmark --suite=shapes --corpus=data/zipf-wt103
  par-benchmark --suite=paper_memory --corpus=data/zipf-wt103
  par-benchmark --suite=memory
  par-benchmark --suite=speed
  par-benchmark --suite=jobs        # two one-thread trainings against one
  par-benchmark --suite=profile --profile_dir=profile
  par-benchmark --suite=oneshot     # each kind of SuperNet against a fixed pattern

In a checkout, `python3 scripts/benchmark.py` is the same command. Every suite times par's
commands in fresh processes or its functions in this one; machines here are shared and
noisy: compare figures from one run, not across runs.
"""

import dataclasses
from pathlib import Path

from absl import flags

from par import cli

FLAGS = flags.FLAGS
# The WikiText-2 sample beside a checkout (../shared/data/wt2-small).
_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "wt2-small"
CASES = ("matmul_case", "eval_case", "bound_case")  # the suites' own subprocesses


def define_flags():
  from par.bench import suites

  flags.DEFINE_enum(
    "suite",
    "data",
    list(suites.SUITES) + list(CASES),
    "What to measure (the *_case suites are the train and speed suites' subprocesses).",
  )
  flags.DEFINE_string("text_dir", str(_SAMPLE), "Split files the suites build datasets from.")
  flags.DEFINE_integer("vocab_size", 7000, "Vocabulary of the datasets built from --text_dir.")
  flags.DEFINE_integer("repeats", 5, "Repetitions of each timing (data and cuts suites).")
  flags.DEFINE_integer(
    "train_steps",
    150,
    "Steps per training case (train, speed, jobs); the first 50 (one loop call) are not timed.",
  )
  flags.DEFINE_string(
    "corpus",
    "data/zipf-wt103",
    "scale, shapes, paper_memory: split files; scale makes them if missing.",
  )
  flags.DEFINE_integer("input_sentence_size", 100_000, "scale: lines SentencePiece trains on.")
  flags.DEFINE_integer("shape_steps", 3, "shapes, paper_memory: training steps per model.")
  flags.DEFINE_integer("profile_steps", 10, "profile: training steps traced.")
  flags.DEFINE_string(
    "profile_dir",
    "profile",
    "profile: the TensorBoard log directory the trace is written to (tensorboard --logdir=DIR, "
    "Profile tab); created, and refused if it already holds a trace.",
  )
  flags.DEFINE_string(
    "data_dir", None, "profile: a built dataset (default: one built from --text_dir)."
  )
  flags.DEFINE_string("run_dir", None, "eval_case: the run directory to evaluate.")
  flags.DEFINE_string(
    "shapes", None, 'bound_case: {"m,k,n": count} of a step\'s forward matmuls, as JSON.'
  )
  flags.DEFINE_enum(
    "bound_dtype", "float32", ["float32", "bfloat16"], "bound_case: the products' dtype."
  )


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in ("vocab_size", "repeats", "train_steps", "shape_steps", "profile_steps"):
    if FLAGS[name].value < 1:
      raise cli.ParError(f"--{name} must be at least 1, got {FLAGS[name].value}")
  if FLAGS.suite == "eval_case" and not FLAGS.run_dir:
    raise cli.ParError("--suite=eval_case needs --run_dir")
  if FLAGS.suite == "bound_case" and not FLAGS.shapes:
    raise cli.ParError("--suite=bound_case needs --shapes")
  from par.bench import suites

  if FLAGS.suite not in suites.WITHOUT_TENSORFLOW:
    cli.import_tensorflow()
  if FLAGS.suite in CASES:
    return _case(FLAGS.suite)
  # Each option is the flag of its name.
  options = suites.Options(
    **{f.name: FLAGS[f.name].value for f in dataclasses.fields(suites.Options)}
  )
  print(suites.run(FLAGS.suite, options), end="")


def _case(name):
  """One of the suites' subprocesses: prints its measurement as one line of JSON."""
  from par.bench import speed
  from par.bench import train

  if name == "matmul_case":
    train.matmul_case()
  elif name == "eval_case":
    train.eval_case(Path(FLAGS.run_dir))
  else:
    speed.bound_case(FLAGS.shapes, FLAGS.bound_dtype)


def run():
  """The command's entry point: `par-benchmark`, `python -m par benchmark`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

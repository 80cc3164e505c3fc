r"""Writes a Zipfian corpus of WikiText-103's size and shape, to measure builds at scale.

  par-make-corpus --output=data/zipf-wt103

train.txt, valid.txt and test.txt of 103,227,021 / 217,646 / 245,569 words (end-of-line
words included) drawn from 267,734 word types, about 540 MB in all; see par/data/synthetic.py.
The same flags give the same files. Smaller corpora: --train_words, --types.
"""

from absl import flags

from par import cli
from par.data import synthetic

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("output", None, "Directory to create.", required=True)
  flags.DEFINE_integer(
    "train_words",
    synthetic.WIKITEXT103_WORDS["train"],
    "Words of the train split, one per line for its end included.",
  )
  flags.DEFINE_integer(
    "types", synthetic.WIKITEXT103_TYPES, "Distinct words the train split draws from."
  )
  flags.DEFINE_float("exponent", 1.0, "Of the Zipf law of word ranks.")
  flags.DEFINE_integer("seed", 0, "Of every random choice.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  words = dict(synthetic.WIKITEXT103_WORDS, train=FLAGS.train_words)
  written = synthetic.write_corpus(FLAGS.output, words, FLAGS.types, FLAGS.exponent, FLAGS.seed)
  for split, (lines, count) in written.items():
    print(f"{split}: {lines:,} lines, {count:,} words")
  print(f"wrote {FLAGS.output}")


def run():
  """The command's entry point: `par-make-corpus`, `python -m par make_corpus`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

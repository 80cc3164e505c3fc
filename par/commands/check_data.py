"""Checks a built dataset: every split whole, or says in one line what is wrong.

  par-check-data --data_dir=data/wikitext2_bsz32_seqlen32
  par-check-data --data_dir=data/wikitext2_bsz32_seqlen32 --verify

Checks meta.json, the tokenizer (its sha256, and its vocabulary against meta.json), every
shard's size, and every record's length field and CRCs, naming the file and the record of the
first damage. --verify also compares each shard's sha256 with the one meta.json keeps, which
finds a shard replaced by another well-formed one. Training and evaluation run the same
checks (without --verify) before they start.
"""

from absl import flags

from par import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("data_dir", None, "The dataset directory.", required=True)
  flags.DEFINE_string("split", None, "Check only this split (default: all).")
  flags.DEFINE_bool(
    "verify", False, "Also compare every shard's sha256 with the one meta.json keeps."
  )


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  from par.data import records  # No TensorFlow: the checks read the files with numpy.

  meta = records.load_meta(FLAGS.data_dir)
  records.check_vocabulary(FLAGS.data_dir, meta)
  for split in [FLAGS.split] if FLAGS.split else list(meta.splits):
    meta = records.check_dataset(FLAGS.data_dir, split, records=True, verify=FLAGS.verify)
    info = meta.splits[split]
    checks = "CRCs and sha256 ok" if FLAGS.verify else "CRCs ok"
    print(f"{split}: {info.records} records in {len(info.shards)} shard(s), {checks}")


def run():
  """The command's entry point: `par-check-data`, `python -m par check_data`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

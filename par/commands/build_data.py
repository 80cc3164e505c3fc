r"""Builds a context-batched TFRecord dataset from text.

  par-build-data --input=data/wikitext-2 \
      --output_dir=data/wikitext2_bsz32_seqlen32 --vocab_size=12000

  par-build-data --input=data/wikitext-103 --tokenizer=word \
      --output_dir=data/wt103_word --batch_size=60 --seq_len=150
  par-build-data --input=data/enwik8 --tokenizer=char \
      --output_dir=data/enwik8_char --batch_size=22 --seq_len=512

Trains a SentencePiece tokenizer on the train split (or uses --sp_model), or counts its words
(--tokenizer=word) or bytes (--tokenizer=char) by frequency, tokenizes every split with one
end-of-line token per line and writes records of [batch_size, seq_len + 1] tokens.
The layout of the output is described in par/data/records.py and data/README.md. The flags after
--reuse_existing are the fields of par.config.DataConfig.
"""

from absl import flags
from absl import logging

from par import cli
from par import config_flags
from par.config import DataConfig

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string(
    "input",
    None,
    "A directory of split files (train.txt or wiki.train.tokens, and so on for "
    "valid and test) or one text file, which becomes the train split.",
    required=True,
  )
  flags.DEFINE_string("output_dir", None, "Dataset directory to create.", required=True)
  flags.DEFINE_string(
    "sp_model", None, "Existing SentencePiece .model to use instead of training one."
  )
  flags.DEFINE_bool("overwrite", False, "Replace --output_dir if it exists (otherwise refuse).")
  flags.DEFINE_bool(
    "reuse_existing",
    False,
    "If --output_dir was built from the same files with the same "
    "settings, keep it and exit successfully.",
  )
  config_flags.define(DataConfig)
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = DataConfig(**config_flags.read(DataConfig)).validate()
  present = [name for name in ("vocab_size", "min_count", "max_vocab") if FLAGS[name].present]
  if config.tokenizer == "sentencepiece" and {"min_count", "max_vocab"} & set(present):
    raise cli.ParError(
      "--min_count and --max_vocab shape word and char vocabularies; SentencePiece takes "
      "--vocab_size"
    )
  if config.tokenizer != "sentencepiece" and ("vocab_size" in present or FLAGS.sp_model):
    raise cli.ParError(
      f"a {config.tokenizer} vocabulary takes its size from the text: use --min_count or "
      "--max_vocab, not --vocab_size or --sp_model"
    )
  if FLAGS.sp_model and FLAGS["vocab_size"].present:
    from pathlib import Path

    from par.data import tokenizer

    path = Path(FLAGS.sp_model)
    if not path.is_file():
      raise cli.ParError(f"--sp_model {path} does not exist")
    pieces = tokenizer.load(path.read_bytes(), path).get_piece_size()
    if pieces != config.vocab_size:
      raise cli.ParError(
        f"--vocab_size {config.vocab_size} and --sp_model {path} ({pieces} pieces) disagree: "
        "the model decides the vocabulary; drop --vocab_size"
      )
  if config.tokenizer == "sentencepiece":  # tensorflow-text tokenizes; word and char need no TF.
    cli.import_tensorflow()
  from par.data import build  # After the quiet import.

  meta, built = build.build_dataset(
    FLAGS.input,
    FLAGS.output_dir,
    config,
    sp_model=FLAGS.sp_model,
    overwrite=FLAGS.overwrite,
    reuse_existing=FLAGS.reuse_existing,
  )
  for split, info in meta.splits.items():
    logging.info(
      "%s: %d lines, %d words, %d characters, %d tokens (%d unknown), %d records, %d dropped, "
      "%d padding",
      split,
      info.lines,
      info.words,
      info.characters,
      info.tokens,
      info.unknown,
      info.records,
      info.dropped_tokens,
      info.padding,
    )
  print(f"{'built' if built else 'reused'} {FLAGS.output_dir}")


def run():
  """The command's entry point: `par-build-data`, `python -m par build_data`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

"""Builds a context-batched TFRecord dataset from text.

  python scripts/build_data.py --input=data/wikitext-2 \
      --output_dir=data/wikitext2_bsz32_seqlen32 --vocab_size=12000

Trains a SentencePiece tokenizer on the train split (or uses --sp_model), tokenizes every split
with one end-of-line token per line and writes records of [batch_size, seq_len + 1] tokens.
The layout of the output is described in par/records.py and data/README.md.
"""

from absl import flags
from absl import logging

from par import cli
from par.config import DataConfig

_DEFAULTS = DataConfig()

_INPUT = flags.DEFINE_string(
    "input", None, "A directory of split files (train.txt or wiki.train.tokens, and so on for "
    "valid and test) or one text file, which becomes the train split.", required=True)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Dataset directory to create.", required=True)
_SP_MODEL = flags.DEFINE_string(
    "sp_model", None, "Existing SentencePiece .model to use instead of training one.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace --output_dir if it exists (otherwise refuse).")
_REUSE_EXISTING = flags.DEFINE_bool(
    "reuse_existing", False, "If --output_dir was built from the same files with the same "
    "settings, keep it and exit successfully.")
_VOCAB_SIZE = flags.DEFINE_integer(
    "vocab_size", _DEFAULTS.vocab_size, "Pieces in the trained vocabulary.")
_MODEL_TYPE = flags.DEFINE_enum(
    "model_type", _DEFAULTS.model_type, ["unigram", "bpe"], "SentencePiece algorithm.")
_LOWERCASE = flags.DEFINE_bool(
    "lowercase", _DEFAULTS.lowercase, "Case-fold text in the tokenizer (WikiText-2 is cased).")
_CHARACTER_COVERAGE = flags.DEFINE_float(
    "character_coverage", _DEFAULTS.character_coverage,
    "Share of the train split's characters the vocabulary covers.")
_USER_SYMBOLS = flags.DEFINE_list(
    "user_symbols", list(_DEFAULTS.user_symbols),
    "Words always kept as one piece (comma-separated; empty for none).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", _DEFAULTS.batch_size, "Lanes per record.")
_SEQ_LEN = flags.DEFINE_integer(
    "seq_len", _DEFAULTS.seq_len, "Predicted tokens per lane per record.")
_SHARDS = flags.DEFINE_integer(
    "shards", _DEFAULTS.shards, "Consecutive files per split (at most one per record).")
_REMAINDER = flags.DEFINE_enum(
    "remainder", _DEFAULTS.remainder, ["pad", "drop"],
    "The last partial record: pad it with -1 (masked in the loss) or drop it.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = DataConfig(
      vocab_size=_VOCAB_SIZE.value, model_type=_MODEL_TYPE.value, lowercase=_LOWERCASE.value,
      character_coverage=_CHARACTER_COVERAGE.value, user_symbols=tuple(_USER_SYMBOLS.value),
      batch_size=_BATCH_SIZE.value, seq_len=_SEQ_LEN.value, shards=_SHARDS.value,
      remainder=_REMAINDER.value).validate()
  cli.import_tensorflow()
  from par import dataset  # pylint: disable=g-import-not-at-top (after the quiet import)
  meta, built = dataset.build_dataset(
      _INPUT.value, _OUTPUT_DIR.value, config, sp_model=_SP_MODEL.value,
      overwrite=_OVERWRITE.value, reuse_existing=_REUSE_EXISTING.value)
  for split, info in meta.splits.items():
    logging.info("%s: %d lines, %d words, %d tokens, %d records, %d dropped, %d padding",
                 split, info.lines, info.words, info.tokens, info.records,
                 info.dropped_tokens, info.padding)
  print(f"{'built' if built else 'reused'} {_OUTPUT_DIR.value}")


if __name__ == "__main__":
  cli.run(main)

r"""Evaluates a trained run on any split or text: exact perplexities and bits per character.

  par-evaluate --model_dir=runs/base_model --split=test
  par-evaluate --model_dir=runs/base_model --text=my_article.txt
  par-evaluate --model_dir=runs/tiny --source=export --eval_mem_len=256 \
      --seq_len=64
  par-evaluate --model_dir=runs/txl_wt103_base --split=test --seq_len=64 \
      --eval_mem_len=640 --clamp_len=400 --same_length \
      --eval_batch_size=10                              # Transformer-XL's protocol

Loads the run's latest checkpoint (or --checkpoint, or its export) without pickle, checks
that the dataset was built with the run's tokenizer (or tokenizes --text with it), and prints
one JSON line: loss, token and word perplexity, bits per character, tokens, words,
characters, summed NLL, and what was evaluated how.
"""

import json

from absl import flags

from par import cli
from par import config_flags
from par.config import ModelConfig
from par.config import TrainConfig

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "Run directory.", required=True)
  flags.DEFINE_string("split", "valid", "Split to evaluate.")
  flags.DEFINE_string(
    "text",
    None,
    "Score this UTF-8 text file instead of a split (bytes for a char run): tokenized with the "
    "run's tokenizer, the whole file as one lane in segments of --seq_len (default: the run's "
    "dataset's), the memory carried. Read once as it is scored, so a pipe works "
    "(--text=<(zcat f.gz)); progress every 30 s, Ctrl-C stops it. Needs no dataset.",
  )
  flags.DEFINE_string(
    "data_dir", None, "Dataset directory (default: the run's); must use the run's tokenizer."
  )
  config_flags.define_field(
    TrainConfig, "eval_mem_len", help_note="Default: the run's --eval_mem_len, else its --mem_len."
  )
  config_flags.define_field(
    TrainConfig, "eval_batch_size", default=None, help_note="Default: the run's."
  )
  flags.DEFINE_integer(
    "seq_len", 0, "Segment length (0: the dataset's); each lane's text stays continuous."
  )
  config_flags.define_field(ModelConfig, "eval_mode", default=None, help_note="Default: the run's.")
  flags.DEFINE_integer(
    "clamp_len",
    None,
    "Relative distances above this share one encoding (Transformer-XL evaluates WikiText-103 "
    "with 400); 0: none. Default: the run's --eval_clamp_len, else its model's --clamp_len.",
  )
  flags.DEFINE_bool(
    "same_length",
    None,
    "Every position attends to the same number of keys, as Transformer-XL evaluates. Default: "
    "the run's --eval_same_length or its model's --same_length.",
  )
  config_flags.define_run_source()
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if (
    min(FLAGS.eval_mem_len, FLAGS.seq_len, FLAGS.clamp_len or 0) < 0
    or (FLAGS.eval_batch_size or 0) < 0
  ):
    raise cli.ParError(
      "--eval_mem_len, --eval_batch_size, --seq_len and --clamp_len cannot be negative"
    )
  config_flags.run_source()  # Checks it before the slow part.
  from par import runs
  from par.data import records
  from par.data import text

  run = runs.read_run(FLAGS.model_dir)
  data_dir = FLAGS.data_dir or run.config.data_dir
  if FLAGS.text:
    if FLAGS["split"].present or FLAGS.data_dir or FLAGS.eval_batch_size:
      raise cli.ParError("--text scores a file as one lane: no --split, --data_dir or lanes")
    codec = runs.load_tokenizer(run)  # Before TF's import: a missing tokenizer is one line.
    text.check_readable(FLAGS.text)  # So is a file it cannot open (it is read once, later).
  else:
    # Every record's CRCs too, before TensorFlow's start-up: a damaged split is one line at
    # once (the evaluation checks them again as it reads).
    records.check_dataset(data_dir, FLAGS.split, run.tokenizer_sha256, records=True)
  cli.import_tensorflow()
  cli.configure_threads()
  from par.train import evaluate  # After the quiet import.

  model, origin = runs.load_model(run, *config_flags.run_source(), FLAGS.eval_mode)
  mem_len = FLAGS.eval_mem_len or run.eval_mem_len
  clamp_len = FLAGS.clamp_len
  if clamp_len is None:
    clamp_len = run.config.eval_clamp_len if run.config.eval_clamp_len >= 0 else None
  same_length = FLAGS.same_length
  if same_length is None:
    same_length = run.config.eval_same_length or run.config.model.same_length
  seq_len = FLAGS.seq_len or run.dataset["seq_len"]
  common = dict(
    model=origin,
    pattern=model.pattern,
    eval_mode=model.config.eval_mode if model.is_supernet else None,
    clamp_len=model.config.clamp_len if clamp_len is None else clamp_len,
    same_length=same_length,
  )
  if FLAGS.text:
    result, mem_len = evaluate.evaluate_text(
      model, codec, FLAGS.text, mem_len, seq_len, clamp_len, same_length
    )
    info = dict(text=FLAGS.text, mem_len=mem_len, eval_batch_size=1, seq_len=seq_len)
    print(json.dumps(dict(result.to_dict(), **info, **common)))
    return
  lanes = FLAGS.eval_batch_size
  lanes = run.config.eval_batch_size if lanes is None else lanes
  result, meta, mem_len = evaluate.evaluate_split(
    model,
    data_dir,
    FLAGS.split,
    mem_len,
    FLAGS.seq_len,
    run.tokenizer_sha256,
    clamp_len,
    same_length,
    lanes,
  )
  print(
    json.dumps(
      dict(
        result.to_dict(),
        split=FLAGS.split,
        data_dir=str(data_dir),
        mem_len=mem_len,
        eval_batch_size=lanes or meta.batch_size,
        seq_len=FLAGS.seq_len or meta.seq_len,
        **common,
      )
    )
  )


def run():
  """The command's entry point: `par-evaluate`, `python -m par evaluate`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

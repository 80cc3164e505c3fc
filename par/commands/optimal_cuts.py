"""Exact adaptive-softmax cutoffs from the data: the cheapest split of the vocabulary.

  par-optimal-cuts --data_dir=data/wikitext2_bsz32_seqlen32
  par-optimal-cuts --filename=counts.txt --clusters=auto --output=cuts.flags

With --data_dir, counts how often each token id is a target in the train split and optimises
the ids in the tokenizer's order, which is the order the model uses; it reports how far that
order is from frequency order and what it costs. With --filename, reads counts or
probabilities (any order, any scale) and sorts them into decreasing order first, unless
--keep_order. The cost model and the algorithm are described in par/cutoffs.py.

Prints the cost, the speed-up over the full softmax and flags to paste into par-train;
--output writes them as a flagfile: --flagfile=configs/base_model.flags --flagfile=cuts.flags.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from par import cli
from par import config_flags
from par import cutoffs
from par import errors
from par.config import ModelConfig
from par.config import tail_widths

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string(
    "filename", None, "Counts or probabilities, one per id, separated by spaces or newlines."
  )
  flags.DEFINE_string(
    "data_dir", None, "A dataset built by par-build-data: count its train targets."
  )
  flags.DEFINE_string("split", "train", "The split of --data_dir to count.")
  flags.DEFINE_bool(
    "keep_order", False, "Treat --filename's order as the token ids' order instead of sorting."
  )
  flags.DEFINE_string(
    "clusters",
    "3",
    "Clusters including the head (3 = head + 2 tails, as the base config), "
    "or 'auto' for the cheapest count up to --max_clusters.",
  )
  flags.DEFINE_integer("max_clusters", 6, "Upper bound for --clusters=auto.")
  flags.DEFINE_integer(
    "min_size",
    1,
    "The fewest ids in any cluster. The FLOP count favours tiny heads and many "
    "narrow tails (--clusters=auto especially); a floor such as 50 keeps them useful.",
  )
  flags.DEFINE_enum(
    "cost",
    "grave",
    list(cutoffs.COST_MODELS),
    "grave: FLOPs per token with the tails' projections "
    "(Grave et al. 2017); simple: the sum over clusters, head included, of size x probability "
    "mass, the reference implementation's objective.",
  )
  # The model's shape (grave cost): the fields of par.config.ModelConfig. Explicit --proj_dims
  # fix the cluster count at their number + 1.
  config_flags.define(ModelConfig, only=("d_model", "proj_factor", "proj_dims"))
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own
  flags.DEFINE_string("output", None, "Write the cutoffs as a flagfile here.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")


def read_values(path):
  """The numbers in a text file, or a ParError naming the first bad one."""
  try:
    words = Path(path).read_text(encoding="utf-8").split()
  except (OSError, UnicodeDecodeError) as e:
    raise cli.ParError(f"cannot read {path}: {e}") from None
  if not words:
    raise cli.ParError(f"{path} is empty: expected counts or probabilities")
  try:
    return np.array(words, dtype=np.float64)
  except ValueError:
    for i, word in enumerate(words):
      try:
        float(word)
      except ValueError:
        raise cli.ParError(f"{path}: value {i + 1} is {word!r}, not a number") from None
    raise


def _model():
  if FLAGS.cost == "simple":
    return cutoffs.simple_cost()
  shape = config_flags.read(ModelConfig, only=("d_model", "proj_factor", "proj_dims"))
  return cutoffs.grave_cost(shape["d_model"], shape["proj_factor"], shape["proj_dims"])


def _clusters(model):
  if model.proj_dims and not FLAGS["clusters"].present:
    return len(model.proj_dims) + 1
  if FLAGS.clusters == "auto":
    return "auto"
  try:
    return int(FLAGS.clusters)
  except ValueError:
    raise cli.ParError(f"--clusters takes a number or 'auto', got {FLAGS.clusters!r}") from None


def _describe(counts, solution, model):
  total = counts.sum()
  bounds = (0,) + solution.cutoffs + (counts.size,)
  lines = [
    f"head: ids [0, {bounds[1]}) + {len(solution.cutoffs)} cluster entries, "
    f"{counts[: bounds[1]].sum() / total:.1%} of tokens"
  ]
  widths = (
    tail_widths(model.d_model, len(solution.cutoffs), model.proj_factor, model.proj_dims)
    if model.name == "grave"
    else ()
  )
  for i in range(len(solution.cutoffs)):
    width = f", width {widths[i]}" if widths else ""
    lines.append(
      f"tail {i}: ids [{bounds[i + 1]}, {bounds[i + 2]}){width}, "
      f"{counts[bounds[i + 1] : bounds[i + 2]].sum() / total:.1%} of tokens"
    )
  return lines


def _flag_line(solution):
  return " ".join(["--cutoffs=none"] + [f"--cutoffs={c}" for c in solution.cutoffs])


def _write_flagfile(path, solution, model, source):
  path = Path(path)
  text = "".join(
    [
      f"# Adaptive-softmax cutoffs by par-optimal-cuts for {source}\n",
      f"# ({model.name} cost: {solution.cost:,.1f} {model.unit} per token, "
      f"{solution.speedup:.2f}x faster than the full softmax). 'none' first replaces\n",
      "# cutoffs given before this file, e.g. by --flagfile=configs/base_model.flags.\n",
    ]
    + ["--cutoffs=none\n"]
    + [f"--cutoffs={c}\n" for c in solution.cutoffs]
  )
  with errors.writing(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with errors.writing(path), os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if bool(FLAGS.filename) == bool(FLAGS.data_dir):
    raise cli.ParError("give exactly one of --filename and --data_dir")
  model = _model()
  clusters = _clusters(model)
  if FLAGS.output and Path(FLAGS.output).exists() and not FLAGS.overwrite:
    raise cli.ParError(f"{FLAGS.output} exists; pass --overwrite to replace it")
  if FLAGS.data_dir:
    from par.data import records

    counts, _ = records.target_counts(FLAGS.data_dir, FLAGS.split)
    source = f"the {FLAGS.split} split of {FLAGS.data_dir}"
    keep_order = True
  else:
    counts = read_values(FLAGS.filename)
    source = FLAGS.filename
    keep_order = FLAGS.keep_order
  counts = cutoffs.check_counts(counts)
  order, misplaced, spearman = cutoffs.order_report(counts)
  if not keep_order:
    counts = counts[order]
  start = time.perf_counter()
  best, solutions = cutoffs.solve(counts, model, clusters, FLAGS.max_clusters, FLAGS.min_size)
  seconds = time.perf_counter() - start

  total = counts.sum()  # Counts are exact integers; probabilities are not.
  total = f"{int(total):,}" if float(total).is_integer() and total >= 1 else f"{total:,.6g}"
  print(
    f"{source}: {counts.size:,} ids, {total} in total"
    + ("" if keep_order else ", sorted by decreasing value")
  )
  if len(solutions) > 1:
    for s in solutions:
      print(
        f"  {s.clusters} clusters: {s.cost:,.1f} {model.unit} per token, "
        f"speed-up {s.speedup:.2f}x  cutoffs {list(s.cutoffs)}"
      )
  print(
    f"{best.clusters} clusters, {model.name} cost: {best.cost:,.1f} {model.unit} per "
    f"token; the full softmax costs {best.full_cost:,.1f}: speed-up {best.speedup:.2f}x "
    f"(solved in {seconds:.2f} s)"
  )
  for line in _describe(counts, best, model):
    print(f"  {line}")
  if keep_order and misplaced:
    ideal, _ = cutoffs.solve(counts[order], model, best.clusters, min_size=FLAGS.min_size)
    print(
      f"note: ids are not in frequency order ({misplaced:,} of {counts.size:,} off their "
      f"rank, Spearman {spearman:.3f}); in frequency order the best cost would be "
      f"{ideal.cost:,.1f} "
      f"({1 - ideal.cost / best.cost:.1%} less than in id order)"
    )
  if best.speedup < 1:
    print(
      f"warning: the cheapest {best.clusters} clusters cost more than the full softmax "
      f"(speed-up {best.speedup:.2f}x); a plain softmax (--cutoffs=none) is cheaper, or try "
      "--clusters=auto",
      file=sys.stderr,
    )
  print(_flag_line(best))
  if FLAGS.output:
    _write_flagfile(FLAGS.output, best, model, source)
    print(f"wrote {FLAGS.output}")


def run():
  """The command's entry point: `par-optimal-cuts`, `python -m par optimal_cuts`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

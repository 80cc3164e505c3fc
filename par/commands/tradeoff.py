"""One perplexity-against-time figure from several pipelines (e.g. one per seed).

  par-tradeoff --work_dirs=runs/wt2_small_study,runs/wt2_small_study_seed2 \
      --output=docs/results/study-tradeoff

Reads each --work_dirs' results.json (written by par-pipeline) and draws every model
as a point, colour by pattern and marker by pipeline (labelled by its seed), into
--output.png (200 dpi) and --output.pdf. A pipeline run with --seeds (one directory) is
drawn as its own tradeoff figure is: each derivation at its means over seeds, with ± sd bars.
"""

import json
from pathlib import Path

from absl import flags

from par import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_list("work_dirs", None, "Pipeline directories, comma-separated.", required=True)
  flags.DEFINE_string(
    "output", None, "The figure's path without a suffix: .png and .pdf are added.", required=True
  )
  flags.DEFINE_string("title", "", "The figure's title (default: a generic one).")


# What each row needs to be drawn, by layout: one seed's rows, a study's rows over seeds.
_ONE_SEED_KEYS = (
  "model",
  "pattern",
  "attention_blocks",
  "train_seconds_per_token",
  "eval_seconds_per_token",
)
_STUDY_KEYS = ("model", "fixed", "train_us", "eval_us")


def _summary(work_dir):
  path = Path(work_dir) / "results.json"
  if not path.is_file():
    raise cli.ParError(f"{path} does not exist: run par-pipeline to the end first")
  try:
    summary = json.loads(path.read_text())
    if "seeds" not in summary:
      summary["label"] = f"seed {summary['seed']}"
    if not isinstance(summary["rows"], list):
      raise TypeError("its rows are not a list")
  except (ValueError, KeyError, TypeError) as e:
    raise cli.ParError(f"{path} is not a pipeline's results ({e})") from None
  study = "seeds" in summary
  needed = _STUDY_KEYS if study else _ONE_SEED_KEYS
  drawn = 0
  for k, row in enumerate(summary["rows"]):
    missing = [key for key in needed if not isinstance(row, dict) or key not in row]
    if missing:
      raise cli.ParError(f"{path}: row {k + 1} has no {', '.join(missing)}: not a pipeline's row")
    drawn += bool(row.get("valid_ppl") if study else "valid" in row)
  if not drawn:
    raise cli.ParError(f"{path} has no model with a valid perplexity: nothing to draw")
  return summary


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  summaries = [_summary(work_dir) for work_dir in FLAGS.work_dirs]
  studies = [d for d, s in zip(FLAGS.work_dirs, summaries) if "seeds" in s]
  if studies and len(summaries) > 1:
    raise cli.ParError(
      f"{studies[0]} holds a pipeline over seeds, drawn alone: give it as the only --work_dirs"
    )
  from par import runs  # After the checks: matplotlib is slow to import.
  from par.search import plots

  output = Path(FLAGS.output)
  if FLAGS.output.endswith("/") or output.is_dir():
    raise cli.ParError(
      f"--output is the figure's path without a suffix, not a directory: got {FLAGS.output} "
      f"(e.g. {output / 'tradeoff'})"
    )
  if output.suffix in (".png", ".pdf"):
    raise cli.ParError(
      f"--output takes the path without a suffix (.png and .pdf are added): got {FLAGS.output}"
    )
  if not output.parent.is_dir():
    raise cli.ParError(f"{output.parent} is not a directory")
  if studies:
    figure = plots.tradeoff_over_seeds(summaries[0]["rows"], FLAGS.title)
  else:
    figure = plots.tradeoff([(s["label"], s["rows"]) for s in summaries], FLAGS.title)
  for kind, data in figure.items():
    runs.write_bytes(output.parent / f"{output.name}.{kind}", data)
    print(output.parent / f"{output.name}.{kind}")


def run():
  """The command's entry point: `par-tradeoff`, `python -m par tradeoff`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

"""Does the search find known answers? Retrains every pattern of each known-answer task, then
searches it in every sampling mode with each family of search settings (par/known_answers.py).

  par-search-benchmark --work_dir=runs/known            # everything (~1 hour)
  par-search-benchmark --work_dir=runs/known --tasks=pair,copy &
  par-search-benchmark --work_dir=runs/known --tasks=unigram   # both cores
  par-search-benchmark --work_dir=runs/known --report_only

Writes --work_dir/benchmark.json and benchmark.md (docs/BENCHMARKS.md keeps a copy with the
command); reruns resume. Prints the markdown.
"""

from absl import flags

from par import cli

_WORK_DIR = flags.DEFINE_string("work_dir", None, "Where the runs go.", required=True)
_TASKS = flags.DEFINE_list("tasks", ["pair", "copy", "unigram"], "The known-answer tasks.")
_SEEDS = flags.DEFINE_list("seeds", ["1", "2"], "Seeds of every retraining and search.")
_MODES = flags.DEFINE_list(
  "modes", ["soft", "hard", "single_path"], "The SuperNet's sampling modes searched."
)
_SETTINGS = flags.DEFINE_list(
  "settings", ["defaults", "par"], "The families of search settings (par/known_answers.py)."
)
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only read what is there and report.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  from par.config import SAMPLING_MODES
  from par.data import tasks

  unknown = [t for t in _TASKS.value if t not in tasks.TASKS]
  if unknown:
    raise cli.ParError(f"--tasks takes {', '.join(tasks.TASKS)}; got {', '.join(unknown)}")
  modes = [m for m in _MODES.value if m not in SAMPLING_MODES]
  if modes:
    raise cli.ParError(f"--modes takes {', '.join(SAMPLING_MODES)}; got {', '.join(modes)}")
  if not all(s.isdigit() for s in _SEEDS.value):
    raise cli.ParError(f"--seeds takes whole numbers, got {','.join(_SEEDS.value)}")
  seeds = tuple(int(s) for s in _SEEDS.value)
  from par import known_answers

  unknown = [s for s in _SETTINGS.value if s not in known_answers.SETTINGS]
  if unknown:
    raise cli.ParError(
      f"--settings takes {', '.join(known_answers.SETTINGS)}; got {', '.join(unknown)}"
    )
  cli.import_tensorflow()
  cli.configure_threads()
  if not _REPORT_ONLY.value:
    known_answers.benchmark(
      _WORK_DIR.value, _TASKS.value, seeds, tuple(_MODES.value), tuple(_SETTINGS.value)
    )
  known_answers.report(_WORK_DIR.value, seeds, tuple(_MODES.value))
  print((known_answers.Path(_WORK_DIR.value) / "benchmark.md").read_text(), end="")


def run():
  """The command's entry point: `par-search-benchmark`, `python -m par search_benchmark`."""
  cli.run(main, __name__)


if __name__ == "__main__":
  run()

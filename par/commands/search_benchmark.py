"""Does the search find known answers? Retrains every pattern of each known-answer task, then
searches it in every sampling mode with each family of search settings
(par/study/known_answers.py).

  par-search-benchmark --work_dir=runs/known            # everything (~1 hour)
  par-search-benchmark --work_dir=runs/known --tasks=pair,copy &
  par-search-benchmark --work_dir=runs/known --tasks=unigram   # both cores
  par-search-benchmark --work_dir=runs/known --report_only

Writes --work_dir/benchmark.json and benchmark.md (docs/BENCHMARKS.md keeps a copy with the
command); reruns resume. Prints the markdown.
"""

from absl import flags

from par import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("work_dir", None, "Where the runs go.", required=True)
  flags.DEFINE_list("tasks", ["pair", "copy", "unigram"], "The known-answer tasks.")
  flags.DEFINE_list("seeds", ["1", "2"], "Seeds of every retraining and search.")
  flags.DEFINE_list(
    "modes",
    ["soft", "hard", "single_path", "uniform", "fair", "few_shot"],
    "The SuperNet's sampling modes searched; few_shot splits the uniform search of each seed.",
  )
  flags.DEFINE_list(
    "settings", ["defaults", "par"], "The families of search settings (par/study/known_answers.py)."
  )
  flags.DEFINE_bool("report_only", False, "Only read what is there and report.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  from par.data import tasks
  from par.study import known_answers

  unknown = [t for t in FLAGS.tasks if t not in tasks.TASKS]
  if unknown:
    raise cli.ParError(f"--tasks takes {', '.join(tasks.TASKS)}; got {', '.join(unknown)}")
  modes = [m for m in FLAGS.modes if m not in known_answers.MODES]
  if modes:
    raise cli.ParError(f"--modes takes {', '.join(known_answers.MODES)}; got {', '.join(modes)}")
  if not FLAGS.seeds or not all(s.isascii() and s.isdigit() for s in FLAGS.seeds):
    raise cli.ParError(f"--seeds takes whole numbers, got {','.join(FLAGS.seeds) or 'none'}")
  seeds = tuple(int(s) for s in FLAGS.seeds)
  if len(set(seeds)) != len(seeds):
    raise cli.ParError(f"--seeds lists a seed twice: {','.join(FLAGS.seeds)}")
  unknown = [s for s in FLAGS.settings if s not in known_answers.SETTINGS]
  if unknown:
    raise cli.ParError(
      f"--settings takes {', '.join(known_answers.SETTINGS)}; got {', '.join(unknown)}"
    )
  cli.import_tensorflow()
  cli.configure_threads()
  if not FLAGS.report_only:
    known_answers.benchmark(
      FLAGS.work_dir, FLAGS.tasks, seeds, tuple(FLAGS.modes), tuple(FLAGS.settings)
    )
  known_answers.report(FLAGS.work_dir, seeds)  # every mode there is
  print((known_answers.Path(FLAGS.work_dir) / "benchmark.md").read_text(), end="")


def run():
  """The command's entry point: `par-search-benchmark`, `python -m par search_benchmark`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

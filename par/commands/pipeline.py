"""The search, the derived PAR models and the Transformer-XL baseline, compared in one command.

  par-pipeline --flagfile=configs/base_model.flags --work_dir=runs/pipeline
  par-pipeline --flagfile=configs/tiny.flags --work_dir=runs/p --ratio=3
  par-pipeline --flagfile=configs/wt2_small_study.flags --work_dir=runs/study
  par-pipeline --flagfile=configs/wt2_small_panel.flags --work_dir=runs/panel  # 3 seeds

Runs the SuperNet search with the training flags (every flag of par-train), one per
--arch_splits value if given, ranks every pattern with each search's shared weights, derives
patterns (--derive: the argmax, PAR's rule at each --ratio, DARTS-PT's perturbation, the
shared-weight ranking's best, sandwich orderings, random orderings), retrains them and the
interleaved baseline ("sf" repeated) from scratch with the same budget, measures every
model's training and evaluation time per token, and writes results.md (with Kendall's τ and
Spearman's ρ between each search's ranking and retraining), results.json, tradeoff.png/.pdf
and the architecture figures to --work_dir (layout in par/study/workdir.py). With --seeds,
all of it once per seed in --work_dir/seed-<s>/, and the comparison over seeds (means ± sd,
the paired bootstrap against the baseline pooled over seeds, the SuperNets' ranking against
the seed-to-seed noise ceiling, the perplexity-against-depth figure) in --work_dir
(par/study/seeds.py). --sampling=uniform or fair searches with a decoupled one-shot SuperNet
(no argmax: derive from the shared weights), and --samplings=soft,uniform,fair searches with
each of them against one retrained panel (search/, search-uniform/, search-fair/);
--few_shot_steps=N splits each search (or those of --few_shot_of) into few-shot sub-SuperNets
ranked as one more search. --jobs=2 runs two trainings at a time, one
core each, on Ray; --ray_address=auto runs them on a Ray cluster (par/study/jobs.py). Running
it again resumes where it stopped.
"""

from pathlib import Path

from absl import flags

from par import cli
from par import config_flags
from par.search import patterns

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("work_dir", None, "The pipeline's directory.", required=True)
  flags.DEFINE_string(
    "model_dir", None, "Unused (flagfiles for par-train set it): runs go under --work_dir."
  )
  flags.DEFINE_multi_float(
    "ratio",
    [0.0],
    "Blocks per attention block for a rule-based pattern, one model per value (0: as many as "
    "each search's argmax pattern has).",
  )
  flags.DEFINE_multi_float(
    "arch_splits",
    None,
    "One search per value of its held-out architecture split (0: single-level), e.g. "
    "--arch_splits=0 --arch_splits=0.2; unset: one search with --arch_split.",
  )

  flags.DEFINE_multi_string(
    "derive",
    ["argmax", "rule"],
    "How to derive patterns to retrain, repeated: argmax (each search's most likely kind per "
    "block), rule (PAR's rule at each --ratio), perturbation (a variant of DARTS-PT's: per "
    "block the branch whose removal from the SuperNet's mixture, the others renormalised, "
    "hurts the valid loss most; every block judged on the whole mixture, none fixed first), "
    "shared_best (the best of the search's shared-weight ranking), sandwich=K (Press et al.: "
    "K attention blocks moved to the bottom, K feed-forward to the top), random=N (N random "
    "orderings of the baseline's blocks, drawn with a fixed seed: the same in every run and "
    "every seed), pattern=P (the pattern P itself, e.g. pattern=ssffff: a study's panel "
    "named outright). The interleaved baseline always trains.",
  )
  flags.DEFINE_integer(
    "ranking_tokens",
    16_384,
    "Valid tokens on which every pattern of each search's shared-weight ranking is scored "
    "(all 3^n patterns up to 8 blocks, a stratified sample above).",
  )
  flags.DEFINE_integer(
    "timing_rounds",
    3,
    "Rounds of time measurements at the end, each timing every model in turn; each model keeps "
    "its fastest. Kept in times.json: a call that adds no run, on the same machine, reuses them.",
  )
  flags.DEFINE_list(
    "seeds",
    [],
    "Run the whole pipeline once per seed (e.g. 1,2,3), each in --work_dir/seed-<s>/, and "
    "compare over seeds in --work_dir; empty: once, with --seed, in --work_dir.",
  )
  flags.DEFINE_list(
    "samplings",
    [],
    "Search with each of these SuperNets (soft, hard, single_path, uniform, fair), the same "
    "data, schedule and budget for each, against one retrained panel: a coupled one once per "
    "--arch_splits value, a decoupled one once (search/, search-split0.2/, search-uniform/, "
    "search-fair/); empty: the one of --sampling.",
  )
  flags.DEFINE_list(
    "few_shot_of",
    [],
    "With --few_shot_steps, split only the searches of these samplings (e.g. uniform); "
    "empty: every search.",
  )
  flags.DEFINE_integer(
    "few_shot_steps",
    0,
    "Few-shot NAS: split each search's SuperNet on its first block into three sub-SuperNets, "
    "each warm-started from it and trained this many steps further (<search>-few-shot/); "
    "they rank every pattern as one more search. 0: no split.",
  )
  flags.DEFINE_integer(
    "jobs",
    1,
    "Trainings and rankings at once on this machine, each a Ray task in its own process with "
    "--job_cpus threads (2 on a 2-core machine); 1 runs them one after another in this "
    "process with the thread flags.",
  )
  flags.DEFINE_string(
    "ray_address",
    None,
    "Run the trainings and rankings on a running Ray cluster: 'auto' (this machine's "
    "cluster, started with `ray start`) or HOST:PORT of its head. The work directory must be "
    "shared storage every node sees at its path; every node needs par installed.",
  )
  flags.DEFINE_integer("job_cpus", 1, "CPUs (TensorFlow threads) of each training on Ray.")
  flags.DEFINE_float(
    "job_gpus", 0, "GPUs of each training on Ray (1 on a GPU cluster: one GPU a training)."
  )
  flags.DEFINE_integer(
    "job_retries",
    2,
    "Times a training or ranking on Ray runs again when its worker dies (killed, out of "
    "memory, a lost node), resuming from its checkpoint.",
  )
  config_flags.define_training()
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.timing_rounds < 1:
    raise cli.ParError(f"--timing_rounds must be at least 1, got {FLAGS.timing_rounds}")
  if FLAGS.ranking_tokens < 1:
    raise cli.ParError(f"--ranking_tokens must be at least 1, got {FLAGS.ranking_tokens}")
  patterns.check_plan(FLAGS.ratio, FLAGS.arch_splits or ())
  seeds = _seeds(FLAGS.seeds)
  from par.study import jobs  # Ray is imported only when the calls go to it.

  engine = jobs.Engine(
    FLAGS.jobs, FLAGS.ray_address, FLAGS.job_cpus, FLAGS.job_gpus, FLAGS.job_retries
  )
  if FLAGS.ray_address and FLAGS["jobs"].present:
    raise cli.ParError("give --jobs or --ray_address: on a cluster, its resources say how many")
  jobs.check_address(FLAGS.ray_address)
  if FLAGS.few_shot_steps < 0:
    raise cli.ParError(f"--few_shot_steps must be 0 or more, got {FLAGS.few_shot_steps}")
  config = config_flags.training_config()
  if FLAGS.samplings and FLAGS["sampling"].present and FLAGS.sampling not in FLAGS.samplings:
    raise cli.ParError(
      f"--sampling={FLAGS.sampling} is not among --samplings={','.join(FLAGS.samplings)}: "
      "--samplings lists every search's"
    )
  samplings = FLAGS.samplings or [config.model.sampling]
  patterns.search_plan(samplings, FLAGS.arch_splits or [config.arch_split])
  if set(FLAGS.few_shot_of) - set(samplings):
    raise cli.ParError(
      f"--few_shot_of={','.join(FLAGS.few_shot_of)} names a sampling --samplings does not "
      f"search ({','.join(samplings)})"
    )
  runtime = config_flags.runtime_config()
  if not engine.here and runtime.strategy != "default":
    raise cli.ParError(
      f"--jobs and --ray_address train in separate processes, each with the default "
      f"strategy: leave --strategy={runtime.strategy} out, or use --jobs=1"
    )
  if config.model.architecture:
    raise cli.ParError("the pipeline starts with a search: leave --architecture empty")
  patterns.parse_derivations(FLAGS.derive, config.model.n_blocks)
  cli.import_tensorflow()
  config_flags.configure_threads(runtime)
  strategy = config_flags.strategy(runtime)
  from par.study import pipeline  # After the quiet import.
  from par.study import workdir

  rows = pipeline.run_pipeline(
    config,
    FLAGS.work_dir,
    FLAGS.ratio,
    strategy,
    arch_splits=FLAGS.arch_splits,
    rounds=FLAGS.timing_rounds,
    derive=FLAGS.derive,
    ranking_tokens=FLAGS.ranking_tokens,
    seeds=seeds,
    jobs=engine,
    few_shot_steps=FLAGS.few_shot_steps,
    samplings=samplings,
    few_shot_of=FLAGS.few_shot_of or None,
  )
  if seeds:
    print((Path(FLAGS.work_dir) / workdir.RESULTS_MD).read_text(), end="")
  else:
    print(pipeline.markdown(rows), end="")


def _seeds(values):
  """--seeds as distinct integers."""
  try:
    seeds = [int(v) for v in values]
  except ValueError:
    raise cli.ParError(
      f"--seeds takes whole numbers separated by commas, got {','.join(values)}"
    ) from None
  if len(set(seeds)) != len(seeds):
    raise cli.ParError(f"--seeds lists a seed twice: {','.join(values)}")
  wrong = [s for s in seeds if not 0 <= s < 2**32]
  if wrong:
    raise cli.ParError(f"--seeds must lie in [0, 2^32), got {wrong[0]}")
  return seeds


def run():
  """The command's entry point: `par-pipeline`, `python -m par pipeline`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()

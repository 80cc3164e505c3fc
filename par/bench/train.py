"""Suite `train`: par-train as users run it, each case a fresh process (docs/BENCHMARKS.md,
"Training and evaluation").

- the base configuration (configs/base_model.flags) for `train_steps` steps on a dataset
  built from `text_dir` (vocabulary `vocab_size`), in sampling modes soft, hard and
  single_path, soft with TensorFlow's default thread pools, the reference implementation's
  config (d_ffn 512) in soft mode, and the pattern the soft run derived, trained as a fixed
  model; train tokens/s (batch x seq_len per step, the first loop call, which traces, left
  out) and the process's peak RSS;
- evaluation tokens/s on the valid split of the soft run's SuperNet (eval_mode argmax and
  expected) and of its derived fixed model (weights copied): after a tracing call, three
  rounds alternating the three models, the best round of each (`eval_case`, a subprocess);
- a 2048 x 2048 float32 matmul in TensorFlow's default thread pools: the machine's rate, to
  which training is compared by FLOP count (3 x forward FLOPs per token, par.search.costs,
  with the train split's tail shares); and a matmul of the base model's feed-forward shape,
  [1024, 128] x [128, 1024], which bounds what the model's own matmuls can reach
  (`matmul_case`, a subprocess).
"""

import json
import time

from par import cli
from par.bench import measure

_TRAIN_CASES = (  # name, extra flags of par-train
  ("soft", ["--sampling=soft"]),
  (
    "soft, TensorFlow's default threads",
    ["--sampling=soft", "--inter_op_threads=0", "--intra_op_threads=0"],
  ),
  ("hard", ["--sampling=hard"]),
  ("single_path", ["--sampling=single_path"]),
  ("soft, d_ffn 512 (reference config)", ["--sampling=soft", "--d_ffn=512"]),
)


def run(work, options):
  from par import runs as run_files
  from par.search.costs import model_cost

  data = work / "data"
  measure.run_measured(measure.build_command(options.text_dir, data, options.vocab_size))
  steps = options.train_steps
  common = measure.training_command(data, steps)
  rows, runs = [], {}

  matmul, _ = measure.run_case(measure.command("benchmark", "--suite=matmul_case"))
  rate = matmul["square"]
  rows.append(("2048² float32 matmul, TensorFlow default threads", f"{rate / 1e9:.1f} GFLOP/s"))
  rows.append(
    (
      "[1024, 128] x [128, 1024] matmul (the base FFN's shape), same threads",
      f"{matmul['ffn_shaped'] / 1e9:.1f} GFLOP/s = {matmul['ffn_shaped'] / rate:.0%} "
      "of the 2048² rate",
    )
  )

  for name, extra in _TRAIN_CASES:
    run_dir = work / f"run{len(runs)}"
    _, rss = measure.run_case(common + [f"--model_dir={run_dir}"] + extra)
    runs[name] = (run_dir, rss)
  soft_dir = runs["soft"][0]
  pattern = json.loads((soft_dir / run_files.RESULTS_FILE).read_text())["pattern"]
  name = f"fixed {pattern} (derived by the soft run)"
  run_dir = work / f"run{len(runs)}"
  _, rss = measure.run_case(common + [f"--model_dir={run_dir}", f"--architecture={pattern}"])
  runs[name] = (run_dir, rss)

  speeds = {}
  for name, (run_dir, rss) in runs.items():
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    run = run_files.read_run(run_dir)
    config, meta = run.config, run.dataset
    shares = measure.tail_shares(data, config.model.cutoffs, config.model.vocab_size)
    pattern_of_cost = config.model.architecture or None
    flops = model_cost(
      config.model,
      pattern_of_cost,
      seq_len=meta["seq_len"],
      batch_size=meta["batch_size"],
      tail_shares=shares,
    )["total"].flops
    if config.model.sampling == "single_path" and not config.model.architecture:
      flops = None  # Depends on the sampled branches.
    speed = results["train_tokens_per_second"]
    speeds[name] = speed
    fraction = (
      ""
      if flops is None
      else (f", {3 * flops * speed / 1e9:.1f} GFLOP/s = {3 * flops * speed / rate:.0%} of matmul")
    )
    rows.append((f"train {name}", f"{speed:,.0f} tok/s{fraction}, peak RSS {rss:.0f} MiB"))
  rows.append(("single_path / soft, same run", f"{speeds['single_path'] / speeds['soft']:.2f}"))
  rows.append(
    (
      "auto / TensorFlow's default threads (soft), same run",
      f"{speeds['soft'] / speeds[_TRAIN_CASES[1][0]]:.2f}",
    )
  )

  evaluated, rss = measure.run_case(
    measure.command("benchmark", "--suite=eval_case", f"--run_dir={soft_dir}")
  )
  for name, speed in evaluated.items():
    rows.append((f"eval {name}", f"{speed:,.0f} tok/s"))
  fixed = next(v for k, v in evaluated.items() if k.startswith("fixed"))
  rows.append(
    (
      "eval fixed / SuperNet expected, same run",
      f"{fixed / evaluated['SuperNet, eval_mode expected']:.2f}",
    )
  )
  rows.append(
    (
      "eval fixed / SuperNet argmax, same run",
      f"{fixed / evaluated['SuperNet, eval_mode argmax']:.2f}",
    )
  )
  return rows


def matmul_case():
  """The machine's matmul rate, and the rate at the base model's feed-forward shape."""
  import tensorflow as tf

  def repeated_matmul(a, b, times):
    """`times` products in one graph; adding the loop index keeps them from being merged."""
    total = tf.zeros([a.shape[0], b.shape[1]])
    for i in tf.range(times):
      total += tf.matmul(a + tf.cast(i, tf.float32), b)
    return total

  rates = {}
  for name, (m, k, n), times in (
    ("square", (2048, 2048, 2048), 10),
    ("ffn_shaped", (1024, 128, 1024), 100),
  ):
    seconds = measure.best_seconds(
      tf.function(repeated_matmul),
      tf.random.normal([m, k]),
      tf.random.normal([k, n]),
      tf.constant(times),
    )
    rates[name] = times * 2 * m * k * n / seconds
  print(json.dumps(rates))


def eval_case(run_dir):
  """Evaluation tokens/s of a run's SuperNet (argmax, expected) and its derived fixed model."""
  from par import runs
  from par.data import records
  from par.train.evaluate import Evaluator

  cli.configure_threads()
  run = runs.read_run(run_dir)
  data_dir = run.config.data_dir
  meta = records.load_meta(data_dir)
  supernet, _ = runs.load_model(run, "export", eval_mode="argmax")
  expected, _ = runs.load_model(run, "export", eval_mode="expected")
  fixed = supernet.to_fixed()
  evaluators = {}
  for name, model in (
    ("SuperNet, eval_mode argmax", supernet),
    ("SuperNet, eval_mode expected", expected),
    (f"fixed {fixed.pattern}", fixed),
  ):
    evaluators[name] = Evaluator(model, model.config.mem_len)
    evaluators[name](records.load_dataset(data_dir, "valid"), meta.batch_size)  # traces
  # Rounds alternate the models, so that a noisy neighbour slows all of them alike; the
  # best round of each is reported.
  speeds = dict.fromkeys(evaluators, 0.0)
  for _ in range(3):
    for name, evaluator in evaluators.items():
      start = time.perf_counter()
      result = evaluator(records.load_dataset(data_dir, "valid"), meta.batch_size)
      speeds[name] = max(speeds[name], result.tokens / (time.perf_counter() - start))
  print(json.dumps(speeds))

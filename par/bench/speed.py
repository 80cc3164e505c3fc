"""Suite `speed`: the training step against its matmul bound (docs/BENCHMARKS.md, "Speed:
the training step against its matmul bound").

The base SuperNet (soft, d_ffn 1024 and 512), single_path, mixed_bfloat16 and the fixed
pattern the soft search derives, each trained for `train_steps` steps, as a share of its
matmul bound (`_bound`: the step's matmuls at the model's shapes, timed in a loop the graph
optimiser cannot fold, in a subprocess: `bound_case`).
"""

import json

from par import cli
from par.bench import measure

_SPEED_CASES = (  # name, extra flags of par-train (base_model.flags first)
  ("soft, d_ffn 1024", ["--sampling=soft"]),
  ("soft, d_ffn 512 (the reference's base_model.sh)", ["--sampling=soft", "--d_ffn=512"]),
  ("single_path, d_ffn 1024", ["--sampling=single_path"]),
  # 16-bit matmuls: the bound is measured in bfloat16 too (AMX on the reference machine).
  ("soft, d_ffn 1024, mixed_bfloat16", ["--sampling=soft", "--mixed_precision=mixed_bfloat16"]),
)


def run(work, options):
  """Training speed as a share of its matmul bound (`_bound`), for the base SuperNet at two
  feed-forward widths, single_path, mixed_bfloat16 (against a bfloat16 bound), and the fixed
  pattern the soft search derives."""
  from par import runs as run_files

  data = work / "data"
  measure.run_measured(measure.build_command(options.text_dir, data, options.vocab_size))
  steps = options.train_steps
  common = measure.training_command(data, steps)
  cases = list(_SPEED_CASES)
  rows, speeds = [], {}
  while cases:
    name, extra = cases.pop(0)
    run_dir = work / f"run{len(speeds)}"
    measure.run_case(common + [f"--model_dir={run_dir}", *extra])
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    speed = speeds[name] = results["train_tokens_per_second"]
    if name == "soft, d_ffn 1024":
      pattern = results["pattern"]
      cases.append((f"fixed {pattern} (the soft search's)", [f"--architecture={pattern}"]))
    if name.startswith("single_path"):
      rows.append((f"train {name}", f"{speed:,.0f} tok/s (its branches are sampled: no bound)"))
      continue
    tokens, seconds = _bound(data, extra)
    bound = tokens / seconds
    rows.append(
      (f"train {name}", f"{speed:,.0f} tok/s; bound {bound:,.0f} tok/s: {speed / bound:.0%}")
    )
  soft = speeds["soft, d_ffn 1024"]
  rows.append(("single_path / soft, same run", f"{speeds['single_path, d_ffn 1024'] / soft:.2f}"))
  bfloat16 = speeds["soft, d_ffn 1024, mixed_bfloat16"]
  rows.append(("mixed_bfloat16 / float32 soft, same run", f"{bfloat16 / soft:.2f}"))
  return rows


def _bound(data, model_flags):
  """(tokens per step, the step's matmul-bound seconds): its forward matmuls at the model's
  shapes (costs.step_matmuls, the data's tail shares), three times over for the backward
  pass, each at the rate measured for its shape in a subprocess with training's threads."""
  from par.config import ModelConfig
  from par.data import records
  from par.search import costs

  printed = measure.printed_config(data, "--flagfile=configs/base_model.flags", *model_flags)
  model = ModelConfig.from_dict(printed["model"])
  meta = records.load_meta(data)
  shares = measure.tail_shares(data, model.cutoffs, model.vocab_size)
  products = costs.step_matmuls(
    model,
    model.architecture or None,
    seq_len=meta.seq_len,
    batch_size=meta.batch_size,
    tail_shares=shares,
  )
  shapes = json.dumps({",".join(map(str, key)): count for key, count in products.items()})
  dtype = "bfloat16" if printed["mixed_precision"] == "mixed_bfloat16" else "float32"
  seconds, _ = measure.run_case(
    measure.command("benchmark", "--suite=bound_case", f"--shapes={shapes}")
    + [f"--bound_dtype={dtype}"]
  )
  return meta.batch_size * meta.seq_len, seconds["step"]


def bound_case(shapes, dtype="float32"):
  """Prints {"step": seconds}: 3 · Σ count · (time of one product of that shape), each time
  the best of five runs of many products kept in a loop (each adds the loop index, so the
  graph optimiser cannot fold them), two independent chains at once, as training's threads
  run them (one thread per op, one op per core); products in `dtype` (the compute dtype of
  the run's precision policy)."""
  import tensorflow as tf

  cli.configure_threads()
  dtype = tf.as_dtype(dtype)

  unrolled = 4  # products per chain and loop iteration: the loop's own cost spread thin

  @tf.function
  def chains(a, b, c, d, times):
    one, two = tf.zeros([], dtype), tf.zeros([], dtype)
    for i in tf.range(times):
      for j in range(unrolled):
        step = tf.cast(i * unrolled + j, dtype)
        one += tf.reduce_sum(tf.matmul(a + step, b)[..., :1, :1])
        two += tf.reduce_sum(tf.matmul(c + step, d)[..., :1, :1])
    return one + two

  total = 0.0
  for key, count in json.loads(shapes).items():
    m, k, n = map(int, key.split(","))
    batch = [count] if count > 1 and m * k * n < 1 << 18 else []  # small ones batched, as run
    flops = 2 * m * k * n * (batch[0] if batch else 1)
    times = max(4, min(2000, int(2e9 / flops)))
    args = [
      tf.cast(tf.random.normal(batch + shape), dtype) for shape in ([m, k], [k, n], [m, k], [k, n])
    ]
    times = max(1, times // unrolled)
    seconds = measure.best_seconds(chains, *args, tf.constant(times)) / (2 * unrolled * times)
    total += 3 * seconds * (1 if batch else count)
  print(json.dumps({"step": total}))

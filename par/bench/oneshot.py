"""Suite `oneshot`: what each kind of SuperNet costs beside one retraining of a fixed pattern,
measured in one run (docs/BENCHMARKS.md, "One-shot SuperNets").

Each case is par-train on the base configuration (configs/base_model.flags) for
`train_steps` steps on a dataset built from `text_dir`, a fresh process: the interleaved
`sfsfsf` as a fixed pattern (the retraining a search is weighed against), the coupled soft
SuperNet (every branch of every block, Gumbel-Softmax), SPOS's uniform paths (one branch a
block), FairNAS's fair paths (three paths a step on one batch), and few-shot NAS's split of
the uniform SuperNet (three sub-SuperNets, each a third of the steps, warm-started from it).
For each: its steady step time (batch x seq_len over the tokens per second the run measured
after its first, tracing loop call) and that against the fixed pattern's, and the process's
wall time (start-up, tracing, evaluation and checkpoint included).

Then selection from the shared weights: `par-rank` on the uniform SuperNet scores every one
of its 3^6 = 729 patterns, and on each few-shot sub-SuperNet its 243; the seconds each took
(ranking.json), per pattern, and so what every pattern of 8 blocks (3^8 = 6,561) would take at
the same rate per pattern and token (a pattern of 8 blocks costs 8/6 of one of 6 at most).
"""

import json
import time

from par.bench import measure

_CASES = (  # name, extra flags of par-train
  ("fixed sfsfsf (a retraining)", ["--architecture=sfsfsf"]),
  ("soft SuperNet (coupled)", ["--sampling=soft"]),
  ("uniform paths (SPOS)", ["--sampling=uniform"]),
  ("fair paths (FairNAS)", ["--sampling=fair"]),
)
_FIXED, _UNIFORM = _CASES[0][0], _CASES[2][0]


def run(work, options):
  from par import runs as run_files

  data = work / "data"
  measure.run_measured(measure.build_command(options.text_dir, data, options.vocab_size))
  steps = options.train_steps
  common = measure.training_command(data, steps)
  tokens_per_step = _tokens_per_step(data)
  rows, step_seconds, dirs = [], {}, {}

  def train(name, line, run_dir):
    start = time.perf_counter()
    _, rss = measure.run_case(line + [f"--model_dir={run_dir}"])
    wall = time.perf_counter() - start
    results = json.loads((run_dir / run_files.RESULTS_FILE).read_text())
    return results, wall, rss

  for name, extra in _CASES:
    dirs[name] = work / f"run{len(dirs)}"
    results, wall, rss = train(name, common + extra, dirs[name])
    speed = results["train_tokens_per_second"]
    step_seconds[name] = tokens_per_step / speed
    ratio = step_seconds[name] / step_seconds[_FIXED] if name != _FIXED else 1.0
    rows.append(
      (
        f"{name}: {steps} steps",
        f"{1e3 * step_seconds[name]:.0f} ms a step ({speed:,.0f} tok/s), {ratio:.2f}× the "
        f"fixed pattern's step; {wall:.0f} s in all, peak RSS {rss:.0f} MiB",
      )
    )

  # Few-shot: the uniform SuperNet split on block 0, each sub-SuperNet a third of the steps.
  sub_steps = max(1, steps // 3)
  walls, speeds = [], []
  for letter in "sfi":
    line = measure.training_command(data, sub_steps) + [
      "--sampling=uniform",
      f"--architecture={letter}?????",
      f"--warm_start={dirs[_UNIFORM]}",
      f"--warmup_steps={max(1, sub_steps // 10)}",
      "--steps_per_loop=10",
    ]
    dirs[letter] = work / f"few-shot-{letter}"
    results, wall, _ = train(letter, line, dirs[letter])
    walls.append(wall)
    speeds.append(results["train_tokens_per_second"])
  seconds = sum(tokens_per_step / s for s in speeds) / 3
  rows.append(
    (
      f"few-shot split of the uniform SuperNet: 3 × {sub_steps} steps",
      f"{1e3 * seconds:.0f} ms a step, {seconds / step_seconds[_FIXED]:.2f}× the fixed "
      f"pattern's; {sum(walls):.0f} s in all (on top of the uniform SuperNet's)",
    )
  )

  # Selection: every pattern scored with the shared weights.
  ranked = {}
  for name, run_dir in (("uniform SuperNet", dirs[_UNIFORM]),) + tuple(
    (f"few-shot sub-SuperNet {letter}?????", dirs[letter]) for letter in "sfi"
  ):
    measure.run_case(measure.command("rank", f"--model_dir={run_dir}"))
    ranked[name] = json.loads((run_dir / "ranking.json").read_text())
  uniform = ranked["uniform SuperNet"]
  per_pattern = uniform["seconds"] / len(uniform["scores"])
  rows.append(
    (
      f"par-rank, uniform SuperNet: every one of {len(uniform['scores'])} patterns on "
      f"{uniform['tokens']:,} valid tokens",
      f"{uniform['seconds']:.0f} s ({per_pattern:.2f} s a pattern)",
    )
  )
  split = [r for name, r in ranked.items() if name != "uniform SuperNet"]
  rows.append(
    (
      "par-rank, the three few-shot sub-SuperNets (243 patterns each)",
      f"{sum(r['seconds'] for r in split):.0f} s",
    )
  )
  rows.append(
    (
      "every pattern of 8 blocks (6,561), at the 6-block rate per pattern × 8/6",
      f"about {6561 * per_pattern * 8 / 6 / 60:.0f} min (estimated, not measured)",
    )
  )
  return rows


def _tokens_per_step(data):
  from par.data import records

  meta = records.load_meta(data)
  return meta.batch_size * meta.seq_len

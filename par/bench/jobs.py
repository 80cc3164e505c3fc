"""Suite `jobs`: one two-thread training against two one-thread trainings at once, as
`par-pipeline --jobs=2` runs them (docs/BENCHMARKS.md, "Speed", the one-run A/B of --jobs).
"""

import json
import statistics
import subprocess

from par.bench import measure
from par.errors import ParError


def run(work, options, rounds=2):
  """One two-thread training against two one-thread trainings at once (`par-pipeline
  --jobs=2`), alternated `rounds` times: the base SuperNet's tokens/s for the machine."""
  from par import runs as run_files

  data = work / "data"
  measure.run_measured(measure.build_command(options.text_dir, data, options.vocab_size))
  common = measure.training_command(data, options.train_steps)
  one_thread = ["--inter_op_threads=1", "--intra_op_threads=1"]

  def speed(run_dir):
    return json.loads((run_dir / run_files.RESULTS_FILE).read_text())["train_tokens_per_second"]

  rows, alone, pairs = [], [], []
  for r in range(rounds):
    run_dir = work / f"alone{r}"
    measure.run_case(common + [f"--model_dir={run_dir}"])
    alone.append(speed(run_dir))
    dirs = [work / f"pair{r}-{k}" for k in range(2)]
    processes = [
      subprocess.Popen(
        common + [f"--model_dir={d}", *one_thread],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
      )
      for d in dirs
    ]
    for process in processes:
      _, stderr = process.communicate()
      if process.returncode:
        raise ParError(f"a one-thread training failed: {stderr.decode().strip()[-300:]}")
    pairs.append(sum(speed(d) for d in dirs))
    rows.append(
      (
        f"round {r + 1}",
        f"one two-thread run {alone[-1]:,.0f} tok/s; two one-thread "
        f"runs at once {pairs[-1]:,.0f} tok/s together",
      )
    )
  rows.append(
    ("two at once / one alone, same run", f"{statistics.mean(pairs) / statistics.mean(alone):.2f}")
  )
  return rows

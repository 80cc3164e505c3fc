"""Suite `paper_memory`: the memory of the paper's models at their shapes (docs/BENCHMARKS.md,
"Memory at the paper's shape").

For Transformer-XL base at WikiText-103's shape (batch 4, issue [6/6]'s) and the enwik8 model
at its published per-run batch (22 × 512), on datasets built from `corpus` as the shapes suite
builds them: `par-train --print_config`'s estimate; TensorFlow's allocator in a process that
only trains steps (`par-step-memory`: in use after building, its peak over the
steps); and the peak RSS of a whole `par-train` run of the same steps, with its final
evaluations, checkpoint and export.
"""

import shutil

from par.bench import measure
from par.bench import shapes


def run(work, options):
  small = shapes.short_evaluations(options.corpus, work)
  steps = options.shape_steps
  rows = []
  for name, flagfile, build_flags in shapes.paper_models(wt103_batch=4):
    data = work / "data"
    measure.run_measured(
      measure.command("build_data", f"--input={small}", f"--output_dir={data}") + build_flags
    )
    estimate = measure.printed_config(data, f"--flagfile={flagfile}")["memory_mib_per_replica"]
    probe, _ = measure.run_case(
      measure.command(
        "step_memory", f"--flagfile={flagfile}", f"--data_dir={data}", f"--steps={steps}"
      )
    )
    run_dir = work / "run"
    _, rss = measure.run_case(shapes.train_command(flagfile, data, run_dir, steps))
    rows.append((name, f"estimate {estimate['total']:,.0f} MiB per replica"))
    if probe["allocator_peak"] is None:
      allocator = "no allocator statistics (oneDNN off)"
    else:
      allocator = (
        f"{probe['allocator_after_build']:,.0f} MiB in use after building, peak "
        f"{probe['allocator_peak']:,.0f} MiB (estimate / peak "
        f"{estimate['total'] / probe['allocator_peak']:.2f})"
      )
    rows.append((f"  allocator over {steps} steps", allocator))
    rows.append((f"  peak RSS, {steps} steps alone", f"{probe['peak_rss']:,.0f} MiB"))
    rows.append(
      (
        f"  peak RSS, par-train of {steps} steps",
        f"{rss:,.0f} MiB (evaluations, checkpoint and export included)",
      )
    )
    shutil.rmtree(data)
    shutil.rmtree(run_dir)
  return rows

"""Suite `memory`: the memory a step needs (docs/BENCHMARKS.md, "The memory a step needs").

`--print_config`'s estimate (par/search/memory.py) against the measured peak RSS of three
training steps at three shapes, less the peak of a process that only starts TensorFlow.
"""

import shutil
import sys

from par.bench import measure

_MEMORY_SHAPES = (  # (name, flags, dataset batch, seq_len): the estimate set against the peak
  ("base SuperNet, 32 x 32, memory 16", ["--flagfile=configs/base_model.flags"], 32, 32),
  (
    "fixed sfsfsf, d 256, d_ffn 1024, 16 x 128, memory 128",
    [
      "--flagfile=configs/base_model.flags",
      "--architecture=sfsfsf",
      "--d_model=256",
      "--mem_len=128",
    ],
    16,
    128,
  ),
  (
    "SuperNet, d 256, 8 heads, 32 x 128, memory 256",
    [
      "--flagfile=configs/base_model.flags",
      "--d_model=256",
      "--n_heads=8",
      "--mem_len=256",
    ],
    32,
    128,
  ),
)


def run(work, options):
  """--print_config's memory estimate against the measured peak RSS of three training steps,
  less the peak of a process that only starts TensorFlow (the runtime's own share)."""
  _, baseline = measure.run_case(
    [sys.executable, "-c", "from par import cli; cli.import_tensorflow(); import keras"]
  )  # (the runtime's share: TensorFlow and Keras imported, nothing built)
  rows = [("TensorFlow's runtime alone (subtracted below)", f"peak RSS {baseline:,.0f} MiB")]
  for name, model_flags, batch, seq_len in _MEMORY_SHAPES:
    data = work / f"data-{batch}-{seq_len}"
    if not data.is_dir():
      measure.run_measured(
        measure.build_command(
          options.text_dir, data, 7000, f"--batch_size={batch}", f"--seq_len={seq_len}"
        )
      )
    estimate = measure.printed_config(data, *model_flags)["memory_mib_per_replica"]
    common = measure.command("train", *model_flags, f"--data_dir={data}")
    run_dir = work / "run"
    _, rss = measure.run_case(
      common + [f"--model_dir={run_dir}", "--train_steps=3", "--steps_per_loop=1", "--plot_every=0"]
    )
    shutil.rmtree(run_dir)
    measured = rss - baseline
    rows.append(
      (
        name,
        f"estimate {estimate['total']:,.0f} MiB (activations {estimate['activations']:,.0f}); "
        f"measured {rss:,.0f} MiB peak, {measured:,.0f} above the runtime: estimate / measured "
        f"{estimate['total'] / measured:.2f}",
      )
    )
  return rows

"""Suite `profile`: where the step goes (docs/BENCHMARKS.md, "Speed", the profile).

A TensorBoard profiler trace (`profile_dir`) of `profile_steps` steps of the base SuperNet
(configs/base_model.flags, on `data_dir` or a dataset built from `text_dir`), and the step's
split (forward, backward, optimizer, input, host/idle) and top ops read from it
(`profile_split`).
"""

import dataclasses
import os
import time
from pathlib import Path

from par import cli
from par.bench import measure
from par.errors import ParError


def run(work, options):
  """A TensorBoard profiler trace of --profile_steps steps of the base SuperNet (warmed up
  first), and the step's split and top ops read back from it."""
  from par.config import TrainConfig
  from par.data import records
  from par.train import trainer

  tf = cli.import_tensorflow()
  cli.configure_threads()
  log_dir = Path(options.profile_dir)
  if (log_dir / "plugins" / "profile").exists():
    raise ParError(f"{log_dir} already holds a profile: choose another --profile_dir")
  data = Path(options.data_dir) if options.data_dir else work / "data"
  if not options.data_dir:
    measure.run_measured(measure.build_command(options.text_dir, data, options.vocab_size))
  settings = measure.printed_config(data, "--flagfile=configs/base_model.flags")
  known = {field.name for field in dataclasses.fields(TrainConfig)}
  config = TrainConfig.from_dict({k: v for k, v in settings.items() if k in known})
  loop, meta = trainer.bench_loop(config)
  model = loop.model
  batches = iter(records.load_dataset(str(data), "train").repeat().prefetch(2))
  memory = model.initial_memory(meta.batch_size)
  count = options.profile_steps
  for _ in range(2):  # traces, then warms up
    result = loop.run(batches, memory, tf.constant(count))
    float(result.nll)
    memory = result.memory
  tf.profiler.experimental.start(str(log_dir))
  start = time.perf_counter()
  result = loop.run(batches, memory, tf.constant(count))
  float(result.nll)
  wall = (time.perf_counter() - start) / count * 1e3
  tf.profiler.experimental.stop()
  split, ops = profile_split(log_dir, count)
  busy = sum(split.values())
  rows = [
    ("trace", f"{log_dir} (tensorboard --logdir={log_dir}, Profile tab)"),
    ("step wall time", f"{wall:.1f} ms; {meta.batch_size * meta.seq_len / wall * 1e3:,.0f} tok/s"),
    ("op time on compute threads", f"{busy:.1f} thread-ms a step"),
  ]
  for part in ("forward", "backward", "optimizer", "input"):
    rows.append((f"split: {part}", f"{split.get(part, 0.0):.1f} thread-ms"))
  idle = os.cpu_count() * wall - busy
  rows.append(("split: host, executor and idle", f"{idle:.1f} thread-ms (cores × wall − ops)"))
  for name, ms, calls in ops[:12]:
    rows.append((f"op {name}", f"{ms:.1f} thread-ms, {calls:.0f} calls"))
  return rows


def _split_of(name):
  """The part of a step an op of the traced graph belongs to, by its name."""
  lowered = name.lower()
  if "gradient" in lowered:
    return "backward"
  if any(word in lowered for word in ("adam", "optimizer", "apply", "assignvariable")):
    return "optimizer"
  if any(word in lowered for word in ("iterator", "dataset", "prefetch")):
    return "input"
  return "forward"


def profile_split(log_dir, steps):
  """(thread-ms a step by split, [(op type, thread-ms a step, calls a step)] by time), from
  the newest trace under log_dir: every op executed on TensorFlow's compute threads."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  traces = sorted(Path(log_dir).glob("plugins/profile/*/*.xplane.pb"))
  if not traces:
    raise ParError(f"{log_dir} holds no profiler trace")
  space = xplane_pb2.XSpace()
  space.ParseFromString(traces[-1].read_bytes())
  split, by_type, calls = {}, {}, {}
  for plane in space.planes:
    meta = plane.event_metadata
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        m = meta[event.metadata_id]
        if m.display_name in ("", "Process"):
          continue
        ms = event.duration_ps / 1e9 / steps
        part = _split_of(m.name)
        split[part] = split.get(part, 0.0) + ms
        by_type[m.display_name] = by_type.get(m.display_name, 0.0) + ms
        calls[m.display_name] = calls.get(m.display_name, 0) + 1 / steps
  ops = sorted(((k, v, calls[k]) for k, v in by_type.items()), key=lambda row: -row[1])
  return split, ops

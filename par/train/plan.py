"""The shape of a run (`Plan`: steps, replicas, lanes) and the checks of where and how it runs
that need no TensorFlow, so that a command refuses a bad setting before TensorFlow starts."""

import dataclasses
import json
import os

from par.errors import ParError
from par.search import heldout


@dataclasses.dataclass(frozen=True)
class Plan:
  """The shape of a run, from its config, its dataset and the number of replicas."""

  steps_per_epoch: int  # records in the train split
  total_steps: int
  replicas: int
  lanes: int  # lanes (batch rows) per replica
  tokens_per_step: int  # of the global batch


def make_plan(config, meta, replicas):
  """The `Plan` of `config` on a dataset (`records.DatasetMeta`) over `replicas` replicas."""
  if "train" not in meta.splits:
    raise ParError(f"{config.data_dir} has no train split")
  if meta.batch_size % replicas:
    raise ParError(f"batch_size {meta.batch_size} does not split into {replicas} replicas")
  heldout.held_out_lanes(meta.batch_size, config.arch_split)  # a lane for each, or an error
  if config.eval_batch_size % replicas:
    raise ParError(
      f"--eval_batch_size {config.eval_batch_size} does not split into {replicas} replicas"
    )
  if (meta.batch_size // replicas) % config.accumulate_steps:
    raise ParError(
      f"--accumulate_steps {config.accumulate_steps} does not divide the "
      f"{meta.batch_size // replicas} lanes of each replica (batch_size {meta.batch_size}, "
      f"{replicas} replica{'s' if replicas > 1 else ''})"
    )
  steps_per_epoch = meta.splits["train"].records
  return Plan(
    steps_per_epoch,
    config.train_steps or config.epochs * steps_per_epoch,
    replicas,
    meta.batch_size // replicas,
    meta.batch_size * meta.seq_len,
  )


def known_replicas(runtime):
  """The replicas a `RuntimeConfig` gives that are known before TensorFlow sees its devices:
  1 on one device, --cpu_devices of a mirrored CPU; None where only the devices tell (GPUs,
  workers, TPU cores)."""
  if runtime.strategy in ("default", "one_device"):
    return 1
  if runtime.strategy == "mirrored" and runtime.cpu_devices:
    return runtime.cpu_devices
  return None


def tf_config():
  """The cluster of a multi-worker run: TF_CONFIG, read and checked."""
  text = os.environ.get("TF_CONFIG", "")
  if not text:
    raise ParError(
      "--strategy=multi_worker needs TF_CONFIG (cluster and task as JSON), see "
      "the README's 'Scaling out'"
    )
  try:
    value = json.loads(text)
    workers = value["cluster"]["worker"]
    task = value["task"]
    task["type"], int(task["index"])
  except (ValueError, KeyError, TypeError):
    raise ParError(
      f"TF_CONFIG is not JSON with cluster.worker and task.type/index: {text[:80]}"
    ) from None
  if not workers:
    raise ParError("TF_CONFIG lists no workers")
  return value

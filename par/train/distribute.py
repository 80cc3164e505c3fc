"""TensorFlow's distribution strategies for training and evaluation.

`make_strategy` builds one by name; the rest keeps Transformer-XL's context batching intact
across replicas. A dataset record holds B lanes, each lane a continuous stream of text, so
with R replicas in sync replica r takes lanes [r·B/R, (r+1)·B/R) of every record (`lanes`):
it sees continuous lanes step after step and its memories (kept per replica by
`strategy.run`) continue them. Checkpoints hold the memory of all B lanes (`gather_memory`,
`scatter_memory`), so a run can resume under another strategy or replica count.

Multi-worker training: every worker reads the whole record (records are small) and keeps its
replicas' lanes; only the chief writes the run directory, other workers save their
checkpoint copies to a scratch directory that is removed (`is_chief`).
"""

import tensorflow as tf

from par.config import STRATEGIES
from par.errors import ParError
from par.train import plan


def split_cpu(devices):
  """Splits the host CPU into `devices` logical devices (before TensorFlow initialises).

  Lets MirroredStrategy run with several replicas on a machine without accelerators: for
  tests, and to check a multi-device setting before taking it to GPUs.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * devices
    )
  except RuntimeError:
    raise ParError("--cpu_devices must be set before TensorFlow initialises its devices") from None


def make_strategy(name, tpu=""):
  """The strategy called `name` (one of STRATEGIES).

  Args:
    name: default (TensorFlow's default strategy: one device, no wrapping), one_device (the
      first GPU, else the CPU), mirrored (all local GPUs, else all logical CPUs), multi_worker
      (the cluster in TF_CONFIG) or tpu.
    tpu: the TPU's address for name == "tpu" ("" finds the Colab or Cloud TPU itself).

  Raises:
    ParError: an unknown name, a missing TF_CONFIG, an unreachable TPU.
  """
  if name not in STRATEGIES:
    raise ParError(f"unknown strategy {name!r}: one of {', '.join(STRATEGIES)}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "multi_worker":  # First: it must configure TensorFlow before anything starts it.
    plan.tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name in ("one_device", "mirrored"):
    gpus = tf.config.list_logical_devices("GPU")  # (starts TensorFlow's runtime)
    if name == "one_device":
      return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    where = tpu or "the local TPU"
    raise ParError(f"cannot reach {where}: {str(e).splitlines()[0]}") from None
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
  """Whether this process writes the run directory (always, except non-chief workers)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, "chief"):
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


def worker_name(strategy):
  """'' for the chief, e.g. 'worker-1' for other workers."""
  if is_chief(strategy):
    return ""
  resolver = strategy.cluster_resolver
  return f"{resolver.task_type}-{resolver.task_id}"


def lanes(strategy, make_dataset, batch_size):
  """A distributed dataset in which replica r gets lanes [r·b, (r+1)·b) of every record.

  Args:
    strategy: the strategy.
    make_dataset: () -> dataset of (inputs, targets) records [batch_size, T], in order.
    batch_size: lanes per record (b = batch_size / replicas).
  """
  replicas = strategy.num_replicas_in_sync
  if batch_size % replicas:
    raise ParError(f"batch_size {batch_size} does not split into {replicas} replicas")
  if replicas == 1:  # Nothing to split.
    return strategy.experimental_distribute_dataset(make_dataset())

  def dataset_fn(context):
    local = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * local
    width = batch_size // replicas

    def split(*tensors):  # [B, T] -> [local, b, T]: this pipeline's replicas, in order
      return tuple(tf.reshape(t, [replicas, width, -1])[first : first + local] for t in tensors)

    # The pipeline hands consecutive elements to its replicas in turn: one per replica.
    return make_dataset().map(split).unbatch()

  return strategy.distribute_datasets_from_function(dataset_fn)


def initial_memory(strategy, model, batch_size, mem_len=None):
  """Per replica: an empty memory for its lanes.

  Under a strategy each call traces a new tf.function: call it once per run and reuse the
  result.
  """
  width = batch_size // strategy.num_replicas_in_sync

  def empty():
    return model.initial_memory(width, mem_len)

  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    return empty()  # the default strategy: nothing to distribute, nothing to trace

  @tf.function
  def on_every_replica():  # (a compiled strategy.run: eager MirroredStrategy is slow)
    return strategy.run(empty)

  return on_every_replica()


def scatter_memory(strategy, memory):
  """Per replica: its lanes of a memory of all lanes (as a checkpoint holds it)."""
  if strategy.num_replicas_in_sync == 1:
    return memory
  replicas = strategy.num_replicas_in_sync

  def local(context):
    r = context.replica_id_in_sync_group
    return memory.with_tensors(
      [tf.split(s, replicas, axis=0)[r] for s in memory.tensors], tf.identity(memory.length)
    )

  return strategy.experimental_distribute_values_from_function(local)


def gather_memory(strategy, memory):
  """The memory of all lanes, in lane order, from the per-replica memories."""
  if strategy.num_replicas_in_sync == 1:
    return strategy.experimental_local_results(memory)[0]
  return memory.with_tensors(
    [strategy.gather(s, axis=0) for s in memory.tensors],
    strategy.experimental_local_results(memory.length)[0],
  )

"""absl flags the scripts share: every field of ModelConfig and TrainConfig (`define`, `read`)
for those that train, which weights of a run to load (`define_run_source`, `run_source`) for
those that use a trained run.

Scripts only: `define…()` at import time, the readers in main. Each flag sets the config field of
the same name; tuple fields are repeated or comma-separated integers, where "none" clears the
values given before it (a flagfile's). The library never reads flags.
"""

import dataclasses
import typing

from absl import flags

from par import cli
from par.config import ModelConfig
from par.config import TrainConfig

_HELP = {
    # ModelConfig
    "d_model": "Width of the residual stream.",
    "n_heads": "Attention heads.",
    "d_head": "Width of each head (0: d_model / n_heads).",
    "d_ffn": "Hidden width of feed-forward blocks.",
    "n_blocks": "Blocks in the network.",
    "mem_len": "Memory length of attention blocks in training.",
    "clamp_len": "Relative distances above this share an encoding (0: off).",
    "dropout": "Dropout on embeddings, block outputs and the last hidden state.",
    "dropatt": "Dropout on attention weights.",
    "untie_rel_bias": "One pair of attention biases u, v per block instead of shared.",
    "cutoffs": "Adaptive softmax cluster boundaries, repeated or comma-separated "
               "(--cutoffs=250 --cutoffs=2500); 'none' clears those given before it (a "
               "flagfile's), alone it means a plain softmax.",
    "proj_factor": "Tail cluster i projects to d_model / proj_factor**(i+1).",
    "proj_dims": "Explicit projection width per tail cluster (repeated or comma-separated).",
    "architecture": "Train this fixed pattern over s (attention), f (feed-forward), "
                    "i (identity), e.g. sfsfff, instead of searching.",
    "sampling": "SuperNet training: soft, hard (straight-through) or single_path.",
    "eval_mode": "SuperNet evaluation: argmax (derived architecture) or expected.",
    # TrainConfig
    "data_dir": "Dataset directory built by scripts/build_data.py.",
    "epochs": "Epochs over the train split (unless --train_steps).",
    "train_steps": "Total steps; overrides --epochs when above 0.",
    "max_lr": "Peak learning rate of the weights.",
    "warmup_steps": "Linear warm-up steps; then cosine decay to 0 at the last step.",
    "optimizer": "adam, or adamw with --weight_decay.",
    "weight_decay": "Decoupled weight decay (adamw), not on biases and norms.",
    "clip_norm": "Clip weight gradients to this global norm (0: off).",
    "tau_start": "Gumbel-Softmax temperature at the first step.",
    "tau_end": "Temperature at the last step.",
    "tau_schedule": "Temperature schedule: exp or linear.",
    "arch_lr": "Learning rate of the architecture logits (Adam, betas 0.5/0.999).",
    "arch_weight_decay": "Decoupled weight decay of the architecture logits.",
    "arch_warmup_steps": "Steps during which the architecture logits stay frozen.",
    "resource": "Resource term in the search's loss: none, flops or latency (measured).",
    "resource_weight": "Weight of the resource term (expected block cost, 0 to 1).",
    "seed": "Seed of initialisation, dropout and Gumbel noise.",
    "steps_per_loop": "Steps per compiled loop call (host syncs between calls).",
    "eval_every": "Evaluate on valid every N steps (0: at epoch ends only).",
    "log_every": "Log and write training summaries every N steps.",
    "checkpoint_every": "Checkpoint every N steps.",
    "keep_checkpoints": "Checkpoints to keep.",
    "plot_every": "Draw the architecture heatmap every N steps (0: only at the end).",
    "eval_mem_len": "Memory length in evaluation (0: --mem_len).",
    "jit_compile": "Compile the training step with XLA (for GPUs and TPUs; slow on CPUs).",
    "mixed_precision": "Compute in 16 bits with float32 variables, softmax and loss: "
                       "mixed_float16 (GPUs; dynamic loss scaling) or mixed_bfloat16 (TPUs, "
                       "recent GPUs and CPUs).",
}
_CHOICES = {"sampling": ["soft", "hard", "single_path"], "eval_mode": ["argmax", "expected"],
            "resource": ["none", "flops", "latency"],
            "optimizer": ["adam", "adamw"], "tau_schedule": ["exp", "linear"],
            "mixed_precision": ["float32", "mixed_float16", "mixed_bfloat16"]}

_THREADS = {}  # Set by define().
_SOURCE = {}  # Set by define_run_source().
_STRATEGY = {}  # Set by define_strategy().


def _define(config_class, skip=()):
  hints = typing.get_type_hints(config_class)
  for field in dataclasses.fields(config_class):
    name, default = field.name, field.default
    if name in skip:
      continue
    kind = hints[name]
    if name in _CHOICES:
      flags.DEFINE_enum(name, default, _CHOICES[name], _HELP[name])
    elif kind is bool:
      flags.DEFINE_bool(name, default, _HELP[name])
    elif kind is int:
      flags.DEFINE_integer(name, default, _HELP[name])
    elif kind is float:
      flags.DEFINE_float(name, default, _HELP[name])
    elif kind is str:
      flags.DEFINE_string(name, default, _HELP[name])
    else:  # tuple[int, ...]
      flags.DEFINE_multi_string(name, [str(v) for v in default], _HELP[name])


def define():
  """Defines one flag per config field (the vocabulary size excepted: the dataset decides)."""
  _define(ModelConfig, skip=("vocab_size",))
  _define(TrainConfig, skip=("model",))
  _THREADS["inter"] = flags.DEFINE_integer(
      "inter_op_threads", -1, "Ops TensorFlow runs at once (-1: auto, the CPU count without a "
      "GPU; 0: TensorFlow's default).")
  _THREADS["intra"] = flags.DEFINE_integer(
      "intra_op_threads", -1, "Threads per op (-1: auto, 1 without a GPU; 0: TensorFlow's "
      "default).")


def _ints(name, values):
  """Integers from repeated and comma-separated values; "none" clears the ones before it.

  Repeated flags accumulate, across a flagfile and the command line too, so "none" is how
  `--flagfile=configs/base_model.flags --cutoffs=none --cutoffs=100` replaces the file's.
  """
  result = []
  for value in values:
    for part in value.split(","):
      part = part.strip()
      if part.lower() == "none":
        result = []
      elif part:
        try:
          result.append(int(part))
        except ValueError:
          raise cli.ParError(f"--{name} takes integers, got {part!r}") from None
  return tuple(result)


def _read(config_class, skip=()):
  values = {}
  for field in dataclasses.fields(config_class):
    if field.name in skip:
      continue
    value = flags.FLAGS[field.name].value
    if isinstance(value, list):
      value = _ints(field.name, value)
    values[field.name] = value
  return values


def read():
  """The validated TrainConfig the flags give (vocab_size is the dataset's at training)."""
  model = ModelConfig(**_read(ModelConfig, skip=("vocab_size",)))
  return TrainConfig(model=model, **_read(TrainConfig, skip=("model",))).validate()


def configure_threads():
  """Applies --inter_op_threads and --intra_op_threads (after TensorFlow's import)."""
  cli.configure_threads(_THREADS["inter"].value, _THREADS["intra"].value)


def define_run_source():
  """--source and --checkpoint: which weights of a run to load."""
  _SOURCE["source"] = flags.DEFINE_enum(
      "source", "checkpoint", ["checkpoint", "export"],
      "Weights from the latest checkpoint (or --checkpoint) or from export/model.keras.")
  _SOURCE["checkpoint"] = flags.DEFINE_string(
      "checkpoint", None, "A checkpoint prefix, e.g. runs/x/checkpoints/ckpt-200.")


def run_source():
  """(source, checkpoint) for `runs.load_model`; a ParError if they contradict each other."""
  source, checkpoint = _SOURCE["source"].value, _SOURCE["checkpoint"].value
  if checkpoint and source != "checkpoint":
    raise cli.ParError("--checkpoint goes with --source=checkpoint")
  return source, checkpoint


def define_strategy():
  """--strategy, --tpu and --cpu_devices: where training runs (par/distribute.py)."""
  _STRATEGY["strategy"] = flags.DEFINE_enum(
      "strategy", "default", ["default", "one_device", "mirrored", "multi_worker", "tpu"],
      "tf.distribute strategy: default (one device), one_device, mirrored (all local GPUs, "
      "else the logical CPUs of --cpu_devices), multi_worker (the cluster in TF_CONFIG) or "
      "tpu (--tpu).")
  _STRATEGY["tpu"] = flags.DEFINE_string(
      "tpu", "", "TPU address for --strategy=tpu, e.g. grpc://10.0.0.2:8470 ('': find the "
      "Colab or Cloud TPU).")
  _STRATEGY["cpu_devices"] = flags.DEFINE_integer(
      "cpu_devices", 0, "Split the CPU into this many logical devices for "
      "--strategy=mirrored (0: do not split), to run several replicas without accelerators.")


def strategy():
  """The strategy the flags ask for (after TensorFlow's import, before it runs anything)."""
  name, tpu, cpus = (_STRATEGY[k].value for k in ("strategy", "tpu", "cpu_devices"))
  if tpu and name != "tpu":
    raise cli.ParError("--tpu goes with --strategy=tpu")
  if cpus < 0 or (cpus and name != "mirrored"):
    raise cli.ParError("--cpu_devices takes a positive count and goes with --strategy=mirrored")
  from par import distribute  # pylint: disable=g-import-not-at-top (imports TensorFlow)
  if cpus:
    distribute.split_cpu(cpus)
  return distribute.make_strategy(name, tpu)

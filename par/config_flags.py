"""absl flags derived from the config dataclasses of par/config.py, for the scripts.

Every setting is declared once, as a field with its help text and choices; `define` turns
fields into flags of the same name (an enum where the field has choices, a bool, int, float
or string flag by its type, a repeatable flag for tuples) and `read` turns the parsed flags
back into field values. Integer tuples (`--cutoffs`) are repeated or comma-separated, and
"none" clears the values given before it (a flagfile's); string tuples (`--user_symbols`)
are comma-separated.

Commands only: `define…()` in a command's `define_flags` (which `cli.run` calls, so that
importing a command defines nothing), the readers in main. The library never reads flags.
"""

import dataclasses
import typing

from absl import flags

from par import cli
from par import runs
from par.config import DataConfig
from par.config import ModelConfig
from par.config import RuntimeConfig
from par.config import TrainConfig

_KEEP = object()  # `define_field`: keep the field's default.
_SOURCE = {}  # Set by define_run_source().


def _fields(config_class, skip=(), only=None):
  """(field, type) of the fields that become flags: nested configs never do."""
  hints = typing.get_type_hints(config_class)
  for field in dataclasses.fields(config_class):
    if (
      field.name in skip
      or (only is not None and field.name not in only)
      or dataclasses.is_dataclass(hints[field.name])
    ):
      continue
    yield field, hints[field.name]


def define_field(config_class, name, default=_KEEP, help_note=""):
  """Defines the flag of one field; `default` replaces the field's (None: unset)."""
  field, kind = next(_fields(config_class, only=(name,)))
  value = field.default if default is _KEEP else default
  text = field.metadata["help"] + (f" {help_note}" if help_note else "")
  if field.metadata.get("choices"):
    flags.DEFINE_enum(name, value, list(field.metadata["choices"]), text)
  elif kind is bool:
    flags.DEFINE_bool(name, value, text)
  elif kind is int:
    flags.DEFINE_integer(name, value, text)
  elif kind is float:
    flags.DEFINE_float(name, value, text)
  elif kind is str:
    flags.DEFINE_string(name, value, text)
  elif typing.get_args(kind)[0] is int:  # tuple[int, ...]
    flags.DEFINE_multi_string(name, None if value is None else [str(v) for v in value], text)
  else:  # tuple[str, ...]
    flags.DEFINE_list(name, None if value is None else list(value), text)


def define(config_class, skip=(), only=None):
  """Defines one flag per field of `config_class` (but `skip`; only `only` if given)."""
  for field, _ in _fields(config_class, skip, only):
    define_field(config_class, field.name)


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


def read(config_class, skip=(), only=None):
  """{field name: value} from the flags `define(config_class, skip, only)` defined."""
  values = {}
  for field, kind in _fields(config_class, skip, only):
    value = flags.FLAGS[field.name].value
    if typing.get_origin(kind) is tuple and value is not None:
      value = _ints(field.name, value) if typing.get_args(kind)[0] is int else tuple(value)
    values[field.name] = value
  return values


# --- what the training scripts share ----------------------------------------------------------


def define_training():
  """The flags of scripts that train: every ModelConfig (but vocab_size, which the dataset
  decides), TrainConfig and RuntimeConfig field."""
  define(ModelConfig, skip=("vocab_size",))
  define(TrainConfig)
  define(RuntimeConfig)


def training_config(vocab_size=None):
  """The validated TrainConfig the flags give, with `vocab_size` (at training, the dataset's;
  None: ModelConfig's default)."""
  sized = {} if vocab_size is None else {"vocab_size": vocab_size}
  model = ModelConfig(**sized, **read(ModelConfig, skip=("vocab_size",)))
  return TrainConfig(model=model, **read(TrainConfig)).validate()


def runtime_config():
  """The validated RuntimeConfig the flags give."""
  return RuntimeConfig(**read(RuntimeConfig)).validate()


def configure_threads(runtime):
  """Applies the runtime's thread pools (after TensorFlow's import, before it runs)."""
  cli.configure_threads(runtime.inter_op_threads, runtime.intra_op_threads)


def strategy(runtime):
  """The runtime's strategy (after TensorFlow's import, before it runs anything)."""
  from par.train import distribute  # Imports TensorFlow.

  if runtime.cpu_devices:
    distribute.split_cpu(runtime.cpu_devices)
  return distribute.make_strategy(runtime.strategy, runtime.tpu)


# --- what the scripts that load a trained run share -------------------------------------------


def define_run_source():
  """--source and --checkpoint: which weights of a run to load."""
  _SOURCE["source"] = flags.DEFINE_enum(
    "source",
    "checkpoint",
    list(runs.SOURCES),
    "Weights from the latest checkpoint (or --checkpoint) or from export/model.keras.",
  )
  _SOURCE["checkpoint"] = flags.DEFINE_string(
    "checkpoint", None, "A checkpoint prefix, e.g. runs/x/checkpoints/ckpt-200."
  )


def run_source():
  """(source, checkpoint) for `runs.load_model`; a ParError if they contradict each other."""
  source, checkpoint = _SOURCE["source"].value, _SOURCE["checkpoint"].value
  if checkpoint and source != "checkpoint":
    raise cli.ParError("--checkpoint goes with --source=checkpoint")
  return source, checkpoint


# --- the flags, documented by group (docs/FLAGS.md) ---------------------------------------------

FLAG_GROUPS = (  # (title, config class, fields): every field of every config, once
  ("Data: the dataset a build makes (`par-build-data`)", DataConfig, None),
  (
    "Model (the vocabulary's size is the dataset's)",
    ModelConfig,
    [
      "d_model",
      "n_heads",
      "d_head",
      "d_ffn",
      "n_blocks",
      "mem_len",
      "clamp_len",
      "dropout",
      "dropatt",
      "untie_rel_bias",
      "cutoffs",
      "proj_factor",
      "proj_dims",
      "div_val",
      "tie_weight",
      "tie_projs",
      "same_length",
      "init",
      "architecture",
    ],
  ),
  (
    "Search: the SuperNet and its architecture step",
    (ModelConfig, TrainConfig),
    [
      "sampling",
      "eval_mode",
      "tau_start",
      "tau_end",
      "tau_schedule",
      "arch_lr",
      "arch_weight_decay",
      "arch_warmup_steps",
      "arch_split",
      "resource",
      "resource_weight",
      "resource_target",
      "warm_start",
    ],
  ),
  (
    "Optimisation",
    TrainConfig,
    [
      "data_dir",
      "epochs",
      "train_steps",
      "max_lr",
      "warmup_steps",
      "min_lr",
      "optimizer",
      "weight_decay",
      "clip_norm",
      "seed",
      "accumulate_steps",
      "mixed_precision",
      "jit_compile",
    ],
  ),
  (
    "Evaluation and the weights kept",
    TrainConfig,
    [
      "eval_every",
      "eval_batch_size",
      "eval_mem_len",
      "eval_clamp_len",
      "eval_same_length",
      "keep_best",
      "patience",
    ],
  ),
  (
    "Bookkeeping",
    TrainConfig,
    ["steps_per_loop", "log_every", "checkpoint_every", "keep_checkpoints", "plot_every", "plots"],
  ),
  ("Runtime: where a run executes (never changes its result)", RuntimeConfig, None),
)


def flags_markdown():
  """docs/FLAGS.md: every setting's flag, grouped, with its default, choices and help, as the
  config fields declare them (a test keeps the file equal to this)."""
  lines = [
    "# Flags by group",
    "",
    "Every setting of `par-train`, `par-pipeline` (and `par-build-data` for the data), generated",
    "from the config fields that declare them (`par/config.py`); `--help` prints the same text.",
    "Regenerate with `python3 -c 'from par import config_flags as c; print(c.flags_markdown(), "
    'end="")\' > docs/FLAGS.md`.',
  ]
  for title, classes, names in FLAG_GROUPS:
    classes = classes if isinstance(classes, tuple) else (classes,)
    fields = {f.name: f for c in classes for f in dataclasses.fields(c)}
    lines += ["", f"## {title}", "", "| flag | default | what |", "|---|---|---|"]
    for name in names or list(fields):
      field = fields[name]
      if dataclasses.is_dataclass(field.default):
        continue
      default = field.default
      if isinstance(default, tuple):
        default = ",".join(map(str, default)) or "(none)"
      choices = field.metadata.get("choices")
      text = field.metadata["help"] + (f" One of: {', '.join(choices)}." if choices else "")
      text = text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
      lines.append(f"| `--{name}` | `{default}` | {text} |")
  return "\n".join(lines) + "\n"

"""Trains a PAR SuperNet (architecture search) or a fixed architecture; resumes if interrupted.

  python scripts/train.py --flagfile=configs/base_model.flags --model_dir=runs/base
  python scripts/train.py --flagfile=configs/tiny.flags --model_dir=runs/tiny

Running the same command again resumes from the last checkpoint in --model_dir. Every flag
below sets the field of the same name in par.config.ModelConfig or TrainConfig.
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
    "seed": "Seed of initialisation, dropout and Gumbel noise.",
    "steps_per_loop": "Steps per compiled loop call (host syncs between calls).",
    "eval_every": "Evaluate on valid every N steps (0: at epoch ends only).",
    "log_every": "Log and write training summaries every N steps.",
    "checkpoint_every": "Checkpoint every N steps.",
    "keep_checkpoints": "Checkpoints to keep.",
    "plot_every": "Draw the architecture heatmap every N steps (0: only at the end).",
    "eval_mem_len": "Memory length in evaluation (0: --mem_len).",
    "jit_compile": "Compile the training step with XLA (for GPUs and TPUs; slow on CPUs).",
}
_CHOICES = {"sampling": ["soft", "hard", "single_path"], "eval_mode": ["argmax", "expected"],
            "optimizer": ["adam", "adamw"], "tau_schedule": ["exp", "linear"]}

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory (created or resumed).")
_INTER_OP_THREADS = flags.DEFINE_integer(
    "inter_op_threads", -1, "Ops TensorFlow runs at once (-1: auto, the CPU count without a "
    "GPU; 0: TensorFlow's default).")
_INTRA_OP_THREADS = flags.DEFINE_integer(
    "intra_op_threads", -1, "Threads per op (-1: auto, 1 without a GPU; 0: TensorFlow's "
    "default).")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the configuration the flags give, as JSON, and exit "
    "(the vocabulary size is the dataset's at training time).")


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


_define(ModelConfig, skip=("vocab_size",))  # The dataset decides the vocabulary.
_define(TrainConfig, skip=("model",))


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


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  model = ModelConfig(**_read(ModelConfig, skip=("vocab_size",)))
  config = TrainConfig(model=model, **_read(TrainConfig, skip=("model",)))
  config.validate()
  if _PRINT_CONFIG.value:
    print(config.to_json())
    return
  if not _MODEL_DIR.value:
    raise cli.ParError("--model_dir is required")
  cli.import_tensorflow()
  cli.configure_threads(_INTER_OP_THREADS.value, _INTRA_OP_THREADS.value)
  from par import train  # pylint: disable=g-import-not-at-top (after the quiet import)
  results = train.train_and_evaluate(config, _MODEL_DIR.value)
  for split in ("valid", "test"):
    if split in results:
      r = results[split]
      print(f"{split}: token perplexity {r['token_perplexity']:.2f}, word perplexity "
            f"{r['word_perplexity']:.2f}")
  print(f"architecture: {results['pattern']}")


if __name__ == "__main__":
  cli.run(main)

"""Settings, one frozen dataclass per concern, with JSON round trips.

Derive variants with `dataclasses.replace`. `validate()` raises `ParError` with a one-line
explanation; the library calls it before doing any work.
"""

import dataclasses
import json
import math
import typing

from par.errors import ParError


def _check(condition, message):
  if not condition:
    raise ParError(message)


class _JsonMixin:
  """`to_json` / `from_json` for flat dataclasses of JSON-friendly fields."""

  def to_dict(self):
    return dataclasses.asdict(self)

  def to_json(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    _check(not unknown, f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    converted = {}
    for name, value in values.items():
      # JSON has no tuples; fields declared as tuples come back as lists.
      if typing.get_origin(hints[name]) is tuple and isinstance(value, list):
        value = tuple(value)
      elif dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
        value = hints[name].from_dict(value)
      converted[name] = value
    return cls(**converted)

  @classmethod
  def from_json(cls, text):
    return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class DataConfig(_JsonMixin):
  """How `build_dataset` turns text into context-batched records."""

  # Pieces in the SentencePiece vocabulary, control symbols included. Ignored when an
  # existing tokenizer model is given.
  vocab_size: int = 12000
  # SentencePiece algorithm: "unigram" (Kudo 2018) or "bpe".
  model_type: str = "unigram"
  # Case-fold the text inside the tokenizer. Off by default: WikiText-2 is cased.
  lowercase: bool = False
  # Share of characters the vocabulary must cover; 1.0 keeps every character of the train
  # split, so only characters unseen in training become <unk>.
  character_coverage: float = 1.0
  # Words that always stay one piece. WikiText marks out-of-vocabulary words with a literal
  # "<unk>", which SentencePiece would otherwise split into three pieces.
  user_symbols: tuple[str, ...] = ("<unk>",)
  # Independent lanes of text per record (the batch dimension).
  batch_size: int = 32
  # Tokens predicted per lane per record; a record holds seq_len + 1 tokens per lane.
  seq_len: int = 32
  # Files each split's records are cut into, in order.
  shards: int = 1
  # The last partial record of a split: "pad" fills it with -1 (masked in the loss), so
  # every token after the first is a target; "drop" discards it (< batch_size*seq_len tokens).
  remainder: str = "pad"

  def validate(self):
    _check(self.vocab_size >= 2, f"vocab_size must be at least 2, got {self.vocab_size}")
    _check(self.model_type in ("unigram", "bpe"),
           f"model_type must be unigram or bpe, got {self.model_type!r}")
    _check(0.0 < self.character_coverage <= 1.0,
           f"character_coverage must be in (0, 1], got {self.character_coverage}")
    for symbol in self.user_symbols:
      _check(symbol and not any(c.isspace() for c in symbol),
             f"user symbols must be non-empty and without spaces, got {symbol!r}")
    _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
    _check(self.seq_len >= 1, f"seq_len must be at least 1, got {self.seq_len}")
    _check(self.shards >= 1, f"shards must be at least 1, got {self.shards}")
    _check(self.remainder in ("pad", "drop"),
           f"remainder must be pad or drop, got {self.remainder!r}")
    return self


BLOCK_KINDS = "sfi"  # self-attention, feed-forward, identity: one letter per block.


@dataclasses.dataclass(frozen=True)
class ModelConfig(_JsonMixin):
  """The PAR model: a Transformer-XL whose blocks are searched or fixed by a pattern.

  The defaults are the base model of the reference implementation's README (Kernes'
  PAR-Transformer-XL) on WikiText-2; its base_model.sh uses d_ffn 512 instead of 1024.
  """

  # Pieces in the vocabulary; taken from the dataset's meta.json by the training script.
  vocab_size: int = 12000
  # Width of the residual stream.
  d_model: int = 128
  # Attention heads, and the width of each (0: d_model // n_heads).
  n_heads: int = 4
  d_head: int = 0
  # Hidden width of the feed-forward blocks.
  d_ffn: int = 1024
  # Blocks in the network, each self-attention, feed-forward or identity.
  n_blocks: int = 6
  # Hidden states of earlier segments each attention block attends to (Transformer-XL).
  mem_len: int = 16
  # Relative distances beyond this share one position encoding; 0 turns clamping off.
  clamp_len: int = 0
  # Dropout on embeddings, block outputs and the last hidden state; and on attention weights.
  dropout: float = 0.1
  dropatt: float = 0.0
  # Content and position biases u, v of relative attention: one pair per block (True) or one
  # pair shared by all blocks (False, as in Transformer-XL).
  untie_rel_bias: bool = False
  # Adaptive softmax cluster boundaries, increasing, below vocab_size (which closes the last
  # cluster). Empty: a plain softmax over the whole vocabulary.
  cutoffs: tuple[int, ...] = (250, 2500)
  # Width of tail cluster i's projection: d_model // proj_factor**(i+1), unless proj_dims
  # gives one width per tail explicitly.
  proj_factor: int = 4
  proj_dims: tuple[int, ...] = ()
  # A fixed architecture, one letter per block from "sfi" (e.g. "sfsfff"); empty: the SuperNet
  # of stochastic blocks that the search trains.
  architecture: str = ""
  # How the SuperNet mixes its branches in training: "soft" (Gumbel-Softmax weights), "hard"
  # (one-hot forward, straight-through gradients) or "single_path" (only the sampled branch
  # is computed, GDAS-style).
  sampling: str = "soft"
  # How the SuperNet evaluates: "argmax" (the derived architecture) or "expected" (branches
  # weighted by softmax of the logits). Never noisy.
  eval_mode: str = "argmax"

  @property
  def head_width(self):
    return self.d_head or self.d_model // self.n_heads

  def validate(self):
    for name in ("vocab_size", "d_model", "n_heads", "d_ffn", "n_blocks", "proj_factor"):
      _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
    _check(self.d_head >= 0, f"d_head must be 0 or more, got {self.d_head}")
    _check(self.d_head or self.d_model % self.n_heads == 0,
           f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}; set d_head")
    _check(self.mem_len >= 0, f"mem_len must be 0 or more, got {self.mem_len}")
    _check(self.clamp_len >= 0, f"clamp_len must be 0 (off) or more, got {self.clamp_len}")
    for name in ("dropout", "dropatt"):
      _check(0.0 <= getattr(self, name) < 1.0,
             f"{name} must be in [0, 1), got {getattr(self, name)}")
    bounds = (0,) + tuple(self.cutoffs) + (self.vocab_size,)
    _check(all(a < b for a, b in zip(bounds, bounds[1:])),
           f"cutoffs must increase strictly between 0 and vocab_size {self.vocab_size}, got "
           f"{list(self.cutoffs)}")
    _check(not self.proj_dims or len(self.proj_dims) == len(self.cutoffs),
           f"proj_dims needs one width per tail cluster ({len(self.cutoffs)}), got "
           f"{list(self.proj_dims)}")
    _check(all(d >= 1 for d in self.proj_dims), f"proj_dims must be positive, got "
           f"{list(self.proj_dims)}")
    if self.architecture:
      _check(set(self.architecture) <= set(BLOCK_KINDS),
             f"architecture {self.architecture!r} may only use the letters s (attention), "
             "f (feed-forward) and i (identity)")
      _check(len(self.architecture) == self.n_blocks,
             f"architecture {self.architecture!r} has {len(self.architecture)} blocks, but "
             f"n_blocks is {self.n_blocks}")
    _check(self.sampling in ("soft", "hard", "single_path"),
           f"sampling must be soft, hard or single_path, got {self.sampling!r}")
    _check(self.eval_mode in ("argmax", "expected"),
           f"eval_mode must be argmax or expected, got {self.eval_mode!r}")
    return self


@dataclasses.dataclass(frozen=True)
class TrainConfig(_JsonMixin):
  """One training run: the model, the data, the optimisation and the bookkeeping."""

  model: ModelConfig = ModelConfig()
  # A dataset directory built by scripts/build_data.py.
  data_dir: str = "data/wikitext2_bsz32_seqlen32"
  # Length of the run: whole epochs over the train split, or train_steps if above 0.
  epochs: int = 20
  train_steps: int = 0
  # Weights: linear warm-up to max_lr over warmup_steps, then cosine to 0 at the last step.
  max_lr: float = 1e-4
  warmup_steps: int = 4000
  # "adam", or "adamw" with decoupled weight_decay (not applied to biases and norms).
  optimizer: str = "adam"
  weight_decay: float = 0.0
  # Clip the weights' gradients to this global norm; 0 turns clipping off.
  clip_norm: float = 0.0
  # Gumbel-Softmax temperature from tau_start at the first step to tau_end at the last,
  # geometrically ("exp") or linearly.
  tau_start: float = 1.0
  tau_end: float = 0.1
  tau_schedule: str = "exp"
  # Architecture logits: their own Adam (betas 0.5, 0.999, as in DARTS), constant learning
  # rate, decoupled weight decay, frozen for the first arch_warmup_steps steps.
  arch_lr: float = 3e-4
  arch_weight_decay: float = 1e-3
  arch_warmup_steps: int = 0
  # A resource term in the loss, resource_weight · (expected block cost), on the logits only:
  # "none", "flops" (FLOPs per token of each block kind) or "latency" (forward time of each
  # kind, measured when the run starts). See par/search.py.
  resource: str = "none"
  resource_weight: float = 0.0
  # Seeds weight initialisation, dropout and the Gumbel noise (which is a function of
  # (seed, step), so a resumed run draws what an uninterrupted one would).
  seed: int = 0
  # Steps per call of the compiled training loop (the host syncs only between calls).
  steps_per_loop: int = 50
  # Evaluate on valid every eval_every steps (0: only at each epoch end), log every log_every
  # steps, checkpoint every checkpoint_every steps keeping keep_checkpoints, draw the
  # architecture every plot_every steps (0: never; the final plots are always drawn).
  eval_every: int = 0
  log_every: int = 100
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  plot_every: int = 1000
  # Memory length for evaluation; 0: the model's mem_len. May exceed it.
  eval_mem_len: int = 0
  # Compile each training step with XLA.
  jit_compile: bool = False
  # Keras dtype policy: "float32", or 16-bit compute with float32 variables, normalisations
  # and loss: "mixed_float16" (with dynamic loss scaling) or "mixed_bfloat16".
  mixed_precision: str = "float32"

  # Fields that may change when a run resumes: they change the bookkeeping, not the result.
  RESUMABLE_CHANGES = ("steps_per_loop", "eval_every", "log_every", "checkpoint_every",
                       "keep_checkpoints", "plot_every", "jit_compile")

  def validate(self):
    self.model.validate()
    _check(self.epochs >= 1 or self.train_steps >= 1,
           "give a positive number of epochs or train_steps")
    _check(self.train_steps >= 0, f"train_steps must be 0 or more, got {self.train_steps}")
    _check(math.isfinite(self.max_lr) and self.max_lr > 0,
           f"max_lr must be positive and finite, got {self.max_lr}")
    _check(self.warmup_steps >= 0, f"warmup_steps must be 0 or more, got {self.warmup_steps}")
    _check(self.optimizer in ("adam", "adamw"),
           f"optimizer must be adam or adamw, got {self.optimizer!r}")
    _check(self.weight_decay >= 0 and self.arch_weight_decay >= 0,
           "weight decays must be 0 or more")
    _check(self.weight_decay == 0 or self.optimizer == "adamw",
           "weight_decay needs optimizer adamw (adam has no decoupled weight decay)")
    _check(self.clip_norm >= 0, f"clip_norm must be 0 (off) or more, got {self.clip_norm}")
    _check(self.tau_start > 0 and self.tau_end > 0,
           f"temperatures must be positive, got {self.tau_start} -> {self.tau_end}")
    _check(self.tau_schedule in ("exp", "linear"),
           f"tau_schedule must be exp or linear, got {self.tau_schedule!r}")
    _check(self.arch_lr >= 0, f"arch_lr must be 0 or more, got {self.arch_lr}")
    _check(self.arch_warmup_steps >= 0, "arch_warmup_steps must be 0 or more")
    _check(self.mixed_precision in ("float32", "mixed_float16", "mixed_bfloat16"),
           "mixed_precision must be float32, mixed_float16 or mixed_bfloat16, got "
           f"{self.mixed_precision!r}")
    _check(self.resource in ("none", "flops", "latency"),
           f"resource must be none, flops or latency, got {self.resource!r}")
    _check(math.isfinite(self.resource_weight) and self.resource_weight >= 0,
           f"resource_weight must be 0 or more, got {self.resource_weight}")
    _check((self.resource == "none") == (self.resource_weight == 0),
           "give --resource and a positive --resource_weight together")
    _check(self.resource == "none" or not self.model.architecture,
           "a resource term steers a search; a fixed --architecture has nothing to steer")
    for name in ("steps_per_loop", "log_every", "checkpoint_every", "keep_checkpoints"):
      _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
    for name in ("eval_every", "plot_every", "eval_mem_len"):
      _check(getattr(self, name) >= 0, f"{name} must be 0 or more, got {getattr(self, name)}")
    return self

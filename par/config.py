"""Settings, one frozen dataclass per concern, with JSON round trips.

Every field is declared with `setting(default, help, choices)`: its help text and, for a
string with a fixed set of values, its choices live on the field, and nothing else restates
them. The scripts' absl flags are derived from the fields (par/config_flags.py), `validate()`
checks the choices, and `--help` prints the same text.

Derive variants with `dataclasses.replace`. `validate()` raises `ParError` with a one-line
explanation; the library calls it before doing any work.
"""

import dataclasses
import json
import math
import typing

from par.errors import ParError

# The values of the settings that take one of a few names: defined here, once.
BLOCK_KINDS = "sfi"  # self-attention, feed-forward, identity: one letter per block.
SEARCHED = "?"  # a block a (sub-)SuperNet searches, in an architecture string
# Coupled modes learn architecture logits beside the weights (Gumbel-Softmax); decoupled ones
# (one-shot: SPOS's uniform paths, FairNAS's fair ones) train the weights on paths from a
# fixed sampler, and the architecture is chosen afterwards from shared-weight scores.
COUPLED_SAMPLING = ("soft", "hard", "single_path")
DECOUPLED_SAMPLING = ("uniform", "fair")
SAMPLING_MODES = COUPLED_SAMPLING + DECOUPLED_SAMPLING
EVAL_MODES = ("argmax", "expected")
OPTIMIZERS = ("adam", "adamw", "lamb")
TAU_SCHEDULES = ("exp", "linear")
RESOURCES = ("none", "flops", "latency")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
TOKENIZERS = ("sentencepiece", "word", "char")
MODEL_TYPES = ("unigram", "bpe")
REMAINDERS = ("pad", "drop")
INITS = ("glorot", "transformer_xl")


def argmax_pattern(probabilities):
  """The most likely kind of each block as a pattern string ("sfsfii"), from [n_blocks, 3]
  probabilities (columns s, f, i); a tie goes to the earlier column."""
  return "".join(BLOCK_KINDS[row.index(max(row))] for row in map(list, probabilities))


def setting(default, help, choices=None):
  """A config field with its help text and, if it takes one of a few names, their choices."""
  return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _check(condition, message):
  if not condition:
    raise ParError(message)


def _one_of(choices):
  """ "a, b or c"."""
  choices = [str(c) for c in choices]
  return " or ".join([", ".join(choices[:-1]), choices[-1]]) if len(choices) > 1 else choices[0]


class _Settings:
  """JSON round trips and the choice checks, for flat dataclasses of JSON-friendly fields."""

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

  def _check_choices(self):
    """The checks every field gets: one of its choices, if it has any; finite, if a number
    (NaN passes every comparison a range check makes, and infinity trains to NaN)."""
    for field in dataclasses.fields(self):
      choices = field.metadata.get("choices")
      value = getattr(self, field.name)
      if choices is not None and value not in choices:
        raise ParError(f"{field.name} must be {_one_of(choices)}, got {value!r}")
      if isinstance(value, float) and not math.isfinite(value):
        raise ParError(f"{field.name} must be a finite number, got {value}")


@dataclasses.dataclass(frozen=True)
class DataConfig(_Settings):
  """How `build_dataset` turns text into context-batched records."""

  tokenizer: str = setting(
    "sentencepiece",
    "sentencepiece: pieces learned from the train split (--vocab_size); word: the train "
    "split's whitespace words by frequency (WikiText-103 as Transformer-XL); char: bytes by "
    "frequency (enwik8, text8; results in bits per character).",
    TOKENIZERS,
  )
  vocab_size: int = setting(
    12000,
    "Pieces in the SentencePiece vocabulary, control symbols included (ignored when "
    "an existing tokenizer model is given; word and char vocabularies take their size "
    "from the text: see --min_count and --max_vocab).",
  )
  min_count: int = setting(
    1, "word and char: symbols seen fewer times in the train split become <unk>."
  )
  max_vocab: int = setting(
    0,
    "word and char: keep at most this many ids, <unk> and <eos> included, the rarest "
    "symbols becoming <unk> (0: every symbol of the train split).",
  )
  model_type: str = setting(
    "unigram", "SentencePiece algorithm: unigram (Kudo 2018) or bpe.", MODEL_TYPES
  )
  lowercase: bool = setting(
    False, "Case-fold the text inside the tokenizer (off by default: WikiText is cased)."
  )
  character_coverage: float = setting(
    1.0,
    "Share of the train split's characters the vocabulary covers; 1.0 keeps every "
    "one, so only characters unseen in training become unknown.",
  )
  input_sentence_size: int = setting(
    0,
    "SentencePiece: train on this many lines of the train split, a fixed uniform sample of "
    "its non-empty lines (0: every line, in order). Large corpora need a sample: "
    "SentencePiece holds its training text in memory several times over.",
  )
  user_symbols: tuple[str, ...] = setting(
    ("<unk>",),
    "Words always kept as one piece, comma-separated (empty for none). WikiText "
    "marks unknown words with a literal <unk>, which would otherwise become three pieces.",
  )
  batch_size: int = setting(32, "Independent lanes of text per record (the batch dimension).")
  seq_len: int = setting(
    32, "Tokens predicted per lane per record; a record holds seq_len + 1 tokens per lane."
  )
  shards: int = setting(1, "Consecutive files each split's records are cut into, in order.")
  remainder: str = setting(
    "pad",
    "The last partial record of a split: pad fills it with -1 (masked in the loss), "
    "so every token after the first is a target; drop discards it (fewer than "
    "batch_size x seq_len tokens).",
    REMAINDERS,
  )

  def validate(self):
    self._check_choices()
    _check(self.vocab_size >= 2, f"vocab_size must be at least 2, got {self.vocab_size}")
    _check(
      self.input_sentence_size >= 0,
      f"input_sentence_size must be 0 (every line) or positive, got {self.input_sentence_size}",
    )
    _check(self.min_count >= 1, f"min_count must be at least 1, got {self.min_count}")
    _check(
      self.max_vocab == 0 or self.max_vocab >= 3,
      f"max_vocab must be 0 (no limit) or at least 3 (<unk>, <eos> and a symbol), got "
      f"{self.max_vocab}",
    )
    _check(
      0.0 < self.character_coverage <= 1.0,
      f"character_coverage must be in (0, 1], got {self.character_coverage}",
    )
    for symbol in self.user_symbols:
      _check(
        symbol and not any(c.isspace() for c in symbol),
        f"user symbols must be non-empty and without spaces, got {symbol!r}",
      )
    _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
    _check(self.seq_len >= 1, f"seq_len must be at least 1, got {self.seq_len}")
    _check(self.shards >= 1, f"shards must be at least 1, got {self.shards}")
    return self


def tail_widths(d_model, num_tails, proj_factor=4, proj_dims=()):
  """Projection width of each adaptive-softmax tail: proj_dims, or d_model // proj_factor**(i+1).

  At least 1. A model's shape, like `ModelConfig.head_width`: the adaptive softmax builds its
  tails with it, and the FLOP counts and the cutoff solver price them with it, without
  TensorFlow.
  """
  if proj_dims:
    return tuple(proj_dims)
  return tuple(max(1, d_model // proj_factor ** (i + 1)) for i in range(num_tails))


def cluster_widths(d_model, num_clusters, div_val):
  """Transformer-XL's width of each adaptive cluster (head first): d_model // div_val**i, at
  least 1. Like `tail_widths`, a shape the layers, the FLOP counts and the solver share."""
  return tuple(max(1, d_model // div_val**i) for i in range(num_clusters))


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Settings):
  """The PAR model: a Transformer-XL whose blocks are searched or fixed by a pattern.

  The defaults are the base model of the reference implementation's README (Kernes'
  PAR-Transformer-XL) on WikiText-2; its base_model.sh uses d_ffn 512 instead of 1024.
  """

  vocab_size: int = setting(
    12000, "Pieces in the vocabulary; the training script takes it from the dataset."
  )
  d_model: int = setting(128, "Width of the residual stream.")
  n_heads: int = setting(4, "Attention heads.")
  d_head: int = setting(0, "Width of each head (0: d_model / n_heads).")
  d_ffn: int = setting(1024, "Hidden width of the feed-forward blocks.")
  n_blocks: int = setting(6, "Blocks in the network, each attention, feed-forward or identity.")
  mem_len: int = setting(
    16,
    "Hidden states of earlier segments each attention block attends to in training "
    "(Transformer-XL's memory).",
  )
  clamp_len: int = setting(
    0, "Relative distances above this share one position encoding (0: no clamping)."
  )
  dropout: float = setting(0.1, "Dropout on embeddings, block outputs and the last hidden state.")
  dropatt: float = setting(0.0, "Dropout on attention weights.")
  untie_rel_bias: bool = setting(
    False,
    "One pair of attention biases u, v per block, instead of one pair shared by all "
    "blocks as in Transformer-XL.",
  )
  cutoffs: tuple[int, ...] = setting(
    (250, 2500),
    "Adaptive softmax cluster boundaries, increasing, below the vocabulary "
    "size, repeated or comma-separated (--cutoffs=250 --cutoffs=2500); 'none' clears those "
    "given before it (a flagfile's), alone it means a plain softmax.",
  )
  proj_factor: int = setting(
    4,
    "Tail cluster i projects to d_model / proj_factor**(i+1), unless --proj_dims (par's "
    "own softmax: not with --div_val).",
  )
  proj_dims: tuple[int, ...] = setting(
    (), "Explicit projection width per tail cluster (repeated or comma-separated)."
  )
  div_val: int = setting(
    0,
    "Transformer-XL's adaptive input and output (Baevski & Auli 2019): cluster i of the "
    "vocabulary (split at --cutoffs) is embedded and scored at width d_model / div_val**i, "
    "projected to d_model when narrower (div_val > 1). 1 keeps one width and no projections, "
    "as Transformer-XL's WikiText-103 and enwik8 models. 0: a plain input embedding and par's "
    "own softmax, its tails projected by --proj_factor.",
  )
  tie_weight: bool = setting(
    False,
    "The output layer scores each cluster with its input embedding (Press & Wolf 2017), as "
    "Transformer-XL does; needs --div_val.",
  )
  tie_projs: bool = setting(
    False,
    "The tails share their projection between input and output, as Transformer-XL's "
    "WikiText-103 models; needs --div_val above 1 (at 1 there are none).",
  )
  same_length: bool = setting(
    False,
    "Every position attends to the same number of keys (the window of its memory and "
    "segment of one length), as Transformer-XL's evaluation.",
  )
  init: str = setting(
    "glorot",
    "Weight initialisation: glorot (Glorot-uniform kernels with the fans of the matrices they "
    "stand for, norms at 1) or transformer_xl (Transformer-XL's: matrices N(0, 0.02), "
    "adaptive projections N(0, 0.01), norm scales N(1, 0.02)). par/model/initializers.py.",
    INITS,
  )
  architecture: str = setting(
    "",
    "Train this fixed pattern over s (attention), f (feed-forward), i (identity), e.g. "
    "sfsfff, instead of searching (empty: the SuperNet of stochastic blocks). A ? leaves its "
    "block to search: s????? is the sub-SuperNet of few-shot NAS whose first block attends.",
  )
  sampling: str = setting(
    "soft",
    "How the SuperNet trains its branches. Coupled, with architecture logits learned beside "
    "the weights: soft (Gumbel-Softmax weights), hard (one-hot forward, straight-through "
    "gradients) or single_path (only the sampled branch is computed, GDAS-style). Decoupled, "
    "no logits learned, the architecture chosen afterwards from the shared weights' scores "
    "(par-rank, --derive=shared_best): uniform (SPOS: one path a step, its count of attention "
    "blocks uniform, the rest f or i at random; only its branches computed) or fair "
    "(FairNAS: per block a random permutation of s, f, i makes three paths, trained on the "
    "same batch, one update). docs/SEARCH.md says which found the known answers.",
    SAMPLING_MODES,
  )
  eval_mode: str = setting(
    "argmax",
    "How the SuperNet evaluates, never noisy: argmax (the derived architecture) or "
    "expected (branches weighted by softmax of the logits).",
    EVAL_MODES,
  )

  @property
  def head_width(self):
    return self.d_head or self.d_model // self.n_heads

  @property
  def kinds(self):
    """One letter per block: the pattern, "?" for every block a SuperNet searches."""
    return self.architecture or SEARCHED * self.n_blocks

  @property
  def is_supernet(self):
    """Whether some block is searched: the SuperNet, or a sub-SuperNet that fixes some."""
    return SEARCHED in self.kinds

  @property
  def tail_widths(self):
    if self.div_val:  # Transformer-XL's widths, without the head's
      return cluster_widths(self.d_model, len(self.cutoffs) + 1, self.div_val)[1:]
    return tail_widths(self.d_model, len(self.cutoffs), self.proj_factor, self.proj_dims)

  def validate(self):
    self._check_choices()
    for name in ("vocab_size", "d_model", "n_heads", "d_ffn", "n_blocks", "proj_factor"):
      _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
    _check(self.d_head >= 0, f"d_head must be 0 or more, got {self.d_head}")
    _check(
      self.d_head or self.d_model % self.n_heads == 0,
      f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}; set d_head",
    )
    _check(self.mem_len >= 0, f"mem_len must be 0 or more, got {self.mem_len}")
    _check(
      not self.same_length or self.mem_len > 0,
      "same_length needs a memory: with --mem_len=0 every query would see no key at all "
      "(Transformer-XL gives NaN there); set --mem_len or turn --same_length off",
    )
    _check(self.clamp_len >= 0, f"clamp_len must be 0 (off) or more, got {self.clamp_len}")
    for name in ("dropout", "dropatt"):
      _check(
        0.0 <= getattr(self, name) < 1.0, f"{name} must be in [0, 1), got {getattr(self, name)}"
      )
    bounds = (0,) + tuple(self.cutoffs) + (self.vocab_size,)
    _check(
      all(a < b for a, b in zip(bounds, bounds[1:])),
      f"cutoffs must increase strictly between 0 and vocab_size {self.vocab_size}, got "
      f"{list(self.cutoffs)}",
    )
    _check(
      not self.proj_dims or len(self.proj_dims) == len(self.cutoffs),
      f"proj_dims needs one width per tail cluster ({len(self.cutoffs)}), got "
      f"{list(self.proj_dims)}",
    )
    _check(
      all(d >= 1 for d in self.proj_dims), f"proj_dims must be positive, got {list(self.proj_dims)}"
    )
    _check(self.div_val >= 0, f"div_val must be 0 (off) or more, got {self.div_val}")
    _check(
      not self.tie_weight or self.div_val,
      "tie_weight ties Transformer-XL's adaptive input and output: set --div_val (1 for one width)",
    )
    _check(
      not self.tie_projs or self.div_val > 1,
      f"tie_projs shares the tails' projections, which only div_val above 1 makes (got "
      f"div_val {self.div_val})",
    )
    _check(
      not (self.div_val and self.proj_dims),
      "proj_dims shapes par's own softmax; with --div_val the widths are d_model / div_val**i",
    )
    if self.architecture:
      _check(
        set(self.architecture) <= set(BLOCK_KINDS + SEARCHED),
        f"architecture {self.architecture!r} may only use the letters s (attention), "
        "f (feed-forward), i (identity) and ? (searched)",
      )
      _check(
        len(self.architecture) == self.n_blocks,
        f"architecture {self.architecture!r} has {len(self.architecture)} blocks, but "
        f"n_blocks is {self.n_blocks}",
      )
    return self


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Settings):
  """One training run: the model, the data, the optimisation and the bookkeeping."""

  # A frozen (immutable) instance: safe as a shared default.
  model: ModelConfig = setting(ModelConfig(), "The model (its own fields).")  # noqa: RUF009
  data_dir: str = setting(
    "data/wikitext2_bsz32_seqlen32", "A dataset directory built by par-build-data."
  )
  epochs: int = setting(20, "Epochs over the train split (unless --train_steps).")
  train_steps: int = setting(0, "Total steps; overrides --epochs when above 0.")
  max_lr: float = setting(1e-4, "Peak learning rate of the weights.")
  warmup_steps: int = setting(
    4000, "Linear warm-up steps to max_lr; then a cosine to --min_lr at the last step."
  )
  min_lr: float = setting(
    0.0, "The floor of the cosine: the learning rate of the last step (0 to max_lr)."
  )
  optimizer: str = setting(
    "adam",
    "adam; adamw, Adam with decoupled --weight_decay (not on biases and norms); or lamb "
    "(You et al. 2020: Adam's update scaled per tensor by its trust ratio, for large "
    "batches; --weight_decay as adamw's).",
    OPTIMIZERS,
  )
  weight_decay: float = setting(
    0.0,
    "Decoupled weight decay (adamw, lamb), not on biases, norms and the attention's u, v "
    "(every variable of rank 1, and u, v).",
  )
  clip_norm: float = setting(
    0.0, "Clip the weights' gradients to this global norm (0: no clipping)."
  )
  tau_start: float = setting(
    10.0,
    "Gumbel-Softmax temperature at the first step. 10 falling linearly to 0.1 is GDAS's "
    "schedule: with it the soft search found the known answers of docs/SEARCH.md, and with "
    "1 falling geometrically it did not.",
  )
  tau_end: float = setting(0.1, "Gumbel-Softmax temperature at the last step.")
  tau_schedule: str = setting(
    "linear",
    "Temperature from tau_start to tau_end: geometrically (exp) or linearly.",
    TAU_SCHEDULES,
  )
  arch_lr: float = setting(
    3e-4,
    "Learning rate of the architecture logits (their own Adam, betas 0.5/0.999 as "
    "in DARTS, constant rate).",
  )
  arch_weight_decay: float = setting(
    1e-3,
    "L2 penalty on the architecture logits, weight/2 x ||alpha||^2 added to their loss (its "
    "gradient weight x alpha added to theirs, then normalised by their Adam), as DARTS (1e-3) "
    "and FBNet (5e-4) use it.",
  )
  arch_warmup_steps: int = setting(0, "Steps during which the architecture logits stay frozen.")
  arch_split: float = setting(
    0.0,
    "Share of the data held out for the architecture step (PAR and FBNet used 0.2): that "
    "share of each record's lanes, spread evenly, trains only the architecture logits and "
    "the other lanes only the weights (par/search/heldout.py). 0: one loss trains both on the "
    "same data (single-level DARTS-style search).",
  )
  resource: str = setting(
    "none",
    "A resource term in the search's loss, resource_weight x the expected block "
    "cost, on the logits only: none, flops (FLOPs per token of each block kind) or latency "
    "(forward time of each kind, measured when the run starts). See par/search/resource.py.",
    RESOURCES,
  )
  resource_weight: float = setting(
    0.0, "Weight of the resource term (the expected block cost lies in [0, 1])."
  )
  resource_target: float = setting(
    0.0,
    "Penalise only the expected block cost above this target, in [0, 1) on the same scale "
    "(1: every block the dearer of s and f); 0 penalises all of it.",
  )
  warm_start: str = setting(
    "",
    "Start the weights from the newest checkpoint of this run directory, a SuperNet or a "
    "model of the same shape (few-shot NAS starts each sub-SuperNet from its one-shot "
    "SuperNet): a block this model searches takes that block's branches, a block it fixes the "
    "branch of its kind; the optimizers and schedules start afresh. Empty: initialise.",
  )
  seed: int = setting(
    0,
    "Seed of weight initialisation, dropout and the Gumbel noise (a function of (seed, "
    "step), so a resumed run draws what an uninterrupted one would).",
  )
  steps_per_loop: int = setting(
    50, "Steps per call of the compiled training loop (the host syncs only between calls)."
  )
  eval_every: int = setting(0, "Evaluate on valid every N steps (0: only at each epoch end).")
  log_every: int = setting(100, "Log and write training summaries every N steps.")
  checkpoint_every: int = setting(1000, "Checkpoint every N steps.")
  keep_checkpoints: int = setting(3, "Checkpoints to keep.")
  accumulate_steps: int = setting(
    1,
    "Split each step's lanes into this many micro-batches run one after another, their "
    "gradients summed: the same update as the whole batch, with a fraction of its "
    "activations in memory (the paper's batch of 128 or Transformer-XL's 60 on a small "
    "device). Lanes per replica must divide by it.",
  )
  keep_best: bool = setting(
    False,
    "Also keep the weights of the best valid loss (checkpoints/best; valid is evaluated every "
    "--eval_every steps and at each epoch end); results.json reports the last and the best.",
  )
  patience: int = setting(
    0,
    "Stop when valid loss has not improved for this many evaluations in a row (0: never); "
    "the run then ends, evaluated, at that step.",
  )
  plot_every: int = setting(
    1000,
    "Draw the architecture heatmap every N steps (0: never; the final plots are always drawn, "
    "unless --noplots).",
  )
  plots: bool = setting(
    True,
    "Draw the run's figures: the learning curves at the end and, for a search, its heatmaps "
    "(every --plot_every steps, also in TensorBoard), probabilities and GIF. --noplots draws "
    "none (architecture.json still records the history): for batches of many short runs, "
    "where drawing takes a second or two of each.",
  )
  eval_mem_len: int = setting(
    0,
    "Memory length in evaluation (0: --mem_len); may exceed it, up to the longest lane "
    "evaluated (more gives the same result).",
  )
  eval_batch_size: int = setting(
    0,
    "Lanes evaluation cuts each split's continuous text into, every token after the first "
    "scored once (0: the dataset's batch_size, its records as they are). Transformer-XL "
    "evaluates 10: fewer lanes, fewer tokens that start with a short context.",
  )
  eval_clamp_len: int = setting(
    -1,
    "Relative distances clamped in evaluation, as Transformer-XL evaluates (-1: the model's "
    "--clamp_len; 0: none).",
  )
  eval_same_length: bool = setting(
    False,
    "Evaluate with every position attending to the same number of keys (Transformer-XL's "
    "evaluation; always when the model's --same_length).",
  )
  jit_compile: bool = setting(
    False, "Compile each training step with XLA (for GPUs and TPUs; about 3x slower on CPUs)."
  )
  mixed_precision: str = setting(
    "float32",
    "Keras dtype policy: float32, or 16-bit compute with float32 variables, "
    "normalisations and loss: mixed_float16 (GPUs; dynamic loss scaling) or mixed_bfloat16 "
    "(TPUs, recent GPUs and CPUs).",
    PRECISIONS,
  )

  # Fields that may change when a run resumes: they change the bookkeeping, not the result.
  RESUMABLE_CHANGES = (
    "accumulate_steps",
    "steps_per_loop",
    "eval_every",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "plot_every",
    "plots",
    "jit_compile",
  )

  def validate(self):
    self.model.validate()
    self._check_choices()
    _check(
      self.epochs >= 1 or self.train_steps >= 1, "give a positive number of epochs or train_steps"
    )
    _check(self.train_steps >= 0, f"train_steps must be 0 or more, got {self.train_steps}")
    _check(
      math.isfinite(self.max_lr) and self.max_lr > 0,
      f"max_lr must be positive and finite, got {self.max_lr}",
    )
    _check(self.warmup_steps >= 0, f"warmup_steps must be 0 or more, got {self.warmup_steps}")
    _check(
      0 <= self.min_lr <= self.max_lr,
      f"min_lr must lie in [0, max_lr = {self.max_lr}], got {self.min_lr}",
    )
    _check(
      self.weight_decay >= 0 and self.arch_weight_decay >= 0, "weight decays must be 0 or more"
    )
    _check(
      self.weight_decay == 0 or self.optimizer in ("adamw", "lamb"),
      "weight_decay needs optimizer adamw or lamb (adam has no decoupled weight decay)",
    )
    _check(self.clip_norm >= 0, f"clip_norm must be 0 (off) or more, got {self.clip_norm}")
    _check(
      self.tau_start > 0 and self.tau_end > 0,
      f"temperatures must be positive, got {self.tau_start} -> {self.tau_end}",
    )
    _check(self.arch_lr >= 0, f"arch_lr must be 0 or more, got {self.arch_lr}")
    _check(0 <= self.seed < 2**32, f"seed must lie in [0, 2^32), got {self.seed}")
    _check(self.arch_warmup_steps >= 0, "arch_warmup_steps must be 0 or more")
    _check(0.0 <= self.arch_split < 1.0, f"arch_split must lie in [0, 1), got {self.arch_split}")
    _check(
      self.arch_split == 0 or self.model.is_supernet,
      "--arch_split holds data out for the architecture step of a search; a fixed "
      "--architecture has none",
    )
    _check(
      math.isfinite(self.resource_weight) and self.resource_weight >= 0,
      f"resource_weight must be 0 or more, got {self.resource_weight}",
    )
    _check(
      0 <= self.resource_target < 1,
      f"resource_target must lie in [0, 1), got {self.resource_target}",
    )
    _check(
      self.resource_target == 0 or self.resource != "none",
      "--resource_target sets the budget of a resource term: give --resource too",
    )
    _check(
      (self.resource == "none") == (self.resource_weight == 0),
      "give --resource and a positive --resource_weight together",
    )
    _check(
      self.resource == "none" or self.model.is_supernet,
      "a resource term steers a search; a fixed --architecture has nothing to steer",
    )
    decoupled = self.model.is_supernet and self.model.sampling in DECOUPLED_SAMPLING
    _check(
      not decoupled or (self.arch_split == 0 and self.resource == "none"),
      f"--sampling={self.model.sampling} learns no architecture logits: it has no "
      "architecture step to hold data out for (--arch_split) or to steer (--resource); a "
      "constraint on the architecture goes with its selection (par-rank)",
    )
    for name in (
      "steps_per_loop",
      "log_every",
      "checkpoint_every",
      "keep_checkpoints",
      "accumulate_steps",
    ):
      _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
    for name in ("eval_every", "plot_every", "eval_mem_len", "eval_batch_size", "patience"):
      _check(getattr(self, name) >= 0, f"{name} must be 0 or more, got {getattr(self, name)}")
    _check(
      not self.eval_same_length or (self.eval_mem_len or self.model.mem_len) > 0,
      "eval_same_length needs an evaluation memory: with none every query would see no key "
      "at all; set --eval_mem_len or turn --eval_same_length off",
    )
    _check(
      self.eval_clamp_len >= -1,
      f"eval_clamp_len must be -1 (the model's), 0 (none) or more, got {self.eval_clamp_len}",
    )
    return self


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Settings):
  """Where a run executes: the distribution strategy and the thread pools.

  None of these changes a run's result (beyond float rounding), so none is saved with it: a
  run may resume under another strategy or replica count.
  """

  strategy: str = setting(
    "default",
    "tf.distribute strategy: default (one device), one_device, mirrored (all "
    "local GPUs, else the logical CPUs of --cpu_devices), multi_worker (the cluster in "
    "TF_CONFIG) or tpu (--tpu).",
    STRATEGIES,
  )
  tpu: str = setting(
    "",
    "TPU address for --strategy=tpu, e.g. grpc://10.0.0.2:8470 ('': find the Colab or Cloud TPU).",
  )
  cpu_devices: int = setting(
    0,
    "Split the CPU into this many logical devices for --strategy=mirrored (0: do not "
    "split), to run several replicas without accelerators.",
  )
  inter_op_threads: int = setting(
    -1,
    "Ops TensorFlow runs at once (-1: auto, without a GPU the cores this process may use, its "
    "CPU affinity; 0: TensorFlow's default).",
  )
  intra_op_threads: int = setting(
    -1, "Threads per op (-1: auto, 1 without a GPU; 0: TensorFlow's default)."
  )

  def validate(self):
    self._check_choices()
    _check(not self.tpu or self.strategy == "tpu", "--tpu goes with --strategy=tpu")
    _check(
      self.cpu_devices >= 0 and (not self.cpu_devices or self.strategy == "mirrored"),
      "--cpu_devices takes a positive count and goes with --strategy=mirrored",
    )
    return self

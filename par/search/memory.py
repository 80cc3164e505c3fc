"""The memory a training step needs, estimated from the shapes before anything runs
(`par-train --print_config`): Transformer-XL's users meet out-of-memory errors first.

  parameters       every variable, float32
  gradients        one float32 value per parameter (the embedding's made dense)
  optimizer        Adam, AdamW and LAMB keep two float32 slots per parameter; the
                   architecture logits' Adam two per logit
  memory           the [lanes, M, D] states each attending block carries between steps
  activations      what the forward pass of one micro-batch keeps for the backward pass, per
                   replica: per attention block the float32 softmax over [lanes, heads, T,
                   M + T] scores (and its dropout mask), the projections, and the block's
                   inputs and norm;
                   per feed-forward block its [lanes, T, d_ffn] inner activation three times
                   (before and after the ReLU, and dropped out) and its norm; the adaptive
                   softmax's head logits for every token and each tail's for its share of them
                   (a Zipf law's share), three times each; plus one block's working space:
                   its score temporaries (content, position and its shift, the masked float32
                   scores) and what it saves
  total            their sum, per replica

The activations are an estimate: TensorFlow's graph keeps some tensors and fuses others, and
the runtime itself takes a few hundred MB. docs/BENCHMARKS.md sets it against the measured peak
of two shapes.
"""

import math

_MIB = 1 << 20


def _zipf_share(low, high, vocab_size):
  """The share of tokens with ids in [low, high) under a Zipf law of exponent 1."""

  def harmonic(n):
    return math.log(n) + 0.5772156649 + 1.0 / (2 * n) if n > 0 else 0.0

  return (harmonic(high) - harmonic(low)) / harmonic(vocab_size)


def step_memory(model, parameters, lanes, seq_len, precision="float32", accumulate_steps=1):
  """{part: bytes} of one training step on one replica (see the module docstring).

  Args:
    model: the ModelConfig (architecture "" is the SuperNet: both branches of every block).
    parameters: the model's exact parameter count (`costs.model_cost`).
    lanes: lanes per replica (the batch divided by the replicas).
    seq_len: T.
    precision: the dtype policy (16-bit compute halves most activations).
    accumulate_steps: micro-batches per step: the activations are one micro-batch's.
  """
  c = 4 if precision == "float32" else 2
  b = max(lanes // accumulate_steps, 1)
  t, m, d, f = seq_len, model.mem_len, model.d_model, model.d_ffn
  n, h = model.n_heads, model.head_width
  keys = m + t
  scores = b * n * t * keys
  attention = (
    scores * 4  # the softmax, float32: what the backward pass of the scores needs
    + scores * ((2 + c) if model.dropatt else 0)  # its dropout mask and output
    + b * (t + 2 * keys) * n * h * c * 2  # q, k, v and their transposes
    + b * t * n * h * c * 2  # the attended values
    + b * keys * d * c  # [memory ; segment]
    + b * t * d * (3 * c + 2 + 2 * 4)  # output, dropout, residual and norm
  )
  # The scores' temporaries while a block runs: content, position and its shift, float32
  # scores masked (one block at a time).
  attention_working = scores * (3 * c + 2 * 4)
  feed_forward = b * t * f * (3 * c + 2) + b * t * d * (3 * c + 2 + 2 * 4)
  kinds = model.kinds
  attending = sum(kind in "s?" for kind in kinds)
  blocks = sum(
    {"s": attention, "f": feed_forward, "i": 0, "?": attention + feed_forward + 3 * b * t * d * c}[
      kind
    ]
    for kind in kinds
  )
  tokens = b * t
  bounds = (0, *model.cutoffs, model.vocab_size)
  head = bounds[1] + len(model.cutoffs)
  widths = model.tail_widths
  softmax = tokens * head * 4 * 3
  for i, (low, high) in enumerate(zip(bounds[1:], bounds[2:])):
    share = _zipf_share(low + 1, high + 1, model.vocab_size)
    softmax += tokens * share * ((high - low) * 4 * 3 + widths[i] * c)
  embedding = tokens * d * c * 3
  working = max(attention + attention_working if attending else 0, feed_forward)
  logits = 3 * kinds.count("?")
  parts = {
    "parameters": parameters * 4,
    "gradients": parameters * 4,
    "optimizer": 2 * parameters * 4 + 2 * logits * 4,
    "memory": attending * lanes * m * d * c,
    "activations": int(blocks + softmax + embedding + working),
  }
  parts["total"] = sum(parts.values())
  return parts


def describe(parts):
  """The parts in MiB, rounded, for --print_config."""
  return {k: round(v / _MIB, 1) for k, v in parts.items()}

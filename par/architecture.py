"""Architecture patterns and what each block costs.

A pattern has one letter per block: "s" self-attention, "f" feed-forward, "i" identity
(e.g. Transformer-XL's interleaving is "sf" repeated). Costs are counted, not measured:

- parameters exactly as the model creates them (tests check against the model);
- FLOPs per token of a forward pass, a multiply-add counting 2, for a batch of B lanes, each a
  segment of T tokens attending to M memory slots (K = M + T keys). An attention block
  projects queries for its T positions but keys and values for all K, and scores T x K pairs;
  the relative encodings r (K of them, one per distance) are projected once per segment for
  the whole batch ([K, D] x [D, NH]), so each of the B·T tokens carries 1/(B·T) of that:

    attention     2·NH·(D·(2 + 2K/T + K/(B·T)) + 3K)   q, out; k, v over K/T; r; two score
                                                        terms and AV
    feed-forward  4·D·F
    identity      0

  Softmaxes, layer norms and the relative shift are left out (linear in T·K or T·D).
"""

import dataclasses

from par.config import BLOCK_KINDS


@dataclasses.dataclass(frozen=True)
class Cost:
  params: int
  flops: float  # per token, forward

  def __add__(self, other):
    return Cost(self.params + other.params, self.flops + other.flops)

  def scaled(self, share):
    return Cost(self.params, self.flops * share)


def parse_pattern(pattern, n_blocks=None):
  """Checks a pattern string; returns it."""
  if not pattern or set(pattern) - set(BLOCK_KINDS):
    raise ValueError(f"a pattern is a non-empty string over {BLOCK_KINDS!r}, got {pattern!r}")
  if n_blocks is not None and len(pattern) != n_blocks:
    raise ValueError(f"pattern {pattern!r} has {len(pattern)} blocks, expected {n_blocks}")
  return pattern


def derive_argmax(probabilities):
  """The most likely kind per block from [n_blocks, 3] probabilities (columns s, f, i)."""
  return "".join(BLOCK_KINDS[row.index(max(row))] for row in map(list, probabilities))


def derive_ratio(n_blocks, ratio):
  """PAR's rule: one attention block per `ratio` blocks, spread over the lower two-thirds.

  Mandava et al. (2020) found that a searched network needs attention in about one block in
  p and only in its lower two-thirds. The rule keeps A = max(1, round(n_blocks / ratio))
  attention blocks, at the centres of A equal parts of the first ceil(2·n_blocks / 3)
  blocks, and makes every other block feed-forward.

  Args:
    n_blocks: blocks in the network.
    ratio: p > 0, blocks per attention block (e.g. 3 for 1 in 3).
  """
  if n_blocks < 1 or not ratio > 0:
    raise ValueError(f"need n_blocks >= 1 and ratio > 0, got {n_blocks} and {ratio}")
  attention = max(1, min(n_blocks, round(n_blocks / ratio)))
  lower = max(attention, -(-2 * n_blocks // 3))
  positions = {int((k + 0.5) * lower / attention) for k in range(attention)}
  return "".join("s" if b in positions else "f" for b in range(n_blocks))


def block_costs(config, seq_len, batch_size, mem_len=None):
  """Cost of one block of each kind ("s", "f", "i") and of a SuperNet block ("?").

  Args:
    config: ModelConfig.
    seq_len, batch_size: T and B, the segment length and the lanes that share one projection
      of the relative encodings (a dataset's batch: one device holding the whole batch).
    mem_len: M; None for config.mem_len.

  The SuperNet block's FLOPs are those of soft or hard sampling, which compute both branches.
  """
  d, n, h, f = config.d_model, config.n_heads, config.head_width, config.d_ffn
  mem_len = config.mem_len if mem_len is None else mem_len
  keys = mem_len + seq_len
  nh = n * h
  attention_params = 5 * d * nh + 2 * d + (2 * nh if config.untie_rel_bias else 0)
  attention_flops = 2 * nh * (d * (2 + 2 * keys / seq_len + keys / (batch_size * seq_len))
                              + 3 * keys)
  costs = {
      "s": Cost(attention_params, attention_flops),
      "f": Cost(2 * d * f + f + d + 2 * d, 4.0 * d * f),
      "i": Cost(0, 0.0),
  }
  costs["?"] = costs["s"] + costs["f"] + Cost(3, 0.0)  # 3 architecture logits
  return costs


def softmax_cost(config, tail_shares=None):
  """Parameters and FLOPs per token of the output layer.

  Args:
    config: ModelConfig.
    tail_shares: the share of tokens in each tail cluster (only those tokens run the tail);
      None counts every tail for every token, the cost of computing full log-probabilities.
  """
  d, v = config.d_model, config.vocab_size
  if not config.cutoffs:
    return Cost(d * v + v, 2.0 * d * v)
  bounds = (0,) + tuple(config.cutoffs) + (v,)
  head = bounds[1] + len(config.cutoffs)
  cost = Cost(d * head + head, 2.0 * d * head)
  for i, width in enumerate(config.tail_widths):
    size = bounds[i + 2] - bounds[i + 1]
    share = 1.0 if tail_shares is None else tail_shares[i]
    cost += Cost(d * width + width * size + size, 2.0 * (d * width + width * size) * share)
  return cost


def model_cost(config, pattern=None, *, seq_len, batch_size, mem_len=None, tail_shares=None):
  """Costs of a whole model: {"embedding", "blocks", "softmax", "total"} as `Cost`s.

  Args:
    config: ModelConfig.
    pattern: a pattern string, or None for the SuperNet (every block "?").
    seq_len, batch_size, mem_len: the segment length, lanes and memory length the FLOPs are
      counted for (see `block_costs`).
    tail_shares: see `softmax_cost`.
  """
  kinds = parse_pattern(pattern, config.n_blocks) if pattern else "?" * config.n_blocks
  per_kind = block_costs(config, seq_len, batch_size, mem_len)
  block_total = Cost(0, 0.0)
  for kind in kinds:
    block_total += per_kind[kind]
  if not config.untie_rel_bias and ("s" in kinds or "?" in kinds):  # As ParModel does.
    block_total += Cost(2 * config.n_heads * config.head_width, 0.0)  # shared u, v
  embedding = Cost(config.vocab_size * config.d_model, 0.0)
  softmax = softmax_cost(config, tail_shares)
  return {"embedding": embedding, "blocks": block_total, "softmax": softmax,
          "total": embedding + block_total + softmax}

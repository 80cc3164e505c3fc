"""Known-answer tasks: synthetic corpora on which the best block pattern of a small network is
known, so that a search can be checked against it (docs/SEARCH.md says why each has the
answer it has; `scripts/benchmark.py --suite=search` establishes it by retraining every
pattern).

  pair      A chain: each symbol is T[the two before] for a fixed random table T, or with
            probability `noise` uniform. Predicting it needs the symbol before the current
            one (attention, which alone mixes positions) and then a random function of the
            pair (a lookup of m² entries: capacity). Attention is needed once, low, and
            feed-forward capacity above it; a feed-forward block below the attention sees one
            token and cannot compute a function of both.
  copy      One long line alternating "a<k>" (k uniform) and "c<j>" where j is the k of the
            token `lag` places back (lag odd and longer than a segment): the copies need
            context from beyond the segment, which only attention over the memory reaches.
  unigram   Independent tokens from a Zipf law: no context helps, every pattern can reach the
            entropy with its output bias alone, and the cheapest (identity everywhere) is as
            good as any: a search with a resource term should not pay for attention.

Each `Task` writes train/valid/test text of whitespace words (build it with
`--tokenizer=word`) and knows its exact entropy bound: the conditional entropy of every
target token given all the tokens before it, averaged over a split's targets (the first
token is never a target), in nats. No model can beat it on average; a perfect one meets it.
On a split's actual text the generating process scores `process_nll`, which a model may
undercut by chance, never by much.

Nothing here imports TensorFlow. The same task, split and seed give the same text.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np

from par.errors import ParError

SPLIT_SEEDS = {"train": 1, "valid": 2, "test": 3}


@dataclasses.dataclass(frozen=True)
class Task:
  """A known-answer corpus: its kind and size, and what the answer is expected to be."""

  name: str  # pair, copy or unigram
  symbols: int  # m: symbols per role
  tokens: dict  # split -> about how many tokens (whole groups or lines)
  noise: float = 0.1  # pair: how often a symbol is uniform instead of the table's
  lag: int = 25  # copy: how far back a copy looks (odd)
  zipf: float = 1.1  # unigram: the law's exponent
  seed: int = 0  # the table (pair) and the text

  def lines(self, split):
    """The split's text as lines of whitespace words."""
    rng = np.random.default_rng([self.seed, SPLIT_SEEDS[split]])
    n = self.tokens[split]
    if self.name == "pair":
      return [" ".join(f"w{k}" for k in pair_chain(self.symbols, self.noise, n, rng, self.seed))]
    if self.name == "copy":
      return [" ".join(copy_words(self.symbols, self.lag, n, rng))]
    if self.name == "unigram":
      p = zipf_probabilities(self.symbols, self.zipf)
      return [" ".join(f"w{k}" for k in rng.choice(self.symbols, size=n, p=p))]
    raise ParError(f"unknown task {self.name!r}: pair, copy or unigram")

  def write(self, directory):
    """Writes directory/{train,valid,test}.txt; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split in SPLIT_SEEDS:
      (directory / f"{split}.txt").write_text("".join(line + "\n" for line in self.lines(split)))
    return directory

  def process_nll(self, split, lane=None):
    """The generating process's own NLL on the split's text, nats per target token: the bound
    on that very text (its expectation over texts is `entropy_bound`). With `lane`, the
    tokens of each evaluation lane (`records.lane_length`), the bound an evaluation in lanes
    can reach: a lane's targets see only the lane's tokens before them (`process_nll`)."""
    return process_nll(self, [w for line in self.lines(split) for w in line.split()], lane)

  def entropy_bound(self, split):
    """The split's exact entropy bound, nats per target token (see the module docstring)."""
    lines = self.lines(split)
    tokens = sum(len(line.split()) + 1 for line in lines)
    free = math.log(self.symbols)
    if self.name == "pair":  # two free tokens, then each the table's but for the noise
      words = tokens - 1
      total, first = 2 * free + (words - 2) * pair_entropy(self.symbols, self.noise), free
    elif self.name == "copy":  # the a's free, and the c's before the lag has reached back
      words = tokens - 1
      free_tokens = (words + 1) // 2 + min((self.lag - 1) // 2, words // 2)
      total, first = free_tokens * free, free
      # The end of line of the one line follows the last word: the text's length is fixed,
      # so it is determined (0 nats).
    else:  # independent tokens; the end of line comes after a fixed number of them
      p = zipf_probabilities(self.symbols, self.zipf)
      entropy = float(-(p * np.log(p)).sum())
      total, first = (tokens - 1) * entropy, entropy
    return (total - first) / (tokens - 1)


def process_nll(task, words, lane=None):
  """The NLL per target of the one-line text `words` (then its end of line) under `task`'s
  generating process: every word but the first is a target, and the end of line, which comes
  at a length fixed in advance, costs nothing.

  With `lane`, the text is evaluated in lanes of that many targets, as `records.relane` and a
  dataset's records lay it out: target t sees only the tokens from its lane's first, s =
  ⌊(t − 1) / lane⌋ · lane, on. A copy whose source lies before s is then a guess; the pair
  task's first target of a lane after the text's first sees one symbol, and is predicted
  from it as well as it can be (`pair_given_one`)."""
  ids = np.array([int(w[1:]) for w in words])
  m = task.symbols
  t = np.arange(1, len(ids))  # the targets
  start = (t - 1) // lane * lane if lane else np.zeros_like(t)
  if task.name == "pair":
    table = pair_table(m, task.seed)
    hit = ids[2:] == table[ids[:-2], ids[1:-1]]
    given_two = -np.log(np.where(hit, 1 - task.noise, 0) + task.noise / m)
    nll = np.concatenate([[math.log(m)], given_two])
    alone = (t - start == 1) & (t > 1)  # a lane's first target, but the text's
    if alone.any():
      given_one = pair_given_one(m, task.noise, task.seed)
      nll[alone] = -np.log(given_one[ids[t[alone] - 1], ids[t[alone]]])
    nll = float(nll.sum())
  elif task.name == "copy":
    free = (t % 2 == 0) | (t - task.lag < start)
    nll = math.log(m) * int(free.sum())
  else:
    nll = float(-np.log(zipf_probabilities(m, task.zipf)[ids[1:]]).sum())
  return nll / len(words)


def pair_given_one(symbols, noise, seed=0, tolerance=1e-13):
  """P(next | the one symbol before) of the pair task's chain once it runs in its stationary
  state, [m, m]: the best prediction from one symbol of context. The stationary law of the
  chain of pairs (a, b) -> (b, c), found by iterating it (the noise mixes it fast)."""
  table = pair_table(symbols, seed)
  pi = np.full([symbols, symbols], 1.0 / symbols**2)
  for _ in range(100_000):
    following = np.zeros([symbols, symbols])  # (b, c): the next pair's law
    np.add.at(following, (np.broadcast_to(np.arange(symbols), table.shape), table), pi)
    following = (1 - noise) * following + noise / symbols * pi.sum(axis=0)[:, None]
    done = np.abs(following - pi).max() < tolerance
    pi = following
    if done:
      break
  return pi / pi.sum(axis=1, keepdims=True)


def pair_table(symbols, seed=0):
  """The pair task's fixed random table: T[a, b] uniform over the symbols."""
  return np.random.default_rng([seed, 7]).integers(0, symbols, size=(symbols, symbols))


def pair_chain(symbols, noise, n, rng, seed=0):
  """The pair task's symbols: two uniform, then each T[the two before] with probability
  1 − noise, else uniform (the table's own symbol included)."""
  table = pair_table(symbols, seed)
  draws = rng.integers(0, symbols, n)
  keep = rng.random(n) >= noise
  chain = list(draws[:2])
  for t in range(2, n):
    chain.append(table[chain[t - 2], chain[t - 1]] if keep[t] else draws[t])
  return chain


def pair_entropy(symbols, noise):
  """The entropy of one chained symbol of the pair task given the two before, nats."""
  hit = 1 - noise + noise / symbols
  miss = noise / symbols
  return -(hit * math.log(hit) + (symbols - 1) * miss * math.log(miss)) if noise else 0.0


def copy_words(symbols, lag, n, rng):
  """The copy task's words: "a<k>" at even places, "c<j>" at odd ones, j the k `lag` places
  back (lag odd, so it lands on an a) or uniform where the text is shorter than that."""
  if lag % 2 == 0:
    raise ParError(f"the copy task's lag must be odd (to land on a free token), got {lag}")
  ks = rng.integers(0, symbols, n)
  words = []
  for t in range(n):
    if t % 2 == 0:
      words.append(f"a{ks[t]}")
    else:
      source = ks[t - lag] if t >= lag else ks[t]
      words.append(f"c{source}")
  return words


def zipf_probabilities(symbols, exponent):
  """p(k) ∝ 1 / (k + 1)^exponent over k < symbols."""
  weights = 1.0 / np.arange(1, symbols + 1) ** exponent
  return weights / weights.sum()


TASKS = {
  "pair": Task("pair", symbols=24, tokens={"train": 200_000, "valid": 12_000, "test": 12_000}),
  "copy": Task("copy", symbols=24, tokens={"train": 200_000, "valid": 12_000, "test": 12_000}),
  "unigram": Task(
    "unigram", symbols=64, tokens={"train": 200_000, "valid": 12_000, "test": 12_000}
  ),
}

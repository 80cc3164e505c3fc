"""Sampling text with incremental decoding: the memory is the cache.

The prompt runs as one segment; then each new token runs alone, attending to the memory of
the last `mem_len` states of every attending block, exactly as evaluation carries memory
from one segment to the next. Shapes never change ([1, 1] tokens, [1, mem_len, d_model]
memories), so the step is traced once and every token costs the same however long the text
grows. With mem_len at least the text's length, the log-probabilities are those of one
forward pass over the whole text (tests/test_inference.py).

Sampling happens on the host, from the exact log-probabilities, with numpy's generator
seeded by `seed`: the same model, prompt and seed give the same text.
"""

import numpy as np
import tensorflow as tf


def sampling_probabilities(log_probs, temperature=1.0, top_k=0, top_p=1.0):
  """The distribution to sample the next token from: float64 [V], summing to 1.

  Args:
    log_probs: the model's log-probabilities [V].
    temperature: divides the log-probabilities; 0 means greedy (all mass on the argmax).
    top_k: keep only the k most probable tokens (0: all).
    top_p: keep the fewest most probable tokens whose mass reaches top_p (nucleus sampling,
      Holtzman et al. 2020), after temperature and top-k (1: all).
  """
  log_probs = np.asarray(log_probs, np.float64)
  if temperature == 0:
    result = np.zeros_like(log_probs)
    result[np.argmax(log_probs)] = 1.0
    return result
  logits = log_probs / temperature
  order = np.argsort(-logits, kind="stable")  # Most probable first; ties by id.
  keep = len(order) if top_k <= 0 else min(top_k, len(order))
  kept = logits[order[:keep]]
  probs = np.exp(kept - kept.max())
  probs /= probs.sum()
  if top_p < 1.0:
    # The smallest prefix whose mass reaches top_p: keep token j if the mass before it < p.
    before = np.cumsum(probs) - probs
    probs = probs[before < top_p]
    probs /= probs.sum()
  result = np.zeros_like(log_probs)
  result[order[: probs.size]] = probs
  return result


class Generator:
  """Incremental decoding for one model and memory length."""

  def __init__(self, model, mem_len):
    self.model = model
    self.mem_len = mem_len
    self._step = tf.function(self._forward)  # [1, 1] tokens: one trace for every token.
    self._prompt = tf.function(self._forward, reduce_retracing=True)

  def _forward(self, tokens, memory):
    hidden, memory = self.model(tokens, memory=memory, training=False)
    return self.model.log_probs(hidden)[0], memory

  def start(self):
    """An empty memory."""
    return self.model.initial_memory(1, self.mem_len)

  def feed(self, ids, memory):
    """Runs `ids` after `memory`: (log-probabilities [len(ids), V] numpy, new memory)."""
    tokens = tf.constant([list(ids)], tf.int32)
    run = self._step if len(ids) == 1 else self._prompt
    log_probs, memory = run(tokens, memory)
    return log_probs.numpy(), memory

  def score(self, ids):
    """Log-probabilities of every next token, feeding `ids` one at a time: [len(ids), V]."""
    memory, rows = self.start(), []
    for token in ids:
      log_probs, memory = self.feed([token], memory)
      rows.append(log_probs[0])
    return np.stack(rows)

  def stream(self, prompt_ids, max_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    """Yields `max_tokens` sampled ids after the prompt (at least one id), one at a time."""
    rng = np.random.default_rng(seed)
    log_probs, memory = self.feed(prompt_ids, self.start())
    last = log_probs[-1]
    for k in range(max_tokens):
      probs = sampling_probabilities(last, temperature, top_k, top_p)
      token = int(rng.choice(probs.size, p=probs))
      yield token
      if k + 1 < max_tokens:
        log_probs, memory = self.feed([token], memory)
        last = log_probs[0]

  def generate(self, prompt_ids, max_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    """The ids `stream` yields, as a list."""
    return list(self.stream(prompt_ids, max_tokens, temperature, top_k, top_p, seed))

  @property
  def step_traces(self):
    """How many times the one-token step was traced (1 after any number of tokens)."""
    return self._step.experimental_get_tracing_count()

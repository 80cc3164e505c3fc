"""Exact evaluation of a split: perplexity from summed NLL, never from per-batch means.

  token perplexity = exp(Σ NLL / Σ predicted tokens)
  word perplexity  = exp(Σ NLL / words)
  bits per character = Σ NLL / (characters · ln 2)

where words are the whitespace words plus one per line of the text scored, the denominator
of word-level results on WikiText, and characters its characters plus one per line (bytes
for a char dataset, whose tokens they are: bpc is then the loss in bits, as Transformer-XL
reports enwik8 and text8). The text scored is the split's, or under `--remainder=drop` the
part before the dropped tail (`records.SplitMeta.scored`), without its first token's text:
nothing predicts the first token, so its word and characters are in no denominator
(`text.head_counts`; Transformer-XL divides by the tokens predicted too). Every token after
the first is scored once (padding is masked), with the memory carried across segments as in
training, and the SuperNet's deterministic architecture (eval_mode).

The layout (`Layout`): the dataset's records as they are, or the split's continuous text cut
into another number of lanes (`--eval_batch_size`; Transformer-XL evaluates 10) or segment
length. Fewer lanes are longer, so fewer tokens start with a shortened context. A memory
longer than the longest lane gives the same result as one of its length, and is cut to it.
"""

import dataclasses
import math
import os
import stat
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from par.data import records
from par.data import text as text_lib
from par.errors import ParError
from par.model import attention
from par.train import distribute

# The seed of the paths a decoupled SuperNet follows in evaluation, one a record: the same
# paths in every evaluation, so that its losses compare from step to step.
PATHS_SEED = 1234


@dataclasses.dataclass(frozen=True)
class Result:
  nll: float  # summed negative log-likelihood, nats
  tokens: int  # predicted tokens
  words: int  # words of the text scored (0 if unknown)
  characters: int = 0  # characters of the text scored (0 if unknown)

  @property
  def loss(self):
    return self.nll / self.tokens

  @property
  def token_perplexity(self):
    return math.exp(self.loss)

  @property
  def word_perplexity(self):
    """None when the words are unknown (never a number that may be wrong)."""
    return math.exp(self.nll / self.words) if self.words else None

  @property
  def bpc(self):
    """None when the characters are unknown."""
    return self.nll / (self.characters * math.log(2)) if self.characters else None

  def to_dict(self):
    return {
      "loss": self.loss,
      "token_perplexity": self.token_perplexity,
      "word_perplexity": self.word_perplexity,
      "tokens": self.tokens,
      "words": self.words,
      "nll": self.nll,
      "bpc": self.bpc,
      "characters": self.characters,
    }


def denominators(info):
  """(words, characters) of the text a split's records score (`SplitMeta.scored`); warns
  once when a "drop" build from before they were counted leaves them unknown."""
  words, characters = info.scored
  if not words:
    logging.warning(
      "%s: a --remainder=drop build from before its scored words were counted; word "
      "perplexity and bpc are left out (rebuild the dataset to get them)",
      info.source,
    )
  elif info.head_words is None:
    logging.warning(
      "%s: a build from before its first token's text was counted: word perplexity and bpc "
      "count the first word, which is never predicted, too (1 of %d words; rebuild the "
      "dataset for the exact denominators)",
      info.source,
      words,
    )
  return words, characters


@dataclasses.dataclass(frozen=True)
class Layout:
  """How evaluation reads a split: lanes, segment length and segments (`layout`)."""

  lanes: int
  seq_len: int
  segments: int
  recut: bool  # False: the dataset's records as they are

  @property
  def lane_length(self):
    """Tokens per lane: a memory of this covers everything a lane holds."""
    return self.segments * self.seq_len

  def dataset(self, data_dir, split, tokenizer_sha256=None):
    """(inputs, targets) [lanes, seq_len] per segment, in order."""
    if not self.recut:
      return records.load_dataset(data_dir, split, tokenizer_sha256)
    windows, meta = records.read_records(data_dir, split, tokenizer_sha256)
    if self.lanes == meta.batch_size:  # The records' lanes, cut into other segments.
      arrays = records.resegment(windows, self.seq_len)
    else:
      arrays = records.relane(records.stream_of(windows), self.lanes, self.seq_len)
    return tf.data.Dataset.from_tensor_slices(arrays)


def layout(meta, split, lanes=0, seq_len=0):
  """The `Layout` of a split for `lanes` lanes (0: the dataset's batch_size) of segments of
  `seq_len` (0: the dataset's)."""
  lanes, seq_len = lanes or meta.batch_size, seq_len or meta.seq_len
  info = meta.splits[split]
  if (lanes, seq_len) == (meta.batch_size, meta.seq_len):
    return Layout(lanes, seq_len, info.records, False)
  if lanes == meta.batch_size:
    return Layout(lanes, seq_len, -(-info.records * meta.seq_len // seq_len), True)
  stream = info.tokens - info.dropped_tokens
  return Layout(lanes, seq_len, records.lane_length(stream, lanes, seq_len) // seq_len, True)


def memory_for(mem_len, layouts):
  """The evaluation memory: `mem_len`, cut to the longest lane of `layouts` (a longer one
  attends to nothing more and costs memory for it)."""
  longest = max(layout.lane_length for layout in layouts)
  if mem_len > longest:
    logging.info(
      "evaluation memory %d is longer than the longest lane (%d tokens): using %d, which "
      "gives the same result",
      mem_len,
      longest,
      longest,
    )
    return longest
  return mem_len


class Evaluator:
  """A compiled evaluation loop for one model, memory length and strategy.

  Build it once and call it for every evaluation: the loop is traced on the first call.

  Args:
    model: the ParModel.
    mem_len: the memory length.
    strategy: the strategy (default: the current one).
    stop: a bool tf.Variable that, once set, ends an evaluation given `records` early (its
      result is then partial: the caller must not report it).
    clamp_len, same_length: Transformer-XL's evaluation settings (None: the model's).
    sampled_paths: record r follows the path `paths.uniform_path((PATHS_SEED, r))`: a
      decoupled SuperNet's loss averaged over its sampler's paths, the same paths at every
      evaluation (None: for decoupled SuperNets; False where the caller forces the pattern,
      as the ranking does).
  """

  def __init__(
    self,
    model: keras.Model,
    mem_len: int,
    strategy: tf.distribute.Strategy | None = None,
    stop: tf.Variable | None = None,
    clamp_len: int | None = None,
    same_length: bool | None = None,
    sampled_paths: bool | None = None,
  ):
    if mem_len == 0 and (model.config.same_length if same_length is None else same_length):
      raise ParError(attention.SAME_LENGTH_NEEDS_MEMORY)
    self.model = model
    self.mem_len = mem_len
    self.clamp_len = clamp_len
    self.same_length = same_length
    self.strategy = strategy or tf.distribute.get_strategy()
    self.stop = stop
    self.sampled_paths = model.is_decoupled if sampled_paths is None else sampled_paths
    self._run = tf.function(self._loop)
    self._segments = None

  def _loop(self, iterator, batch_size, records):
    strategy, model = self.strategy, self.model
    memory = strategy.run(lambda: model.initial_memory(batch_size, self.mem_len))
    total = tf.constant(0.0, tf.float64)
    count = tf.constant(0.0, tf.float64)

    record = tf.constant(0, tf.int64)

    def step(inputs, targets, memory, record):
      seed = tf.stack([tf.constant(PATHS_SEED, tf.int64), record])
      hidden, memory = model(
        inputs,
        memory=memory,
        training=False,
        clamp_len=self.clamp_len,
        same_length=self.same_length,
        seed=seed if self.sampled_paths else None,
      )
      nll, tokens = model.nll(hidden, targets)
      return nll, tokens, memory

    def add(total, count, inputs, targets, memory, record):
      nll, tokens, memory = strategy.run(step, args=(inputs, targets, memory, record))
      # Float64 sums: a split has up to ~1e8 tokens, beyond float32's exact integers.
      total += tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, nll, axis=None), tf.float64)
      count += tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, tokens, axis=None), tf.float64)
      return total, count, memory, record + 1

    if records is None:  # Every record there is.
      for inputs, targets in iterator:
        total, count, memory, record = add(total, count, inputs, targets, memory, record)
      return total, count
    # A count of records: a tf.range loop, which can stop early (`for x in` a distributed
    # iterator cannot break).
    for _ in tf.range(records):
      # One segment at a time: a while loop runs up to ten iterations at once where their
      # dependencies allow (the next segments' embeddings and first projections, without
      # the memory), and their tensors stayed held: at WikiText-103's base shape, 10 lanes,
      # the allocator's peak grew by 1.9 GB a call of 12 segments.
      tf.autograph.experimental.set_loop_options(parallel_iterations=1)
      if self.stop is not None and self.stop:
        break
      inputs, targets = next(iterator)
      total, count, memory, record = add(total, count, inputs, targets, memory, record)
    return total, count

  def score_segments(self, inputs, targets, memory, record):
    """(summed NLL, tokens scored, the memory after) of consecutive segments [S, B, T] from
    `memory`, record `record` first: one call of a loop that a caller repeats over a stream,
    the memory carried (`evaluate_text`). Default strategy only."""
    if self._segments is None:
      self._segments = tf.function(self._segments_loop, reduce_retracing=True)
    nll, count, memory = self._segments(
      tf.constant(inputs), tf.constant(targets), memory, tf.constant(record, tf.int64)
    )
    return float(nll), int(count), memory

  def _segments_loop(self, inputs, targets, memory, record):
    total = tf.constant(0.0, tf.float64)
    count = tf.constant(0.0, tf.float64)
    for s in tf.range(tf.shape(inputs, out_type=tf.int64)[0]):
      tf.autograph.experimental.set_loop_options(parallel_iterations=1)  # (as in `_loop`)
      seed = tf.stack([tf.constant(PATHS_SEED, tf.int64), record + s])
      hidden, memory = self.model(
        inputs[s],
        memory=memory,
        training=False,
        clamp_len=self.clamp_len,
        same_length=self.same_length,
        seed=seed if self.sampled_paths else None,
      )
      nll, tokens = self.model.nll(hidden, targets[s])
      total += tf.cast(nll, tf.float64)
      count += tf.cast(tokens, tf.float64)
    return total, count, memory

  def __call__(
    self,
    dataset: tf.data.Dataset,
    batch_size: int,
    words: int = 0,
    records: int | None = None,
    characters: int = 0,
  ) -> Result:
    """Evaluates a (distributed) dataset of (inputs, targets); returns a `Result`.

    Args:
      dataset: records of one split, in order, as given to the strategy.
      batch_size: lanes per replica.
      words: the split's word count, for word-level perplexity.
      records: how many records the dataset holds, if known: then `stop` can end it early.
      characters: the split's character count, for bits per character.
    """
    # The iterator is made here, eagerly: one made inside the function is destroyed by it, and
    # a distributed iterator's end then waits for a thread of the pool the function holds (a
    # deadlock seen under MirroredStrategy on 2 CPUs).
    iterator = iter(dataset)
    total, count = self._run(
      iterator, batch_size, None if records is None else tf.constant(records)
    )
    return Result(float(total), int(count), int(words), int(characters))


class SplitEvaluator:
  """Evaluates the valid and test splits of one dataset during training, never the same
  weights twice.

  Each replica scores its own lanes (`distribute.lanes`); a split asked for again at the step
  it was last evaluated at gets the result it had (an epoch end that is also the last step).

  Args:
    model: the ParModel being trained.
    data_dir, meta: the dataset and its `records.DatasetMeta`.
    mem_len: the evaluation memory length (cut to the longest lane).
    strategy: the training's strategy.
    stop: see `Evaluator`.
    clamp_len, same_length: see `Evaluator`.
    lanes: evaluation's lanes (0: the dataset's), `--eval_batch_size`.
  """

  def __init__(
    self,
    model,
    data_dir,
    meta,
    mem_len,
    strategy,
    stop=None,
    clamp_len=None,
    same_length=None,
    lanes=0,
  ):
    self.data_dir = data_dir
    self.meta = meta
    self.strategy = strategy
    self.layouts = {s: layout(meta, s, lanes) for s in ("valid", "test") if s in meta.splits}
    if self.layouts:
      mem_len = memory_for(mem_len, self.layouts.values())
    self.evaluator = Evaluator(model, mem_len, strategy, stop, clamp_len, same_length)
    self._last = {}  # split -> (step, Result)

  def __call__(self, split, step):
    """(the split's `Result` at `step`, whether it was computed now rather than reused)."""
    if split in self._last and self._last[split][0] == step:
      return self._last[split][1], False
    split_layout = self.layouts[split]
    dataset = distribute.lanes(
      self.strategy,
      lambda: split_layout.dataset(self.data_dir, split).prefetch(2),
      split_layout.lanes,
    )
    lanes = split_layout.lanes // self.strategy.num_replicas_in_sync
    try:
      words, characters = denominators(self.meta.splits[split])
      result = self.evaluator(dataset, lanes, words, split_layout.segments, characters)
    except tf.errors.DataLossError as e:  # A shard changed after the checks.
      raise records.damage_error(self.data_dir, split, e) from None
    self._last[split] = (step, result)
    return result, True


def evaluate_split(
  model,
  data_dir,
  split,
  mem_len,
  seq_len=0,
  tokenizer_sha256=None,
  clamp_len=None,
  same_length=None,
  lanes=0,
):
  """Evaluates `model` on a split of a built dataset; returns (`Result`, the dataset's meta,
  the memory length used).

  Args:
    model: a ParModel.
    data_dir: the dataset directory.
    split: e.g. "valid" or "test".
    mem_len: memory length (cut to the longest lane).
    seq_len: segment length (0: the dataset's); each lane's text stays continuous.
    tokenizer_sha256: the tokenizer the model was trained with; a dataset built with
      another is refused.
    clamp_len, same_length: Transformer-XL's evaluation settings (None: the model's).
    lanes: lanes of the split's continuous text (0: the dataset's batch_size).
  """
  meta = records.check_dataset(data_dir, split, tokenizer_sha256, records=True)
  split_layout = layout(meta, split, lanes, seq_len)
  mem_len = memory_for(mem_len, [split_layout])
  dataset = split_layout.dataset(data_dir, split, tokenizer_sha256)
  try:
    words, characters = denominators(meta.splits[split])
    evaluator = Evaluator(model, mem_len, clamp_len=clamp_len, same_length=same_length)
    result = evaluator(dataset, split_layout.lanes, words, characters=characters)
  except tf.errors.DataLossError as e:  # A shard changed after the checks.
    raise records.damage_error(data_dir, split, e) from None
  return result, meta, mem_len


def token_nlls(model, dataset, batch_size, mem_len, clamp_len=None, same_length=None):
  """The NLL of every scored token of a split, float32 [tokens], in the split's text order:
  lane by lane, each lane's segments in order, padding left out. The same computation as
  `Evaluator` (one replica): its sum is the Evaluator's total, and two models evaluated with
  the same layout give arrays that pair token by token (intervals.paired_bootstrap).

  Args:
    model: the ParModel.
    dataset: (inputs, targets) [lanes, seq_len] per segment, in order (`Layout.dataset`).
    batch_size: the lanes.
    mem_len, clamp_len, same_length: as for `Evaluator`.
  """
  if mem_len == 0 and (model.config.same_length if same_length is None else same_length):
    raise ParError(attention.SAME_LENGTH_NEEDS_MEMORY)

  @tf.function
  def step(inputs, targets, memory):
    hidden, memory = model(
      inputs, memory=memory, training=False, clamp_len=clamp_len, same_length=same_length
    )
    return tf.reshape(model.token_nll(hidden, targets), tf.shape(targets)), memory

  memory = model.initial_memory(batch_size, mem_len)
  lanes = [[] for _ in range(batch_size)]
  for inputs, targets in dataset:
    nll, memory = step(inputs, targets, memory)
    nll, scored = nll.numpy(), targets.numpy() >= 0
    for lane in range(batch_size):
      lanes[lane].append(nll[lane][scored[lane]])
  return np.concatenate([np.concatenate(pieces) for pieces in lanes if pieces]).astype(np.float32)


def split_token_nlls(model, run, split="test"):
  """`token_nlls` of a run's model on a split of its dataset, with the run's evaluation
  settings (memory, lanes, clamp_len, same_length), as its results.json scored it."""
  config = run.config
  meta = records.check_dataset(config.data_dir, split, run.tokenizer_sha256, records=True)
  split_layout = layout(meta, split, config.eval_batch_size)
  mem_len = memory_for(run.eval_mem_len, [split_layout])
  dataset = split_layout.dataset(config.data_dir, split, run.tokenizer_sha256)
  clamp_len = None if config.eval_clamp_len < 0 else config.eval_clamp_len
  same_length = config.eval_same_length or config.model.same_length
  return token_nlls(model, dataset, split_layout.lanes, mem_len, clamp_len, same_length)


# Tokens a `evaluate_text` call scores between two returns to Python, where a signal stops it
# and progress is logged: a few seconds of a base model on a CPU.
TEXT_CHUNK_TOKENS = 1 << 14
_PROGRESS_SECONDS = 30.0


def evaluate_text(
  model,
  codec,
  path,
  mem_len,
  seq_len,
  clamp_len=None,
  same_length=None,
  chunk_tokens=TEXT_CHUNK_TOKENS,
):
  """Evaluates `model` on a text file tokenized with its run's tokenizer (`codec`): the whole
  file as one continuous lane, in segments of `seq_len`, the memory carried from one to the
  next (cut to the file's length when the file is shorter). Returns (`Result`, the memory
  length used).

  The file is read once, a piece at a time (`text.SplitReader`), as it is scored: a pipe or
  a fifo (`--text=<(zcat f.gz)`) works, memory does not grow with the file, and every
  `chunk_tokens` tokens the loop returns to Python, where Ctrl-C or SIGTERM stops it and
  progress is logged. The tokens are the ones a dataset built from the file holds.

  Raises:
    ParError: the file cannot be read, is empty, not UTF-8 (for a word or SentencePiece
      tokenizer), binary (NUL bytes), or too short for one target.
  """
  tokens = _TextTokens(path, codec)
  segments = _Segments(tokens, seq_len)
  # A memory longer than the text attends to nothing more: read as far as the memory
  # reaches, and cut it if the text ends first.
  ahead = segments.read_ahead(mem_len + seq_len + 1)
  if segments.ended:
    if ahead < 2:
      raise ParError(f"{path} has {ahead} token: nothing to predict")
    mem_len = memory_for(mem_len, [Layout(1, seq_len, -(-(ahead - 1) // seq_len), True)])
  evaluator = Evaluator(model, mem_len, clamp_len=clamp_len, same_length=same_length)
  memory = model.initial_memory(1, mem_len)
  total, count, record = 0.0, 0, 0
  per_call = max(chunk_tokens // seq_len, 1)
  started = logged = time.monotonic()
  for inputs, targets in segments.chunks(per_call):
    nll, scored, memory = evaluator.score_segments(inputs, targets, memory, record)
    total, count, record = total + float(nll), count + int(scored), record + len(inputs)
    if record == len(inputs):
      logging.info("scoring %s: Ctrl-C stops it; progress every %.0f s", path, _PROGRESS_SECONDS)
    elif time.monotonic() - logged > _PROGRESS_SECONDS:
      logged = time.monotonic()
      logging.info(
        "%s: %s, %d tokens scored, loss so far %.4f",
        path,
        tokens.progress(logged - started),
        count,
        total / max(count, 1),
      )
  words, characters = tokens.denominators()
  return Result(total, count, words, characters), mem_len


class _TextTokens:
  """A text file's tokens, a piece at a time, as a dataset built from it holds them: each
  piece's tokens (`Codec.encode_piece`), the end of an unterminated last line added; the
  words and characters counted as they pass (`denominators`)."""

  def __init__(self, path, codec):
    self.path, self.codec = path, codec
    binary = codec.kind == "char"
    self._reader = text_lib.SplitReader(path, binary, whole_lines=codec.kind == "sentencepiece")
    self._nul = b"\0" if binary else "\0"
    self._size = _file_size(path)
    self._head = None
    self._bytes = 0

  def progress(self, elapsed):
    """How much of the file has been read and, when its size is known, what is left."""
    done = self._bytes / 2**20
    if not self._size:  # a pipe
      return f"{done:.1f} MiB read"
    share = self._bytes / self._size
    left = elapsed * (1 - share) / share if share else float("inf")
    return f"{done:.1f} of {self._size / 2**20:.1f} MiB read ({100 * share:.0f}%), about " + (
      f"{left / 60:.0f} min left" if left >= 60 else f"{left:.0f} s left"
    )

  def __iter__(self):
    for piece in self._reader:
      if self._nul in piece:
        raise ParError(f"{self.path} holds NUL bytes: it is binary, not text; nothing was scored")
      if self._head is None:
        self._head = text_lib.head_counts(piece, self.codec.starts(piece))
      self._bytes += len(piece if isinstance(piece, bytes) else piece.encode("utf-8"))
      yield self.codec.encode_piece(piece)
    if self.codec.kind != "sentencepiece" and not self._reader.stats.ends_with_newline:
      yield np.array([self.codec.eos_id], np.int32)  # The last line's end.

  def denominators(self):
    """(words, characters) of the text scored: the file's, without its first token's."""
    stats = self._reader.stats
    return stats.words - self._head[0], stats.characters - self._head[1]


def _file_size(path):
  try:
    info = os.stat(path)
  except OSError:
    return 0  # SplitReader names the problem when it opens the file.
  return info.st_size if stat.S_ISREG(info.st_mode) else 0


class _Segments:
  """One lane's (inputs, targets) [S, 1, seq_len] from a stream of token pieces, as
  `records.relane(stream, 1, seq_len)` lays the whole stream out, read as they are needed."""

  def __init__(self, pieces, seq_len):
    self._pieces = iter(pieces)
    self._seq_len = seq_len
    self._pending = [np.zeros([0], np.int32)]
    self._held = 0
    self.ended = False

  def read_ahead(self, tokens):
    """Reads until `tokens` are held or the stream ends; the number held."""
    while self._held < tokens and not self.ended:
      piece = next(self._pieces, None)
      if piece is None:
        self.ended = True
      else:
        self._pending.append(np.asarray(piece, np.int32))
        self._held += len(piece)
    return self._held

  def chunks(self, segments):
    """(inputs, targets) of up to `segments` segments at a time, the last padded."""
    t = self._seq_len
    while True:
      self.read_ahead(segments * t + 1)
      held = np.concatenate(self._pending)
      full = min((len(held) - 1) // t, segments) if len(held) > 1 else 0
      if not self.ended or full == segments:
        if full == 0:
          return
        used = held[: full * t + 1]
        self._pending, self._held = [held[full * t :]], len(held) - full * t
        yield records.relane(used, 1, t)
        continue
      if len(held) < 2:
        return
      self._pending, self._held = [np.zeros([0], np.int32)], 0
      yield records.relane(held, 1, t)  # the rest, its last segment padded
      return

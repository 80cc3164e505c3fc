"""Exact evaluation of a split: perplexity from summed NLL, never from per-batch means.

  token perplexity = exp(Σ NLL / Σ predicted tokens)
  word perplexity  = exp(Σ NLL / words)
  bits per character = Σ NLL / (characters · ln 2)

where words are the split's whitespace words plus one per line (meta.json), the denominator
of word-level results on WikiText, and characters its characters plus one per line (bytes
for a char dataset, whose tokens they are: bpc is then the loss in bits, as Transformer-XL
reports enwik8 and text8). Every token of the split after its first is scored once
(padding is masked), with the memory carried across records as in training, and the
SuperNet's deterministic architecture (eval_mode).
"""

import dataclasses
import math

import keras
import tensorflow as tf

from par.data import records
from par.errors import ParError
from par.model import attention
from par.train import distribute


@dataclasses.dataclass(frozen=True)
class Result:
  nll: float  # summed negative log-likelihood, nats
  tokens: int  # predicted tokens
  words: int  # words of the split (0 if unknown)
  characters: int = 0  # characters of the split (0 if unknown)

  @property
  def loss(self):
    return self.nll / self.tokens

  @property
  def token_perplexity(self):
    return math.exp(self.loss)

  @property
  def word_perplexity(self):
    return math.exp(self.nll / self.words) if self.words else float("nan")

  @property
  def bpc(self):
    return self.nll / (self.characters * math.log(2)) if self.characters else float("nan")

  def to_dict(self):
    return {
      "loss": self.loss,
      "token_perplexity": self.token_perplexity,
      "word_perplexity": self.word_perplexity,
      "tokens": self.tokens,
      "words": self.words,
      "nll": self.nll,
      "bpc": self.bpc if self.characters else None,  # None: a dataset built without counts
      "characters": self.characters,
    }


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
  """

  def __init__(
    self,
    model: keras.Model,
    mem_len: int,
    strategy: tf.distribute.Strategy | None = None,
    stop: tf.Variable | None = None,
    clamp_len: int | None = None,
    same_length: bool | None = None,
  ):
    if mem_len == 0 and (model.config.same_length if same_length is None else same_length):
      raise ParError(attention.SAME_LENGTH_NEEDS_MEMORY)
    self.model = model
    self.mem_len = mem_len
    self.clamp_len = clamp_len
    self.same_length = same_length
    self.strategy = strategy or tf.distribute.get_strategy()
    self.stop = stop
    self._run = tf.function(self._loop)

  def _loop(self, iterator, batch_size, records):
    strategy, model = self.strategy, self.model
    memory = strategy.run(lambda: model.initial_memory(batch_size, self.mem_len))
    total = tf.constant(0.0, tf.float64)
    count = tf.constant(0.0, tf.float64)

    def step(inputs, targets, memory):
      hidden, memory = model(
        inputs,
        memory=memory,
        training=False,
        clamp_len=self.clamp_len,
        same_length=self.same_length,
      )
      nll, tokens = model.nll(hidden, targets)
      return nll, tokens, memory

    def add(total, count, inputs, targets, memory):
      nll, tokens, memory = strategy.run(step, args=(inputs, targets, memory))
      # Float64 sums: a split has up to ~1e8 tokens, beyond float32's exact integers.
      total += tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, nll, axis=None), tf.float64)
      count += tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, tokens, axis=None), tf.float64)
      return total, count, memory

    if records is None:  # Every record there is.
      for inputs, targets in iterator:
        total, count, memory = add(total, count, inputs, targets, memory)
      return total, count
    # A count of records: a tf.range loop, which can stop early (`for x in` a distributed
    # iterator cannot break).
    for _ in tf.range(records):
      if self.stop is not None and self.stop:
        break
      inputs, targets = next(iterator)
      total, count, memory = add(total, count, inputs, targets, memory)
    return total, count

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
  """Evaluates the splits of one dataset during training, never the same weights twice.

  Each replica scores its own lanes (`distribute.lanes`); a split asked for again at the step
  it was last evaluated at gets the result it had (an epoch end that is also the last step).

  Args:
    model: the ParModel being trained.
    data_dir, meta: the dataset and its `records.DatasetMeta`.
    mem_len: the evaluation memory length.
    strategy: the training's strategy.
    stop: see `Evaluator`.
  """

  def __init__(
    self, model, data_dir, meta, mem_len, strategy, stop=None, clamp_len=None, same_length=None
  ):
    self.data_dir = data_dir
    self.meta = meta
    self.strategy = strategy
    self.evaluator = Evaluator(model, mem_len, strategy, stop, clamp_len, same_length)
    self._last = {}  # split -> (step, Result)

  def __call__(self, split, step):
    """(the split's `Result` at `step`, whether it was computed now rather than reused)."""
    if split in self._last and self._last[split][0] == step:
      return self._last[split][1], False
    dataset = distribute.lanes(
      self.strategy,
      lambda: records.load_dataset(self.data_dir, split).prefetch(2),
      self.meta.batch_size,
    )
    lanes = self.meta.batch_size // self.strategy.num_replicas_in_sync
    try:
      info = self.meta.splits[split]
      result = self.evaluator(dataset, lanes, info.words, info.records, info.characters)
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
):
  """Evaluates `model` on a split of a built dataset; returns (`Result`, the dataset's meta).

  Args:
    model: a ParModel.
    data_dir: the dataset directory.
    split: e.g. "valid" or "test".
    mem_len: memory length.
    seq_len: segment length; 0 or the dataset's own reads the records as they are, any other
      cuts each lane's text into segments of this length (`records.resegment`).
    tokenizer_sha256: the tokenizer the model was trained with; a dataset built with
      another is refused.
    clamp_len, same_length: Transformer-XL's evaluation settings (None: the model's).
  """
  meta = records.check_dataset(data_dir, split, tokenizer_sha256, records=True)
  if not seq_len or seq_len == meta.seq_len:
    dataset = records.load_dataset(data_dir, split, tokenizer_sha256)
  else:
    windows, _ = records.read_records(data_dir, split, tokenizer_sha256)
    dataset = tf.data.Dataset.from_tensor_slices(records.resegment(windows, seq_len))
  try:
    info = meta.splits[split]
    evaluator = Evaluator(model, mem_len, clamp_len=clamp_len, same_length=same_length)
    result = evaluator(dataset, meta.batch_size, info.words, characters=info.characters)
  except tf.errors.DataLossError as e:  # A shard changed after the checks.
    raise records.damage_error(data_dir, split, e) from None
  return result, meta

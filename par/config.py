"""Settings, one frozen dataclass per concern, with JSON round trips.

Derive variants with `dataclasses.replace`. `validate()` raises `ParError` with a one-line
explanation; the library calls it before doing any work.
"""

import dataclasses
import json
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

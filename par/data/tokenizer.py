"""Tokenizers: SentencePiece (trained here, run by tensorflow-text), and the common face of all
three kinds (`Codec`) for generation and the tools.

Word and char vocabularies live in par/data/vocab.py; a dataset's meta.json names its kind,
and its file (`records.TOKENIZER_FILES`) is identified by sha256 whatever the kind.

Piece ids: 0 is SentencePiece's unknown piece, 1 the end-of-line token appended to every
line; no begin-of-sentence or padding piece is reserved (padding in records is -1, never
embedded). Training is deterministic: the whole train split in order, or with
`input_sentence_size` a sample of its lines drawn with a fixed seed (`sample_lines`), no
shuffling, a fixed thread count; so the same text and settings give the same model bytes,
hence the same sha256 in meta.json.

Training sees exactly the lines `text.SplitReader` produces, so the vocabulary and the
records agree on what a line is.

One encoder for every path: tensorflow-text's op (`Tokenizer`) encodes the records, the
prompts of generation (`Codec.encode`) and any text evaluated, never the sentencepiece
wheel, which loads, trains and decodes. The two builds break exact score ties differently
("666" becomes "66"+"6" in one and "6"+"66" in the other): on WikiText-2's valid split they
gave other ids for 21 of 3,000 lines, which would have scored a prompt in ids its model
never trained on. Both decode to the same text.
"""

import hashlib
import random
import re

import numpy as np
import sentencepiece as spm

from par.data import text as text_lib
from par.data import vocab as vocab_lib
from par.errors import ParError

UNK_ID = 0
EOS_ID = 1
_UNK_PIECE = "<sp_unk>"  # Renamed so that WikiText's literal "<unk>" can be a user symbol.
_WORD_BOUNDARY = "\u2581"  # SentencePiece's visible space, "▁".


SAMPLE_SEED = 0


def sample_lines(lines, size, seed=SAMPLE_SEED):
  """A uniform sample of `size` of the non-empty `lines` (all if fewer), in their order.

  Reservoir sampling (Vitter's algorithm R) with a fixed seed: one pass, memory the sample,
  and the same lines every time for the same text.
  """
  rng = random.Random(seed)
  reservoir = []  # (index among the non-empty lines, line)
  seen = 0
  for line in lines:
    if not line.strip():
      continue
    if seen < size:
      reservoir.append((seen, line))
    else:
      j = rng.randrange(seen + 1)
      if j < size:
        reservoir[j] = (seen, line)
    seen += 1
  return [line for _, line in sorted(reservoir, key=lambda item: item[0])]


def train(lines, config):
  """Trains a SentencePiece model on `lines` and returns its serialized proto (bytes).

  Args:
    lines: the train split's lines (strings without terminators).
    config: a `par.config.DataConfig`; uses vocab_size, model_type, lowercase,
      character_coverage and user_symbols.

  Raises:
    ParError: the vocabulary size does not suit the text (the message gives the bound).
  """
  # A user symbol is registered twice: as a whole word ("▁<unk>") and bare ("<unk>"), so that
  # " <unk> " is one piece rather than "▁" followed by "<unk>".
  symbols = []
  for symbol in config.user_symbols:
    symbols += [_WORD_BOUNDARY + symbol, symbol]
  model = _BytesSink()
  try:
    spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines),
      model_writer=model,
      vocab_size=config.vocab_size,
      model_type=config.model_type,
      character_coverage=config.character_coverage,
      normalization_rule_name="nmt_nfkc_cf" if config.lowercase else "nmt_nfkc",
      user_defined_symbols=symbols,
      unk_id=UNK_ID,
      eos_id=EOS_ID,
      bos_id=-1,
      pad_id=-1,
      unk_piece=_UNK_PIECE,
      # Determinism and exactness: every sentence, in order, whatever its length.
      input_sentence_size=0,
      shuffle_input_sentence=False,
      max_sentence_length=1 << 20,
      num_threads=16,
      minloglevel=2,
    )
  except RuntimeError as e:
    raise _vocab_error(str(e), config) from None
  return model.data


def _vocab_error(message, config):
  too_high = re.search(r"value <= (\d+)", message)
  if too_high:
    return ParError(
      f"vocab_size {config.vocab_size} is more than this text supports: a "
      f"{config.model_type} vocabulary of it has at most {too_high.group(1)} pieces"
    )
  too_low = re.search(r"required_chars\. \d+ vs (\d+)", message)
  if too_low:
    return ParError(
      f"vocab_size {config.vocab_size} is too small: this text needs at least "
      f"{too_low.group(1)} pieces for its characters and control symbols (or lower "
      "character_coverage)"
    )
  return ParError(f"SentencePiece training failed: {message.splitlines()[-1]}")


class _BytesSink:
  """The `model_writer` SentencePiece writes the serialized model to."""

  def __init__(self):
    self.data = b""

  def write(self, data):
    self.data += data


def load(model_proto, path=None):
  """A `sentencepiece.SentencePieceProcessor` for a serialized model; ParError if invalid.

  Args:
    model_proto: the model's bytes.
    path: the file they came from, named in errors.
  """
  what = str(path) if path else "the tokenizer"
  processor = spm.SentencePieceProcessor()
  try:
    processor.LoadFromSerializedProto(model_proto)
  except (RuntimeError, OSError):
    raise ParError(f"{what} is not a SentencePiece model") from None
  if processor.eos_id() < 0:
    raise ParError(f"{what} has no end-of-sentence piece, which par needs as the end-of-line token")
  return processor


def sha256(model_proto):
  return hashlib.sha256(model_proto).hexdigest()


def vocab_text(model_proto):
  """The human-readable vocabulary: one "piece<TAB>score" line per id."""
  processor = load(model_proto)
  return "".join(
    f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
    for i in range(processor.get_piece_size())
  )


class Tokenizer:
  """A SentencePiece model ready to tokenize with tensorflow-text: build it once, then
  tokenize every split with it.

  Each call of its traced function tokenizes a batch of lines with tensorflow-text's op, which
  spreads the batch over TensorFlow's CPU threads. (Through tf.data, the same op ran
  single-threaded unless told otherwise, and a pipeline per piece of text cost more than the
  op on short pieces.) The model is loaded and the function traced once, in the constructor.
  """

  def __init__(self, model_proto):
    # TensorFlow only here: loading and checksumming a tokenizer (generation) need none.
    import tensorflow as tf
    import tensorflow_text as tf_text

    self.processor = load(model_proto)  # A clear error for a bad model, before TensorFlow's.
    self.model_proto = model_proto
    self._op = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32, add_eos=True)
    self._tokenize_batch = tf.function(
      lambda lines: self._op.tokenize(lines).flat_values,
      input_signature=[tf.TensorSpec([None], tf.string)],
    )

  @property
  def vocab_size(self):
    return self.processor.get_piece_size()

  def encode(self, line):
    """(the ids of one line without its end of line, the parts of it that became the unknown
    id): what `tokenize` gives the line, with the text behind each unknown piece."""
    import tensorflow as tf  # Loaded by __init__.

    ids, starts, ends = self._op.tokenize_with_offsets(tf.constant([line], tf.string))
    ids, starts, ends = (x.flat_values.numpy()[:-1] for x in (ids, starts, ends))
    data = line.encode("utf-8")
    unknown = [
      data[a:b].decode("utf-8", "replace") for i, a, b in zip(ids, starts, ends) if i == UNK_ID
    ]
    return ids.tolist(), unknown

  def starts(self, lines):
    """Where each token of each line starts (without its end of line), in characters: the
    first dropped token's place when a build cuts the tail of a split."""
    import tensorflow as tf  # Loaded by __init__.

    _, starts, _ = self._op.tokenize_with_offsets(tf.constant(lines, tf.string))
    found = []
    for line, offsets in zip(lines, starts.to_list()):
      data = line.encode("utf-8")  # Byte offsets to characters; the end of line's is dropped.
      found.append([len(data[:b].decode("utf-8", "ignore")) for b in offsets[:-1]])
    return found

  def tokenize(self, lines, lines_per_batch=4096):
    """The token stream of `lines`: each line's ids, then the end-of-line id, as int32.

    Args:
      lines: sequence of str.
      lines_per_batch: lines per op call.

    Returns:
      1-D numpy int32 array.
    """
    import tensorflow as tf  # Loaded by __init__.

    chunks = [
      self._tokenize_batch(tf.constant(lines[i : i + lines_per_batch], tf.string)).numpy()
      for i in range(0, len(lines), lines_per_batch)
    ]
    return np.concatenate(chunks) if chunks else np.zeros([0], np.int32)


def piece_starts(kind, piece, line_starts=None):
  """Where each token of a piece of text starts in it (an end of line's at its "\n"), in the
  piece's units (characters, or bytes for char): `kind`'s tokens, SentencePiece's found by
  `line_starts` (lines -> where each line's tokens start, `Tokenizer.starts`)."""
  if kind == "char":
    return list(range(len(piece)))
  lines = piece.split("\n")  # The last is what follows the last end of line.
  if kind == "word":
    within = [[m.start() for m in re.finditer(r"\S+", line)] for line in lines]
  else:  # SentencePiece pieces are whole lines, the last of a file maybe without its end.
    within = line_starts(lines if lines[-1] else lines[:-1]) + [[]]
  found, offset = [], 0
  for k, (line, starts) in enumerate(zip(lines, within)):
    if k:
      found.append(offset - 1)  # the end of the line before
    found += [offset + at for at in starts]
    offset += len(line) + 1
  if kind == "sentencepiece" and lines[-1]:
    found.append(len(piece))  # SentencePiece ends an unterminated last line too
  return found


class Codec:
  """One line of text to ids and back, whatever the tokenizer (for generation and the tools).

  Attributes:
    kind: "sentencepiece", "word" or "char".
    vocab_size, eos_id, unk_id: ints.
  """

  def __init__(self, kind, processor=None, vocabulary=None, model_proto=None):
    self.kind = kind
    self._processor = processor
    self._vocabulary = vocabulary
    self._model_proto = model_proto
    self._encoder = None  # SentencePiece: the records' `Tokenizer`, made on first use
    if processor is not None:
      self.vocab_size = processor.get_piece_size()
      self.eos_id, self.unk_id = processor.eos_id(), processor.unk_id()
    else:
      self.vocab_size = vocabulary.size
      self.eos_id, self.unk_id = vocab_lib.EOS_ID, vocab_lib.UNK_ID

  def encode(self, line):
    """(the ids of one line, without its end of line; the parts of it the tokenizer does not
    know, which became the unknown id)."""
    if self._processor is not None:
      if self._encoder is None:  # Loads TensorFlow: only when something is encoded.
        self._encoder = Tokenizer(self._model_proto)
      return self._encoder.encode(line)
    if self.kind == "char":  # Character by character, to name the unknown ones.
      ids, unknown = [], []
      for character in line:
        some, missing = self._vocabulary.encode_line(character.encode("utf-8"))
        ids += some.tolist()
        unknown += [character] if missing else []
      return ids, unknown
    ids, unknown = self._vocabulary.encode_line(line)
    return ids.tolist(), unknown

  def starts(self, piece):
    """Where each token of a piece of whole lines starts in it (`piece_starts`)."""
    if self._processor is not None:
      if self._encoder is None:
        self._encoder = Tokenizer(self._model_proto)
      return piece_starts(self.kind, piece, self._encoder.starts)
    return piece_starts(self.kind, piece)

  def encode_piece(self, piece):
    """The ids of a piece of text as `text.SplitReader` yields it (whole lines for
    SentencePiece), the end-of-line id for each end of line: as a dataset's build tokenizes
    it (SentencePiece ends an unterminated last line too)."""
    if self._processor is not None:
      return self.tokenize(text_lib.lines_of(piece))
    return self._vocabulary.encode_piece(piece)[0]

  def tokenize(self, lines):
    """The token stream of `lines` (str; bytes for char), each line's ids then the end-of-line
    id, int32: exactly as a dataset's records hold it (SentencePiece through the records'
    own tensorflow-text op)."""
    if self._processor is not None:
      if self._encoder is None:
        self._encoder = Tokenizer(self._model_proto)
      return self._encoder.tokenize(list(lines))
    return self._vocabulary.tokenize(lines)[0]

  def decode(self, ids):
    """The text of one line's ids."""
    if self._processor is not None:
      return self._processor.decode([int(i) for i in ids])
    return self._vocabulary.decode(ids)


def load_codec(kind, data, path=None):
  """The `Codec` of a tokenizer file's bytes; ParError (naming `path`) if it is not one."""
  if kind == "sentencepiece":
    return Codec(kind, processor=load(data, path), model_proto=data)
  vocabulary = vocab_lib.Vocabulary.from_bytes(data, path)
  if vocabulary.kind != kind:
    raise ParError(f"{path or 'the vocabulary'} is a {vocabulary.kind} vocabulary, not {kind}")
  return Codec(kind, vocabulary=vocabulary)

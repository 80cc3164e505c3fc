"""Causality, swept over every setting that changes the attention's mask or the model's path:
changing token t moves no output before t, with and without memory, same_length, clamp_len,
in every sampling and evaluation mode, SuperNet and fixed patterns. A same_length model
without memory, whose rows would be fully masked (and so attend to the future), is refused.
"""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from par.config import ModelConfig
from par.config import TrainConfig
from par.errors import ParError
from par.model import attention
from par.model.par_model import ParModel

T = 6
CONFIG = ModelConfig(
  vocab_size=37, d_model=16, n_heads=2, d_ffn=24, n_blocks=3, cutoffs=(9,), dropout=0.0
)
MODES = [  # (model changes, training): every path a block can take
  (dict(architecture="sfs"), False),
  (dict(architecture="ssi"), True),
  (dict(eval_mode="argmax"), False),
  (dict(eval_mode="expected"), False),
  (dict(sampling="soft"), True),
  (dict(sampling="hard"), True),
  (dict(sampling="single_path"), True),
]
MASKS = [  # (mem_len, same_length, clamp_len)
  (mem_len, same_length, clamp_len)
  for mem_len, same_length, clamp_len in itertools.product((0, 4), (False, True), (0, 2))
  if mem_len or not same_length
]


def _outputs(model, sequences, training, mem_len):
  """The hidden states of the second of two segments (the first fills the memory)."""
  kwargs = dict(tau=tf.constant(0.7), seed=tf.constant([3, 4], tf.int64), training=training)
  memory = model.initial_memory(len(sequences), mem_len)
  _, memory = model(sequences[:, :T], memory=memory, **kwargs)
  hidden, _ = model(sequences[:, T:], memory=memory, **kwargs)
  return hidden.numpy()


@pytest.mark.parametrize("mem_len,same_length,clamp_len", MASKS)
@pytest.mark.parametrize("changes,training", MODES)
def test_changing_a_token_moves_no_earlier_output(
  changes, training, mem_len, same_length, clamp_len
):
  config = dataclasses.replace(
    CONFIG, mem_len=mem_len, same_length=same_length, clamp_len=clamp_len, **changes
  )
  model = ParModel(config)
  model.build()
  sequence = np.random.default_rng(0).integers(0, config.vocab_size, size=[2 * T])
  # Lane 0 is the sequence, lane 1 + t the same with token t of the second segment changed:
  # lanes never mix (each has its own memory), so one batch holds every case.
  lanes = np.tile(sequence, [T + 1, 1])
  for t in range(T):
    lanes[1 + t, T + t] = (lanes[1 + t, T + t] + 1) % config.vocab_size
  hidden = _outputs(model, tf.constant(lanes, tf.int32), training, mem_len)
  for t in range(T):
    # (Rows of one batch may round differently in the last bit; the leak moved them by ~0.3.)
    np.testing.assert_allclose(
      hidden[1 + t, :t], hidden[0, :t], atol=1e-5, err_msg=f"token {t} leaked"
    )
    assert np.abs(hidden[1 + t, t] - hidden[0, t]).max() > 1e-4  # The token itself does count.


def test_same_length_without_memory_is_refused_everywhere():
  with pytest.raises(ParError, match="same_length needs a memory"):
    dataclasses.replace(CONFIG, mem_len=0, same_length=True).validate()
  with pytest.raises(ParError, match="eval_same_length needs an evaluation memory"):
    TrainConfig(model=dataclasses.replace(CONFIG, mem_len=0), eval_same_length=True).validate()
  TrainConfig(  # An evaluation memory of its own is enough.
    model=dataclasses.replace(CONFIG, mem_len=0), eval_same_length=True, eval_mem_len=8
  ).validate()
  with pytest.raises(ValueError, match="same_length needs a memory"):
    attention.attention_mask(T, 0, 0, same_length=True)
  model = ParModel(dataclasses.replace(CONFIG, architecture="sfs", mem_len=4))
  model.build()
  tokens = tf.zeros([2, T], tf.int32)
  with pytest.raises(ValueError, match="same_length needs a memory"):
    model(tokens, memory=model.initial_memory(2, 0), same_length=True)


def test_every_query_sees_itself_under_every_mask():
  for mem_len, memory_length, same_length in itertools.product((1, 3, 9), (0, 1, 3, 9), (0, 1)):
    memory_length = min(memory_length, mem_len)
    mask = attention.attention_mask(T, mem_len, memory_length, bool(same_length)).numpy()
    assert all(mask[i, mem_len + i] for i in range(T))
    assert not any(mask[i, mem_len + i + 1 :].any() for i in range(T))  # Nothing after it.

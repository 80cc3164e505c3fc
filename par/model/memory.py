"""Memory: the hidden states a Transformer-XL carries from one segment to the next.

`Memory(states, length)` holds one entry per block, in block order: a [B, M, D] tensor for a
block that attends (every block of the SuperNet, the "s" blocks of a fixed pattern) and `()`
for a block that keeps none (feed-forward, identity). Every block takes its entry and
returns the next one, so a model runs its blocks in one loop. `()` has no tensors in it, so
`tf.nest`, `tf.function` loops and `tf.distribute` carry it through untouched (`None` would
not do: AutoGraph refuses it in loop variables).

`length` (int32 scalar) counts how many of the last M slots hold real states: a fresh memory
is all zeros with length 0, and after each segment the length grows by T up to M. Shapes
never change, so one traced function serves the first segment and every later one.
"""

from typing import NamedTuple

import tensorflow as tf

NONE = ()  # The entry of a block that keeps no memory.


class Memory(NamedTuple):
  """Hidden states carried from one segment to the next."""

  states: tuple  # per block: [B, M, D], or NONE
  length: tf.Tensor  # int32 scalar: how many of the last M slots are real states

  @property
  def mem_len(self):
    """M, the number of slots of every attending block (0 if no block attends)."""
    return next((s.shape[1] for s in self.tensors), 0)

  @property
  def tensors(self):
    """The states of the blocks that keep memory, in block order."""
    return tuple(s for s in self.states if not _is_none(s))

  @property
  def keeps(self):
    """Per block, whether it keeps memory: the layout, without the tensors."""
    return tuple(not _is_none(s) for s in self.states)

  def with_tensors(self, tensors, length=None):
    """This memory's layout with other tensors (and length) in the attending blocks' slots."""
    return assemble(self.keeps, tensors, self.length if length is None else length)

  def map(self, function):
    """`function` applied to every state tensor; the layout and length are kept."""
    return self.with_tensors([function(s) for s in self.tensors])


def _is_none(state):
  return isinstance(state, tuple) and not state


def assemble(keeps, tensors, length):
  """A memory of layout `keeps` (per block, whether it keeps memory) from its tensors."""
  tensors = iter(tensors)
  return Memory(tuple(next(tensors) if keep else NONE for keep in keeps), length)


def empty(kinds_keep_memory, batch_size, mem_len, d_model, dtype):
  """A fresh memory: zeros [B, M, D] for each block that keeps memory, length 0.

  Args:
    kinds_keep_memory: per block, whether it keeps memory.
    batch_size, mem_len, d_model: B, M, D.
    dtype: the compute dtype of the states.
  """
  zeros = [tf.zeros([batch_size, mem_len, d_model], dtype) for keep in kinds_keep_memory if keep]
  return assemble(kinds_keep_memory, zeros, tf.constant(0, tf.int32))

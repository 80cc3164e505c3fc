"""Paths through a SuperNet drawn by a fixed sampler, with no learned parameter: the one-shot
SuperNets of SPOS and FairNAS, which train the shared weights on such paths and leave the
choice of architecture to the weights' scores afterwards.

A path holds one branch per block: 0 attention (s), 1 feed-forward (f), 2 identity (i), the
order of the architecture logits (`blocks.BRANCHES`). Paths are stateless functions of a [2]
seed, (run seed, step) in training, so every replica draws the same path and a resumed run
the paths an uninterrupted one would.

- `uniform_path` (SPOS, Guo et al. 2020, with its cost bins as strata): the number of
  attention blocks k uniform over 0..n, which k blocks uniform among the C(n, k) choices, every
  other block f or i with probability 1/2 each. A pattern with k attention blocks is drawn
  with probability 1 / ((n + 1) · C(n, k) · 2^(n − k)): every count of attention blocks
  equally often, where a uniform draw over 3^n patterns would put half of 8 blocks' draws on
  2 or 3 attention blocks.
- `fair_paths` (FairNAS, Chu et al. 2021): per block a uniform permutation of (s, f, i); path
  j takes each block's j-th branch, so the three paths use every branch of every block exactly
  once.
"""

import tensorflow as tf

PATHS_PER_STEP = {"uniform": 1, "fair": 3}


def uniform_path(seed, n_blocks):
  """int32 [n_blocks]: one path, stratified by its number of attention blocks."""
  seed = tf.cast(seed, tf.int64)
  fold = tf.random.experimental.stateless_fold_in
  attention = tf.random.stateless_uniform(
    [], fold(seed, 1), minval=0, maxval=n_blocks + 1, dtype=tf.int32
  )
  order = tf.argsort(tf.random.stateless_uniform([n_blocks], fold(seed, 2)))
  place = tf.argsort(order)  # each block's position in a uniform random order
  other = tf.random.stateless_uniform([n_blocks], fold(seed, 3), minval=1, maxval=3, dtype=tf.int32)
  return tf.where(place < attention, tf.zeros_like(other), other)


def fair_paths(seed, n_blocks):
  """int32 [3, n_blocks]: three paths that together use every branch of every block once."""
  noise = tf.random.stateless_uniform([n_blocks, 3], tf.cast(seed, tf.int64))
  return tf.transpose(tf.argsort(noise, axis=1))


def training_paths(sampling, seed, n_blocks):
  """int32 [paths, n_blocks]: the paths one training step of a decoupled SuperNet trains."""
  if sampling == "uniform":
    return uniform_path(seed, n_blocks)[None]
  if sampling == "fair":
    return fair_paths(seed, n_blocks)
  raise ValueError(f"{sampling!r} is not a decoupled sampling mode")


def run_paths(model, inputs, targets, memory, step_paths):
  """A decoupled SuperNet's forward pass over one step's paths, on the same batch: (NLL summed
  over the paths, targets counted over them, the first path's next memory, which goes on).
  Under a tape its gradient is the paths' gradients summed (FairNAS's one update)."""
  nll = count = tf.constant(0.0)
  carried = None
  for j in range(step_paths.shape[0]):  # 1 or 3, static
    hidden, after = model(inputs, memory=memory, training=True, path=step_paths[j])
    path_nll, path_count = model.nll(hidden, targets)
    nll, count = nll + path_nll, count + path_count
    carried = after if carried is None else carried
  return nll, count, carried

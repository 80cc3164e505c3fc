"""Relative attention against a naive loop over (query, key) pairs with explicit distances."""

import math

import numpy as np
import pytest
import tensorflow as tf

from par.model import attention

B, T, D, N, H = 2, 7, 24, 3, 5  # Odd sizes, so that a wrong axis fails loudly.


def sinusoid(distance, d_model):
  inverse_frequency = 1.0 / (10000.0 ** (np.arange(0, d_model, 2) / d_model))
  angle = distance * inverse_frequency
  return np.concatenate([np.sin(angle), np.cos(angle)])[:d_model]


def naive_attention(layer, segment, memory, memory_length, clamp_len=0, u=None, v=None):
  """One (b, n, i, j) at a time: score from the distance M + i - j, never from a shift."""
  w_q, w_k, w_v, w_r, w_o = (
    np.asarray(w) for w in (layer.w_q, layer.w_k, layer.w_v, layer.w_r, layer.w_o)
  )
  u = np.asarray(layer.u if u is None else u)
  v = np.asarray(layer.v if v is None else v)
  m = memory.shape[1]
  keys_in = np.concatenate([memory, segment], axis=1)
  out = np.zeros([B, T, D])
  for b in range(B):
    for n in range(N):
      for i in range(T):
        q = segment[b, i] @ w_q[:, n]
        scores, values = [], []
        for j in range(m + T):
          if j > m + i or j < m - memory_length:
            continue
          distance = m + i - j
          if clamp_len:
            distance = min(distance, clamp_len)
          r = sinusoid(distance, D) @ w_r[:, n]
          k = keys_in[b, j] @ w_k[:, n]
          scores.append(((q + u[n]) @ k + (q + v[n]) @ r) / math.sqrt(H))
          values.append(keys_in[b, j] @ w_v[:, n])
        p = np.exp(np.array(scores) - max(scores))
        p /= p.sum()
        out[b, i] += (p @ np.array(values)) @ w_o[n]
  return out


def run(layer, segment, memory, memory_length, clamp_len=0, **kwargs):
  m = memory.shape[1]
  positions = attention.relative_positions(m + T, D, clamp_len)
  mask = attention.attention_mask(T, m, memory_length)
  return layer(
    tf.constant(segment, tf.float32), tf.constant(memory, tf.float32), positions, mask, **kwargs
  ).numpy()


def make_layer():
  layer = attention.RelativeMultiHeadAttention(D, N, H)
  layer.build()
  return layer


@pytest.mark.parametrize("mem_len,memory_length", [(0, 0), (5, 5), (5, 2), (5, 0), (11, 11)])
@pytest.mark.parametrize("clamp_len", [0, 3])
def test_matches_naive_reference(mem_len, memory_length, clamp_len):
  rng = np.random.default_rng(mem_len * 10 + memory_length + clamp_len)
  layer = make_layer()
  segment = rng.normal(size=[B, T, D])
  memory = rng.normal(size=[B, mem_len, D])
  got = run(layer, segment, memory, memory_length, clamp_len)
  np.testing.assert_allclose(
    got, naive_attention(layer, segment, memory, memory_length, clamp_len), rtol=1e-4, atol=1e-5
  )


def test_shared_biases_replace_the_layers_own():
  rng = np.random.default_rng(1)
  layer = attention.RelativeMultiHeadAttention(D, N, H, own_bias=False)
  layer.build()
  assert not hasattr(layer, "u")
  u, v = rng.normal(size=[N, H]), rng.normal(size=[N, H])
  segment, memory = rng.normal(size=[B, T, D]), rng.normal(size=[B, 4, D])
  got = run(layer, segment, memory, 4, u=tf.constant(u, tf.float32), v=tf.constant(v, tf.float32))
  np.testing.assert_allclose(
    got, naive_attention(layer, segment, memory, 4, u=u, v=v), rtol=1e-4, atol=1e-5
  )


def test_invalid_memory_does_not_leak():
  """Whatever the masked-out memory slots hold, the output is the same."""
  rng = np.random.default_rng(2)
  layer = make_layer()
  segment, memory = rng.normal(size=[B, T, D]), rng.normal(size=[B, 6, D])
  other = memory.copy()
  other[:, :4] = 1e3 * rng.normal(size=[B, 4, D])  # Slots 0-3 are invalid with length 2.
  np.testing.assert_allclose(
    run(layer, segment, memory, 2), run(layer, segment, other, 2), rtol=1e-6, atol=1e-6
  )


def test_rel_shift_is_the_distance_alignment():
  m = 4
  k = m + T
  x = np.arange(T * k, dtype=np.float32).reshape(1, T, k)
  y = attention.rel_shift(tf.constant(x)).numpy()
  for i in range(T):
    for j in range(m + i + 1):
      # Column c of x holds distance K-1-c; distance M+i-j sits in column j+T-1-i.
      assert y[0, i, j] == x[0, i, j + T - 1 - i]


def test_relative_positions_descend_and_clamp():
  positions = attention.relative_positions(6, 8, clamp_len=3).numpy()
  for c, distance in enumerate([3, 3, 3, 2, 1, 0]):
    np.testing.assert_allclose(positions[c], sinusoid(distance, 8), atol=1e-6)
  assert attention.relative_positions(4, 7).shape == (4, 7)


def test_mask_is_causal_over_valid_memory():
  mask = attention.attention_mask(3, 4, 2).numpy()
  np.testing.assert_array_equal(
    mask.astype(int),
    [
      [0, 0, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 1, 0],
      [0, 0, 1, 1, 1, 1, 1],
    ],
  )


def test_cache_memory_keeps_the_last_states_without_gradient():
  memory = tf.constant(np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1))
  segment = tf.Variable(100 + np.arange(2 * 2 * 1, dtype=np.float32).reshape(2, 2, 1))
  with tf.GradientTape() as tape:
    new = attention.cache_memory(memory, segment)
  np.testing.assert_array_equal(new.numpy()[0, :, 0], [2, 100, 101])
  assert tape.gradient(tf.reduce_sum(new), segment) is None
  assert attention.cache_memory(memory[:, :0], segment).shape == (2, 0, 1)


def test_get_config_round_trip():
  layer = attention.RelativeMultiHeadAttention(D, N, H, dropatt=0.25, own_bias=False)
  clone = attention.RelativeMultiHeadAttention.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()

"""Weight initialisation, behind one switch (`ModelConfig.init`).

glorot          Glorot-uniform kernels, with the fans of the 2-D matrix each kernel stands
                for: the attention's [D, N, H] projections are [D, N·H] matrices split into
                heads (Keras's own GlorotUniform counts a 3-D kernel as a convolution's, a
                standard deviation of 0.0098 instead of 0.049 at WikiText-103's shape);
                norms start at 1; embeddings, the adaptive softmax's weights and
                projections at N(0, 0.02).
transformer_xl  Transformer-XL's (its pytorch/train.py `weights_init`, init "normal"):
                every matrix N(0, init_std = 0.02), the adaptive input's and softmax's
                projections N(0, proj_init_std = 0.01), norm scales N(1, 0.02), biases 0.

Each function returns a new initializer: give every weight its own. Keras draws an unseeded
initializer's seed when it is made, so weights that share one start with the same values.
"""

import math

import keras

INIT_STD = 0.02  # Transformer-XL's --init_std
PROJ_INIT_STD = 0.01  # Transformer-XL's --proj_init_std


def matrix(init, fan_in, fan_out):
  """The initializer of a kernel that stands for a [fan_in, fan_out] matrix."""
  if init == "transformer_xl":
    return keras.initializers.RandomNormal(stddev=INIT_STD)
  limit = math.sqrt(6.0 / (fan_in + fan_out))
  return keras.initializers.RandomUniform(-limit, limit)


def table(init):
  """Embedding tables, the adaptive softmax's weights and cluster weights: N(0, 0.02)."""
  del init  # The same in both.
  return keras.initializers.RandomNormal(stddev=INIT_STD)


def projection(init):
  """The adaptive input's and softmax's projections."""
  return keras.initializers.RandomNormal(
    stddev=PROJ_INIT_STD if init == "transformer_xl" else INIT_STD
  )


def bias():
  """The attention's content and position biases u and v: N(0, 0.02) in both."""
  return keras.initializers.RandomNormal(stddev=INIT_STD)


def norm_scale(init):
  """LayerNorm's scale (gamma)."""
  if init == "transformer_xl":
    return keras.initializers.RandomNormal(mean=1.0, stddev=INIT_STD)
  return keras.initializers.Ones()

"""Which lanes of each record the architecture step holds out (`--arch_split`).

PAR (following FBNet) froze the architecture for its first steps and then trained it on a
held-out 20% of each epoch and the weights on the other 80%; DARTS and GDAS likewise keep a
separate split for the architecture step. Here the held-out share is a set of lanes: a
record's B lanes are B independent streams of continuous text, so giving k of them to the
architecture and B - k to the weights, in every record, makes two streams that

- share no token: no record's lane trains both (the tests check it record by record);
- stay continuous, each lane with its own Transformer-XL memory, as without a split;
- see the whole corpus in the same proportion at every step (lanes are spread evenly through
  the corpus), rather than the architecture seeing only the last fifth of an epoch;
- cost one forward pass for both steps, and do not depend on how the lanes are divided among
  replicas: lane b is held out or not whatever the strategy, so a run resumes under any.

k = round(F·B), and the k lanes are spread evenly: lane b is held out when
floor((b + 1)·k / B) > floor(b·k / B) (with F = 0.2 and B = 60: lanes 4, 9, 14, ..., 59).

Nothing here imports TensorFlow.
"""

import numpy as np

from par.errors import ParError


def held_out_lanes(batch_size, fraction):
  """bool [batch_size]: the lanes that train only the architecture (none if fraction is 0).

  Raises:
    ParError: the fraction rounds to no lane or to every lane of the batch.
  """
  if not fraction:
    return np.zeros([batch_size], bool)
  k = round(fraction * batch_size)
  if not 0 < k < batch_size:
    raise ParError(
      f"--arch_split {fraction} holds out {k} of the {batch_size} lanes of each record; it "
      "must leave at least one lane to the architecture and one to the weights"
    )
  lanes = np.arange(batch_size)
  return (lanes + 1) * k // batch_size > lanes * k // batch_size

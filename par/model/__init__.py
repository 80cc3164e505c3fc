"""The PAR model: relative attention with memory, the blocks (attention, feed-forward, identity,
stochastic), the adaptive softmax and ParModel."""

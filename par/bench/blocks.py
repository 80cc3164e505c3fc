"""Suite `blocks`: where attention is the slow block (docs/BENCHMARKS.md, "Attention
against feed-forward time").

At the base width (configs/base_model.flags: d_model 128, 4 heads, d_ffn 1024), the forward
time of one attention and one feed-forward block (`costs.measure_latency`: compiled, memory
full, median of 20 after a warm-up) at segments + memory of 32 + 16 (batch 32), 128 + 128
(batch 10, the study of docs/RESULTS.md) and 256 + 256 (batch 5), against their forward
FLOPs per token (`costs.block_costs`); and at Transformer-XL base's shape, forward and
forward + backward.
"""


def run(work, options):
  """Forward time and FLOPs of attention against feed-forward at three segment lengths."""
  del work
  from par.config import ModelConfig
  from par.search import costs

  rows = []
  for seq_len, mem_len, batch in ((32, 16, 32), (128, 128, 10), (256, 256, 5)):
    config = ModelConfig(d_model=128, n_heads=4, d_ffn=1024, mem_len=mem_len, vocab_size=1000)
    s, f, _ = costs.measure_latency(config, batch, seq_len)
    flops = costs.block_costs(config, seq_len, batch)
    shape = f"{seq_len} + {mem_len}, batch {batch}"
    tokens = batch * seq_len
    rows += [
      (f"{shape}: attention / feed-forward ms", f"{s * 1e3:.2f} / {f * 1e3:.2f}"),
      (f"{shape}: µs per token", f"{s / tokens * 1e6:.2f} / {f / tokens * 1e6:.2f}"),
      (
        f"{shape}: attention ÷ feed-forward in time, in FLOPs",
        f"{s / f:.2f}, {flops['s'].flops / flops['f'].flops:.2f}",
      ),
    ]
  # Transformer-XL base (WikiText-103): d 410, 10 heads of 41, d_inner 2100, 150 + 150,
  # its training batch of 60; forward, and forward with backward (dropout 0.1 on).
  config = ModelConfig(
    d_model=410, n_heads=10, d_ffn=2100, mem_len=150, vocab_size=1000, dropout=0.1
  )
  flops = costs.block_costs(config, 150, 60)
  ratio = flops["s"].flops / flops["f"].flops
  for backward in (False, True):
    s, f, _ = costs.measure_latency(config, 60, 150, repeats=5, backward=backward)
    what = "forward + backward" if backward else "forward"
    rows += [
      (
        f"Transformer-XL base, 150 + 150, batch 60, {what}: attention / feed-forward ms",
        f"{s * 1e3:.0f} / {f * 1e3:.0f}",
      ),
      (
        f"Transformer-XL base, {what}: attention ÷ feed-forward in time, in FLOPs",
        f"{s / f:.2f}, {ratio:.2f}",
      ),
    ]
  rows.append(
    (
      "Transformer-XL base: forward MFLOP per token, attention / feed-forward",
      f"{flops['s'].flops / 1e6:.2f} / {flops['f'].flops / 1e6:.2f}",
    )
  )
  return rows

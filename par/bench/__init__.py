"""The benchmarks docs/BENCHMARKS.md records: one module per suite, each with the section it
fills, run by `par-benchmark --suite=<name>` (`python3 scripts/benchmark.py` in a checkout).

- `data`, `scale`: the dataset build, on the WikiText-2 sample and at WikiText-103's size;
- `train`, `speed`, `jobs`, `profile`: the training step: throughput per sampling mode, its
  share of the matmul bound, two one-thread trainings at once, and where the step goes;
- `shapes`, `memory`, `blocks`: the paper's models on this CPU, the memory a step needs
  against its estimate, attention against feed-forward time;
- `cuts`: the exact adaptive-softmax cutoff solver;
- `measure`: how they measure (fresh processes, peak memory, the best of repeated calls);
- `suites`: the suites by name, their options, and the table they print.

Every suite measures commands as users run them (`python -m par <command>` in a fresh
process) or the library's own functions in this process; none is a test. Machines here are
shared and noisy: compare figures from one run, not across runs.
"""

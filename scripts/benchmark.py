"""Measures what docs/BENCHMARKS.md records (par/bench/, one module per suite).

A thin caller of `par.commands.benchmark` (installed: `par-benchmark`); its docstring and
`--help` say the rest.
"""

from par.commands import benchmark

if __name__ == "__main__":
  benchmark.run()

"""Exact adaptive-softmax cutoffs from the data: the cheapest split of the vocabulary.

A thin caller of `par.commands.optimal_cuts` (installed: `par-optimal-cuts`); its docstring and
`--help` say the rest.
"""

from par.commands import optimal_cuts

if __name__ == "__main__":
  optimal_cuts.run()

"""Ranks every pattern with a search's shared weights: ranking.json and plots/ranking.png.

A thin caller of `par.commands.rank` (installed: `par-rank`); its docstring and
`--help` say the rest.
"""

from par.commands import rank

if __name__ == "__main__":
  rank.run()

"""One perplexity-against-time figure from several pipelines (e.g. one per seed).

A thin caller of `par.commands.tradeoff` (installed: `par-tradeoff`); its docstring and
`--help` say the rest.
"""

from par.commands import tradeoff

if __name__ == "__main__":
  tradeoff.run()

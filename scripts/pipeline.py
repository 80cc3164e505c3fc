"""The search, the derived PAR models and the Transformer-XL baseline, compared in one command.

A thin caller of `par.commands.pipeline` (installed: `par-pipeline`); its docstring and
`--help` say the rest.
"""

from par.commands import pipeline

if __name__ == "__main__":
  pipeline.run()

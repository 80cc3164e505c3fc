"""Evaluates a trained run on any split: exact perplexities and bits per character, as JSON.

A thin caller of `par.commands.evaluate` (installed: `par-evaluate`); its docstring and
`--help` say the rest.
"""

from par.commands import evaluate

if __name__ == "__main__":
  evaluate.run()

"""Generates text from a trained run: a prompt in, the prompt and its continuation out.

A thin caller of `par.commands.generate` (installed: `par-generate`); its docstring and
`--help` say the rest.
"""

from par.commands import generate

if __name__ == "__main__":
  generate.run()

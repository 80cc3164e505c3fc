"""Builds a context-batched TFRecord dataset from text.

A thin caller of `par.commands.build_data` (installed: `par-build-data`); its docstring and
`--help` say the rest.
"""

from par.commands import build_data

if __name__ == "__main__":
  build_data.run()

"""Trains a PAR SuperNet (architecture search) or a fixed architecture; resumes if interrupted.

A thin caller of `par.commands.train` (installed: `par-train`); its docstring and
`--help` say the rest.
"""

from par.commands import train

if __name__ == "__main__":
  train.run()

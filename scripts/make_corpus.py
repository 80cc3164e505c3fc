"""Writes a Zipfian corpus of WikiText-103's size and shape, to measure builds at scale.

A thin caller of `par.commands.make_corpus` (installed: `par-make-corpus`); its docstring and
`--help` say the rest.
"""

from par.commands import make_corpus

if __name__ == "__main__":
  make_corpus.run()

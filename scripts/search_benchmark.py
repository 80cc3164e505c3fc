"""Does the search find known answers? The known-answer benchmark.

A thin caller of `par.commands.search_benchmark` (installed: `par-search-benchmark`); its
docstring and `--help` say the rest.
"""

from par.commands import search_benchmark

if __name__ == "__main__":
  search_benchmark.run()

"""Puts a corpus's train, valid and test splits in one directory.

A thin caller of `par.commands.fetch_data` (installed: `par-fetch-data`); its docstring and
`--help` say the rest.
"""

from par.commands import fetch_data

if __name__ == "__main__":
  fetch_data.run()

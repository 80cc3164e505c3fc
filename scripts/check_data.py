"""Checks a built dataset: every split whole, or says in one line what is wrong.

A thin caller of `par.commands.check_data` (installed: `par-check-data`); its docstring and
`--help` say the rest.
"""

from par.commands import check_data

if __name__ == "__main__":
  check_data.run()

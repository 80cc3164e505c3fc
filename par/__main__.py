"""`python -m par <command> [flags]`: runs one of the commands of par/commands/.

python -m par train --flagfile=configs/tiny.flags --model_dir=runs/tiny
python -m par evaluate --model_dir=runs/tiny --split=test
"""

import importlib
import pkgutil
import sys

from par import commands


def main():
  names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
  if len(sys.argv) < 2 or sys.argv[1] not in names:
    given = f" (got {sys.argv[1]!r})" if len(sys.argv) > 1 else ""
    sys.exit(f"usage: python -m par <command> [flags]{given}; commands: {', '.join(names)}")
  name = sys.argv.pop(1)
  sys.argv[0] = f"par-{name.replace('_', '-')}"
  importlib.import_module(f"par.commands.{name}").run()


if __name__ == "__main__":
  main()

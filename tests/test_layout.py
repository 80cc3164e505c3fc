"""The layout's rules: dependencies point down (docs/ARCHITECTURE.md), and the library never
reads flags (only the commands of par/commands/, par/config_flags.py, which they call, and
par/cli.py, which shows their flags in --help, touch absl flags)."""

import ast

import pytest

from helpers import ROOT

# Each layer may import the layers before it, never those after (runs beside train).
LAYERS = [
  {"par.errors", "par.signals", "par.config"},
  {"par.data"},
  {"par.model"},
  {"par.search"},
  {"par.runs", "par.train"},
  {"par.pipeline", "par.rank", "par.known_answers"},
  {"par.commands"},
]


def _layer(module):
  for k, layer in enumerate(LAYERS):
    if any(module == name or module.startswith(name + ".") for name in layer):
      return k
  return None


def _imports(path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      yield node.module, [alias.name for alias in node.names]
    elif isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, []


LIBRARY = sorted((ROOT / "par").rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_dependencies_point_down(path):
  module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
  own = _layer(module)
  if own is None:
    return  # cli, config_flags, cutoffs, generate: not in a layer
  for imported, names in _imports(path):
    targets = [imported] + [f"{imported}.{n}" for n in names]
    for target in targets:
      layer = _layer(target)
      assert layer is None or layer <= own, f"{module} imports {target}, a layer above it"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_reads_no_flags(path):
  if path.name in ("config_flags.py", "cli.py", "__main__.py") or path.parent.name == "commands":
    return
  for imported, names in _imports(path):
    assert not (imported == "absl" and "flags" in names), path
    assert imported != "absl.flags", path

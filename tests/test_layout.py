"""The layout's rules: dependencies point down (docs/ARCHITECTURE.md), no two modules import
each other (directly or round a longer circle, function-level imports included), and the library
never reads flags (only the commands of par/commands/, par/config_flags.py, which they call, and
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
  {"par.study", "par.bench"},
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


def _module(path):
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
  """{module: the par modules it imports anywhere in its file}; `from a import b` is an edge
  to the module a.b when there is one, else to a."""
  modules = {_module(path): path for path in LIBRARY}
  graph = {}
  for module, path in modules.items():
    targets = set()
    for imported, names in _imports(path):
      named = [f"{imported}.{n}" for n in names if f"{imported}.{n}" in modules]
      targets.update(named or ([imported] if imported in modules else []))
    graph[module] = targets - {module}
  return graph


def _circles(graph):
  """Every import circle a depth-first walk meets, each as the modules round it."""
  state, circles = {}, []

  def walk(module, path):
    state[module] = "open"
    path.append(module)
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        circles.append(path[path.index(target) :] + [target])
      elif target not in state:
        walk(target, path)
    path.pop()
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      walk(module, [])
  return circles


def test_no_module_imports_itself_round_a_circle():
  graph = _import_graph()
  assert {"par.study.pipeline", "par.study.seeds"} <= set(graph)
  assert "par.study.seeds" in graph["par.study.pipeline"]  # the graph sees real imports
  assert _circles(graph) == []
  # The walk finds a circle where there is one, function-level imports included.
  assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_reads_no_flags(path):
  if path.name in ("config_flags.py", "cli.py", "__main__.py") or path.parent.name == "commands":
    return
  for imported, names in _imports(path):
    assert not (imported == "absl" and "flags" in names), path
    assert imported != "absl.flags", path

"""The import graph of tfxfer: no cycles, and no room imports a room on a higher floor.

Every module of the package is parsed with `ast`; module-level AND function-level imports count
(an import inside a function only delays a dependency, it does not remove it). Resolution rules:

* ``import a.b.c`` and ``from a.b import c`` point at the deepest tfxfer module they name: ``c``
  when ``a.b.c`` is a submodule, else ``a.b``; relative imports are resolved first.
* ``from pkg import name`` where ``pkg`` is a lazy face (an ``_EXPORTS = {name: module}`` table
  served by `tfxfer.utils.lazy.lazy_exports`) points at the module that really holds ``name``.
* Importing ``a.b.c`` also runs the package faces ``a.b`` (``__init__``): those are edges too,
  except the root ``tfxfer`` face (it only sets two environment defaults and builds its lazy
  table) and the importing module's own enclosing packages.

Package faces (``__init__``) are otherwise ordinary modules here: they sit in their room's floor,
and a face that re-exports from a lower floor (``tfxfer.freezing`` re-exporting
``tfxfer.backbones.groups.layer_groups``) is a downward import like any other. The one special
case is the root above and an import of one's own enclosing package, which Python has already
started running (it is the same room, so it can neither break the layering nor form a new cycle
that the package's own submodule edges do not show).

Floors come from ARCHITECTURE.md; a room may import rooms on its own floor or below.
"""

from __future__ import annotations

import ast
import os
import sys

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfxfer")

#: ARCHITECTURE.md's floors: a room may import only rooms on its own floor or lower ones.
FLOORS = {
    "cli": 8,
    "recipes": 7,
    "report": 6,
    "export": 5, "quantize": 5, "distill": 5, "transfer": 5,
    "train": 4,
    "text": 3, "models": 3,
    "freezing": 2, "optim": 2, "reliability": 2, "data": 2, "augment": 2,
    "backbones": 1, "preprocess": 1, "metrics": 1,
    "errors": 0, "utils": 0,
    "_registration": 0,  # the root face's Keras-class registration: standard library only (names by string)
    # Rooms added later; ARCHITECTURE.md places them too (adapt/ and fairness/ on floor 5, causal_lm/ on 3).
    "adapt": 5,  # two-sample shift tests on features, beside transfer/
    "causal_lm": 3,  # a model family, beside text/
    "fairness": 5,  # per-group audit of a trained model, beside transfer/ and below report/
}
#: Violations that other helpers are removing right now; each entry goes when its room lands, and
#: the tests fail on an entry that no longer occurs (so the lists only shrink).
#: Upward imports, as (importing module, imported room):
ALLOWED_UPWARD: set[tuple[str, str]] = set()
#: Cycles, as the exact set of modules in one strongly connected component:
ALLOWED_CYCLES: list[set[str]] = []


# -- the graph ---------------------------------------------------------------------------------
def find_modules(package_dir: str) -> dict[str, str]:
    """``{dotted module name: file path}`` for every ``.py`` file under ``package_dir``."""
    package_dir = os.path.abspath(package_dir)
    parent = os.path.dirname(package_dir)
    modules = {}
    for directory, _, files in os.walk(package_dir):
        for filename in files:
            if filename.endswith(".py"):
                path = os.path.join(directory, filename)
                name = os.path.relpath(path, parent)[: -len(".py")].replace(os.sep, ".")
                modules[name.removesuffix(".__init__")] = path
    return modules


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            return ast.literal_eval(node.value)
    return {}


def _imported(module: str, path: str, node, modules: dict, lazy: dict) -> list[tuple[str, int]]:
    """The tfxfer modules that import ``node`` in ``module`` names, with its line."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            if not path.endswith("__init__.py"):
                parts = parts[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        targets = []
        for alias in node.names:
            if f"{base}.{alias.name}" in modules:
                targets.append(f"{base}.{alias.name}")
            elif alias.name in lazy.get(base, {}):
                targets.append(lazy[base][alias.name])
            else:
                targets.append(base)
    out = []
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target:
            out.append((target, node.lineno))
    return out


def import_graph(package_dir: str) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over every import in every module of the package."""
    modules = find_modules(package_dir)
    root = os.path.basename(os.path.abspath(package_dir))
    trees = {m: ast.parse(open(p, encoding="utf-8").read(), filename=p) for m, p in modules.items()}
    lazy = {m: table for m, tree in trees.items() if (table := _lazy_table(tree))}
    graph = {}
    for module, tree in trees.items():
        edges: dict[str, int] = {}
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, line in _imported(module, modules[module], node, modules, lazy):
                faces = [".".join(target.split(".")[:i]) for i in range(2, target.count(".") + 1)]
                for t in (target, *faces):
                    if t != module and t != root and t not in own_packages:
                        edges.setdefault(t, line)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, dict]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return cycles


def room_of(module: str) -> str | None:
    """The room of a module (``tfxfer.freezing.gradual`` -> ``freezing``); None for the root face."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return parts[1]


def upward_imports(graph: dict[str, dict[str, int]], floors: dict[str, int]) -> list[tuple[str, str, int]]:
    """``(importer, imported, line)`` for every import from a lower floor to a higher one."""
    out = []
    for module, edges in sorted(graph.items()):
        room = room_of(module)
        if room not in floors:  # the root face; rooms without a floor fail test_every_room_has_a_floor
            continue
        for target, line in sorted(edges.items()):
            other = room_of(target)
            if other in floors and floors[other] > floors[room]:
                out.append((module, target, line))
    return out


# -- the checks on tfxfer ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE_DIR)


def test_every_room_has_a_floor(graph):
    unknown = sorted({room_of(m) for m in graph} - set(FLOORS) - {None})
    assert not unknown, f"rooms missing from FLOORS (give them a floor from ARCHITECTURE.md): {unknown}"


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    new = [cycle for cycle in cycles if set(cycle) not in ALLOWED_CYCLES]
    stale = [sorted(allowed) for allowed in ALLOWED_CYCLES if sorted(allowed) not in cycles]
    assert not new, "import cycles among tfxfer modules:\n" + "\n".join(" <-> ".join(cycle) for cycle in new)
    assert not stale, f"ALLOWED_CYCLES entries that no longer occur (remove them): {stale}"


def test_no_room_imports_a_higher_floor(graph):
    found = upward_imports(graph, FLOORS)
    new = [(m, t, line) for m, t, line in found if (m, room_of(t)) not in ALLOWED_UPWARD]
    stale = ALLOWED_UPWARD - {(m, room_of(t)) for m, t, _ in found}
    lines = [f"{m} (floor {FLOORS[room_of(m)]}, line {line}) imports {t} (floor {FLOORS[room_of(t)]})"
             for m, t, line in new]
    assert not new, "imports from a lower floor to a higher one:\n" + "\n".join(lines)
    assert not stale, f"ALLOWED_UPWARD entries that no longer occur (remove them): {sorted(stale)}"


# -- the checker itself can fail ---------------------------------------------------------------
def _write(root, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return os.path.join(root, "pkg")


def test_checker_sees_function_level_relative_and_lazy_imports(tmp_path):
    package = _write(tmp_path, {
        "pkg/__init__.py": "_EXPORTS = {'thing': 'pkg.low.thing'}\n",
        "pkg/low/__init__.py": "",
        "pkg/low/thing.py": "def f():\n    from ..high import mod\n",  # function-level, relative, upward
        "pkg/high/__init__.py": "from pkg.high.mod import g\n",
        "pkg/high/mod.py": "from pkg import thing\n\ndef g():\n    pass\n",  # lazy name -> pkg.low.thing
    })
    graph = import_graph(package)
    assert "pkg.high.mod" in graph["pkg.low.thing"] and "pkg.high" in graph["pkg.low.thing"]
    assert "pkg.low.thing" in graph["pkg.high.mod"]
    assert find_cycles(graph) == [["pkg.high", "pkg.high.mod", "pkg.low.thing"]]
    floors = {"low": 1, "high": 2}
    assert ("pkg.low.thing", "pkg.high.mod", 2) in upward_imports(graph, floors)
    assert all(m.startswith("pkg.low") for m, _, _ in upward_imports(graph, floors))


def test_checker_passes_a_clean_package(tmp_path):
    package = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from pkg.low.a import f\n",
        "pkg/low/a.py": "from pkg import low\n\ndef f():\n    import os\n",  # own face: not an edge
        "pkg/high/__init__.py": "",
        "pkg/high/b.py": "from pkg.low import f\nfrom pkg.low.a import f as g\n",
    })
    graph = import_graph(package)
    assert find_cycles(graph) == []
    assert upward_imports(graph, {"low": 1, "high": 2}) == []
    assert graph["pkg.high.b"] == {"pkg.low": 1, "pkg.low.a": 2}

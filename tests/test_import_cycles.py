"""No import cycles among facediag's modules, imports inside functions included.

The import-linter contract (setup.cfg) orders packages but cannot see a cycle inside one
package, and an import moved into a function hides a cycle from Python without removing it.
grimp (installed with import-linter) reads every import statement, at any depth, so a cycle
it finds is one a reader would follow. Importing a submodule also runs its package's
``__init__``; that implicit step is Python's, not an import the code writes, and is not counted.
"""
from __future__ import annotations

import textwrap

import grimp
import pytest


def import_cycles(package: str) -> list[list[str]]:
    """Each import cycle in ``package``: a list of modules whose last imports the first.

    One cycle is given per strongly connected component of the import graph (Tarjan's
    algorithm), the shortest one through the component's first module by name.
    """
    graph = grimp.build_graph(package, cache_dir=None)
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                lowlink[module] = min(lowlink[module], lowlink[imported])
            elif imported in on_stack:
                lowlink[module] = min(lowlink[module], index[imported])
        if lowlink[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)

    cycles = []
    for component in sorted(components):
        first = component[0]
        chains = [graph.find_shortest_chain(importer=imported, imported=first)
                  for imported in sorted(graph.find_modules_directly_imported_by(first)) if imported in component]
        cycles.append([first, *min(chains, key=len)[:-1]])
    return cycles


def describe(cycle: list[str]) -> str:
    return " -> ".join([*cycle, cycle[0]])


def test_facediag_has_no_import_cycles():
    cycles = import_cycles("facediag")
    assert not cycles, "import cycles:\n" + "\n".join(describe(c) for c in cycles)


def _write_package(root, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.mark.parametrize("name, modules, expected", [
    ("cyc_toplevel", {"a": "import cyc_toplevel.b\n", "b": "import cyc_toplevel.a\n"},
     [["cyc_toplevel.a", "cyc_toplevel.b"]]),
    # The cycle this test exists for: one side of it hidden inside a function.
    ("cyc_hidden", {"a": "from cyc_hidden.b import g\n",
                    "b": "def g():\n    from cyc_hidden.c import h\n    return h\n",
                    "c": "from cyc_hidden import a\n\ndef h():\n    return a\n"},
     [["cyc_hidden.a", "cyc_hidden.b", "cyc_hidden.c"]]),
    ("cyc_none", {"a": "def f():\n    from cyc_none import b\n    return b\n", "b": "import json\n"}, []),
])
def test_import_cycles_finds_a_planted_cycle(tmp_path, monkeypatch, name, modules, expected):
    _write_package(tmp_path, name, modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(name) == expected

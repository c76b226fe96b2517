"""No import cycle among the modules of simulator/ (DESIGN s.1: imports go downward only).

The graph is built with ``ast`` from the source files, not by importing them: every ``import`` and
``from ... import`` statement counts, at module level or inside a function, relative imports
resolved against the importing module's package. ``from PKG import NAME`` is an edge to the
module PKG.NAME when that is a module, else to PKG. A package's ``__init__`` is the node PKG.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "simulator"


def _modules(root: Path) -> dict[str, Path]:
    """Return dotted module name -> source file for every .py file under root/simulator."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Return the absolute dotted name a (possibly relative) import in ``module`` refers to."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Return module -> the simulator modules it imports (anywhere in its source)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node.level, node.module)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                         for a in node.names]
            for name in names:
                # the longest prefix that is a module of ours (import a.b.c -> a.b.c or a.b)
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_simulator():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_graph_sees_relative_and_function_level_imports(tmp_path):
    # an oracle package with a known cycle made of a function-level relative import
    pkg = tmp_path / PACKAGE / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from ..sub.a import g\n")
    (pkg / "c.py").write_text("import simulator.sub.a\n")
    graph = import_graph(tmp_path)
    assert graph["simulator.sub.a"] == {"simulator.sub.b"}
    assert graph["simulator.sub.b"] == {"simulator.sub.a"}
    assert graph["simulator.sub.c"] == {"simulator.sub.a"}
    assert find_cycle(graph) == ["simulator.sub.a", "simulator.sub.b", "simulator.sub.a"]
    (pkg / "b.py").write_text("def f():\n    pass\n")
    assert find_cycle(import_graph(tmp_path)) is None


def test_entry_cli_llm_circle_is_gone():
    graph = import_graph()
    assert "simulator.tools.cli" not in graph["simulator.llm.command"]
    assert "simulator._entry" not in graph["simulator.tools.cli"]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])

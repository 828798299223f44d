"""The package's import graph has no circles (issue 22), deferred imports included.

Every ``import``/``from ... import`` in every module counts, also those inside functions (a
function-level import only hides a circle from the interpreter, not from a reader); imports
under ``if TYPE_CHECKING:`` are type annotations and do not count. A name imported from a
package's ``__init__`` that is a submodule counts as that submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "thawdetect").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    def __init__(self, mods: dict[str, Path]) -> None:
        self.mods = mods
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}", self.mods)
                if target:
                    self.found.add(target)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = _resolve(alias.name, self.mods)
            if target:
                self.found.add(target)


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        v = _Imports(mods)
        v.visit(ast.parse(path.read_text(), str(path)))
        graph[name] = v.found - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_circles_are_found():
    # the check itself: a made-up circle and a chain
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circles():
    graph = import_graph()
    assert len(graph) > 100
    assert "thawdetect.core.plugin_api.host" in graph["thawdetect.core.plugin_api.context"]
    assert circles(graph) == []


def test_core_imports_no_plugin():
    graph = import_graph()
    bad = {
        m: sorted(t for t in targets if t.startswith("thawdetect.plugins"))
        for m, targets in graph.items()
        if m.startswith("thawdetect.core")
    }
    assert {m: t for m, t in bad.items() if t} == {}

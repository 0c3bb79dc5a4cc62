"""The package's layout keeps its promises: pure parsing stays pure, imports point one way.

Read from the source (no module is imported): every ``import`` and ``from … import`` at any
depth, function-level ones included; only those under ``if TYPE_CHECKING:`` are left out,
since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon" / "algoseek_sync"
ROOT = "algoseek_sync"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _targets(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules an import statement runs (a submodule, not its package, when named)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    if node.level:
        package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    subs = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
    if subs:
        return subs
    return {base} if base in MODULES else set()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {t for node in _runtime_imports(tree) for t in _targets(name, node)} - {name}
    return graph


GRAPH = _graph()


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_cycle_check_sees_function_level_imports() -> None:
    """The checker itself: an import inside a function counts, one under TYPE_CHECKING does not."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from algoseek_sync.state.database import Database\n"
        "def f():\n    from algoseek_sync.store.migrate import bars_to_chunks\n"
    )
    seen = {t for node in _runtime_imports(tree) for t in _targets(f"{ROOT}.state.schema", node)}
    assert seen == {f"{ROOT}.store.migrate"}


def test_parsing_imports_nothing_of_the_package_but_errors() -> None:
    outside = {
        (name, target)
        for name, targets in GRAPH.items()
        if name.startswith(f"{ROOT}.formats")
        for target in targets
        if not target.startswith(f"{ROOT}.formats") and target != f"{ROOT}.errors"
    }
    assert outside == set()


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("formats", "state"),
        ("state", "ingest"),
        ("state", "watch"),
        ("state", "commands"),
        ("backends", "ingest"),
        ("ingest", "commands"),
        ("ingest", "service"),
        ("quality", "commands"),
        ("watch", "ingest"),
        ("store", "backends"),
        ("read", "commands"),
        ("read", "ingest"),
        ("read", "service"),
        ("read", "watch"),
        ("backends", "read"),
        ("state", "read"),
    ],
)
def test_dependencies_point_one_way(lower: str, upper: str) -> None:
    """A lower layer never imports a higher one (the README's architecture section)."""
    wrong = {
        (name, target)
        for name, targets in GRAPH.items()
        if name.startswith(f"{ROOT}.{lower}")
        for target in targets
        if target.startswith(f"{ROOT}.{upper}")
    }
    assert wrong == set()


def test_the_top_level_holds_only_the_ground_floor_and_the_wiring() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "app.py", "config.py", "errors.py", "logging.py"]

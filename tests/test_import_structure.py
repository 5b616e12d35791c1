"""How the packages import each other: no cycles, each module importable alone, light edges light.

The cycle check reads the source with ``ast`` and counts every import, also those deferred into a
function (a deferred import hides a cycle, it does not remove it); ``if TYPE_CHECKING:`` blocks
are left out. A package's own ``__init__`` is not an edge of its submodules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    name
    for name in ("retrace", "schemas", "collector", "runner", "replay", "ui")
    if (REPO_ROOT / name / "__init__.py").exists()
]


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name ``name`` imports (absolute), outside ``if TYPE_CHECKING:``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def walk(nodes: Iterable[ast.AST]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                yield from walk(node.orelse)
                continue
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package[: len(package) - (node.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names)
            yield from walk(ast.iter_child_nodes(node))

    yield from walk([ast.parse(path.read_text(), str(path))])


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for target in _imported_names(name, path):
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                module = ".".join(parts[:end])
                # importing a sibling runs the package's own __init__, which is not a cycle
                if module in modules and not (name == module or name.startswith(module + ".")):
                    edges.add(module)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", ["runner.journal", "runner.tracing"])
def test_each_of_journal_and_tracing_imports_alone(module: str) -> None:
    result = _run(f"import {module}")
    assert result.returncode == 0, result.stderr


def test_the_collector_and_the_replay_api_import_without_the_runner() -> None:
    """The collector serves /trajectory through ``replay``: neither may pull in LangGraph."""
    code = (
        "import sys, collector.app, replay\n"
        "from replay import trajectory_from_detail, load_trajectory\n"
        "heavy = {'langgraph', 'langchain_core', 'runner', 'mcp'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""One logging style: a module's logger is ``log = logging.getLogger(__name__)``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retrace", "schemas", "collector", "runner", "replay", "ui")


def test_every_logger_is_named_for_its_module() -> None:
    wrong: list[str] = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and ast.unparse(node.func) in ("logging.getLogger", "getLogger")
                ):
                    continue
                where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
                if [ast.unparse(a) for a in node.args] != ["__name__"]:
                    wrong.append(f"{where}: {ast.unparse(node)}")
            for stmt in tree.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.value, ast.Call)
                    and ast.unparse(stmt.value.func) in ("logging.getLogger", "getLogger")
                    and [ast.unparse(t) for t in stmt.targets] != ["log"]
                ):
                    wrong.append(f"{path.relative_to(REPO_ROOT)}:{stmt.lineno}: not named log")
    assert wrong == []

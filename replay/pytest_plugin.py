"""pytest plugin: each golden trajectory file becomes a test that replays it.

Enable by naming the directory (ini ``retrace_golden_dir`` or ``--retrace-golden DIR``) and
collecting it (``pytest DIR`` or via ``testpaths``). Each ``*.json`` file under it is replayed in
``recorded`` mode (``retrace_replay_mode`` / ``--retrace-mode`` to change) and fails with the
first divergence and its diff. Each test is named after the run's task and trace id
(``which-product-categories-bring-in[4bf92f35…]``). ``--retrace-graph MODULE:ATTR`` (ini
``retrace_graph``) re-drives your own LangGraph graph instead of each file's recorded one. Nothing
happens unless a golden directory is configured, so the plugin is inert in projects that do not
use it. ``Settings`` (``RETRACE_*``) are read once per session; golden replays send nothing
anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from replay._replayer import Replayer

_INI_DIR = "retrace_golden_dir"
_INI_MODE = "retrace_replay_mode"
_INI_GRAPH = "retrace_graph"
_REPLAYER = pytest.StashKey["Replayer"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retrace", "Retrace golden-trajectory replay")
    group.addoption(
        "--retrace-golden",
        action="store",
        default=None,
        metavar="DIR",
        help="directory of golden trajectories (*.json) to replay as tests",
    )
    group.addoption(
        "--retrace-mode",
        action="store",
        default=None,
        help="replay mode for golden trajectories (default: recorded)",
    )
    group.addoption(
        "--retrace-graph",
        action="store",
        default=None,
        metavar="MODULE:ATTR",
        help="your LangGraph graph to re-drive for golden trajectories (default: the recorded one)",
    )
    parser.addini(_INI_DIR, "directory of golden trajectories to replay as tests", default="")
    parser.addini(_INI_GRAPH, "MODULE:ATTR of the graph golden trajectories re-drive", default="")
    parser.addini(_INI_MODE, "replay mode for golden trajectories", default="recorded")


def _golden_dir(config: pytest.Config) -> Path | None:
    value = config.getoption("--retrace-golden") or config.getini(_INI_DIR)
    if not value:
        return None
    path = Path(str(value))
    if not path.is_absolute():
        path = Path(str(config.rootpath)) / path
    return path.resolve()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    golden = _golden_dir(parent.config)
    if golden is None or file_path.suffix != ".json":
        return None
    if not file_path.resolve().is_relative_to(golden):
        return None
    return GoldenFile.from_parent(parent, path=file_path)


def _replayer(config: pytest.Config) -> Replayer:
    """The session's Replayer, wired from ``Settings`` read once (on first use)."""
    replayer = config.stash.get(_REPLAYER, None)
    if replayer is None:
        from replay._replayer import Replayer
        from schemas.settings import Settings

        replayer = Replayer.from_settings(Settings(), connect=False, store_report=False)
        config.stash[_REPLAYER] = replayer
    return replayer


class GoldenFile(pytest.File):
    """One golden trajectory file: one test."""

    def collect(self) -> Iterator[pytest.Item]:
        yield GoldenItem.from_parent(self, name=_item_name(self.path))


def _item_name(path: Path) -> str:
    """``<task slug>[<trace id>]`` from the file's run; its stem if the file cannot be read
    (the test then fails saying why)."""
    from replay._suite import case_name

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path.stem
    if not isinstance(data, dict):
        return path.stem
    task, trace_id = data.get("input"), data.get("trace_id")
    return case_name(
        task if isinstance(task, str) else "",
        trace_id if isinstance(trace_id, str) else "",
        path.stem,
    )


class GoldenDivergence(Exception):
    """The replay of a golden trajectory diverged (or could not run)."""


class GoldenItem(pytest.Item):
    def runtest(self) -> None:
        from replay.cli import render_text

        mode = self.config.getoption("--retrace-mode") or self.config.getini(_INI_MODE)
        graph = self.config.getoption("--retrace-graph") or self.config.getini(_INI_GRAPH)
        options = {"graph": str(graph)} if graph else {}
        outcome = _replayer(self.config).replay(Path(self.path), str(mode), **options)
        self.user_properties.append(("replay_trace_id", outcome.replay_trace_id))
        if outcome.error:
            raise GoldenDivergence(f"replay failed: {outcome.error}")
        if outcome.report is not None and outcome.report.diverged:
            raise GoldenDivergence(render_text(outcome.report))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GoldenDivergence):
            return str(excinfo.value)
        from schemas.errors import RetraceError

        if isinstance(excinfo.value, RetraceError):
            return f"cannot replay {self.path.name}: {excinfo.value.message}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"golden trajectory {self.path.name}"

"""live-tools and live-model replays through real MCP servers over stdio (bundled data server)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from replay import Replayer, trajectory_from_detail
from replay._capture import CaptureExporter, detail_from_spans
from runner.config import AgentConfig, McpServerConfig
from runner.mcp_bridge import McpToolExecutor
from runner.offline import OfflineModel
from runner.run import run_agent
from runner.runtime import LiveRuntime
from schemas.models import DivergenceKind, Trajectory
from schemas.settings import Settings

pytestmark = pytest.mark.integration

DATA_DB = Path(__file__).resolve().parents[2] / "runner" / "data" / "store.sqlite"
TASK = "How many customers do we have?"
SCRIPT = """
name: counter
tasks:
  - name: count
    match: how many customers
    steps:
      - call: list_tables
      - call: query
        args: {sql: "select count(*) as n from customers"}
      - answer: "Customers: {{ last }}"
"""


def config_for(tmp_path: Path, db: Path | None = None) -> AgentConfig:
    script = tmp_path / "counter.yaml"
    script.write_text(SCRIPT)
    args = ["-m", "runner.mcp_servers.data_server"]
    if db is not None:
        args += ["--db", str(db)]
    return AgentConfig(
        name="counter",
        model="offline:counter",
        offline_script=str(script),
        mcp_servers=[McpServerConfig(name="data", command=sys.executable, args=args)],
    )


def record(config: AgentConfig) -> Trajectory:
    async def run() -> str:
        async with McpToolExecutor(config.mcp_servers) as tools:
            assert config.offline_script is not None
            result = await run_agent(
                TASK,
                config,
                model=OfflineModel.from_file(config.offline_script, name="counter"),
                tools=tools,
                runtime=LiveRuntime(5),
                span_exporter=capture,
            )
        return result.trace_id

    capture = CaptureExporter()
    trace_id = asyncio.run(run())
    return trajectory_from_detail(detail_from_spans(capture.spans, trace_id))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Trajectory:
    return record(config_for(tmp_path_factory.mktemp("live")))


def test_recording_through_real_mcp(recorded: Trajectory) -> None:
    tools = [s for s in recorded.steps if s.kind == "tool"]
    assert [s.tool_name for s in tools] == ["list_tables", "query"]
    assert all(s.mcp_server == "data" and s.error is None for s in tools)
    assert "customers" in str(tools[0].result)


def test_live_tools_replay_of_an_unchanged_tool_plane(recorded: Trajectory, tmp_path: Path) -> None:
    replayer = Replayer.from_settings(Settings(data_dir=tmp_path), connect=False)
    outcome = replayer.replay(recorded, "live-tools")
    assert outcome.error == ""
    report = outcome.report
    assert report is not None and not report.diverged, report.divergences
    assert report.metrics.steps_matched == len(recorded.steps)


def test_live_tools_replay_finds_a_changed_tool_output(
    recorded: Trajectory, tmp_path: Path
) -> None:
    db = tmp_path / "fewer.sqlite"
    shutil.copy(DATA_DB, db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DELETE FROM customers WHERE rowid % 2 = 0")
    outcome = Replayer.from_settings(Settings(data_dir=tmp_path), connect=False).replay(
        recorded, "live-tools", config=config_for(tmp_path, db)
    )
    report = outcome.report
    assert report is not None and report.diverged
    first = report.first_divergence
    assert first is not None
    # list_tables reports row counts: it is the first step whose output changed, then the query
    assert (first.kind, first.recorded_index, first.step_kind) == (
        DivergenceKind.OTHER_OUTPUT,
        1,
        "tool",
    )
    query_index = next(s.index for s in recorded.steps if s.tool_name == "query")
    changed = [d for d in report.divergences if d.recorded_index == query_index]
    assert [d.kind for d in changed] == [DivergenceKind.OTHER_OUTPUT]
    assert changed[0].diff and all(d.path.startswith("/result") for d in changed[0].diff)
    assert report.metrics.final_answer_changed is False  # the answer is served from the recording


def test_live_model_executes_unmatched_calls_live(recorded: Trajectory, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(SCRIPT.replace("select count(*) as n from customers", "select 1 as n"))
    outcome = Replayer.from_settings(Settings(data_dir=tmp_path), connect=False).replay(
        recorded, "live-model", script=str(other)
    )
    report = outcome.report
    assert report is not None
    kinds = {(d.kind, d.recorded_index) for d in report.divergences}
    query_index = next(s.index for s in recorded.steps if s.tool_name == "query")
    assert (DivergenceKind.OTHER_ARGUMENTS, query_index) in kinds
    assert report.metrics.final_answer_changed
    assert report.metrics.replayed_answer != report.metrics.recorded_answer

"""A user's graph whose node calls an MCP server directly (``trace_mcp_session``): the replay
serves the recorded ``call_tool`` result, or calls the real server in live-tools."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from replay import Replayer
from replay._capture import detail_from_spans
from replay._trajectory import trajectory_from_detail
from schemas.models import Trajectory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

GRAPH = f"""
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from mcp import Client, StdioServerParameters

from runner.instrumentation import trace_mcp_session

SQL = "SQL_TEXT"
SERVER = StdioServerParameters(
    command={sys.executable!r},
    args=["-m", "runner.mcp_servers.data_server"],
    env={{"PYTHONPATH": {str(REPO)!r}}},
)


async def ask_db(state: MessagesState) -> dict[str, Any]:
    async with Client(SERVER) as client:
        session = trace_mcp_session(client, server="data")
        result = await session.call_tool("query", {{"sql": SQL}})
    return {{"messages": [AIMessage(result.content[0].text)]}}


builder = StateGraph(MessagesState)
builder.add_node("ask_db", ask_db)
builder.add_edge(START, "ask_db")
graph = builder.compile()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("mcp-project")
    (root / "dbapp_same.py").write_text(
        GRAPH.replace("SQL_TEXT", "SELECT COUNT(*) AS n FROM customers")
    )
    (root / "dbapp_other.py").write_text(
        GRAPH.replace("SQL_TEXT", "SELECT COUNT(*) AS n FROM customers WHERE 1 = 0")
    )
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in ("dbapp_same", "dbapp_other"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def recording(project: Path) -> Trajectory:
    import dbapp_same  # type: ignore[import-not-found]
    from langchain_core.messages import HumanMessage

    from runner.instrumentation import instrument

    exporter = InMemorySpanExporter()
    graph = instrument(dbapp_same.graph, span_exporter=exporter, graph_ref="dbapp_same:graph")
    asyncio.run(graph.ainvoke({"messages": [HumanMessage("how many customers?")]}))
    return trajectory_from_detail(detail_from_spans(exporter.get_finished_spans()))


def test_recorded_mcp_results_are_served(recording: Trajectory, project: Path) -> None:
    assert [s.tool_name for s in recording.steps] == ["query"]
    assert recording.steps[0].result == "n\n400\n"
    outcome = Replayer().replay(recording, "recorded")
    assert outcome.error == "" and outcome.report is not None
    assert not outcome.report.diverged
    assert outcome.report.metrics.replayed_answer == "n\n400\n"


def test_other_mcp_arguments_diverge_per_mode(
    recording: Trajectory, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    stopped = Replayer().replay(recording, "recorded", graph="dbapp_other:graph")
    assert stopped.report is not None and stopped.report.first_divergence is not None
    assert stopped.report.first_divergence.kind.value == "unanswerable"
    live = Replayer().replay(recording, "live-tools", graph="dbapp_other:graph")
    assert live.report is not None and live.report.first_divergence is not None
    first = live.report.first_divergence
    assert (first.kind.value, first.recorded_index, first.replayed_index) == (
        "other_arguments",
        0,
        0,
    )
    assert live.report.metrics.replayed_answer == "n\n0\n"

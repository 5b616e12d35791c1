"""One run, one step count: what the CLI prints, the trace summary the UI shows, the trajectory.

The run calls a tool of a real MCP server over stdio that exports its own spans into the run's
trace (mcp's OpenTelemetry middleware makes a SERVER ``tools/call`` span carrying
``gen_ai.operation.name = execute_tool``). That span is the server side of the runner's
``execute_tool`` span, not a second tool call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runner.config import AgentConfig
from runner.mcp_bridge import McpToolExecutor, data_server
from runner.offline import OfflineModel, OfflineScript
from runner.run import RunResult, run_agent
from runner.runtime import LiveRuntime
from runner.tracing import flush_exports
from schemas import attributes as A
from schemas.models import TraceDetail

pytestmark = pytest.mark.integration

SCRIPT = OfflineScript.model_validate(
    {
        "name": "counter",
        "tasks": [
            {
                "name": "count",
                "match": "count",
                "steps": [
                    {"thought": "asking the data", "call": "query", "args": {"sql": "SELECT 1"}},
                    {"answer": "Counted."},
                ],
            }
        ],
    }
)


async def _run(endpoint: str) -> RunResult:
    config = AgentConfig(name="counter", model="offline:counter", seed=1)
    env = {"RETRACE_ENDPOINT": endpoint}
    async with McpToolExecutor([data_server()], span_env=env) as tools:
        return await run_agent(
            "count the rows",
            config,
            model=OfflineModel(SCRIPT),
            tools=tools,
            runtime=LiveRuntime(seed=1),
            endpoint=endpoint,
        )


def _wait_for_server_span(client: Any, trace_id: str) -> TraceDetail:
    """Until the runner's spans and the MCP server's tools/call span are stored."""
    deadline = time.monotonic() + 60
    while True:
        detail: TraceDetail = client.wait_for_trace(trace_id, min_spans=5, timeout=60)
        if any(s.name == "tools/call query" for s in detail.spans):
            return detail
        assert time.monotonic() < deadline, [s.name for s in detail.spans]
        time.sleep(0.2)


def test_cli_summary_and_trajectory_count_the_same_steps(collector_server: Any) -> None:
    result = asyncio.run(_run(collector_server.url))
    assert flush_exports()
    client = collector_server.client
    detail = _wait_for_server_span(client, result.trace_id)
    tool_spans = [s for s in detail.spans if s.name.startswith(f"{A.OP_EXECUTE_TOOL} ")]
    assert len(tool_spans) == 1

    [summary] = [t for t in client.list_traces().traces if t.trace_id == result.trace_id]
    assert summary.tool_calls == len(tool_spans)
    assert summary.llm_calls == 2
    assert detail.trace == summary
    trajectory = client.get_trajectory(result.trace_id)
    steps = summary.llm_calls + summary.tool_calls  # what the UI shows
    assert steps == result.steps == len(trajectory.steps) == 3

"""McpToolExecutor over real MCP servers on stdio: ours, a third-party one, and a probe."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from runner.mcp_bridge import McpServer, McpToolExecutor, data_server, langchain_tools
from runner.seams import ToolExecutor
from schemas.attributes import RETRACE_MCP_SERVER
from schemas.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# A minimal MCP server used to make a server crash or hang on purpose.
PROBE_SERVER = textwrap.dedent(
    '''
    import os, sys, time
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("probe")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text."""
        return text

    @server.tool()
    def crash() -> str:
        """Exit the whole server process at once."""
        os._exit(3)

    @server.tool()
    def hang(seconds: float) -> str:
        """Sleep, then answer."""
        time.sleep(seconds)
        return "woke up"

    server.run("stdio")
    '''
)


@pytest.fixture
def probe(tmp_path: Path) -> McpServer:
    script = tmp_path / "probe_server.py"
    script.write_text(PROBE_SERVER)
    return McpServer(name="probe", command=sys.executable, args=[str(script)])


def time_server() -> McpServer:
    return McpServer(
        name="time",
        command=sys.executable,
        args=["-m", "mcp_server_time", "--local-timezone", "UTC"],
    )


async def test_lists_and_calls_our_data_server_and_a_pypi_server() -> None:
    async with McpToolExecutor([data_server(), time_server()]) as tools:
        assert isinstance(tools, ToolExecutor)
        specs = {s.name: s for s in await tools.list_tools()}
        assert {"list_tables", "describe_table", "query"} <= set(specs)
        assert {"get_current_time", "convert_time"} <= set(specs)
        assert specs["query"].server == "data" and specs["convert_time"].server == "time"
        assert specs["query"].input_schema["required"] == ["sql"]

        result = await tools.call(
            "query", {"sql": "SELECT count(*) AS n FROM orders"}, step_index=1, call_id="c1"
        )
        assert not result.is_error
        assert result.structured["rows"] == [[2500]]
        assert result.metadata[RETRACE_MCP_SERVER] == "data"

        converted = await tools.call(
            "convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
            step_index=2,
            call_id="c2",
        )
        assert not converted.is_error, converted.content
        assert json.loads(converted.content)["target"]["datetime"].endswith("21:00:00+09:00")
        assert converted.metadata[RETRACE_MCP_SERVER] == "time"

        denied = await tools.call("query", {"sql": "DROP TABLE orders"}, step_index=3, call_id="c3")
        assert denied.is_error and "only SELECT" in denied.content

        bad_args = await tools.call("query", {}, step_index=4, call_id="c4")
        assert bad_args.is_error

        unknown = await tools.call("rm_rf", {}, step_index=5, call_id="c5")
        assert unknown.is_error and "unknown tool 'rm_rf'" in unknown.content


async def test_colliding_tool_names_are_prefixed() -> None:
    servers = [data_server(name="sales"), data_server(name="archive"), time_server()]
    async with McpToolExecutor(servers) as tools:
        names = {s.name for s in await tools.list_tools()}
        assert {"sales__query", "archive__query", "convert_time"} <= names
        assert "query" not in names
        assert tools.server_of("archive__query") == "archive"
        result = await tools.call(
            "archive__query", {"sql": "SELECT 1 AS one"}, step_index=0, call_id="x"
        )
        assert result.structured["rows"] == [[1]]
        assert result.metadata[RETRACE_MCP_SERVER] == "archive"


async def test_crashed_server_becomes_tool_errors_and_the_rest_goes_on(probe: McpServer) -> None:
    async with McpToolExecutor([probe, data_server()], call_timeout_s=10) as tools:
        assert (await tools.call("echo", {"text": "hi"}, step_index=0, call_id="a")).content == "hi"
        crashed = await tools.call("crash", {}, step_index=1, call_id="b")
        assert crashed.is_error
        assert "'probe' crashed or exited" in crashed.content
        again = await tools.call("echo", {"text": "hi"}, step_index=2, call_id="c")
        assert again.is_error and "not available" in again.content
        # Other servers are unaffected.
        ok = await tools.call("list_tables", {}, step_index=3, call_id="d")
        assert not ok.is_error


async def test_timeout_becomes_a_tool_error(probe: McpServer) -> None:
    async with McpToolExecutor([probe], call_timeout_s=0.5) as tools:
        slow = await tools.call("hang", {"seconds": 3}, step_index=0, call_id="a")
        assert slow.is_error and "timed out after 0.5s" in slow.content
        fast = await tools.call("hang", {"seconds": 0}, step_index=1, call_id="b")
        assert fast.content == "woke up"


async def test_server_that_cannot_start_is_a_config_error(tmp_path: Path) -> None:
    missing = McpServer(name="ghost", command=str(tmp_path / "no-such-binary"))
    with pytest.raises(ConfigError, match="cannot start MCP server 'ghost'"):
        async with McpToolExecutor([missing]):
            pass


def test_duplicate_server_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="repeated: data"):
        McpToolExecutor([data_server(), data_server()])


async def test_trace_context_crosses_the_mcp_hop(tmp_path: Path) -> None:
    """A span made inside the server (the SDK's tools/call span) carries the caller's trace id."""
    span_file = tmp_path / "spans.jsonl"
    server = McpServer(
        name="data",
        command=sys.executable,
        args=["-m", "runner.mcp_servers.data_server", "--span-file", str(span_file)],
    )
    tracer = TracerProvider().get_tracer("test")
    async with McpToolExecutor([server]) as tools:
        with tracer.start_as_current_span("execute_tool query") as span:
            await tools.call("query", {"sql": "SELECT 1"}, step_index=0, call_id="t")
            caller = span.get_span_context()
        outside = await tools.call("list_tables", {}, step_index=1, call_id="u")
        assert not outside.is_error
    spans = [json.loads(line) for line in span_file.read_text().splitlines()]
    (call_span,) = [s for s in spans if s["name"] == "tools/call query"]
    assert call_span["trace_id"] == trace.format_trace_id(caller.trace_id)
    assert call_span["kind"] == "SERVER"
    assert call_span["attributes"]["gen_ai.tool.name"] == "query"
    # A call made outside any trace leaves no server span: it would be a stray one-span trace.
    assert not [s for s in spans if s["name"] == "tools/call list_tables"]
    assert {s["trace_id"] for s in spans} == {call_span["trace_id"]}


def test_langchain_tool_format() -> None:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from runner.seams import ToolSpec

    spec = ToolSpec(
        name="query",
        description="Run SQL",
        input_schema={"type": "object", "properties": {"sql": {"type": "string"}}},
        server="data",
    )
    (tool,) = langchain_tools([spec])
    assert tool["function"]["name"] == "query"
    assert convert_to_openai_tool(tool)["function"]["parameters"]["properties"] == {
        "sql": {"type": "string"}
    }


@pytest.fixture
def http_data_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The data server on streamable HTTP (a real socket on a free local port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    span_file = tmp_path / "http-spans.jsonl"
    argv = [sys.executable, "-m", "runner.mcp_servers.data_server", "--http", str(port)]
    proc = subprocess.Popen(
        [*argv, "--span-file", str(span_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("data server did not start on HTTP") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", span_file
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_streamable_http_server(http_data_server: tuple[str, Path]) -> None:
    url, span_file = http_data_server
    tracer = TracerProvider().get_tracer("test")
    async with McpToolExecutor([McpServer(name="remote", url=url)]) as tools:
        assert "query" in {s.name for s in await tools.list_tools()}
        with tracer.start_as_current_span("execute_tool query") as span:
            result = await tools.call(
                "query", {"sql": "SELECT count(*) FROM products"}, step_index=0, call_id="h"
            )
            caller = span.get_span_context()
        assert result.structured["rows"] == [[50]]
        assert result.metadata[RETRACE_MCP_SERVER] == "remote"
    spans = [json.loads(line) for line in span_file.read_text().splitlines()]
    (call_span,) = [s for s in spans if s["name"] == "tools/call query"]
    assert call_span["trace_id"] == trace.format_trace_id(caller.trace_id)


async def test_server_spans_reach_the_collector_in_the_callers_trace(collector_server: Any) -> None:
    """With RETRACE_ENDPOINT the server exports its spans over OTLP into the run's trace."""
    tracer = TracerProvider().get_tracer("test")
    env = {"RETRACE_ENDPOINT": collector_server.url}
    async with McpToolExecutor([data_server()], span_env=env) as tools:
        with tracer.start_as_current_span("execute_tool query") as span:
            await tools.call("query", {"sql": "SELECT 1"}, step_index=0, call_id="otlp")
            trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    # Leaving the executor closes the server, which flushes its exporter.
    detail = await anyio.to_thread.run_sync(
        lambda: collector_server.client.wait_for_trace(trace_id, min_spans=1, timeout=30)
    )
    names = {s.name: s for s in detail.spans}
    assert "tools/call query" in names
    assert names["tools/call query"].service_name == "retrace-data"

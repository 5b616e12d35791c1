"""Every MCP server of a run starts in its own sandbox: real ``retrace run`` subprocesses, a real
collector, real gVisor (``runsc``) and bubblewrap; spans checked in the collector's store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.config import parse_config
from schemas import attributes as A
from schemas.errors import ConfigError
from tests.fixtures.collector import launch_collector

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("runsc") is None or os.geteuid() != 0, reason="needs runsc"),
]
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "runner" / "demo"
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"

MIXED_SCRIPT = """
name: clock
tasks:
  - name: time
    match: time
    steps:
      - call: time__get_current_time
        args: {timezone: Europe/Paris}
        on_error: stop
      - call: plain__get_current_time
        args: {timezone: UTC}
        on_error: stop
      - call: query
        args: {sql: SELECT 1 AS one}
        on_error: stop
      - answer: "It is {{ results.0.datetime }} in Paris."
"""


def _cli(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "retrace", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=data_dir.parent,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _trace(client: Any, output: str) -> Any:
    match = re.search(r"^trace:\s+([0-9a-f]{32})", output, re.M)
    assert match, output
    deadline = time.monotonic() + 30
    while True:
        detail = client.wait_for_trace(match.group(1))
        roots = [s for s in detail.spans if s.parent_span_id == ""]
        status = roots[0].attributes.get(A.RETRACE_RUN_STATUS) if roots else None
        if status not in (None, "running"):
            return detail
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def _root(detail: Any) -> Any:
    return next(s for s in detail.spans if s.parent_span_id == "")


def _tool_spans(detail: Any) -> list[Any]:
    return [s for s in detail.spans if s.name.startswith("execute_tool ")]


def test_demo_task_runs_every_tool_in_gvisor(collector: Any, tmp_path: Path) -> None:
    out = _cli(
        "run",
        "Compute the mean and standard deviation of monthly revenue.",
        "--agent",
        str(DEMO / "agent.yaml"),
        "--endpoint",
        collector.url,
        data_dir=tmp_path / "d",
    ).stdout
    assert "Over 18 months" in out, out
    detail = _trace(collector.client, out)
    root = _root(detail)
    assert root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    # the recorded config says which backend ran (it was null when the config named none)
    assert json.loads(root.attributes[A.RETRACE_AGENT_CONFIG])["sandbox"]["backend"] == "gvisor"
    servers = json.loads(root.attributes[A.RETRACE_SANDBOX_SERVERS])
    assert servers == {"data": "gvisor", "sandbox": "gvisor"}

    tools = _tool_spans(detail)
    assert {s.name for s in tools} == {"execute_tool query", "execute_tool run_python"}
    assert all(s.attributes[A.RETRACE_SANDBOX_BACKEND] == "gvisor" for s in tools)
    query = next(s for s in tools if s.name == "execute_tool query")
    policy = json.loads(query.attributes[A.RETRACE_SANDBOX_POLICY])
    assert policy["backend"] == "gvisor"
    assert policy["network"]["allow"] == []  # nothing but the collector the runner adds
    assert policy["network"]["collector"] == [collector.url.split("//")[1]]
    assert policy["workspace"] is None  # the data server does not see the workspace
    assert policy["env"] == ["PYTHONPATH", "RETRACE_ENDPOINT", "RETRACE_PROJECT"]
    assert float(query.attributes[A.RETRACE_SANDBOX_CPU_MS]) > 0
    assert int(query.attributes[A.RETRACE_SANDBOX_MEMORY_BYTES]) > 0
    assert query.attributes[A.GEN_AI_TOOL_CALL_RESULT].startswith("month,revenue")
    # the data server (inside gVisor) exported its own span into the run's trace, a child of
    # a span of this run: the W3C context crossed the sandbox in the request's _meta
    ids = {s.span_id for s in detail.spans}
    server_spans = [s for s in detail.spans if s.service_name == "retrace-data"]
    assert server_spans, [s.service_name for s in detail.spans]
    assert all(s.parent_span_id in ids for s in server_spans)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One collector for the module's runs."""
    running = launch_collector(tmp_path_factory.mktemp("collector") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory, collector: Any) -> Any:
    """One ``retrace run --backend bwrap`` whose config has mcp-server-time in gVisor (its own
    ``sandbox:``), the same server as a host process (``sandbox: none`` + ``insecure: true``)
    and the data server with no ``sandbox:`` of its own (so the run's backend, bwrap)."""
    tmp = tmp_path_factory.mktemp("mixed")
    (tmp / "clock.yaml").write_text(MIXED_SCRIPT)
    time_server = f"command: {TIME_SERVER}, args: [--local-timezone, UTC]"
    agent = tmp / "agent.yaml"
    agent.write_text(
        "name: mixed\nmodel: offline:clock\noffline_script: clock.yaml\n"
        "mcp_servers:\n"
        f"  - {{name: time, {time_server}, sandbox: gvisor}}\n"
        f"  - {{name: plain, {time_server}, sandbox: none, insecure: true}}\n"
        '  - {name: data, command: "{python}", args: ["-m", "runner.mcp_servers.data_server"]}\n'
    )
    out = _cli(
        "run",
        "What time is it?",
        "--agent",
        str(agent),
        "--backend",
        "bwrap",
        "--endpoint",
        collector.url,
        data_dir=tmp / "d",
    ).stdout
    assert "answer: It is 20" in out, out
    return _trace(collector.client, out)


def _step(detail: Any, name: str) -> Any:
    (span,) = [s for s in _tool_spans(detail) if s.name == f"execute_tool {name}"]
    return span


def test_mcp_server_time_from_pypi_runs_in_gvisor(mixed_run: Any) -> None:
    root = _root(mixed_run)
    span = _step(mixed_run, "time__get_current_time")
    assert span.trace_id == root.trace_id and span.parent_span_id
    assert span.attributes[A.RETRACE_MCP_SERVER] == "time"
    assert span.attributes[A.RETRACE_SANDBOX_BACKEND] == "gvisor"
    assert span.attributes[A.RETRACE_TOOL_ERROR] == "false"
    policy = json.loads(span.attributes[A.RETRACE_SANDBOX_POLICY])
    assert policy["network"] == "none" and policy["env"] == []  # nothing of ours reaches it
    assert policy["workspace"] is None and policy["mounts"] == []
    assert "Europe/Paris" in span.attributes[A.GEN_AI_TOOL_CALL_RESULT]
    assert float(span.attributes[A.RETRACE_SANDBOX_CPU_MS]) > 0


def test_backend_flag_is_recorded_and_applies_to_servers(mixed_run: Any) -> None:
    root = _root(mixed_run)
    assert json.loads(root.attributes[A.RETRACE_AGENT_CONFIG])["sandbox"]["backend"] == "bwrap"
    servers = json.loads(root.attributes[A.RETRACE_SANDBOX_SERVERS])
    assert servers == {"time": "gvisor", "plain": "process", "data": "bwrap"}
    query = _step(mixed_run, "query")
    assert query.attributes[A.RETRACE_SANDBOX_BACKEND] == "bwrap"
    assert query.attributes[A.GEN_AI_TOOL_CALL_RESULT].startswith("one\n1")


def test_sandbox_none_is_recorded_as_insecure(mixed_run: Any) -> None:
    span = _step(mixed_run, "plain__get_current_time")
    assert span.attributes[A.RETRACE_SANDBOX_BACKEND] == "process"
    assert span.attributes[A.RETRACE_SANDBOX_INSECURE] in (True, "true")
    policy = json.loads(span.attributes[A.RETRACE_SANDBOX_POLICY])
    assert policy == {"backend": "process", "insecure": True}


def test_sandbox_none_is_refused_without_insecure(collector: Any, tmp_path: Path) -> None:
    server = {"name": "data", "command": "{python}", "args": ["-m", "x"], "sandbox": "none"}
    with pytest.raises(ConfigError, match=r"'sandbox: none'.*insecure: true"):
        parse_config({"mcp_servers": [server]})
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "name: plain\nmodel: offline:data-scientist\n"
        "mcp_servers:\n"
        '  - {name: data, command: "{python}", args: ["-m", "runner.mcp_servers.data_server"],'
        " sandbox: none}\n"
    )
    task = "Who are our top 5 customers by spend?"
    args = ["run", task, "--agent", str(agent), "--endpoint", collector.url]
    refused = _cli(*args, data_dir=tmp_path / "d", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "insecure: true" in refused.stderr and "Traceback" not in refused.stderr


NODE_SERVER = r"""
// A minimal MCP stdio server in plain Node (no SDK): initialize, tools/list, tools/call.
const readline = require("readline");
const os = require("os");
const send = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const req = JSON.parse(line);
  if (req.id === undefined) return;
  let result;
  if (req.method === "initialize") {
    result = { protocolVersion: req.params.protocolVersion, capabilities: { tools: {} },
               serverInfo: { name: "node-where", version: "1.0.0" } };
  } else if (req.method === "tools/list") {
    result = { tools: [{ name: "where", description: "where it runs",
                         inputSchema: { type: "object", properties: {} } }] };
  } else if (req.method === "tools/call") {
    const text = JSON.stringify({ hostname: os.hostname(), env: Object.keys(process.env).sort() });
    result = { content: [{ type: "text", text }], isError: false };
  } else {
    return send({ jsonrpc: "2.0", id: req.id, error: { code: -32601, message: "unknown" } });
  }
  send({ jsonrpc: "2.0", id: req.id, result });
});
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_node_server_runs_in_gvisor(tmp_path: Path) -> None:
    import anyio

    from runner.assembly import live_tools
    from schemas.settings import Settings

    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "server.js").write_text(NODE_SERVER)
    server = {
        "name": "node",
        "command": "node",
        "args": ["/srv/server.js"],
        "mounts": [{"host": str(tmp_path / "srv"), "container": "/srv"}],
    }
    config = parse_config({"mcp_servers": [server]})

    async def call() -> tuple[dict[str, str], Any]:
        settings = Settings(endpoint="")
        async with live_tools(config, settings, tmp_path / "ws", None) as tools:
            result = await tools.call("where", {}, step_index=0, call_id="c1")
            return tools.placements(), result

    placements, result = anyio.run(call)
    assert placements == {"node": "gvisor"}
    assert not result.is_error, result.content
    assert json.loads(result.content) == {"hostname": "sandbox", "env": ["HOME", "LANG", "PATH"]}
    assert result.metadata[A.RETRACE_SANDBOX_BACKEND] == "gvisor"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_bwrap_server_reaches_only_its_allowed_port(tmp_path: Path) -> None:
    import anyio

    from runner.assembly import live_tools
    from schemas.settings import Settings
    from tests.runner.test_mcp_sandbox_escape import HOSTILE_SERVER, _listener

    allowed, port = _listener(b"allowed-port")
    other, other_port = _listener(b"other-port")
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "hostile.py").write_text(HOSTILE_SERVER)
    server = {
        "name": "hostile",
        "command": "{python}",
        "args": ["/srv/hostile.py"],
        "sandbox": "bwrap",
        "mounts": [{"host": str(tmp_path / "srv"), "container": "/srv"}],
        "network": {"allow": [f"localhost:{port}"]},
    }
    config = parse_config({"mcp_servers": [server]})

    async def calls() -> list[Any]:
        async with live_tools(config, Settings(endpoint=""), tmp_path / "ws", None) as tools:
            return [
                await tools.call("connect", {"port": p}, step_index=i, call_id=str(i))
                for i, p in enumerate((port, other_port))
            ]

    try:
        reached, refused = anyio.run(calls)
    finally:
        allowed.close()
        other.close()
    assert reached.content == "ok: allowed-port", reached.content
    assert refused.content.startswith("failed: ConnectionRefusedError"), refused.content
    assert reached.metadata[A.RETRACE_SANDBOX_BACKEND] == "bwrap"
    assert json.loads(reached.metadata[A.RETRACE_SANDBOX_POLICY])["network"] == {
        "allow": [f"localhost:{port}"]
    }

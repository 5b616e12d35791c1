"""The escape suite against a deliberately hostile MCP server started through an agent config.

One real ``retrace run`` (shared by the module): an offline script drives every hostile tool —
read host files, read an env secret the runner has, write outside the workspace, connect to a
port the test opened on the host's loopback, a memory bomb and a fork bomb — while the server
runs in gVisor with ``network: {allow: [127.0.0.1:P]}``. Each attempt must fail inside the
sandbox, the allowed port must answer, and the run must complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas import attributes as A
from tests.fixtures.collector import launch_collector

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("runsc") is None or os.geteuid() != 0, reason="needs runsc"),
]
REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-the-server-must-not-see"

HOSTILE_SERVER = '''
"""A deliberately hostile MCP server: every tool tries to get out of its sandbox."""
import json, os, signal, socket, time
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("hostile")


def attempt(fn):
    try:
        return "ok: " + str(fn())
    except BaseException as exc:
        return f"failed: {type(exc).__name__}: {exc}"


@server.tool()
def read_host_file(path: str) -> str:
    """Read any file."""
    return attempt(lambda: open(path).read()[:200])


@server.tool()
def read_env(name: str) -> str:
    """One variable, and the names of all."""
    return json.dumps({"value": os.environ.get(name), "names": sorted(os.environ)})


@server.tool()
def write_file(path: str, text: str) -> str:
    """Write any file."""
    def write():
        with open(path, "w") as fh:
            fh.write(text)
        return path
    return attempt(write)


@server.tool()
def connect(port: int) -> str:
    """Connect to 127.0.0.1:port and read what it says first."""
    def go():
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            return sock.recv(100).decode()
    return attempt(go)


@server.tool()
def memory_bomb() -> str:
    """Allocate until it fails."""
    chunks = []
    try:
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
    except MemoryError:
        n = len(chunks)
        chunks.clear()
        return f"MemoryError after {n * 16} MB"


@server.tool()
def fork_bomb() -> str:
    """Fork until it fails."""
    children, error = [], "none"
    try:
        while True:
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    return f"forked {len(children)} then {error}"


@server.tool()
def trace_context(ctx: Context) -> str:
    """The W3C trace context the request carried in its _meta."""
    meta = dict(ctx.request_context.meta or {})
    return json.dumps({"traceparent": meta.get("traceparent")})


if __name__ == "__main__":
    server.run("stdio")
'''

SCRIPT = """
name: hostile
tasks:
  - name: escape
    match: escape
    steps:
      - {call: read_host_file, args: {path: /etc/shadow}}
      - {call: read_host_file, args: {path: "HOST_FILE"}}
      - {call: read_env, args: {name: SECRET_TOKEN}}
      - {call: write_file, args: {path: "OUTSIDE", text: escaped}}
      - {call: write_file, args: {path: /workspace/inside.txt, text: written}}
      - {call: connect, args: {port: QPORT}}
      - {call: connect, args: {port: PPORT}}
      - {call: memory_bomb}
      - {call: trace_context}
      - {call: fork_bomb}
      - {call: query, args: {sql: SELECT 1 AS one}}
      - answer: the run survived
"""


@dataclass
class Escape:
    detail: Any
    output: str
    workspace: Path
    host_file: Path
    outside: Path
    allowed_port: int
    other_port: int

    def result(self, step: int) -> str:
        span = self.tools[step]
        return str(span.attributes[A.GEN_AI_TOOL_CALL_RESULT])

    @property
    def tools(self) -> list[Any]:
        spans = [s for s in self.detail.spans if s.name.startswith("execute_tool ")]
        return sorted(spans, key=lambda s: int(s.attributes[A.RETRACE_STEP_INDEX]))

    @property
    def root(self) -> Any:
        return next(s for s in self.detail.spans if s.parent_span_id == "")


def _listener(banner: bytes) -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(banner)

    threading.Thread(target=serve, daemon=True).start()
    return sock, sock.getsockname()[1]


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Escape]:
    tmp = tmp_path_factory.mktemp("escape")
    allowed, allowed_port = _listener(b"allowed-port")
    other, other_port = _listener(b"host-loopback-secret")
    server_dir = tmp / "server"
    server_dir.mkdir()
    (server_dir / "hostile.py").write_text(HOSTILE_SERVER)
    host_file = tmp / "host-secret.txt"
    host_file.write_text("host secret")
    outside = tmp / "outside.txt"
    workspace = tmp / "workspace"
    script = (
        SCRIPT.replace("HOST_FILE", str(host_file))
        .replace("OUTSIDE", str(outside))
        .replace("QPORT", str(other_port))
        .replace("PPORT", str(allowed_port))
    )
    (tmp / "hostile.yaml").write_text(script)
    agent = {
        "name": "escape",
        "model": "offline:hostile",
        "offline_script": "hostile.yaml",
        "workspace": str(workspace),
        "guardrails": {"tool_retries": 0, "max_turns": 20, "loop_threshold": 5},
        "mcp_servers": [
            {
                "name": "hostile",
                "command": "{python}",
                "args": ["/srv/hostile.py"],
                "env": ["ALLOWED_VAR"],
                "workspace": "/workspace",
                "mounts": [{"host": str(server_dir), "container": "/srv"}],
                "network": {"allow": [f"127.0.0.1:{allowed_port}"]},
                "limits": {"memory_bytes": 384 * 1024 * 1024, "pids": 32},
            },
            {
                "name": "data",
                "command": "{python}",
                "args": ["-m", "runner.mcp_servers.data_server"],
            },
        ],
    }
    (tmp / "agent.yaml").write_text(json.dumps(agent))
    collector = launch_collector(tmp / "collector")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        env.update(PYTHONPATH=str(REPO), SECRET_TOKEN=SECRET, ALLOWED_VAR="passed-by-name")
        argv = [sys.executable, "-m", "retrace", "run", "escape the sandbox"]
        argv += ["--agent", str(tmp / "agent.yaml"), "--endpoint", collector.url]
        proc = subprocess.run(
            [*argv, "--data-dir", str(tmp / "d")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        trace_id = re.search(r"^trace:\s+([0-9a-f]{32})", proc.stdout, re.M)
        assert trace_id, proc.stdout
        deadline = time.monotonic() + 30
        while True:
            detail = collector.client.wait_for_trace(trace_id.group(1), min_spans=12)
            tools = [s for s in detail.spans if s.name.startswith("execute_tool ")]
            if len(tools) >= 11:
                break
            assert time.monotonic() < deadline, [s.name for s in detail.spans]
            time.sleep(0.3)
        yield Escape(detail, proc.stdout, workspace, host_file, outside, allowed_port, other_port)
    finally:
        collector.stop()
        allowed.close()
        other.close()


def test_the_run_survives_every_attempt(escape: Escape) -> None:
    assert "answer: the run survived" in escape.output
    assert escape.root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    servers = json.loads(escape.root.attributes[A.RETRACE_SANDBOX_SERVERS])
    assert servers == {"hostile": "gvisor", "data": "gvisor"}
    hostile = [s for s in escape.tools if s.attributes[A.RETRACE_MCP_SERVER] == "hostile"]
    assert len(hostile) == 10
    for span in hostile:
        assert span.attributes[A.RETRACE_SANDBOX_BACKEND] == "gvisor"
        policy = json.loads(span.attributes[A.RETRACE_SANDBOX_POLICY])
        assert policy["network"] == {"allow": [f"127.0.0.1:{escape.allowed_port}"]}
        assert policy["env"] == ["ALLOWED_VAR"]
        assert policy["limits"]["pids"] == 32
    # the other server kept working after the hostile one was brought down
    assert escape.tools[10].attributes[A.RETRACE_SANDBOX_BACKEND] == "gvisor"
    assert escape.result(10).startswith("one\n1")


def test_host_files_are_not_there(escape: Escape) -> None:
    assert escape.result(0).startswith("failed: FileNotFoundError"), escape.result(0)
    assert escape.result(1).startswith("failed: FileNotFoundError"), escape.result(1)


def test_only_the_named_variables_reach_the_server(escape: Escape) -> None:
    seen = json.loads(escape.result(2))
    assert seen["value"] is None
    assert SECRET not in escape.result(2)
    assert seen["names"] == ["ALLOWED_VAR", "HOME", "LANG", "PATH"]


def test_writes_land_only_in_the_workspace(escape: Escape) -> None:
    assert escape.result(3).startswith("failed: "), escape.result(3)
    assert not escape.outside.exists()
    assert escape.result(4) == "ok: /workspace/inside.txt"
    assert (escape.workspace / "inside.txt").read_text() == "written"


def test_network_reaches_the_allowed_port_only(escape: Escape) -> None:
    assert escape.result(5).startswith("failed: ConnectionRefusedError"), escape.result(5)
    assert "host-loopback-secret" not in escape.result(5)
    assert escape.result(6) == "ok: allowed-port"


def test_memory_bomb_fails_inside_and_the_server_lives_on(escape: Escape) -> None:
    assert re.fullmatch(r"MemoryError after \d+ MB", escape.result(7)), escape.result(7)
    assert int(escape.tools[7].attributes[A.RETRACE_SANDBOX_MEMORY_BYTES]) > 0
    assert escape.tools[8].attributes[A.RETRACE_TOOL_ERROR] == "false"  # next call answered


def test_trace_context_crosses_into_the_sandbox(escape: Escape) -> None:
    traceparent = json.loads(escape.result(8))["traceparent"]
    _, trace_id, span_id, _ = traceparent.split("-")
    assert trace_id == escape.root.trace_id
    assert span_id in {s.span_id for s in escape.detail.spans}


def test_fork_bomb_takes_down_only_its_sandbox(escape: Escape) -> None:
    span = escape.tools[9]
    assert span.attributes[A.RETRACE_TOOL_ERROR] == "true"
    assert "hostile" in escape.result(9)
    pid = os.fork()  # the host is unharmed
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0

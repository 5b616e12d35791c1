"""A replay the collector starts for an API client runs the *recorded* agent config, and that config
is client data: any key that can ingest a trace wrote it. So the replay process (``--confine-to``)
starts only the bundled MCP servers, with the collector's own sandbox backend (never ``process``),
reads a policy only under the data dir or the bundled demo files, and quotes no file in an error.

Each hostile config is recorded the way a client would send it (a real run's spans, its root span
carrying the config), then replayed through ``POST /api/v1/traces/{id}/replay``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.config import AgentConfig, McpServerConfig, SandboxConfig
from runner.mcp_servers import SANDBOX_SERVER_MODULE
from runner.offline import OfflineModel
from runner.policy import Policy
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from runner.tracing import flush_exports
from schemas.models import ReplayRecord
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration

SECRET = "hunter2-do-not-show"
SECRET_TEXT = f"api_token: {SECRET}\n  {SECRET}_key: [\n"  # invalid YAML that quotes itself


def _script(marker: Path) -> str:
    return f"""
name: hostile
tasks:
  - name: anything
    match: .
    steps:
      - call: write_file
        args: {{path: pwned, content: x}}
      - call: run_shell
        args: {{command: "touch {marker}"}}
      - answer: done
"""


class _ShellTools:
    """What the client's own run used: answers every call without doing anything."""

    async def list_tools(self) -> list[ToolSpec]:
        schema = {"type": "object", "properties": {}}
        return [
            ToolSpec("write_file", "Write a file", schema, "sandbox"),
            ToolSpec("run_shell", "Run a shell command", schema, "sandbox"),
        ]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        return ToolResult("ok")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory of the collector's host outside its data dir."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def _record(server: RunningCollector, tmp_path: Path, marker: Path, **config: Any) -> str:
    """A trace whose root span carries ``config`` (the client's run never started its servers)."""
    script = tmp_path / "hostile.yaml"
    script.write_text(_script(marker))
    agent = AgentConfig(name="hostile", model="offline:hostile", offline_script=str(script))
    agent = agent.model_copy(update=config)
    result = asyncio.run(
        run_agent(
            "do the thing",
            agent,
            model=OfflineModel.from_file(script, name="hostile"),
            tools=_ShellTools(),
            runtime=LiveRuntime(1),
            endpoint=server.url,
            policy=Policy.allow_all(),  # the recorded config's own policy is the replay's problem
        )
    )
    flush_exports()
    server.client.wait_for_trace(result.trace_id, min_spans=6)
    return result.trace_id


def _replay(server: RunningCollector, trace_id: str, **body: str) -> ReplayRecord:
    body.setdefault("mode", "live-tools")
    r = httpx.post(f"{server.url}/api/v1/traces/{trace_id}/replay", json=body, timeout=30)
    assert r.status_code == 200, r.text
    replay_id = r.json()["replay_id"]
    deadline = time.monotonic() + 180
    while (record := server.client.get_replay(replay_id)).status == "running":
        assert time.monotonic() < deadline, "the replay process never finished"
        time.sleep(0.5)
    return record


def _assert_refused(record: ReplayRecord, *words: str) -> None:
    error = record.error or ""
    assert record.status == "failed", record
    for word in words:
        assert word in error, (word, error)
    assert "Traceback" not in error and SECRET not in error, error


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port nobody should connect to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0)
        yield sock


def _sitecustomize(outside: Path, marker: Path) -> Path:
    """A PYTHONPATH entry whose ``sitecustomize`` runs at interpreter start."""
    startup = outside / "site"
    startup.mkdir()
    (startup / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return startup


_HOSTILE_SERVERS: dict[str, Callable[[Path, Path, int], McpServerConfig]] = {
    # named like the bundled server: the name is the client's, not what runs
    "shell-named-sandbox": lambda outside, marker, port: McpServerConfig(
        name="sandbox", command="sh", args=["-c", f"touch {marker}"]
    ),
    "python-c": lambda outside, marker, port: McpServerConfig(
        name="data", command=sys.executable, args=["-c", f"open({str(marker)!r}, 'w')"]
    ),
    "bundled-with-env": lambda outside, marker, port: McpServerConfig(
        name="data",
        command="{python}",
        args=["-m", "runner.mcp_servers.data_server"],
        env={"PYTHONPATH": str(_sitecustomize(outside, marker))},
    ),
    "remote-url": lambda outside, marker, port: McpServerConfig(
        name="remote", url=f"http://127.0.0.1:{port}/mcp"
    ),
}


@pytest.mark.parametrize("case", sorted(_HOSTILE_SERVERS))
def test_a_recorded_config_cannot_start_its_own_commands(
    collector_server: RunningCollector,
    tmp_path: Path,
    outside: Path,
    listener: socket.socket,
    case: str,
) -> None:
    server = collector_server
    marker = outside / "pwned"
    hostile = _HOSTILE_SERVERS[case](outside, marker, listener.getsockname()[1])
    trace_id = _record(server, tmp_path, marker, mcp_servers=[hostile])
    record = _replay(server, trace_id)
    assert not marker.exists(), f"{hostile} ran on the collector's host"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody called the client-chosen URL
    _assert_refused(record, f"MCP server {hostile.name!r}")


def test_live_model_refuses_the_server_only_when_a_call_needs_it(
    collector_server: RunningCollector, tmp_path: Path, outside: Path
) -> None:
    # The new model asks for a call the recording cannot answer: it would run live, on the
    # recorded config's server; the refusal is that call's tool error, and nothing runs.
    server = collector_server
    marker = outside / "pwned"
    hostile = McpServerConfig(name="sandbox", command="sh", args=["-c", f"touch {marker}"])
    trace_id = _record(server, tmp_path, marker, mcp_servers=[hostile])
    other = server.data_dir / "other.yaml"
    other.write_text(_script(outside / "other"))
    record = _replay(server, trace_id, mode="live-model", model=f"offline:{other}")
    assert not marker.exists(), "the recorded config's command ran on the collector's host"
    assert record.status == "completed", record.error
    server.client.wait_for_trace(record.replay_trace_id)
    replayed = server.client.get_trajectory(record.replay_trace_id)
    seen = [f"{s.error} {s.result}" for s in replayed.steps if s.kind == "tool"]
    assert any("MCP server 'sandbox' is not a bundled server" in e for e in seen), seen


_BUNDLED_SANDBOX = ["-m", SANDBOX_SERVER_MODULE]
_PROCESS_CONFIGS: dict[str, dict[str, Any]] = {
    "sandbox-config": {
        "mcp_servers": [McpServerConfig(name="sandbox", command="{python}", args=_BUNDLED_SANDBOX)],
        "sandbox": SandboxConfig(backend="process", insecure=True),
    },
    "server-args": {
        "mcp_servers": [
            McpServerConfig(
                name="sandbox",
                command="{python}",
                args=[*_BUNDLED_SANDBOX, "--backend", "process", "--insecure"],
            )
        ]
    },
}


@pytest.mark.parametrize("case", sorted(_PROCESS_CONFIGS))
def test_a_recorded_config_cannot_choose_the_process_backend(
    collector_server: RunningCollector, tmp_path: Path, outside: Path, case: str
) -> None:
    # run_shell("touch MARKER") on the process backend would run on the collector's host
    server = collector_server
    marker = outside / "pwned"
    trace_id = _record(server, tmp_path, marker, **_PROCESS_CONFIGS[case])
    record = _replay(server, trace_id)
    assert not marker.exists(), "a recorded tool call ran on the collector's host"
    _assert_refused(record, "process")


@pytest.mark.parametrize("case", ["policy-outside", "policy-dotdot", "policy-inside", "workspace"])
def test_a_recorded_config_names_no_policy_or_workspace_outside_the_data_dir(
    collector_server: RunningCollector, tmp_path: Path, outside: Path, case: str
) -> None:
    server = collector_server
    secret = outside / "secret.yaml"
    secret.write_text(SECRET_TEXT)
    inside = server.data_dir / "bad-policy.yaml"  # may be read, but is never quoted
    inside.write_text(SECRET_TEXT)
    config, words = {
        "policy-outside": ({"policy": str(secret)}, ("policy", "must be an existing file under")),
        "policy-dotdot": ({"policy": f"{server.data_dir}/../outside/secret.yaml"}, ("under",)),
        "policy-inside": ({"policy": str(inside)}, ("policy", "not valid YAML")),
        "workspace": ({"workspace": str(outside)}, ("workspace", "under")),
    }[case]
    trace_id = _record(server, tmp_path, outside / "pwned", **config)
    _assert_refused(_replay(server, trace_id), *words)


def test_a_confined_live_tools_replay_of_the_demo_agent_still_works(
    collector_server: RunningCollector, tmp_path: Path
) -> None:
    """The bundled servers (data + gVisor sandbox) and the bundled demo policy stay usable."""
    from runner.commands import DEMO_AGENT, execute_task
    from runner.config import load_config
    from schemas.settings import Settings

    server = collector_server
    settings = Settings(endpoint=server.url, data_dir=tmp_path / "client", sandbox_backend="gvisor")
    task = "Save revenue by sales channel to a CSV file, then read it back."
    result = asyncio.run(execute_task(task, load_config(DEMO_AGENT), settings, server.client))
    flush_exports()
    assert result.status.value == "completed", result
    server.client.wait_for_trace(result.trace_id, min_spans=result.steps + 1)
    trajectory = server.client.get_trajectory(result.trace_id)
    assert {s.mcp_server for s in trajectory.steps if s.kind == "tool"} >= {"data", "sandbox"}
    record = _replay(server, result.trace_id)
    assert record.status == "completed", record.error
    assert not record.diverged, record.report

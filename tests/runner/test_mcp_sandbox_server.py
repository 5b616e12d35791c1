"""The sandbox MCP server on the real gVisor backend, driven through McpToolExecutor."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from runner.mcp_bridge import McpServer, McpToolExecutor, sandbox_server
from runner.sandbox import WorkspaceSnapshots
from schemas.attributes import (
    RETRACE_MCP_SERVER,
    RETRACE_SANDBOX_BACKEND,
    RETRACE_SANDBOX_ERROR,
    RETRACE_SANDBOX_EXIT_CODE,
    RETRACE_SANDBOX_INSECURE,
    RETRACE_SANDBOX_LIMITS,
    RETRACE_SANDBOX_TIMED_OUT,
    RETRACE_WORKSPACE_AFTER,
    RETRACE_WORKSPACE_BEFORE,
)
from schemas.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LIMITS = {"wall_timeout_s": 5, "max_output_bytes": 16384}


def _server(workspace: Path, **extra: object) -> McpServer:
    return sandbox_server(workspace, backend="gvisor", limits={**LIMITS, **extra})  # type: ignore[dict-item]


async def test_code_and_files_run_in_gvisor_with_stats(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    async with McpToolExecutor([_server(workspace)]) as tools:
        assert {s.name for s in await tools.list_tools()} == {
            "run_python",
            "run_shell",
            "read_file",
            "write_file",
            "list_files",
        }
        ran = await tools.call(
            "run_python",
            {"code": "import os; print(os.getcwd()); print(6 * 7)"},
            step_index=0,
            call_id="a",
        )
        assert not ran.is_error, ran.content
        assert ran.content.splitlines() == ["/workspace", "42"]
        assert ran.structured["exit_code"] == 0
        meta = ran.metadata
        assert meta[RETRACE_MCP_SERVER] == "sandbox"
        assert meta[RETRACE_SANDBOX_BACKEND] == "gvisor"
        assert meta[RETRACE_SANDBOX_EXIT_CODE] == 0
        assert json.loads(meta[RETRACE_SANDBOX_LIMITS])["wall_timeout_s"] == 5

        wrote = await tools.call(
            "write_file",
            {"path": "out/totals.csv", "content": "status,n\ndelivered,3\n"},
            step_index=1,
            call_id="b",
        )
        assert not wrote.is_error, wrote.content
        assert (workspace / "out" / "totals.csv").read_text() == "status,n\ndelivered,3\n"

        # A later step sees the file: through code and through read_file.
        summed = await tools.call(
            "run_shell", {"command": "tail -n 1 out/totals.csv"}, step_index=2, call_id="c"
        )
        assert summed.content.strip() == "delivered,3"
        read = await tools.call("read_file", {"path": "out/totals.csv"}, step_index=3, call_id="d")
        assert read.content == "status,n\ndelivered,3\n"
        listed = await tools.call("list_files", {}, step_index=4, call_id="e")
        assert "out/totals.csv (21 bytes)" in listed.content


async def test_escapes_and_failures_are_tool_errors(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (tmp_path / "secret.txt").write_text("host secret")
    async with McpToolExecutor([_server(workspace, wall_timeout_s=2)]) as tools:
        traversal = await tools.call(
            "read_file", {"path": "../secret.txt"}, step_index=0, call_id="a"
        )
        assert traversal.is_error and "outside the workspace" in traversal.content

        absolute = await tools.call(
            "write_file", {"path": "/etc/x", "content": "x"}, step_index=1, call_id="b"
        )
        assert absolute.is_error and "outside the workspace" in absolute.content

        # A symlink planted by earlier code must not lead file tools out of the workspace.
        planted = await tools.call(
            "run_shell",
            {"command": f"ln -s {tmp_path} escape && ln -s /etc etc_link && echo ok"},
            step_index=2,
            call_id="c",
        )
        assert planted.content.strip() == "ok", planted.content
        for path in ("escape/secret.txt", "etc_link/hostname"):
            via_link = await tools.call("read_file", {"path": path}, step_index=3, call_id="d")
            assert via_link.is_error and "outside the workspace" in via_link.content
            assert "host secret" not in via_link.content
        write_link = await tools.call(
            "write_file", {"path": "escape/pwned.txt", "content": "x"}, step_index=4, call_id="e"
        )
        assert write_link.is_error
        assert not (tmp_path / "pwned.txt").exists()

        failed = await tools.call(
            "run_python", {"code": "raise SystemExit(3)"}, step_index=5, call_id="f"
        )
        assert failed.is_error and "[exit code 3]" in failed.content
        assert failed.structured["exit_code"] == 3

        spin = await tools.call(
            "run_python", {"code": "while True: pass"}, step_index=6, call_id="g"
        )
        assert spin.is_error and "timed out" in spin.content
        assert spin.metadata[RETRACE_SANDBOX_TIMED_OUT] is True

        missing = await tools.call("read_file", {"path": "nope.txt"}, step_index=7, call_id="h")
        assert missing.is_error and "no such file" in missing.content

        # After all that the server still answers.
        alive = await tools.call("run_shell", {"command": "echo alive"}, step_index=8, call_id="i")
        assert alive.content.strip() == "alive"


async def test_process_backend_refuses_without_insecure(tmp_path: Path) -> None:
    server = sandbox_server(tmp_path / "ws", backend="process")
    with pytest.raises(ConfigError, match="cannot start MCP server 'sandbox'"):
        async with McpToolExecutor([server], connect_timeout_s=20):
            pass


async def test_sandbox_server_spans_join_the_callers_trace(tmp_path: Path) -> None:
    span_file = tmp_path / "spans.jsonl"
    base = _server(tmp_path / "ws")
    server = McpServer(
        name=base.name, command=sys.executable, args=[*base.args, "--span-file", str(span_file)]
    )
    tracer = TracerProvider().get_tracer("test")
    async with McpToolExecutor([server]) as tools:
        with tracer.start_as_current_span("execute_tool run_python") as span:
            await tools.call("run_python", {"code": "print(1)"}, step_index=0, call_id="a")
            caller = span.get_span_context()
    spans = [json.loads(line) for line in span_file.read_text().splitlines()]
    (call_span,) = [s for s in spans if s["name"] == "tools/call run_python"]
    assert call_span["trace_id"] == trace.format_trace_id(caller.trace_id)
    assert call_span["attributes"][RETRACE_SANDBOX_BACKEND] == "gvisor"
    assert call_span["attributes"][RETRACE_SANDBOX_EXIT_CODE] == 0


async def test_workspace_snapshots_around_each_call(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    snapshots = WorkspaceSnapshots(tmp_path / "cas")
    async with McpToolExecutor([_server(workspace)], snapshots=snapshots) as tools:
        wrote = await tools.call(
            "write_file", {"path": "out/q1.csv", "content": "a,b\n1,2\n"}, step_index=0, call_id="a"
        )
        assert not wrote.is_error, wrote.content
        before, after = (
            wrote.metadata[RETRACE_WORKSPACE_BEFORE],
            wrote.metadata[RETRACE_WORKSPACE_AFTER],
        )
        assert before != after
        read = await tools.call("read_file", {"path": "out/q1.csv"}, step_index=1, call_id="b")
        # Reading changes nothing: the same snapshot id before and after, equal to the last one.
        assert read.metadata[RETRACE_WORKSPACE_BEFORE] == after
        assert read.metadata[RETRACE_WORKSPACE_AFTER] == after

    # Each step's files can be restored without a sandbox: after the write, and before it.
    restored = tmp_path / "restored"
    snapshots.restore(after, restored)
    assert (restored / "out" / "q1.csv").read_text() == "a,b\n1,2\n"
    snapshots.restore(before, restored)
    assert not (restored / "out" / "q1.csv").exists()


async def test_failed_snapshot_is_recorded_not_raised(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    cas = tmp_path / "cas"
    snapshots = WorkspaceSnapshots(cas)
    async with McpToolExecutor([_server(workspace)], snapshots=snapshots) as tools:
        # The content store vanishes under the run (a file where its directory was).
        shutil.rmtree(cas)
        cas.write_text("not a directory")
        result = await tools.call(
            "write_file", {"path": "x.txt", "content": "new"}, step_index=0, call_id="a"
        )
        assert not result.is_error, result.content
        assert "workspace snapshot failed" in result.metadata[RETRACE_SANDBOX_ERROR]
        assert RETRACE_WORKSPACE_AFTER not in result.metadata
        assert (workspace / "x.txt").read_text() == "new"


@pytest.mark.parametrize(("backend", "insecure"), [("bwrap", False), ("process", True)])
async def test_other_backends_say_what_they_are(
    tmp_path: Path, backend: str, insecure: bool
) -> None:
    server = sandbox_server(tmp_path / "ws", backend=backend, insecure=insecure, limits=LIMITS)
    async with McpToolExecutor([server]) as tools:
        result = await tools.call("run_python", {"code": "print('hi')"}, step_index=0, call_id="a")
    assert result.content.strip() == "hi", result.content
    assert result.metadata[RETRACE_SANDBOX_BACKEND] == backend
    assert result.metadata[RETRACE_SANDBOX_INSECURE] is insecure

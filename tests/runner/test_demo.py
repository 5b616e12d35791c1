"""``retrace demo`` end to end: its own collector on the embedded store, the bundled MCP servers
over stdio, real gVisor; then a collector restarted on the same data dir shows every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas import attributes as A

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]


def _root(detail: Any) -> Any:
    return min(
        (s for s in detail.spans if s.parent_span_id == ""), key=lambda s: s.start_time_unix_nano
    )


def _tools(detail: Any, name: str) -> list[Any]:
    return sorted(
        (s for s in detail.spans if s.name == f"execute_tool {name}"),
        key=lambda s: int(s.attributes[A.RETRACE_STEP_INDEX]),
    )


def test_demo_runs_the_suite_into_its_own_collector(tmp_path: Path, start_collector: Any) -> None:
    data_dir = tmp_path / ".retrace"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", "demo", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "Explore: retrace ui --api http://127.0.0.1:" in out
    assert "retrace approve" in out  # the cleanup task waits for a human
    rows = re.findall(r"│\s*([\w-]+)\s*│\s*(\w+)\s*│\s*(\d+)\s*│\s*([0-9a-f]{32})\s*│", out)
    assert len(rows) == 7, out
    trace_ids = [row[3] for row in rows]

    collector = start_collector(data_dir=data_dir)  # the same store, reopened
    client = collector.client
    by_task: dict[str, Any] = {}
    for trace_id in dict.fromkeys(trace_ids):
        detail = client.wait_for_trace(trace_id, min_spans=2)
        by_task[_root(detail).attributes[A.RETRACE_RUN_INPUT]] = detail
    assert len(by_task) == 7

    def task(prefix: str) -> Any:
        return next(d for t, d in by_task.items() if t.startswith(prefix))

    revenue = _root(task("Which product categories"))
    assert revenue.attributes[A.RETRACE_RUN_STATUS] == "completed"
    assert revenue.attributes[A.RETRACE_RUN_OUTPUT].startswith("Equipment leads with")

    stats = task("Compute the mean")
    (python,) = _tools(stats, "run_python")
    assert python.attributes[A.RETRACE_SANDBOX_BACKEND] == "gvisor"
    assert python.attributes[A.RETRACE_SANDBOX_EXIT_CODE] == "0"
    assert python.attributes[A.RETRACE_MCP_SERVER] == "sandbox"
    assert "Over 18 months" in _root(stats).attributes[A.RETRACE_RUN_OUTPUT]

    csv_run = task("Save revenue by sales channel")
    (write,) = _tools(csv_run, "run_python")
    (read,) = _tools(csv_run, "read_file")
    assert (
        write.attributes[A.RETRACE_WORKSPACE_BEFORE] != write.attributes[A.RETRACE_WORKSPACE_AFTER]
    )
    # the snapshot (manifest + file blobs) was uploaded, so a replay can restore it
    assert client.get_payload(write.attributes[A.RETRACE_WORKSPACE_AFTER])
    assert read.attributes[A.GEN_AI_TOOL_CALL_RESULT].startswith("channel,orders,revenue")
    assert "the top channel is web" in _root(csv_run).attributes[A.RETRACE_RUN_OUTPUT]

    denied = task("Delete all cancelled")
    (query,) = _tools(denied, "query")
    assert query.attributes[A.RETRACE_POLICY_DECISION] == "deny"
    assert query.attributes[A.RETRACE_POLICY_RULE] == "sql-read-only"

    cleanup = task("Create a scratch file")
    assert _root(cleanup).attributes[A.RETRACE_RUN_STATUS] == "pending_approval"
    run_id = _root(cleanup).attributes[A.RETRACE_RUN_ID]
    (approval,) = client.list_approvals(status="pending", run_id=run_id)
    assert approval.tool_name == "run_shell" and approval.rule == "deletions"

    flaky = task("Run the nightly export")
    first, second = _tools(flaky, "run_python")
    assert first.attributes[A.RETRACE_TOOL_ERROR] == "true"
    assert first.attributes[A.RETRACE_TOOL_ATTEMPT] == "1"
    assert second.attributes[A.RETRACE_TOOL_ATTEMPT] == "2"
    assert second.attributes[A.RETRACE_TOOL_ERROR] == "false"
    assert _root(flaky).attributes[A.RETRACE_RUN_OUTPUT] == (
        "The export job finished: exported 1336 rows"
    )

"""The ``retrace run / approve / reject`` CLI end to end: subprocesses, the real data MCP server
over stdio, a real collector, spans checked in its store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from schemas import attributes as A

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "runner" / "demo"

SCRIPT = """
name: approver
tasks:
  - name: describe
    match: describe
    steps:
      - call: describe_table
        args: {name: orders}
        on_error: stop
        error_answer: "Not allowed: {{ last }}"
      - answer: "{{ last }}"
"""


def _agent(tmp_path: Path, *, approval: bool = False) -> Path:
    policy = DEMO / "policy.yaml"
    lines = [
        "name: cli-agent",
        "model: offline:data-scientist",
        "mcp_servers:",
        "  - name: data",
        '    command: "{python}"',
        '    args: ["-m", "runner.mcp_servers.data_server"]',
        f"policy: {policy}",
        "guardrails: {tool_retries: 0}",
    ]
    if approval:
        (tmp_path / "approver.yaml").write_text(SCRIPT)
        lines[1] = "model: offline:approver"
        lines.append("offline_script: approver.yaml")
        lines[6] = "policy: {require_approval: [{name: schema-reads, tools: [describe_table]}]}"
    path = tmp_path / "agent.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=data_dir.parent,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _field(output: str, name: str) -> str:
    match = re.search(rf"^{name}:\s+(\S+)", output, re.M)
    assert match, output
    return match.group(1)


def _wait_status(client: Any, trace_id: str, status: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        detail = client.wait_for_trace(trace_id)
        roots = [s for s in detail.spans if s.parent_span_id == ""]
        if any(r.attributes.get(A.RETRACE_RUN_STATUS) == status for r in roots):
            return detail
        assert time.monotonic() < deadline, [r.attributes for r in roots]
        time.sleep(0.3)


def test_run_one_task_prints_trace_and_answer(collector_server: Any, tmp_path: Path) -> None:
    out = _cli(
        "run",
        "Which product categories bring in the most revenue?",
        "--agent",
        str(_agent(tmp_path)),
        "--endpoint",
        collector_server.url,
        data_dir=tmp_path / "runner-data",
    ).stdout
    assert "answer: Equipment leads with" in out
    trace_id = _field(out, "trace")
    detail = _wait_status(collector_server.client, trace_id, "completed")
    tool = next(s for s in detail.spans if s.name == "execute_tool query")
    assert tool.attributes[A.RETRACE_MCP_SERVER] == "data"
    assert tool.attributes[A.RETRACE_POLICY_DECISION] == "allow"
    assert tool.attributes[A.GEN_AI_TOOL_CALL_RESULT].startswith("category,revenue")
    # the data server's own span joined the run's trace through the MCP _meta traceparent
    assert any(s.service_name != "retrace-runner" for s in detail.spans)


def test_run_suite_with_a_policy_denial(collector_server: Any, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "tasks:\n"
        "  - {name: customers, task: 'Who are our top 5 customers by spend?'}\n"
        "  - {name: delete, task: 'Delete all cancelled orders from the database.'}\n"
    )
    out = _cli(
        "run",
        "--suite",
        str(suite),
        "--agent",
        str(_agent(tmp_path)),
        "--endpoint",
        collector_server.url,
        data_dir=tmp_path / "d",
    ).stdout
    assert "customers" in out and "delete" in out
    page = collector_server.client.list_traces(agent="cli-agent")
    deadline = time.monotonic() + 30
    while len(page.traces) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        page = collector_server.client.list_traces(agent="cli-agent")
    assert len(page.traces) == 2
    denied = None
    for summary in page.traces:
        detail = collector_server.client.wait_for_trace(summary.trace_id, min_spans=3)
        for span in detail.spans:
            if span.attributes.get(A.RETRACE_POLICY_DECISION) == "deny":
                denied = (span, detail)
    assert denied is not None
    span, detail = denied
    assert span.attributes[A.RETRACE_POLICY_RULE] == "sql-read-only"
    assert span.attributes[A.RETRACE_TOOL_ERROR] == "true"
    root = next(s for s in detail.spans if s.parent_span_id == "")
    assert root.attributes[A.RETRACE_RUN_OUTPUT].startswith("I could not delete the orders")


def test_approval_pause_then_cli_approve_resumes(collector_server: Any, tmp_path: Path) -> None:
    # (reject and expiry go through the same resume path: tests/runner/test_approvals.py)
    decision = "approve"
    data_dir = tmp_path / "runner-data"
    agent = _agent(tmp_path, approval=True)
    out = _cli(
        "run",
        "describe the orders table",
        "--agent",
        str(agent),
        "--endpoint",
        collector_server.url,
        data_dir=data_dir,
    ).stdout
    assert "status: pending_approval" in out
    run_id, trace_id = _field(out, "run"), _field(out, "trace")
    (pending,) = collector_server.client.list_approvals(status="pending", run_id=run_id)
    assert pending.tool_name == "describe_table" and pending.rule == "schema-reads"
    _wait_status(collector_server.client, trace_id, "pending_approval")

    out = _cli(
        decision,
        run_id,
        "--by",
        "alice",
        "--comment",
        "checked",
        "--endpoint",
        collector_server.url,
        data_dir=data_dir,
    ).stdout
    assert f"{decision}d approval {pending.approval_id}" in out
    decided = collector_server.client.get_approval(pending.approval_id)
    assert decided.decided_by == "alice"
    assert decided.status.value == ("approved" if decision == "approve" else "rejected")
    detail = _wait_status(collector_server.client, trace_id, "completed")
    tool = next(s for s in detail.spans if s.name == "execute_tool describe_table")
    assert tool.attributes[A.RETRACE_APPROVAL_DECIDED_BY] == "alice"
    root = next(s for s in detail.spans if s.attributes.get(A.RETRACE_RUN_STATUS) == "completed")
    if decision == "approve":
        assert tool.attributes[A.RETRACE_TOOL_ERROR] == "false"
        assert "table orders" in root.attributes[A.RETRACE_RUN_OUTPUT]
    else:
        assert root.attributes[A.RETRACE_RUN_OUTPUT].startswith("Not allowed: Not approved")
    # nothing left to resume
    again = _cli(
        "resume", run_id, "--endpoint", collector_server.url, data_dir=data_dir, check=False
    )
    assert again.returncode == 2 and "is not paused" in again.stderr


def test_run_without_a_collector_is_a_clear_error(tmp_path: Path) -> None:
    proc = _cli("run", "hello", "--endpoint", "http://127.0.0.1:9", data_dir=tmp_path, check=False)
    assert proc.returncode == 2
    assert "no collector answers at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_with_an_api_key_lands_in_that_project(start_collector: Any, tmp_path: Path) -> None:
    collector = start_collector(api_keys=["team-a:key-aaaaaaaaaaaaaaaaaaaa"])
    refused = _cli(
        "run",
        "Who are our top 5 customers by spend?",
        "--agent",
        str(_agent(tmp_path)),
        "--endpoint",
        collector.url,
        "--api-key",
        "wrong",
        data_dir=tmp_path / "d",
        check=False,
    )
    assert refused.returncode == 2 and "refused the API key" in refused.stderr
    out = _cli(
        "run",
        "Who are our top 5 customers by spend?",
        "--agent",
        str(_agent(tmp_path)),
        "--endpoint",
        collector.url,
        "--api-key",
        "key-aaaaaaaaaaaaaaaaaaaa",
        data_dir=tmp_path / "d",
    ).stdout
    detail = _wait_status(collector.client, _field(out, "trace"), "completed")
    root = next(s for s in detail.spans if s.parent_span_id == "")
    # the key decides, and the runner asked the collector which project that is
    assert root.resource_attributes[A.RETRACE_PROJECT] == "team-a"
    assert "key-aaaa" not in json.dumps([s.attributes for s in detail.spans])


def test_decision_through_the_api_resumes_via_the_collector(
    start_collector: Any, tmp_path: Path
) -> None:
    """The UI's path: a decision posted to the collector, which runs `retrace resume`."""
    data_dir = tmp_path / "runner-data"
    collector = start_collector(env={"RETRACE_DATA_DIR": str(data_dir)})
    out = _cli(
        "run",
        "describe the orders table",
        "--agent",
        str(_agent(tmp_path, approval=True)),
        "--endpoint",
        collector.url,
        data_dir=data_dir,
    ).stdout
    run_id, trace_id = _field(out, "run"), _field(out, "trace")
    (pending,) = collector.client.list_approvals(status="pending", run_id=run_id)
    collector.client.decide_approval(pending.approval_id, "approve", "ui-user", "fine")
    detail = _wait_status(collector.client, trace_id, "completed")
    tool = next(s for s in detail.spans if s.name == "execute_tool describe_table")
    assert tool.attributes[A.RETRACE_APPROVAL_DECIDED_BY] == "ui-user"
    assert tool.attributes[A.RETRACE_TOOL_ERROR] == "false"


def test_decision_resumes_runs_kept_in_the_collectors_own_data_dir(
    start_collector: Any, tmp_path: Path
) -> None:
    """`serve --data-dir D` with no RETRACE_DATA_DIR: the resumed child must look in D."""
    collector = start_collector()
    out = _cli(
        "run",
        "describe the orders table",
        "--agent",
        str(_agent(tmp_path, approval=True)),
        "--endpoint",
        collector.url,
        data_dir=collector.data_dir,
    ).stdout
    run_id, trace_id = _field(out, "run"), _field(out, "trace")
    (pending,) = collector.client.list_approvals(status="pending", run_id=run_id)
    collector.client.decide_approval(pending.approval_id, "approve", "ui-user", "fine")
    _wait_status(collector.client, trace_id, "completed")


def test_demo_ui_child_serves_until_the_demo_stops(collector_server: Any, tmp_path: Path) -> None:
    """`retrace demo --ui`: the UI child answers while the demo serves and is gone afterwards."""
    import httpx

    from runner.supervisor import free_port, ui_service

    with ui_service(collector_server.url, free_port(), tmp_path) as url:
        assert httpx.get(f"{url}/_stcore/health", timeout=5).text == "ok"
        page = httpx.get(url, timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_stcore/health", timeout=2)

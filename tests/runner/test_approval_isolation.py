"""A paused run belongs to the project whose key started it: another project's key cannot resume
it, even by posting a copy of its approval (same ids) and approving that copy. Real collector
with two project keys, real ``retrace run`` / ``resume`` processes, the real data MCP server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from runner.approvals import PausedRuns
from schemas import attributes as A
from schemas.errors import NotFoundError
from schemas.models import ApprovalStatus
from tests.runner.test_commands import _agent, _cli, _field, _wait_status

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


def _finished_job(client: Any, kind: str, subject: str) -> Any:
    deadline = time.monotonic() + 120
    while True:
        jobs = client.list_jobs(kind=kind, subject=subject)
        if jobs and all(j.status != "running" for j in jobs):
            (job,) = jobs
            return job
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)


def test_another_projects_key_cannot_resume_a_paused_run(
    start_collector: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "runner-data"
    collector = start_collector(
        api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"], env={"RETRACE_DATA_DIR": str(data_dir)}
    )
    alpha, beta = collector.client_for(ALPHA), collector.client_for(BETA)
    out = _cli(
        "run",
        "describe the orders table",
        "--agent",
        str(_agent(tmp_path, approval=True)),
        "--endpoint",
        collector.url,
        "--api-key",
        BETA,
        data_dir=data_dir,
    ).stdout
    assert "status: pending_approval" in out
    run_id, trace_id = _field(out, "run"), _field(out, "trace")
    (pending,) = beta.list_approvals(status="pending", run_id=run_id)
    _wait_status(beta, trace_id, "pending_approval")

    # alpha forges a copy of beta's approval in its own project and approves it
    alpha.save_approval(pending)
    alpha.decide_approval(pending.approval_id, "approve", decided_by="mallory")
    job = _finished_job(alpha, "resume", run_id)
    assert job.status == "failed" and job.exit_code not in (0, None)
    # ... and by hand, with the CLI
    refused = _cli(
        "resume",
        run_id,
        "--endpoint",
        collector.url,
        "--api-key",
        ALPHA,
        data_dir=data_dir,
        check=False,
    )
    assert refused.returncode == 2 and f"no paused run {run_id!r}" in refused.stderr
    assert "Traceback" not in refused.stderr

    # beta's run is untouched: still paused, its approval still pending, no tool call ran
    assert beta.get_approval(pending.approval_id).status == ApprovalStatus.PENDING
    # (the paused record names the project of the key that started the run)
    record = PausedRuns(data_dir, "beta").load(run_id)
    assert record.project == "beta" and record.state == "paused"
    detail = beta.get_trace(trace_id)
    assert not any(s.name == "execute_tool describe_table" for s in detail.spans)

    # beta's own decision resumes it, once, in beta's project
    beta.decide_approval(pending.approval_id, "approve", decided_by="bob")
    assert _finished_job(beta, "resume", run_id).status == "succeeded"
    detail = _wait_status(beta, trace_id, "completed")
    tool = next(s for s in detail.spans if s.name == "execute_tool describe_table")
    assert tool.attributes[A.RETRACE_APPROVAL_DECIDED_BY] == "bob"
    assert PausedRuns(data_dir, "beta").load(run_id).state == "finished"
    # alpha never got any of beta's spans
    with pytest.raises(NotFoundError):
        alpha.get_trace(trace_id)
    assert alpha.search_spans(trace_id=trace_id).spans == []
    for c in (alpha, beta):
        c.close()

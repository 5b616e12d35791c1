"""Approval pauses: interrupt + sqlite checkpoint, then approve / reject / expire and resume."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runner.approvals import PausedRuns
from runner.config import AgentConfig, GuardrailsConfig
from runner.offline import OfflineModel, OfflineScript
from runner.run import resume_agent, run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from schemas import attributes as A
from schemas.errors import InvalidInputError, NotFoundError
from schemas.models import Approval, ApprovalStatus, RunStatus


class MemoryDesk:
    """An ApprovalDesk kept in memory (the collector-backed one is tested in test_commands)."""

    def __init__(self) -> None:
        self.items: dict[str, Approval] = {}

    def create(self, approval: Approval) -> Approval:
        self.items[approval.approval_id] = approval
        return approval

    def get(self, approval_id: str) -> Approval:
        return self.items[approval_id]

    def pending_for_run(self, run_id: str) -> list[Approval]:
        return [
            a
            for a in self.items.values()
            if a.run_id == run_id and a.status == ApprovalStatus.PENDING
        ]

    def decide(self, approval_id: str, decision: str, decided_by: str, comment: str) -> Approval:
        status = ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.REJECTED
        approval = self.items[approval_id].model_copy(
            update={
                "status": status,
                "decided_by": decided_by,
                "comment": comment,
                "decided_at": datetime.now(UTC),
            }
        )
        self.items[approval_id] = approval
        return approval


class FileTools:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec("write_file", "write a file", {"type": "object"}, server="sandbox")]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        self.written.append(arguments)
        return ToolResult(f"wrote {arguments['path']}")


SCRIPT = OfflineScript.model_validate(
    {
        "tasks": [
            {
                "name": "write",
                "match": "write",
                "steps": [
                    {
                        "call": "write_file",
                        "args": {"path": "out.txt", "content": "hi"},
                        "on_error": "stop",
                        "error_answer": "Not written: {{ last }}",
                    },
                    {"answer": "Done: {{ last }}"},
                ],
            }
        ]
    }
)
CONFIG = AgentConfig(
    name="writer",
    model="offline:s",
    policy={"require_approval": [{"name": "writes", "tools": ["write_file"]}]},
    guardrails=GuardrailsConfig(approval_timeout_s=60),
)


def _start(
    tmp_path: Path,
    desk: MemoryDesk,
    tools: FileTools,
    exporter: InMemorySpanExporter,
    project: str = "default",
):
    return asyncio.run(
        run_agent(
            "write a file",
            CONFIG,
            model=OfflineModel(SCRIPT),
            tools=tools,
            runtime=LiveRuntime(seed=1),
            data_dir=tmp_path,
            approvals=desk,
            span_exporter=exporter,
            project=project,
        )
    )


def _resume(
    tmp_path: Path,
    run_id: str,
    desk: MemoryDesk,
    tools: FileTools,
    exporter: InMemorySpanExporter,
    runtime: LiveRuntime | None = None,
    project: str = "default",
):
    return asyncio.run(
        resume_agent(
            run_id,
            data_dir=tmp_path,
            model=OfflineModel(SCRIPT),
            tools=tools,
            runtime=runtime or LiveRuntime(seed=1),
            approvals=desk,
            span_exporter=exporter,
            project=project,
        )
    )


def test_pause_approve_resume_completes_in_the_same_trace(tmp_path: Path) -> None:
    desk, tools, exporter = MemoryDesk(), FileTools(), InMemorySpanExporter()
    paused = _start(tmp_path, desk, tools, exporter)
    assert paused.status == RunStatus.PENDING_APPROVAL
    assert tools.written == []
    approval = desk.get(paused.approval_id)
    assert approval.tool_name == "write_file" and approval.rule == "writes"
    assert approval.arguments == {"path": "out.txt", "content": "hi"}
    assert approval.trace_id == paused.trace_id and approval.expires_at is not None
    root = next(s for s in exporter.get_finished_spans() if s.parent is None)
    assert root.attributes[A.RETRACE_RUN_STATUS] == "pending_approval"

    # still pending: resuming does nothing
    again = _resume(tmp_path, paused.run_id, desk, tools, exporter)
    assert again.status == RunStatus.PENDING_APPROVAL and tools.written == []

    desk.decide(paused.approval_id, "approve", "alice", "ok")
    exporter.clear()
    done = _resume(tmp_path, paused.run_id, desk, tools, exporter)
    assert done.status == RunStatus.COMPLETED
    assert done.trace_id == paused.trace_id
    assert done.answer == "Done: wrote out.txt"
    assert tools.written == [{"path": "out.txt", "content": "hi"}]
    spans = exporter.get_finished_spans()
    tool = next(s for s in spans if s.name == "execute_tool write_file")
    assert tool.attributes[A.RETRACE_POLICY_DECISION] == "require_approval"
    assert tool.attributes[A.RETRACE_APPROVAL_STATUS] == "approved"
    assert tool.attributes[A.RETRACE_APPROVAL_DECIDED_BY] == "alice"
    new_root = next(s for s in spans if s.parent is None)
    assert new_root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    assert format(new_root.links[0].context.span_id, "016x") == approval.span_id
    # steps continue where the paused segment stopped
    assert tool.attributes[A.RETRACE_STEP_INDEX] == 1
    with pytest.raises(InvalidInputError):
        _resume(tmp_path, paused.run_id, desk, tools, exporter)


def test_reject_sends_a_tool_error_to_the_model(tmp_path: Path) -> None:
    desk, tools, exporter = MemoryDesk(), FileTools(), InMemorySpanExporter()
    paused = _start(tmp_path, desk, tools, exporter)
    desk.decide(paused.approval_id, "reject", "bob", "not today")
    done = _resume(tmp_path, paused.run_id, desk, tools, exporter)
    assert done.status == RunStatus.COMPLETED
    assert done.answer == "Not written: Not approved (rejected by bob): not today"
    assert tools.written == []
    tool = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool write_file")
    assert tool.attributes[A.RETRACE_APPROVAL_STATUS] == "rejected"
    assert tool.attributes[A.RETRACE_TOOL_ERROR] == "true"


def test_expired_approval_is_rejected_and_recorded(tmp_path: Path) -> None:
    class Later(LiveRuntime):
        def now(self) -> float:
            return super().now() + 3600

    desk, tools, exporter = MemoryDesk(), FileTools(), InMemorySpanExporter()
    paused = _start(tmp_path, desk, tools, exporter)
    done = _resume(tmp_path, paused.run_id, desk, tools, exporter, runtime=Later(seed=1))
    assert done.status == RunStatus.COMPLETED
    assert "expired by timeout" in done.answer
    assert desk.get(paused.approval_id).status == ApprovalStatus.EXPIRED
    assert tools.written == []


def test_expired_paused_runs_are_found_for_the_sweep(tmp_path: Path) -> None:
    desk, tools, exporter = MemoryDesk(), FileTools(), InMemorySpanExporter()
    paused = _start(tmp_path, desk, tools, exporter)
    runs = PausedRuns(tmp_path)
    assert [r.run_id for r in runs.paused()] == [paused.run_id]
    now = desk.get(paused.approval_id).requested_at.timestamp()
    assert runs.expired(desk, now + 1) == []
    assert [r.run_id for r in runs.expired(desk, now + 61)] == [paused.run_id]


def test_resolver_answers_in_process_without_pausing() -> None:
    async def approve(request: dict[str, Any]) -> dict[str, Any]:
        assert request["tool"] == "write_file"
        return {"approval_id": "recorded", "status": "approved", "decided_by": "replay"}

    tools = FileTools()
    result = asyncio.run(
        run_agent(
            "write",
            CONFIG,
            model=OfflineModel(SCRIPT),
            tools=tools,
            runtime=LiveRuntime(),
            approval_resolver=approve,
            span_exporter=InMemorySpanExporter(),
        )
    )
    assert result.status == RunStatus.COMPLETED
    assert len(tools.written) == 1


def test_pause_without_data_dir_fails_clearly() -> None:
    exporter = InMemorySpanExporter()
    with pytest.raises(InvalidInputError, match="requires approval"):
        asyncio.run(
            run_agent(
                "write",
                CONFIG,
                model=OfflineModel(SCRIPT),
                tools=FileTools(),
                runtime=LiveRuntime(),
                span_exporter=exporter,
            )
        )
    root = next(s for s in exporter.get_finished_spans() if s.parent is None)
    assert root.attributes[A.RETRACE_RUN_STATUS] == "failed"


def test_unknown_run_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        PausedRuns(tmp_path).load("nope")
    record_dir = tmp_path / "runner" / "runs"
    assert not record_dir.exists() or json.dumps([]) == "[]"


def test_a_paused_run_is_resumed_only_by_its_own_project(tmp_path: Path) -> None:
    desk, tools, exporter = MemoryDesk(), FileTools(), InMemorySpanExporter()
    paused = _start(tmp_path, desk, tools, exporter, project="team-b")
    record = PausedRuns(tmp_path, "team-b").load(paused.run_id)
    assert record.project == "team-b" and record.state == "paused"
    desk.decide(paused.approval_id, "approve", "mallory", "")
    for other in ("team-a", "default"):
        with pytest.raises(NotFoundError, match=f"no paused run {paused.run_id!r}"):
            _resume(tmp_path, paused.run_id, desk, tools, exporter, project=other)
        assert PausedRuns(tmp_path, other).paused() == []
    assert tools.written == []
    assert PausedRuns(tmp_path, "team-b").load(paused.run_id).state == "paused"
    done = _resume(tmp_path, paused.run_id, desk, tools, exporter, project="team-b")
    assert done.status == RunStatus.COMPLETED and len(tools.written) == 1
    with pytest.raises(InvalidInputError, match="invalid run id"):
        PausedRuns(tmp_path, "team-b").load("../team-b/" + paused.run_id)
    with pytest.raises(InvalidInputError, match="invalid project id"):
        PausedRuns(tmp_path, "../team-b")

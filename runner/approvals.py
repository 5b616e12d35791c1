"""Human approval of tool calls: approvals in the collector, paused runs on local disk.

When the policy says ``require_approval`` the graph interrupts; the run is then *paused*: its
LangGraph checkpoint sits in ``DATA_DIR/runner/checkpoints.sqlite`` (thread ``PROJECT/RUN_ID``), a
:class:`PausedRun` record in ``DATA_DIR/runner/runs/PROJECT/RUN_ID.json`` says how to resume it,
and an ``Approval`` is created through the collector API. Deciding (CLI or UI) updates the
approval; resuming reads the decision — a pending approval past ``expires_at`` counts as rejected
and is recorded as ``expired``.

A paused run belongs to the project of the API key that started it (the collector says which,
``CollectorClient.whoami``). Records are kept per project and only that project's key finds
them: a run id (or an approval naming it) from another project's client never resumes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.client import CollectorClient
from schemas.errors import ConfigError, InvalidInputError, NotFoundError
from schemas.ids import check_id
from schemas.models import Approval, ApprovalStatus
from schemas.settings import DEFAULT_PROJECT

log = logging.getLogger(__name__)

Decision = Literal["approve", "reject"]


class ApprovalDesk(Protocol):
    """Where approvals live (the collector API); tests and replays may pass another."""

    def create(self, approval: Approval) -> Approval: ...

    def get(self, approval_id: str) -> Approval: ...

    def pending_for_run(self, run_id: str) -> list[Approval]: ...

    def decide(
        self, approval_id: str, decision: Decision, decided_by: str, comment: str
    ) -> Approval: ...


class ApiApprovals:
    """Approvals through the collector's API (``collector.client.CollectorClient``)."""

    def __init__(self, client: CollectorClient) -> None:
        self.client = client

    def create(self, approval: Approval) -> Approval:
        return self.client.save_approval(approval)

    def get(self, approval_id: str) -> Approval:
        return self.client.get_approval(approval_id)

    def pending_for_run(self, run_id: str) -> list[Approval]:
        return self.client.list_approvals(status=ApprovalStatus.PENDING, run_id=run_id)

    def decide(
        self, approval_id: str, decision: Decision, decided_by: str, comment: str
    ) -> Approval:
        return self.client.decide_approval(approval_id, decision, decided_by, comment)


def effective_status(approval: Approval, now: float) -> ApprovalStatus:
    """The approval's status, with a pending one past its deadline counted as expired."""
    if (
        approval.status == ApprovalStatus.PENDING
        and approval.expires_at is not None
        and approval.expires_at.timestamp() <= now
    ):
        return ApprovalStatus.EXPIRED
    return approval.status


def resume_value(approval: Approval) -> dict[str, Any]:
    """What the graph's interrupt returns on resume (recorded on the tool span)."""
    return {
        "approval_id": approval.approval_id,
        "status": approval.status.value,
        "decided_by": approval.decided_by,
        "comment": approval.comment,
    }


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# --- paused runs on disk ----------------------------------------------------------------------


class PausedRun(BaseModel):
    """Everything needed to resume a paused run in another process."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    trace_id: str
    root_span_id: str
    task: str
    config: dict[str, Any]
    approval: Approval
    state: Literal["paused", "resumed", "finished"] = "paused"
    project: str = "default"
    replay_of: str = ""
    replay_mode: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


class PausedRuns:
    """``DATA_DIR/runner/runs/PROJECT/RUN_ID.json`` records of one project, and their locks."""

    def __init__(self, data_dir: Path, project: str = DEFAULT_PROJECT) -> None:
        self.project = check_id(project, "project id")
        self.root = Path(data_dir) / "runner" / "runs" / self.project

    @property
    def checkpoints_path(self) -> Path:
        return self.root.parent.parent / "checkpoints.sqlite"

    def thread_id(self, run_id: str) -> str:
        """The run's LangGraph checkpoint thread (namespaced: ids never cross projects)."""
        return f"{self.project}/{check_id(run_id, 'run id')}"

    def _path(self, run_id: str) -> Path:
        return self.root / f"{check_id(run_id, 'run id')}.json"

    def save(self, record: PausedRun) -> None:
        if record.project != self.project:
            raise ConfigError(
                f"paused run {record.run_id} of project {record.project!r} cannot be kept "
                f"under project {self.project!r}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(record.run_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, run_id: str) -> PausedRun:
        """The paused run ``run_id`` of this project; ``NotFoundError`` when this project has
        none by that id (whether or not another project has)."""
        path = self._path(run_id)
        try:
            record = PausedRun.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            record = None
        except (ValidationError, json.JSONDecodeError) as exc:
            raise ConfigError(f"paused run record {path} is unreadable: {exc}") from None
        if record is None or record.project != self.project or record.run_id != run_id:
            raise NotFoundError(
                f"no paused run {run_id!r} in {self.root} (was it started with this data dir "
                "and a key of this project?)"
            )
        return record

    def paused(self) -> list[PausedRun]:
        """Every run of this project still paused in this data dir."""
        records = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            try:
                record = self.load(path.stem)
            except (NotFoundError, InvalidInputError) as exc:  # not this project's: left alone
                log.warning("skipping %s: %s", path, exc.message)
                continue
            if record.state == "paused":
                records.append(record)
        return records

    def expired(self, desk: ApprovalDesk | None, now: float) -> list[PausedRun]:
        """Paused runs whose approval is past its deadline (to be resumed as rejected)."""
        out = []
        for record in self.paused():
            approval = desk.get(record.approval.approval_id) if desk else record.approval
            if effective_status(approval, now) == ApprovalStatus.EXPIRED:
                out.append(record)
        return out

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[bool]:
        """Exclusive, non-blocking: yields False when another process is resuming this run."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._path(run_id).with_suffix(".lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

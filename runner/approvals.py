"""Human approval of tool calls: approvals in the collector, paused runs on local disk.

When the policy says ``require_approval`` the graph interrupts; the run is then *paused*: its
LangGraph checkpoint sits in ``DATA_DIR/runner/checkpoints.sqlite``, a :class:`PausedRun` record in
``DATA_DIR/runner/runs/RUN_ID.json`` says how to resume it, and an ``Approval`` is created through
the collector API. Deciding (CLI or UI) updates the approval; resuming reads the decision — a
pending approval past ``expires_at`` counts as rejected and is recorded as ``expired``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import ConfigError, InvalidInputError, NotFoundError, RetraceError
from schemas.models import Approval, ApprovalStatus

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
    """Approvals through the collector's HTTP API (``/api/v1/approvals``)."""

    def __init__(self, endpoint: str, api_key: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=timeout)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RetraceError(f"collector at {self._http.base_url} unreachable: {exc}") from None
        if response.status_code == 404:
            raise NotFoundError(f"{path}: not found")
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise InvalidInputError(f"{method} {path} failed ({response.status_code}): {message}")
        return response.json()

    def create(self, approval: Approval) -> Approval:
        data = self._send(
            "POST",
            "/api/v1/approvals",
            content=approval.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        return Approval.model_validate(data)

    def get(self, approval_id: str) -> Approval:
        return Approval.model_validate(self._send("GET", f"/api/v1/approvals/{approval_id}"))

    def pending_for_run(self, run_id: str) -> list[Approval]:
        data = self._send(
            "GET", "/api/v1/approvals", params={"run_id": run_id, "status": "pending"}
        )
        return [Approval.model_validate(a) for a in data.get("approvals", [])]

    def decide(
        self, approval_id: str, decision: Decision, decided_by: str, comment: str
    ) -> Approval:
        body = {"decision": decision, "decided_by": decided_by, "comment": comment}
        data = self._send("POST", f"/api/v1/approvals/{approval_id}/decision", json=body)
        return Approval.model_validate(data)

    def record(self, approval: Approval) -> Approval:
        """Upsert an approval as given (used to mark one expired)."""
        return self.create(approval)

    def close(self) -> None:
        self._http.close()


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
    """``DATA_DIR/runner/runs/RUN_ID.json`` records and their locks."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "runner" / "runs"

    @property
    def checkpoints_path(self) -> Path:
        return self.root.parent / "checkpoints.sqlite"

    def _path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise InvalidInputError(f"invalid run id {run_id!r}")
        return self.root / f"{run_id}.json"

    def save(self, record: PausedRun) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(record.run_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, run_id: str) -> PausedRun:
        path = self._path(run_id)
        try:
            return PausedRun.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(
                f"no paused run {run_id!r} in {self.root} (was it started with this data dir?)"
            ) from None
        except (ValidationError, json.JSONDecodeError) as exc:
            raise ConfigError(f"paused run record {path} is unreadable: {exc}") from None

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

"""API keys over a real socket: 401 without/with a bad key, project isolation for traces,
payloads, replays and approvals, the ``retrace keys`` commands, and the open-mode rule."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from collector.auth import hash_key, is_loopback, parse_key_specs
from schemas.errors import AuthError, ConfigError, InvalidInputError, NotFoundError
from schemas.models import Approval, ApprovalStatus, ReplayMode, ReplayRecord
from tests.collector.test_app_ingest import make_agent_spans
from tests.fixtures.collector import REPO_ROOT, RunningCollector

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


def _retrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_isolate_projects(start_collector: Callable[..., RunningCollector]) -> None:
    # alpha's key from the flag, beta's from the environment (Settings.api_keys)
    server = start_collector(
        api_keys=[f"alpha:{ALPHA}"],
        env={"RETRACE_RESUME_ON_DECISION": "false", "RETRACE_API_KEYS": f"beta:{BETA}"},
    )
    url = server.url
    # no key / bad key / malformed header -> 401 everywhere
    for headers in ({}, {"Authorization": "Bearer nope-nope-nope"}, {"Authorization": ALPHA}):
        r = httpx.post(
            url + "/v1/traces",
            content=b"",
            headers={**headers, "Content-Type": "application/x-protobuf"},
        )
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
        assert httpx.get(url + "/api/v1/traces", headers=headers).status_code == 401
    with pytest.raises(AuthError):
        server.client_for(None).list_traces()

    spans = make_agent_spans(1)
    exporter = OTLPSpanExporter(
        endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {ALPHA}"}
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert spans[0].context is not None
    trace_id = format(spans[0].context.trace_id, "032x")

    alpha, beta = server.client_for(ALPHA), server.client_for(BETA)
    assert len(alpha.wait_for_trace(trace_id, min_spans=len(spans)).spans) == len(spans)
    with pytest.raises(NotFoundError):
        beta.get_trace(trace_id)
    assert trace_id not in [t.trace_id for t in beta.list_traces().traces]
    assert beta.search_spans(trace_id=trace_id).spans == []
    with pytest.raises(NotFoundError):
        beta.delete_trace(trace_id)
    with pytest.raises(NotFoundError):
        beta.export_trace(trace_id, "parquet")
    assert alpha.export_trace(trace_id, "parquet")[:4] == b"PAR1"

    # payloads
    blob = b"workspace file contents"
    digest = hashlib.sha256(blob).hexdigest()
    alpha.put_payload(digest, blob)
    assert alpha.get_payload(digest) == blob
    with pytest.raises(NotFoundError):
        beta.get_payload(digest)
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        alpha.put_payload(digest, b"other bytes")

    # replays
    now = datetime.now(UTC)
    replay = ReplayRecord(
        replay_id="r-alpha-1",
        original_trace_id=trace_id,
        mode=ReplayMode.RECORDED,
        created_at=now,
        updated_at=now,
    )
    alpha.save_replay(replay)
    assert alpha.get_replay("r-alpha-1").original_trace_id == trace_id
    assert [r.replay_id for r in alpha.list_replays(trace_id)] == ["r-alpha-1"]
    with pytest.raises(NotFoundError):
        beta.get_replay("r-alpha-1")
    assert beta.list_replays(trace_id) == []
    with pytest.raises(NotFoundError):
        beta.start_replay(trace_id)

    # approvals
    approval = Approval(approval_id="ap-1", run_id="run-1", tool_name="run_sql", requested_at=now)
    alpha.save_approval(approval)
    assert [a.approval_id for a in alpha.list_approvals(status="pending")] == ["ap-1"]
    assert beta.list_approvals() == []
    with pytest.raises(NotFoundError):
        beta.get_approval("ap-1")
    with pytest.raises(NotFoundError):
        beta.decide_approval("ap-1", "approve", decided_by="mallory")
    decided = alpha.decide_approval("ap-1", "reject", decided_by="alice", comment="no")
    assert decided.status == ApprovalStatus.REJECTED and decided.decided_by == "alice"
    assert alpha.get_approval("ap-1").status == ApprovalStatus.REJECTED
    with pytest.raises(InvalidInputError, match="already rejected"):
        alpha.decide_approval("ap-1", "approve")
    for c in (alpha, beta):
        c.close()


def test_keys_cli_create_use_revoke(
    tmp_path: Path, start_collector: Callable[..., RunningCollector]
) -> None:
    data_dir = tmp_path / "retrace"
    created = _retrace("keys", "create", "--project", "gamma", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rtk_") and "not shown again" in created.stderr
    key_id = created.stderr.split()[2]
    other = _retrace("keys", "create", "--project", "gamma", "--data-dir", str(data_dir))
    other_key = other.stdout.strip()
    # the key is stored hashed, never in clear
    engine_files = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    assert key.encode() not in engine_files

    server = start_collector(data_dir=data_dir)
    assert httpx.get(server.url + "/api/v1/traces").status_code == 401
    assert server.client_for(key).list_traces().traces == []
    busy = _retrace("keys", "create", "--project", "gamma", "--data-dir", str(data_dir))
    assert busy.returncode != 0
    assert "owned by" in busy.stderr and "--api-key" in busy.stderr
    server.kill()

    revoked = _retrace("keys", "revoke", key_id, "--data-dir", str(data_dir))
    assert revoked.returncode == 0, revoked.stderr
    again = start_collector(data_dir=data_dir)
    with pytest.raises(AuthError, match="invalid API key"):
        again.client_for(key).list_traces()
    assert again.client_for(other_key).list_traces().traces == []


def test_no_keys_on_a_public_address_refuses_to_start(tmp_path: Path) -> None:
    result = _retrace(
        "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d")
    )
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_helpers() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert parse_key_specs(["a:12345678,b:abcdefgh"]) == [("a", "12345678"), ("b", "abcdefgh")]
    assert len(hash_key("x")) == 64
    for bad in ("nokey", "p:short", ":12345678", "bad project:12345678"):
        with pytest.raises(ConfigError):
            parse_key_specs([bad])

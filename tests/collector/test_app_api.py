"""The query API over a real socket: errors are JSON with the right status, never a 500."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.errors import InvalidInputError, NotFoundError
from schemas.models import Approval, ApprovalStatus
from tests.fixtures.collector import REPO_ROOT, RunningCollector

pytestmark = pytest.mark.integration


def test_health_ready_and_openapi(collector_server: RunningCollector) -> None:
    assert collector_server.client.healthz()
    assert collector_server.client.ready()
    assert collector_server.api_key is None
    spec = httpx.get(collector_server.url + "/openapi.json").json()
    for path in ("/v1/traces", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/spans"):
        assert path in spec["paths"]
    detail = spec["paths"]["/api/v1/traces/{trace_id}"]["get"]["responses"]
    assert detail["200"]["content"]["application/json"]["schema"]["$ref"].endswith("TraceDetail")
    assert detail["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    # validation errors are 400 ErrorBody, never FastAPI's 422
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]


def test_unknown_trace_is_404_and_bad_params_400(collector_server: RunningCollector) -> None:
    client = collector_server.client
    with pytest.raises(NotFoundError, match="trace 0123 not found"):
        client.get_trace("0123")
    page = client.list_traces(limit=5)
    assert page.traces == [] and page.next_cursor is None
    url = collector_server.url
    for query in ("limit=0", "start=yesterday", "attr=novalue", "sort=sideways"):
        r = httpx.get(f"{url}/api/v1/traces?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] == "invalid_input"
    r = httpx.get(f"{url}/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with pytest.raises(InvalidInputError):
        client.get_payload("not-a-hash")


def _ingest_trace(server: RunningCollector, n: int = 3) -> str:
    from tests.collector.test_app_ingest import json_request, json_span

    trace_id = secrets.token_hex(16)
    root = secrets.token_hex(8)
    spans = [json_span(trace_id, root, "invoke_agent analyst")]
    spans += [
        json_span(trace_id, secrets.token_hex(8), f"chat {i}", parentSpanId=root)
        for i in range(n - 1)
    ]
    r = httpx.post(
        server.url + "/v1/traces",
        content=json_request(spans),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    server.client.wait_for_trace(trace_id, min_spans=n)
    return trace_id


def test_trace_views_exports_and_delete(collector_server: RunningCollector) -> None:
    client = collector_server.client
    trace_id = _ingest_trace(collector_server, 4)
    trajectory = client.get_trajectory(trace_id)
    assert trajectory.trace_id == trace_id
    exported = json.loads(client.export_trace(trace_id, "json"))
    assert len(exported["spans"]) == 4
    table = pq.read_table(io.BytesIO(client.export_trace(trace_id, "parquet")))
    assert table.num_rows == 4 and "span_id" in table.column_names
    arrow = pa.ipc.open_file(io.BytesIO(client.export_trace(trace_id, "arrow"))).read_all()
    assert arrow.num_rows == 4
    r = httpx.get(f"{collector_server.url}/api/v1/traces/{trace_id}/export?format=csv")
    assert r.status_code == 400
    assert client.stats().runs >= 0
    assert len(client.search_spans(trace_id=trace_id).spans) == 4
    client.delete_trace(trace_id)
    with pytest.raises(NotFoundError):
        client.get_trace(trace_id)
    with pytest.raises(NotFoundError):
        client.delete_trace(trace_id)


def test_replay_and_resume_are_launched_in_the_background(
    collector_server: RunningCollector,
) -> None:
    client = collector_server.client
    trace_id = _ingest_trace(collector_server)
    record = client.start_replay(trace_id, "recorded")
    assert record.status == "running" and record.original_trace_id == trace_id
    deadline = time.monotonic() + 90
    while client.get_replay(record.replay_id).status == "running":
        assert time.monotonic() < deadline, "replay subprocess never finished"
        time.sleep(0.5)
    # a bare JSON trace has no recorded steps: either way the record leaves "running"
    assert client.get_replay(record.replay_id).status in ("completed", "failed")
    assert (collector_server.data_dir / "logs" / f"replay-{record.replay_id}.log").exists()
    with pytest.raises(NotFoundError):
        client.start_replay("f" * 32)

    now = datetime.now(UTC)
    client.save_approval(
        Approval(approval_id="ap-9", run_id="run-9", tool_name="run_shell", requested_at=now)
    )
    decided = client.decide_approval("ap-9", "approve", decided_by="ops")
    assert decided.status == ApprovalStatus.APPROVED and decided.decided_at is not None
    log = collector_server.data_dir / "logs" / "resume-run-9.log"
    deadline = time.monotonic() + 10
    while not log.exists():
        assert time.monotonic() < deadline, "resume was not launched"
        time.sleep(0.1)


def test_serve_on_a_busy_port_is_a_one_line_error(
    collector_server: RunningCollector, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "runner.cli", "serve"),
            *("--port", str(collector_server.port), "--data-dir", str(tmp_path / "other")),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{collector_server.port}" in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stdout


def test_client_says_when_the_collector_is_unreachable() -> None:
    from collector.client import CollectorClient
    from schemas.errors import CollectorUnreachableError
    from tests.fixtures.collector import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with (
        CollectorClient(url, timeout=2) as client,
        pytest.raises(CollectorUnreachableError) as info,
    ):
        client.list_traces()
    assert f"collector at {url} is unreachable" in info.value.message


def test_a_replay_cannot_read_scripts_outside_the_collectors_data_dir(
    collector_server: RunningCollector,
) -> None:
    trace_id = _ingest_trace(collector_server)
    for path in ("/etc/passwd", str(collector_server.data_dir / ".." / "elsewhere.yaml")):
        with pytest.raises(InvalidInputError, match="must be an existing file under"):
            collector_server.client.start_replay(trace_id, "live-model", script=path)
    assert collector_server.client.list_replays(trace_id) == []

"""Durability over real processes: kill -9 mid-ingest loses no acknowledged span and stores
none twice; a store outage fills the spool (acks continue, then 503 + Retry-After over the cap)
and drains when the store is back."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from collector._span_batch import SpanBatch
from collector.metrics import CollectorMetrics
from collector.spool import IngestRecord, Spool
from collector.store import open_store
from collector.writer import SpoolWriter, dedup_token
from schemas.models import SpanQuery
from schemas.settings import Settings
from tests.collector.test_app_ingest import json_request, json_span
from tests.fixtures.collector import REPO_ROOT, RunningCollector, free_port

pytestmark = pytest.mark.integration

SPANS_PER_TRACE = 10


def _trace_body(trace_id: str, pad: int = 0) -> bytes:
    spans = [
        json_span(trace_id, secrets.token_hex(8), f"chat {i}", droppedAttributesCount=0)
        for i in range(SPANS_PER_TRACE)
    ]
    if pad:
        spans[0]["attributes"].append({"key": "pad", "value": {"stringValue": "p" * pad}})
    return json_request(spans)


def _assert_exactly_once(server: RunningCollector, trace_ids: list[str], timeout: float) -> None:
    client = server.client
    deadline = time.monotonic() + timeout
    for trace_id in trace_ids:
        detail = client.wait_for_trace(
            trace_id, min_spans=SPANS_PER_TRACE, timeout=max(1.0, deadline - time.monotonic())
        )
        assert len(detail.spans) == SPANS_PER_TRACE
        rows = client.search_spans(SpanQuery(trace_id=trace_id, limit=100)).spans
        assert len(rows) == SPANS_PER_TRACE, f"trace {trace_id}: {len(rows)} span rows"
        assert detail.trace.span_count == SPANS_PER_TRACE


def test_kill_9_mid_ingest_keeps_every_acknowledged_span_once(
    tmp_path: Path, start_collector: Callable[..., RunningCollector]
) -> None:
    data_dir = tmp_path / "retrace"
    server = start_collector(
        data_dir=data_dir,
        env={"RETRACE_BATCH_MAX_WAIT_S": "0.05", "RETRACE_DECODE_WORKERS": "2"},
    )
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                trace_id = secrets.token_hex(16)
                try:
                    r = http.post(
                        server.url + "/v1/traces",
                        content=_trace_body(trace_id),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError:
                    return  # the collector is gone: this request was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.append(trace_id)

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()  # SIGKILL with requests in flight and batches half-written
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(acked) >= 60

    restarted = start_collector(data_dir=data_dir, env={"RETRACE_DECODE_WORKERS": "2"})
    _assert_exactly_once(restarted, list(acked), timeout=60)


def test_crash_between_store_insert_and_commit_is_not_duplicated(tmp_path: Path) -> None:
    """The narrowest window: the store has the batch, the spool's commit never happened."""
    settings = Settings(data_dir=tmp_path / "retrace")
    spool_dir = tmp_path / "spool"
    trace_id = secrets.token_hex(16)
    from collector import otlp

    def decode_one(record: IngestRecord) -> SpanBatch:
        return otlp.decode_export_request(
            record.body,
            content_type=record.content_type,
            content_encoding=record.content_encoding,
            project=record.project,
            max_body_bytes=1 << 24,
        )

    def decode(records: list[IngestRecord]) -> list[SpanBatch | Exception]:
        return [decode_one(r) for r in records]

    spool = Spool(spool_dir, max_bytes=1 << 24)
    end = spool.append(
        IngestRecord("default", "application/json", None, _trace_body(trace_id)).encode()
    )
    spool.wait_durable(end, timeout=5)
    store = open_store(settings)
    try:
        entries = spool.read(10, timeout=1)
        spool.mark_inflight(entries[0].start, entries[-1].end)
        batch = decode_one(IngestRecord.decode(entries[0].data))
        token = dedup_token(entries[0].start, entries[-1].end, "default")
        store.insert_arrow("default", batch.spans, batch.payloads, dedup_token=token)
        spool.close()  # "crash": committed position never advanced

        recovered = Spool(spool_dir, max_bytes=1 << 24)
        assert recovered.recovered_inflight is not None
        writer = SpoolWriter(
            recovered, store, CollectorMetrics(), decode, batch_max_spans=1000, batch_max_wait_s=0
        )
        writer.start()
        deadline = time.monotonic() + 20
        while recovered.pending_bytes and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.stop()
        recovered.close()
        assert recovered.pending_bytes == 0
        rows = store.search_spans("default", SpanQuery(trace_id=trace_id, limit=100)).spans
        assert len(rows) == SPANS_PER_TRACE
        detail = store.get_trace("default", trace_id)
        assert detail is not None and detail.trace.span_count == SPANS_PER_TRACE
    finally:
        store.close()


# --- store outage -----------------------------------------------------------------------------


class ChdbHttpServer:
    """The store engineer's chDB-over-HTTP server as a process we can stop and restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.fixtures.chdb_http"),
                *("--path", str(self.path), "--port", str(self.port)),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def test_store_outage_spools_then_503s_then_drains(
    tmp_path: Path, chdb_http: ChdbHttpServer, start_collector: Callable[..., RunningCollector]
) -> None:
    cap = 64 * 1024
    server = start_collector(clickhouse_url=chdb_http.url, spool_max_bytes=cap)
    first = secrets.token_hex(16)
    post_headers = {"Content-Type": "application/json"}
    r = httpx.post(server.url + "/v1/traces", content=_trace_body(first), headers=post_headers)
    assert r.status_code == 200
    _assert_exactly_once(server, [first], timeout=30)
    assert httpx.get(server.url + "/readyz").status_code == 200

    chdb_http.stop()
    acked: list[str] = []
    refused = None
    for _ in range(20):
        trace_id = secrets.token_hex(16)
        r = httpx.post(
            server.url + "/v1/traces", content=_trace_body(trace_id, pad=8000), headers=post_headers
        )
        if r.status_code == 200:
            acked.append(trace_id)
            continue
        refused = r
        break
    assert refused is not None, "the spool cap was never reached"
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "spool" in refused.json()["error"]["message"]
    assert len(acked) >= 2
    metrics = server.client.metrics()
    assert metrics["retrace_spool_bytes"] > cap / 2
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"

    chdb_http.start()  # same directory, same port: the writer's retries get through
    _assert_exactly_once(server, [first, *acked], timeout=60)
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(server.url + "/readyz").status_code == 200
    metrics = server.client.metrics()
    assert metrics["retrace_spool_bytes"] == 0
    assert metrics["retrace_store_insert_failures_total"] >= 1
    assert metrics["retrace_spans_stored_total"] == SPANS_PER_TRACE * (1 + len(acked))
    late = secrets.token_hex(16)
    r = httpx.post(server.url + "/v1/traces", content=_trace_body(late), headers=post_headers)
    assert r.status_code == 200
    _assert_exactly_once(server, [late], timeout=30)
    assert json.loads(httpx.get(server.url + "/readyz").text)["store"] == "clickhouse"

"""The spool writer sizes batches to the store's pace: while an insert runs, the next batch keeps
growing (one insert for everything that arrived meanwhile) instead of closing on its wait."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from collector._decode_pool import decode_body
from collector._span_batch import SpanBatch
from collector.metrics import CollectorMetrics
from collector.spool import IngestRecord, Position, Spool
from collector.store import TraceStore, open_store
from collector.writer import SpoolWriter
from schemas.models import SpanQuery
from schemas.settings import Settings
from tests.collector.test_app_ingest import json_request, json_span

JSON = "application/json"


class GatedStore:
    """The real store, whose first ``insert_arrow`` waits until the test opens the gate."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.inserts: list[int] = []

    def insert_arrow(self, project: str, spans: pa.Table, payloads: Any, **kw: Any) -> None:
        self.entered.set()
        self.gate.wait(30)
        self.inserts.append(spans.num_rows)
        self.store.insert_arrow(project, spans, payloads, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _decode(records: list[IngestRecord]) -> list[SpanBatch | Exception]:
    return [
        decode_body(r.body, r.content_type, r.content_encoding, r.project, 1 << 24) for r in records
    ]


def _append(spool: Spool, trace_id: str) -> Position:
    spans = [json_span(trace_id, secrets.token_hex(8), f"s{i}") for i in range(2)]
    return spool.append(IngestRecord("default", JSON, None, json_request(spans)).encode())


def test_records_arriving_during_an_insert_go_into_one_next_batch(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path / "retrace"))
    gated = GatedStore(store)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 24)
    traces = [secrets.token_hex(16) for _ in range(5)]
    writer = SpoolWriter(
        spool,
        gated,  # type: ignore[arg-type]
        CollectorMetrics(),
        _decode,
        batch_max_spans=10_000,
        batch_max_wait_s=0.05,
    )
    try:
        spool.wait_durable(_append(spool, traces[0]), timeout=5)
        writer.start()
        assert gated.entered.wait(30)  # the first batch is in the store stage, held there
        for trace_id in traces[1:3]:
            _append(spool, trace_id)
        time.sleep(0.5)  # well past the batch wait: the old writer would have closed a batch
        for trace_id in traces[3:]:
            end = _append(spool, trace_id)
        spool.wait_durable(end, timeout=5)
        deadline = time.monotonic() + 30
        while spool._read_pos < end and time.monotonic() < deadline:  # the reader has them all
            time.sleep(0.02)
        gated.gate.set()
        deadline = time.monotonic() + 30
        while spool.committed < end and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool.committed >= end
        assert gated.inserts == [2, 8]  # one insert for all four records that came meanwhile
        for trace_id in traces:
            rows = store.search_spans("default", SpanQuery(trace_id=trace_id, limit=10)).spans
            assert len(rows) == 2
    finally:
        gated.gate.set()
        writer.stop()
        spool.close()
        store.close()

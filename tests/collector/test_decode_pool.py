"""The columnar ingest path: a decoded request becomes a ``SpanBatch`` holding the store's Arrow
table (in a worker or in-process), survives the trip between processes, and the writer inserts it
as it is — project-scoped, payloads moved out, exactly once under a replayed dedup token."""

from __future__ import annotations

import pickle
import secrets
from pathlib import Path
from typing import Any

import pytest

from collector import otlp
from collector._decode_pool import DecodePool, decode_body
from collector._span_batch import SpanBatch, span_records
from collector.metrics import CollectorMetrics
from collector.spool import SEGMENT_MAGIC, InFlight, IngestRecord, Position, Spool
from collector.store import SPAN_SCHEMA, TraceStore, open_store, spans_to_arrow
from collector.writer import SpoolWriter
from schemas import attributes as A
from schemas.errors import InvalidInputError
from schemas.models import SpanQuery
from schemas.settings import Settings
from tests.collector.test_app_ingest import json_request, json_span

JSON = "application/json"
LIMIT = 1 << 24


def _spans(trace_id: str, n: int, message: str) -> list[dict[str, Any]]:
    spans = [json_span(trace_id, secrets.token_hex(8), f"chat {i}") for i in range(n)]
    for i, span in enumerate(spans):
        span["attributes"].append(
            {"key": A.GEN_AI_INPUT_MESSAGES, "value": {"stringValue": f"{message} #{i}"}}
        )
    return spans


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = open_store(Settings(data_dir=tmp_path / "retrace"))
    yield opened
    opened.close()


def test_a_decoded_request_is_an_arrow_table_of_its_project() -> None:
    trace_id = secrets.token_hex(16)
    body = json_request(_spans(trace_id, 3, "hello"))
    batch = decode_body(body, JSON, None, "team-a", LIMIT)
    assert isinstance(batch, SpanBatch)
    assert (batch.project, batch.span_count, batch.rejected, batch.message) == ("team-a", 3, 0, "")
    assert batch.spans.schema.equals(SPAN_SCHEMA)
    assert set(batch.spans.column("ProjectId").to_pylist()) == {"team-a"}
    assert set(batch.spans.column("TraceId").to_pylist()) == {trace_id}
    # payloads are moved out of the attributes into PayloadRefs, stored once by hash
    refs = [dict(r) for r in batch.spans.column("PayloadRefs").to_pylist()]
    assert all(A.GEN_AI_INPUT_MESSAGES in r for r in refs)
    assert {r[A.GEN_AI_INPUT_MESSAGES] for r in refs} == set(batch.payloads)
    attrs = [dict(a) for a in batch.spans.column("SpanAttributes").to_pylist()]
    assert all(A.GEN_AI_INPUT_MESSAGES not in a for a in attrs)
    # the same table the object path builds, and what decode_export_request returns
    assert batch.spans.equals(spans_to_arrow("team-a", span_records(batch.spans)))
    decoded = otlp.decode_export_request(
        body, content_type=JSON, content_encoding=None, project="team-a", max_body_bytes=LIMIT
    )
    assert decoded.spans.equals(batch.spans) and decoded.payloads == batch.payloads
    # what a worker process sends back arrives intact
    back = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.spans.equals(batch.spans) and back.payloads == batch.payloads
    assert (back.project, back.rejected, back.message) == (batch.project, 0, "")
    assert batch.nbytes >= sum(len(v) for v in batch.payloads.values())


def test_worker_processes_and_in_process_decoding_agree() -> None:
    body = json_request(_spans(secrets.token_hex(16), 4, "same"))
    pool = DecodePool(1)
    pool._spawn()  # synchronously, so the worker path is the one taken
    try:
        assert pool.ready
        (from_worker,) = pool.decode_many([(body, JSON, None, "p", LIMIT)])
    finally:
        pool.close()
    in_process = decode_body(body, JSON, None, "p", LIMIT)
    assert isinstance(from_worker, SpanBatch) and isinstance(in_process, SpanBatch)
    assert from_worker.spans.equals(in_process.spans)
    assert from_worker.payloads == in_process.payloads


def test_insert_arrow_is_scoped_resolves_payloads_and_dedups(store: TraceStore) -> None:
    trace_id = secrets.token_hex(16)
    batch = decode_body(json_request(_spans(trace_id, 5, "msg")), JSON, None, "p", LIMIT)
    store.insert_arrow("p", batch.spans, batch.payloads, dedup_token="t-1")
    store.insert_arrow("p", batch.spans, batch.payloads, dedup_token="t-1")  # a replay
    detail = store.get_trace("p", trace_id)
    assert detail is not None and len(detail.spans) == 5
    assert sorted(s.attributes[A.GEN_AI_INPUT_MESSAGES] for s in detail.spans) == [
        f"msg #{i}" for i in range(5)
    ]
    rows = store.search_spans("p", SpanQuery(trace_id=trace_id, limit=100)).spans
    assert len(rows) == 5
    assert store.get_trace("other", trace_id) is None
    with pytest.raises(InvalidInputError, match="not 'other'"):
        store.insert_arrow("other", batch.spans, {})
    with pytest.raises(InvalidInputError, match="otel_traces columns"):
        store.insert_arrow("p", batch.spans.drop_columns(["SpanId"]), {})


def test_writer_inserts_decoded_and_model_built_batches_once_per_project(
    tmp_path: Path, store: TraceStore
) -> None:
    """One spool range holding a worker's batch, a batch built from span models
    (``spans_to_arrow``) and an uncached record (decoded again, as after a restart), over two
    projects: each span stored once, in its own project, and a second writer replaying the same
    range adds nothing."""
    traces = {name: secrets.token_hex(16) for name in ("arrow", "objects", "replayed")}
    bodies = {name: json_request(_spans(t, 3, name)) for name, t in traces.items()}
    projects = {"arrow": "a", "objects": "b", "replayed": "a"}

    def decode(records: list[IngestRecord]) -> list[SpanBatch | Exception]:
        return [
            decode_body(r.body, r.content_type, r.content_encoding, r.project, LIMIT)
            for r in records
        ]

    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1 << 24)
    arrow = decode_body(bodies["arrow"], JSON, None, "a", LIMIT)
    decoded = decode_body(bodies["objects"], JSON, None, "b", LIMIT)
    models = span_records(decoded.spans)
    cached: dict[str, Any] = {
        "arrow": arrow,
        "objects": SpanBatch("b", spans_to_arrow("b", models), decoded.payloads),
        "replayed": None,
    }
    end = None
    for name, body in bodies.items():
        record = IngestRecord(projects[name], JSON, None, body).encode()
        end = spool.append(record, cached=cached[name], cached_bytes=len(body))
    assert end is not None
    spool.wait_durable(end, timeout=5)
    writer = SpoolWriter(
        spool, store, CollectorMetrics(), decode, batch_max_spans=1000, batch_max_wait_s=0.2
    )
    writer.start()
    try:
        for name, trace_id in traces.items():
            detail = _wait_trace(store, projects[name], trace_id)
            assert len(detail.spans) == 3
            assert detail.spans[0].attributes[A.GEN_AI_INPUT_MESSAGES].startswith(name)
            other = "b" if projects[name] == "a" else "a"
            assert store.get_trace(other, trace_id) is None
    finally:
        writer.stop()
    # Pretend the commit never happened: a new spool replays the same range with its tokens.
    start = Position(end.segment, len(SEGMENT_MAGIC))
    spool.close()
    spool_commit = Spool(spool_dir, max_bytes=1 << 24)
    spool_commit._write_committed(start, InFlight(start, end))  # as a crash would leave it
    spool_commit.close()
    replay = Spool(spool_dir, max_bytes=1 << 24)
    assert replay.recovered_inflight is not None
    writer = SpoolWriter(
        replay, store, CollectorMetrics(), decode, batch_max_spans=1000, batch_max_wait_s=0
    )
    writer.start()
    try:
        _wait_committed(replay, end)
    finally:
        writer.stop()
        replay.close()
    for name, trace_id in traces.items():
        rows = store.search_spans(projects[name], SpanQuery(trace_id=trace_id, limit=100)).spans
        assert len(rows) == 3, f"{name}: {len(rows)} rows after the replay"


def _wait_trace(store: TraceStore, project: str, trace_id: str) -> Any:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = store.get_trace(project, trace_id)
        if detail is not None and len(detail.spans) >= 3:
            return detail
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} was not stored in project {project}")


def _wait_committed(spool: Spool, end: Any) -> None:
    import time

    deadline = time.monotonic() + 30
    while spool.committed < end and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spool.committed >= end

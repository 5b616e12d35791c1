"""Dead letters: spans the store refuses for good (the real engine failing to convert a value
into a column it can never hold) go to DATA_DIR/dead-letter with the reason, are counted, the
good spans of their batch are stored, and ingest carries on behind them."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from collector.dead_letter import caused_by_rows, permanent_reason, transient
from collector.spool import IngestRecord, Spool
from schemas import tables
from schemas.errors import InvalidInputError, StoreError
from tests.collector.test_app_durability import ChdbHttpServer
from tests.collector.test_app_ingest import json_request, json_span
from tests.fixtures.collector import RunningCollector

POISON = "poison"


def test_permanent_and_transient_store_errors_are_told_apart() -> None:
    violated = StoreError(
        "ClickHouse at x: insert into otel_traces failed: Code: 469. "
        "DB::Exception: Constraint `c` is violated. (VIOLATED_CONSTRAINT)"
    )
    assert "469" in (permanent_reason(violated) or "") and caused_by_rows(violated)
    no_column = StoreError("Code: 16. DB::Exception: No such column X. (NO_SUCH_COLUMN_IN_TABLE)")
    # the table, not the batch: every batch would fail alike, so the spool holds them
    assert permanent_reason(no_column) is None and transient(no_column)
    cause = InvalidInputError("a span table's column types are not the otel_traces ones")
    wrapped = StoreError("insert failed")
    wrapped.__cause__ = cause
    assert "column types" in (permanent_reason(wrapped) or "") and not caused_by_rows(wrapped)
    too_many_parts = StoreError("Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS)")
    assert permanent_reason(too_many_parts) is None and transient(too_many_parts)
    down = StoreError("cannot reach ClickHouse at http://127.0.0.1:1: Connection refused")
    assert permanent_reason(down) is None and not transient(down)


def _span(trace_id: str, name: str, status_message: str = "") -> dict[str, object]:
    status = {"code": 2, "message": status_message} if status_message else {"code": 1}
    return json_span(trace_id, secrets.token_hex(8), name, status=status)


def _post(server: RunningCollector, spans: list[dict[str, object]]) -> None:
    r = httpx.post(
        server.url + "/v1/traces",
        content=json_request(spans),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


@pytest.mark.integration
def test_a_batch_the_store_rejects_for_good_is_dead_lettered_and_ingest_continues(
    chdb_http: ChdbHttpServer, start_collector: Callable[..., RunningCollector]
) -> None:
    server = start_collector(clickhouse_url=chdb_http.url)
    # The engine can store status messages '' and 'boom' only: a span whose status message is
    # POISON can never be inserted (chDB's streaming insert skips CHECK constraints silently,
    # so a type the value cannot convert to is the real permanent failure used here).
    statement = (
        f"ALTER TABLE retrace.{tables.SPANS.name} "
        "MODIFY COLUMN StatusMessage Enum8('' = 0, 'boom' = 1)"
    )
    r = httpx.post(chdb_http.url, params={"query": statement}, timeout=30)
    assert r.status_code == 200, r.text

    # One request, so one batch: the bad span among seven good ones of another trace.
    poisoned, neighbours = secrets.token_hex(16), secrets.token_hex(16)
    spans = [_span(neighbours, f"chat {i}") for i in range(7)]
    spans.insert(3, _span(poisoned, "chat doomed", status_message=POISON))
    _post(server, spans)
    deadline = time.monotonic() + 60
    while server.client.metrics()["retrace_dead_letter_batches_total"] < 1:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)

    detail = server.client.wait_for_trace(neighbours, min_spans=7, timeout=60)
    assert sorted(s.name for s in detail.spans) == [f"chat {i}" for i in range(7)]
    later = secrets.token_hex(16)
    _post(server, [_span(later, "chat fine")])
    detail = server.client.wait_for_trace(later, min_spans=1, timeout=60)
    assert [s.name for s in detail.spans] == ["chat fine"]
    assert httpx.get(f"{server.url}/api/v1/traces/{poisoned}").status_code == 404

    letters = server.data_dir / "dead-letter"
    (meta_path,) = sorted(letters.glob("*.json"))
    meta = json.loads(meta_path.read_text())
    assert meta["kind"] == "batch" and meta["project"] == "default"
    assert meta["span_count"] == 1 and meta["attempts"] == 1  # the bad span alone
    assert "ClickHouse code 691" in meta["reason"]
    assert "UNKNOWN_ELEMENT_OF_ENUM" in meta["error"]
    assert meta["time"] and meta["spool_range"].startswith("spool:")
    with pa.memory_map(str(letters / meta["files"]["spans"])) as source:
        rows = pa.ipc.open_file(source).read_all()
    assert rows.column("StatusMessage").to_pylist() == [POISON]
    assert rows.column("TraceId").to_pylist() == [poisoned]

    metrics = server.client.metrics()
    assert metrics["retrace_dead_letter_spans_total"] == 1
    assert metrics["retrace_dead_letter_batches_total"] == 1
    assert metrics["retrace_spans_stored_total"] == 8
    assert metrics["retrace_spool_bytes"] == 0  # the spool moved past it
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert "dead-lettered 1 spans" in server.log()


@pytest.mark.integration
def test_a_spooled_record_that_no_longer_decodes_is_dead_lettered_on_replay(
    tmp_path: Path, start_collector: Callable[..., RunningCollector]
) -> None:
    # What a collector left in its spool before a restart: one record a newer decoder refuses
    # (not valid protobuf), then a good one.
    data_dir = tmp_path / "retrace"
    spool = Spool(data_dir / "spool", max_bytes=1 << 30)
    bad = IngestRecord("default", "application/x-protobuf", None, b"\xff\x00 not protobuf")
    good_trace = secrets.token_hex(16)
    good = IngestRecord(
        "default", "application/json", None, json_request([_span(good_trace, "chat kept")])
    )
    spool.wait_durable(spool.append(bad.encode()))
    spool.wait_durable(spool.append(good.encode()))
    spool.close()

    server = start_collector(data_dir=data_dir)
    detail = server.client.wait_for_trace(good_trace, min_spans=1, timeout=60)
    assert [s.name for s in detail.spans] == ["chat kept"]
    (meta_path,) = sorted((data_dir / "dead-letter").glob("*.json"))
    meta = json.loads(meta_path.read_text())
    assert meta["kind"] == "spool_record" and "no longer decodes" in meta["reason"]
    assert "protobuf" in meta["error"]
    record = (data_dir / "dead-letter" / meta["files"]["record"]).read_bytes()
    assert IngestRecord.decode(record) == bad
    assert server.client.metrics()["retrace_dead_letter_batches_total"] == 1

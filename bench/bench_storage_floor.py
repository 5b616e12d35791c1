"""What storing a span costs ClickHouse itself: Retrace's tables against the stock exporter's.

    .venv/bin/python bench/bench_storage_floor.py [--spans 40000] [--insert-spans 20000]
                                                  [--repeat 3]
    .venv/bin/python bench/bench_storage_floor.py --reads DIR [--fetches 120]

Issue 14 asks for 50,000 spans/s stored on two cores: 40 µs of CPU per span for everything.
This measures the engine's share alone, with decoding left out: the same realistic agent spans
(``bench_ingest.py``'s, decoded once by the collector's own code, untimed) are inserted into

* **retrace**: the embedded store's tables (payload rows, the dedup lookups, the span insert
  with its materialized views), as ``bench_ingest_stages.py --merges`` does;
* **stock**: the OpenTelemetry Collector ClickHouse exporter's own schema (its ``otel_traces``
  DDL, 22 columns, six skip indexes, ordered by service, span name and time, and its
  ``otel_traces_trace_id_ts`` table and view), with each span's payloads (messages, tool
  arguments and results) inline in ``SpanAttributes`` as the exporter stores them: the least a
  ClickHouse trace store does per span.

in inserts of ``--insert-spans`` spans with background merges stopped, then every table is
merged into one part (``OPTIMIZE ... FINAL``: the least merging a span can cost; a live store
merges more). Process CPU, chDB's threads included. Prints µs/span per stage and the rate two
cores could store at if nothing else ran; asserts nothing.

``--reads DIR``: the same comparison for a cold 200-span trace read (issue 14: p50 <= 20 ms
in-process). DIR is a store built by ``bench_store.py --spans 5000000 --data-dir DIR``; its spans
are copied once into the exporter's schema (a ``stock`` database added to that store), then
traces are read alternately with Grafana's ClickHouse plugin's trace query on the stock table
(the lookup table's time bounds, then the trace's spans) and with Retrace's spans statement and
``get_trace`` (spans, payloads, the trace's summary), each trace once (cold). Prints wall p50.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest_stages import merge_all, store_timed, writer_batches  # noqa: E402

from collector._span_batch import SpanBatch  # noqa: E402
from collector.store import _sql as q  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402

# The exporter's DDL (opentelemetry-collector-contrib, exporter/clickhouseexporter,
# internal/sql_templates: traces_table.sql, traces_id_ts_lookup_table.sql and its view), without
# the optional TTL.
STOCK_DDL = [
    "CREATE DATABASE IF NOT EXISTS stock",
    """CREATE TABLE stock.otel_traces (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1""",
    """CREATE TABLE stock.otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS index_granularity = 8192""",
    """CREATE MATERIALIZED VIEW stock.otel_traces_trace_id_ts_mv
TO stock.otel_traces_trace_id_ts
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM stock.otel_traces
WHERE TraceId != ''
GROUP BY TraceId""",
]
# The exporter's 22 columns (its INSERT's), as Retrace's span tables name them.
STOCK_COLUMNS = [
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
]


def _stock_table(batch: SpanBatch) -> pa.Table:
    """The exporter's 22 columns, each span's payloads put back into its attributes."""
    spans = batch.spans
    table = spans.select(STOCK_COLUMNS)
    attrs = []
    for kv, refs in zip(
        spans.column("SpanAttributes").to_pylist(),
        spans.column("PayloadRefs").to_pylist(),
        strict=True,
    ):
        merged = dict(kv)
        for key, digest in refs:
            merged[key] = batch.payloads[digest].decode("utf-8", "replace")
        attrs.append(list(merged.items()))
    i = table.schema.get_field_index("SpanAttributes")
    return table.set_column(i, "SpanAttributes", pa.array(attrs, table.schema.field(i).type))


def _report(label: str, t: dict[str, float], n: int) -> None:
    total = sum(t.values()) / n * 1e6
    print(f"  {label}")
    for k, v in t.items():
        if v / n * 1e6 >= 0.05:
            print(f"    {k:58s} {v / n * 1e6:6.1f} us/span")
    cores = os.cpu_count() or 1
    print(
        f"    {'storing alone':58s} {total:6.1f} us/span -> at most"
        f" {cores / total * 1e6:,.0f} spans/s on {cores} cores"
    )


# Grafana's ClickHouse data source reads a trace this way (the lookup table's bounds first).
GRAFANA_TRACE_SQL = """
WITH {trace_id:String} AS trace_id,
  (SELECT min(Start) FROM stock.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_start,
  (SELECT max(End) + 1 FROM stock.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_end
SELECT TraceId, SpanId, ParentSpanId, SpanName, ServiceName, Duration, Timestamp,
       SpanAttributes, ResourceAttributes, StatusCode, StatusMessage, SpanKind,
       `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
       `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`
FROM stock.otel_traces
WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end
"""


def _reads(data_dir: Path, fetches: int) -> None:
    store = ChdbTraceStore(data_dir)
    store.migrate()
    if not store._rows(
        "SELECT count() AS n FROM system.tables WHERE database = 'stock' AND name = 'otel_traces'"
    )[0]["n"]:
        for ddl in STOCK_DDL:
            store._command(ddl)
        columns = ", ".join(f"`{name}`" for name in STOCK_COLUMNS)
        start = time.perf_counter()
        store._command(
            f"INSERT INTO stock.otel_traces ({columns}) SELECT {columns} FROM {q.SPANS_TABLE}"
        )
        took = time.perf_counter() - start
        print(f"copied the store's spans into the exporter's schema in {took:.0f} s")
    ids = [
        str(r["TraceId"])
        for r in store._rows(
            "SELECT TraceId FROM retrace_trace_summaries WHERE ProjectId = 'bench'"
            " GROUP BY TraceId HAVING sum(SpanCount) = 200 ORDER BY rand() LIMIT {n:UInt32}",
            {"n": 3 * fetches + 3},
        )
    ]
    reads = {
        "stock schema, Grafana's trace query (spans only)": lambda t: (
            store._query_arrow(GRAFANA_TRACE_SQL, {"trace_id": t}).num_rows
        ),
        "retrace, its spans statement (spans only)": lambda t: (
            store._query_arrow(q.TRACE_SPANS_SQL, {"project": "bench", "trace_id": t}).num_rows
        ),
        "retrace, get_trace (spans, payloads, summary)": lambda t: len(
            (store.get_trace("bench", t) or _missing(t)).spans
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in reads}
    trace_ids = iter(ids)
    for read in reads.values():
        read(next(trace_ids))  # warm the process, not the trace
    for _ in range(fetches):
        for label, read in reads.items():
            trace_id = next(trace_ids)
            start = time.perf_counter()
            rows = read(trace_id)
            times[label].append((time.perf_counter() - start) * 1000)
            if rows != 200:
                raise SystemExit(f"{label}: {rows} spans read of trace {trace_id}, not 200")
    store.close()
    parts = f"load {os.getloadavg()[0]:.1f}"
    print(f"cold 200-span trace reads, {fetches} each, alternated; {parts}")
    for label, xs in times.items():
        xs.sort()
        print(
            f"  {label:50s} wall p50 {xs[len(xs) // 2]:6.1f} ms"
            f"  p10 {xs[len(xs) // 10]:6.1f}  p90 {xs[9 * len(xs) // 10]:6.1f}"
        )


def _missing(trace_id: str) -> Any:
    raise SystemExit(f"trace {trace_id} not found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--insert-spans", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reads", type=Path, default=None, metavar="DIR")
    parser.add_argument("--fetches", type=int, default=120)
    args = parser.parse_args()
    if args.reads is not None:
        _reads(args.reads, args.fetches)
        return
    for rep in range(args.repeat):
        groups = writer_batches(args.spans, args.batch, rep, args.insert_spans)
        n = sum(g.span_count for g in groups)
        stock_tables = [_stock_table(g) for g in groups]
        inline = sum(t.column("SpanAttributes").nbytes for t in stock_tables) / n
        print(f"run {rep + 1}: {n} spans in {len(groups)} inserts; load {os.getloadavg()[0]:.1f}")

        with tempfile.TemporaryDirectory(prefix="retrace-floor-") as tmp:
            store = ChdbTraceStore(Path(tmp))
            store.migrate()
            store._command("SYSTEM STOP MERGES")
            t: dict[str, float] = defaultdict(float)
            for i, g in enumerate(groups):
                store_timed(store, g, f"floor:{i}", t)
            merge_all(store, t)
            store.close()
            _report("retrace (its own tables)", t, n)

        with tempfile.TemporaryDirectory(prefix="retrace-floor-stock-") as tmp:
            store = ChdbTraceStore(Path(tmp))
            store.migrate()  # (its own tables stay empty)
            for ddl in STOCK_DDL:
                store._command(ddl)
            store._command("SYSTEM STOP MERGES")
            t = defaultdict(float)
            for table in stock_tables:
                c = time.process_time()
                store._insert("stock.otel_traces", table, {})
                t["insert spans, payloads inline (+ the exporter's view)"] += (
                    time.process_time() - c
                )
            merge_all(store, t, "stock")
            store.close()
            _report(f"stock exporter schema ({inline:,.0f} B of SpanAttributes per span)", t, n)


if __name__ == "__main__":
    main()

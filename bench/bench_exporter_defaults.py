"""What migration 0007's DEFAULT expressions cost: exporter-style inserts (22 columns, Retrace's
columns derived by ClickHouse) against Retrace-style inserts (every column given), in chDB.

    .venv/bin/python bench/bench_exporter_defaults.py [--spans 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from collector.store.chdb import ChdbTraceStore
from schemas.tables import SPANS

EXPORTER = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
    "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
]  # fmt: skip


def _rows(n: int, offset: int) -> dict[str, list[object]]:
    messages = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "explain the numbers " * 30}]},
        ]
    )
    cols: dict[str, list[object]] = {c: [] for c in EXPORTER}
    for i in range(n):
        trace = f"{(offset + i) // 10:032x}"
        values: dict[str, object] = {
            "Timestamp": 1_780_000_000_000_000_000 + i,
            "TraceId": trace,
            "SpanId": f"{offset + i:016x}",
            "ParentSpanId": "" if i % 10 == 0 else f"{offset + i - i % 10:016x}",
            "TraceState": "",
            "SpanName": "chat gpt-4o" if i % 10 else "invoke_agent a",
            "SpanKind": "Client",
            "ServiceName": "svc",
            "ResourceAttributes": {"service.name": "svc", "retrace.project": "bench"},
            "ScopeName": "s",
            "ScopeVersion": "1",
            "SpanAttributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": "120",
                "gen_ai.input.messages": messages,
            },
            "Duration": 1000,
            "StatusCode": "Unset",
            "StatusMessage": "",
        }
        for c in EXPORTER:
            cols[c].append(values.get(c, []))
    return cols


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    args = parser.parse_args()
    store = ChdbTraceStore(Path(tempfile.mkdtemp()))
    store.migrate()
    schema = pa.schema([(c, SPANS.column(c).arrow) for c in EXPORTER])
    table = pa.table(_rows(args.spans, 0), schema=schema)
    started = time.perf_counter()
    store._insert("otel_traces", table, {})
    exporter_s = time.perf_counter() - started
    stored = store._rows(
        "SELECT count() AS n, sum(LlmCalls) AS llm FROM retrace_trace_summaries"
        " WHERE ProjectId = 'bench'"
    )
    full = store._query_arrow(
        "SELECT * EXCEPT (IngestedAt) FROM otel_traces WHERE ProjectId = 'bench'"
    ).rename_columns([f.name for f in SPANS.arrow_schema()])
    full = full.set_column(
        full.schema.get_field_index("TraceId"),
        "TraceId",
        pa.array([t + "x" for t in full.column("TraceId").to_pylist()]),
    )
    started = time.perf_counter()
    store._insert("otel_traces", full.cast(SPANS.arrow_schema()), {})
    retrace_s = time.perf_counter() - started
    print(
        f"{args.spans} spans: exporter-style insert (defaults derive Retrace's columns) "
        f"{exporter_s * 1000:.0f} ms, {args.spans / exporter_s:,.0f} spans/s; "
        f"Retrace-style insert (all columns given) {retrace_s * 1000:.0f} ms, "
        f"{args.spans / retrace_s:,.0f} spans/s; summaries {stored}"
    )
    store.close()


if __name__ == "__main__":
    main()

"""Probe: OTLP protobuf decoded column-wise in chDB (``ProtobufSingle``), not in Python.

    .venv/bin/python bench/bench_otlp_chdb_probe.py [--spans 20480] [--batch 512] [--repeat 2]

Not the collector's path: a measurement for issue 14 (can the per-span Python walk move into the
ClickHouse engine?). The bench's realistic agent spans (``bench_ingest.build_requests``) are
written as raw ``ExportTraceServiceRequest`` files and read by chDB with a hand-written subset of
the OTLP messages (AnyValue without arrays/maps: those would need the Python fallback), flattened
with ARRAY JOIN over resource_spans → scope_spans → spans. Two queries: decode + flatten alone,
and decode + the column work the builder does (hex ids, payload attributes split out and
SHA256-hashed, one redaction regex over the values) returned as Arrow. Each is timed per request
(one query per 512-span request, as a decode worker would) and over all files in one query, in
process CPU with ``max_threads = 1``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import build_requests  # noqa: E402

PROTO = """
syntax = "proto3";
package probe;
message AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3;
                   double double_value = 4; bytes bytes_value = 7; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Scope { string name = 1; string version = 2; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; Status status = 15;
}
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Request { repeated ResourceSpans resource_spans = 1; }
"""
_KV = (
    "Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, "
    "int_value Int64, double_value Float64, bytes_value String)))"
)
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}), scope_spans Array(Tuple("
    "scope Tuple(name String, version String), spans Array(Tuple(trace_id String, "
    "span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
    f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KV}, "
    "status Tuple(message String, code Int32)))))))"
)
_FROM = """
FROM file('{files}', 'ProtobufSingle', '{structure}')
ARRAY JOIN resource_spans AS rs ARRAY JOIN rs.scope_spans AS ss ARRAY JOIN ss.spans AS sp
SETTINGS format_schema = '{schema}:Request', max_threads = 1
"""
DECODE_ONLY = (
    "SELECT hex(sp.trace_id) AS TraceId, hex(sp.span_id) AS SpanId, sp.name AS SpanName, "
    "sp.start_time_unix_nano AS Start, arrayMap(kv -> kv.1, sp.attributes) AS Keys, "
    "arrayMap(kv -> kv.2.1, sp.attributes) AS Values" + _FROM
)
WITH_COLUMN_WORK = (
    """SELECT lower(hex(sp.trace_id)) AS TraceId, lower(hex(sp.span_id)) AS SpanId,
       lower(hex(sp.parent_span_id)) AS ParentSpanId, sp.name AS SpanName,
       sp.start_time_unix_nano AS Start,
       sp.end_time_unix_nano - sp.start_time_unix_nano AS Duration,
       arrayMap(kv -> kv.1, sp.attributes) AS Keys,
       arrayMap(kv -> if(kv.2.1 != '', kv.2.1, toString(kv.2.3)), sp.attributes) AS Values,
       arrayMap(v -> if(length(v) > 256, lower(hex(SHA256(v))), ''), Values) AS Hashes,
       mapFromArrays(arrayFilter((k, h) -> h = '', Keys, Hashes),
                     arrayFilter((v, h) -> h = '', Values, Hashes)) AS SpanAttributes,
       mapFromArrays(arrayFilter((k, h) -> h != '', Keys, Hashes),
                     arrayFilter(h -> h != '', Hashes)) AS PayloadRefs,
       arrayFilter(v -> length(v) > 256, Values) AS Payloads,
       replaceRegexpAll(arrayStringConcat(Values, '\\n'), 'sk-[A-Za-z0-9_\\\\-]{{20,}}',
                        '[REDACTED:openai_key]') AS RedactionProbe"""
    + _FROM
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_480)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    from chdb import session

    work = Path(tempfile.mkdtemp(prefix="retrace-chdb-probe-"))
    schema = work / "otlp_probe.proto"
    schema.write_text(PROTO)
    raws = [gzip.decompress(b) for b in build_requests(args.spans, args.batch, seed=11)]
    for i, raw in enumerate(raws):
        (work / f"req{i}.bin").write_bytes(raw)
    engine = session.Session()  # type: ignore[no-untyped-call]

    def run(sql: str, files: str) -> int:
        query = sql.format(files=files, structure=STRUCTURE, schema=schema)
        return int(engine.query(query, "ArrowTable").num_rows)

    for name, sql in (("decode + flatten", DECODE_ONLY), ("+ column work", WITH_COLUMN_WORK)):
        for _ in range(args.repeat):
            began = time.process_time()
            rows = sum(run(sql, str(work / f"req{i}.bin")) for i in range(len(raws)))
            per_request = (time.process_time() - began) / rows * 1e6
            began = time.process_time()
            rows = run(sql, str(work / f"req{{0..{len(raws) - 1}}}.bin"))
            one_query = (time.process_time() - began) / rows * 1e6
            print(
                f"{name:18s} {rows} spans: {per_request:5.1f} us/span CPU one query per request, "
                f"{one_query:5.1f} us/span in one query (load {os.getloadavg()[0]:.1f})"
            )


if __name__ == "__main__":
    main()

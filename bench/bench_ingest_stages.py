"""Ingest CPU per stage, in one process: where a stored span's CPU goes.

    .venv/bin/python bench/bench_ingest_stages.py [--spans 40000] [--batch 512] [--repeat 3]

The same realistic agent spans as ``bench_ingest.py`` (gzip protobuf requests of --batch spans),
run through the collector's stages one after another on an embedded chDB store in a temp dir,
each timed in process CPU (``time.process_time``: all threads, chDB's included), so the figures
hold on a shared machine. Prints µs of CPU per span for each stage and in total; asserts nothing.
HTTP handling, the spool's append/fsync and pickling between processes are not in it (see
``bench_ingest.py`` for the end-to-end figure).

``--merges``: background merges are stopped while the stages run (so no insert stage pays for
them), then every MergeTree table is merged into one part (``OPTIMIZE ... FINAL``) and timed;
the store's share alone (inserts + that one merge) is printed as the rate two cores could store
at if decoding cost nothing: the ceiling of the storage design, set against 50,000 spans/s.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import build_requests  # noqa: E402

from collector._span_batch import SpanBatch, rows_to_arrow  # noqa: E402
from collector.otlp._builder import BatchBuilder  # noqa: E402
from collector.otlp._protobuf import decode_protobuf  # noqa: E402
from collector.redact import may_contain_secret  # noqa: E402
from collector.store import _batches  # noqa: E402
from collector.store import _sql as q  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--insert-spans", type=int, default=10_000, help="spans per store insert")
    parser.add_argument("--merges", action="store_true", help="time merging the tables too")
    args = parser.parse_args()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    for rep in range(args.repeat):
        bodies = build_requests(args.spans, args.batch, seed=rep)
        t: dict[str, float] = defaultdict(float)
        store = ChdbTraceStore(Path(tempfile.mkdtemp(prefix="retrace-stages-")))
        store.migrate()
        if args.merges:
            store._command("SYSTEM STOP MERGES")
        batches: list[SpanBatch] = []
        n = 0
        for body in bodies:
            c = time.process_time()
            raw = gzip.decompress(body)
            t["gunzip"] += time.process_time() - c
            c = time.process_time()
            ExportTraceServiceRequest.FromString(raw)
            t["protobuf parse (alone)"] += time.process_time() - c
            c = time.process_time()
            scan = may_contain_secret(raw)
            t["secret prefilter (hyperscan)"] += time.process_time() - c
            builder = BatchBuilder("bench", scan_text=scan)
            c = time.process_time()
            decode_protobuf(raw, builder)
            t["parse + validate + redact + payloads + conventions"] += time.process_time() - c
            c = time.process_time()
            table = rows_to_arrow("bench", builder.rows)
            t["Arrow build"] += time.process_time() - c
            batch = SpanBatch("bench", table, builder.payloads)
            c = time.process_time()
            import pickle

            pickle.loads(pickle.dumps(batch))
            t["pickle round trip (worker -> server)"] += time.process_time() - c
            batches.append(batch)
            n += batch.span_count
        groups = writer_groups(batches, args.insert_spans)
        for i, group in enumerate(groups):
            c = time.process_time()
            merged = SpanBatch.merge(group)
            t["merge"] += time.process_time() - c
            store_timed(store, merged, f"bench:{i}", t)
        if args.merges:
            merge_all(store, t)
        store.close()
        total = sum(v for k, v in t.items() if k != "protobuf parse (alone)")
        print(f"run {rep + 1}: {n} spans, {len(bodies)} requests, {len(groups)} inserts")
        for k, v in t.items():
            print(f"  {k:55s} {v / n * 1e6:7.1f} us/span")
        print(f"  {'total (without the parse-alone line)':55s} {total / n * 1e6:7.1f} us/span")
        if args.merges:
            stored = sum(v for k, v in t.items() if k.startswith("store:")) / n * 1e6
            cores = os.cpu_count() or 1
            print(
                f"  storing alone: {stored:.1f} us/span -> at most {cores / stored * 1e6:,.0f}"
                f" spans/s on {cores} cores if decoding cost nothing (50,000 spans/s leaves"
                f" {cores / 50_000 * 1e6:.0f} us/span for everything)"
            )


def writer_groups(batches: list[SpanBatch], insert_spans: int) -> list[list[SpanBatch]]:
    """The decoded batches in groups of about ``insert_spans`` spans, as the writer merges them
    into one store insert."""
    groups: list[list[SpanBatch]] = [[]]
    for b in batches:
        if sum(x.span_count for x in groups[-1]) >= insert_spans:
            groups.append([])
        groups[-1].append(b)
    return groups


def writer_batches(spans: int, batch: int, seed: int, insert_spans: int) -> list[SpanBatch]:
    """The bench's requests decoded by the collector's code (untimed) and merged into the
    batches the writer would insert."""
    decoded = []
    for body in build_requests(spans, batch, seed=seed):
        raw = gzip.decompress(body)
        builder = BatchBuilder("bench", scan_text=may_contain_secret(raw))
        decode_protobuf(raw, builder)
        decoded.append(builder.finish())
    return [SpanBatch.merge(g) for g in writer_groups(decoded, insert_spans)]


def store_timed(store: ChdbTraceStore, merged: SpanBatch, token: str, t: dict[str, float]) -> None:
    """Store one writer batch as the writer does, each step's process CPU added to ``t``."""
    c = time.process_time()
    store.put_payloads("bench", merged.payloads)
    t["store: payload insert"] += time.process_time() - c
    c = time.process_time()
    table = _batches.check_span_table("bench", merged.spans)
    unstored = store._unstored_spans("bench", table)
    t["store: dedup lookups"] += time.process_time() - c
    c = time.process_time()
    store._insert(
        q.SPANS_TABLE,
        unstored,
        {"insert_deduplication_token": token, **dict(_DEDUP)},
    )
    t["store: span insert (+ MVs)"] += time.process_time() - c


def merge_all(store: ChdbTraceStore, t: dict[str, float], database: str = "retrace") -> None:
    """Merge every MergeTree table of ``database`` that stores spans (not the migrations table)
    into one part, each timed as its own stage."""
    store._command("SYSTEM START MERGES")
    tables = store._query_arrow(
        f"SELECT name FROM system.tables WHERE database = {q.render_literal(database)}"
        " AND engine LIKE '%MergeTree' AND name != 'retrace_schema_migrations' ORDER BY name"
    )
    for name in tables.column("name").to_pylist():
        c = time.process_time()
        store._command(f"OPTIMIZE TABLE {database}.{q.quote_identifier(name)} FINAL")
        t[f"store: merge {name} into one part"] += time.process_time() - c


from collector.store._engine import _DEDUP_SETTINGS as _DEDUP  # noqa: E402

if __name__ == "__main__":
    main()

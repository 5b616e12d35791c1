"""Can the writer overlap chDB statements? Two probes behind BENCHMARKS' answer (no).

    .venv/bin/python bench/bench_chdb_concurrency.py [--spans 60000]

1. One chDB session, two threads: the same CPU-bound query (``max_threads = 1``) twice in a
   row, then once from each of two threads at the same time; wall times printed.
2. The writer's insert of ``--spans`` realistic spans (payloads, dedup lookups, spans with their
   views; 15,000-span batches) read from one Arrow file per statement, against the same rows
   split into two files read with ``max_insert_threads = 2``; wall and CPU µs/span, alternated
   twice. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest_stages import writer_batches  # noqa: E402

from collector.store import _batches  # noqa: E402
from collector.store import _sql as q  # noqa: E402
from collector.store._engine import _DEDUP_SETTINGS  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402

_QUERY = "SELECT sum(cityHash64(number)) FROM numbers(600000000) SETTINGS max_threads = 1"


def _threads(store: ChdbTraceStore) -> None:
    start = time.perf_counter()
    store._session.query(_QUERY)
    store._session.query(_QUERY)
    in_a_row = time.perf_counter() - start
    threads = [threading.Thread(target=store._session.query, args=(_QUERY,)) for _ in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = time.perf_counter() - start
    print(
        f"1. the query twice in a row {in_a_row:.2f} s; from two threads at once {together:.2f} s"
    )


def _insert(store: ChdbTraceStore, table: str, data: pa.Table, files: int, token: str) -> None:
    columns = ", ".join(f"`{name}`" for name in data.schema.names)
    settings: dict[str, object] = {"insert_deduplication_token": token} if token else {}
    if table == q.SPANS_TABLE:
        settings.update(_DEDUP_SETTINGS)
    if files > 1:
        settings.update(max_insert_threads=files, max_threads=files)
    with tempfile.TemporaryDirectory(dir=store._insert_dir) as tmp:
        step = -(-data.num_rows // files)
        for k in range(files):
            path = f"{tmp}/p{k}.arrows"
            with pa.OSFile(path, "wb") as out, pa.ipc.new_stream(out, data.schema) as writer:
                writer.write_table(data.slice(k * step, step))
        source = f"{tmp}/p{{{','.join(str(k) for k in range(files))}}}.arrows"
        clause = ", ".join(f"{k} = {q.render_literal(v)}" for k, v in settings.items())
        store._session.query(
            f"INSERT INTO {table} ({columns})"
            + (f" SETTINGS {clause}" if clause else "")
            + f" SELECT {columns} FROM file({q.render_literal(source)}, 'ArrowStream')"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retrace-concurrency-") as tmp:
        store = ChdbTraceStore(Path(tmp))
        store.migrate()
        _threads(store)
        store.close()
    batches = writer_batches(args.spans, 512, 1, 15_000)
    n = sum(b.span_count for b in batches)
    print(f"2. storing {n:,} spans in {len(batches)} inserts, load {os.getloadavg()[0]:.1f}")
    for files in (1, 2, 1, 2):
        with tempfile.TemporaryDirectory(prefix="retrace-concurrency-") as tmp:
            store = ChdbTraceStore(Path(tmp))
            store.migrate()
            wall, cpu = time.perf_counter(), time.process_time()
            for i, b in enumerate(batches):
                payloads = _batches.payloads_to_arrow("bench", b.payloads)
                _insert(store, q.PAYLOADS_TABLE, payloads, files, "")
                checked = _batches.check_span_table("bench", b.spans)
                _insert(
                    store, q.SPANS_TABLE, store._unstored_spans("bench", checked), files, f"c{i}"
                )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stored = store._rows("SELECT count() AS n FROM otel_traces")[0]["n"]
            store.close()
        print(
            f"  {files} Arrow file(s) per insert: wall {wall / n * 1e6:5.1f} us/span"
            f" ({n / wall:,.0f} spans/s), CPU {cpu / n * 1e6:5.1f} us/span; {stored:,} stored"
        )


if __name__ == "__main__":
    main()

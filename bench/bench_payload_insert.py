"""Where a payload row's insert cost goes: codec, sorting, MergeTree's part writing.

    .venv/bin/python bench/bench_payload_insert.py [--spans 40000] [--repeat 2]
    .venv/bin/python bench/bench_payload_insert.py --granules [--spans 40000] [--repeat 2]

The realistic agent spans of ``bench_ingest.py`` decoded by the collector (not timed), their
payloads grouped as the writer inserts them (20,000-span batches), then inserted into
``retrace_payloads`` of a fresh embedded chDB store per variant: the content codec ZSTD(3) (the
table's), ZSTD(1), LZ4 and none, each followed by one merge into one part (``OPTIMIZE ...
FINAL``); and the same Arrow files into a ``Null`` table, an unsorted MergeTree (the real
table's granule and block settings), and the real table with ``optimize_on_insert = 0`` /
``max_threads = 1``. Process CPU per span (chDB's threads included); prints figures, asserts
nothing.

``--granules``: the trade-off migration 0010 made for reads. The same payload rows into copies of
the table with its granule and block settings (32 KB granules, 8 KB compressed blocks), 0004's
(256-row granules, 64 KB blocks), 64 KB granules with 8 KB blocks, and MergeTree's defaults;
inserted with merges stopped, merged once, then 60 lookups of 18 stored payloads (a run's) timed
(wall p50).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest_stages import writer_batches  # noqa: E402

from collector.store import _batches  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402

_COLUMNS = "ProjectId, Hash, Size, Content"


def _payload_tables(spans: int) -> tuple[list[pa.Table], int]:
    merged = writer_batches(spans, 512, 1, 20_000)
    n = sum(m.span_count for m in merged)
    return [_batches.payloads_to_arrow("bench", m.payloads) for m in merged], n


def _timed(n: int, run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return (time.process_time() - start) / n * 1e6


# --granules: table settings compared (label -> SETTINGS clause).
GRANULE_VARIANTS = {
    "0010, today (32 KB granules, 8 KB blocks)": (
        "index_granularity = 256, index_granularity_bytes = 32768, min_compress_block_size = 8192"
    ),
    "0004 (256-row granules, 64 KB blocks)": "index_granularity = 256",
    "64 KB granules, 8 KB blocks": (
        "index_granularity = 256, index_granularity_bytes = 65536, min_compress_block_size = 8192"
    ),
    "MergeTree defaults (8,192 rows, 64 KB blocks)": "index_granularity = 8192",
}


def _granules(tables: list[pa.Table], n: int, repeat: int) -> None:
    hashes = [h for t in tables for h in t.column("Hash").to_pylist()]
    for rep in range(repeat):
        for label, settings in GRANULE_VARIANTS.items():
            with tempfile.TemporaryDirectory(prefix="retrace-granules-") as tmp:
                store = ChdbTraceStore(Path(tmp))
                store.migrate()
                store._command(
                    "CREATE TABLE variant (ProjectId LowCardinality(String) CODEC(ZSTD(1)),"
                    " Hash FixedString(64), Size UInt64, Content String CODEC(ZSTD(3)),"
                    " FirstSeen DateTime64(3) DEFAULT now64(3))"
                    " ENGINE = ReplacingMergeTree(FirstSeen) ORDER BY (ProjectId, Hash)"
                    f" SETTINGS {settings}"
                )
                store._command("SYSTEM STOP MERGES")
                insert = _timed(n, lambda s=store: [s._insert("variant", t, {}) for t in tables])
                store._command("SYSTEM START MERGES")
                merge = _timed(n, lambda s=store: s._command("OPTIMIZE TABLE variant FINAL"))
                picker = random.Random(rep)
                waits = []
                for _ in range(60):
                    wanted = picker.sample(hashes, 18)
                    start = time.perf_counter()
                    store._rows(
                        "SELECT any(Content) AS c FROM variant WHERE ProjectId = 'bench'"
                        " AND Hash IN {h:Array(FixedString(64))} GROUP BY Hash",
                        {"h": wanted},
                    )
                    waits.append((time.perf_counter() - start) * 1000)
                store.close()
            waits.sort()
            print(
                f"run {rep + 1}: {label:46s} insert {insert:5.1f}  one merge {merge:5.1f}"
                f" us/span | 18 stored payloads looked up: p50 {waits[len(waits) // 2]:5.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--granules", action="store_true", help="compare granule settings")
    args = parser.parse_args()
    tables, n = _payload_tables(args.spans)
    rows = sum(t.num_rows for t in tables)
    size = sum(len(c) for t in tables for c in t.column("Content").to_pylist())
    print(f"{n} spans: {rows / n:.2f} payloads and {size / n:,.0f} content bytes per span")
    if args.granules:
        _granules(tables, n, args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="retrace-payloads-") as tmp:
        files = []
        for i, table in enumerate(tables):
            path = Path(tmp) / f"payloads-{i}.arrows"
            with pa.OSFile(str(path), "wb") as out, pa.ipc.new_stream(out, table.schema) as w:
                w.write_table(table)
            files.append(path)
        for rep in range(args.repeat):
            for codec in ("ZSTD(3)", "ZSTD(1)", "LZ4", "NONE"):
                store = ChdbTraceStore(Path(tempfile.mkdtemp(dir=tmp)))
                store.migrate()
                store._command(
                    f"ALTER TABLE retrace_payloads MODIFY COLUMN Content String CODEC({codec})"
                )
                insert = _timed(
                    n, lambda s=store: [s._insert("retrace_payloads", t, {}) for t in tables]
                )
                merge = _timed(
                    n, lambda s=store: s._command("OPTIMIZE TABLE retrace_payloads FINAL")
                )
                store.close()
                print(
                    f"run {rep + 1}: codec {codec:8s} insert {insert:5.1f}"
                    f"  one merge {merge:5.1f} us/span"
                )
            store = ChdbTraceStore(Path(tempfile.mkdtemp(dir=tmp)))
            store.migrate()
            store._command(
                "CREATE TABLE null_sink (ProjectId String, Hash FixedString(64), Size UInt64,"
                " Content String) ENGINE = Null"
            )
            store._command(
                "CREATE TABLE unsorted (ProjectId LowCardinality(String), Hash FixedString(64),"
                " Size UInt64, Content String CODEC(ZSTD(3))) ENGINE = MergeTree ORDER BY tuple()"
                " SETTINGS index_granularity = 256, index_granularity_bytes = 32768,"
                " min_compress_block_size = 8192"
            )
            variants = {
                "Null table": ("null_sink", ""),
                "unsorted MergeTree": ("unsorted", ""),
                "retrace_payloads": ("retrace_payloads", ""),
                "  optimize_on_insert = 0": (
                    "retrace_payloads",
                    " SETTINGS optimize_on_insert = 0",
                ),
                "  max_threads = 1": ("retrace_payloads", " SETTINGS max_threads = 1"),
            }
            for label, (target, settings) in variants.items():
                sql = (
                    f"INSERT INTO {target} ({_COLUMNS}){settings} "
                    f"SELECT {_COLUMNS} FROM file('{{}}', 'ArrowStream')"
                )
                took = _timed(
                    n, lambda s=store, q=sql: [s._session.query(q.format(f)) for f in files]
                )
                print(f"run {rep + 1}: {label:26s} insert {took:5.1f} us/span")
            store.close()


if __name__ == "__main__":
    main()

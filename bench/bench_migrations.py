"""How long upgrading a big store's schema takes: each migration after schema 8, timed.

    .venv/bin/python bench/bench_migrations.py [--spans 5000000] [--from-version 8]

Creates an embedded store at ``--from-version`` (only the migrations up to it applied), fills it
with ``--spans`` spans in SQL (``bench_store.py``'s generator), then applies each newer migration
alone and prints its wall time: what a user upgrading Retrace waits for on first start. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import BULK_SQL  # noqa: E402

import collector.store._engine as engine  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402
from schemas.migrations import SCHEMA_VERSION, load_migrations  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5_000_000)
    parser.add_argument("--from-version", type=int, default=8)
    args = parser.parse_args()
    shipped = load_migrations()

    def up_to(version: int) -> None:  # the store applies only the migrations up to ``version``
        engine.load_migrations = lambda: [m for m in shipped if m.version <= version]

    with tempfile.TemporaryDirectory(prefix="retrace-migrations-") as tmp:
        up_to(args.from_version)
        store = ChdbTraceStore(Path(tmp))
        store.migrate()
        start = time.perf_counter()
        t0 = time.time_ns() - (args.spans // 200) * 10_000_000_000
        for first in range(0, args.spans, 1_000_000):
            count = min(1_000_000, args.spans - first)
            store._command(
                BULK_SQL,
                {"t0": t0, "seed": "m", "project": "bench", "first": first, "count": count},
            )
        took = time.perf_counter() - start
        print(f"{args.spans:,} spans at schema {args.from_version} in {took:.0f} s")
        for migration in shipped:
            if migration.version <= args.from_version:
                continue
            up_to(migration.version)
            start = time.perf_counter()
            store.migrate()
            took = time.perf_counter() - start
            print(f"  {migration.version:04d}_{migration.description}: {took:.1f} s")
        store.close()
    print(f"(schema {SCHEMA_VERSION} is the newest)")


if __name__ == "__main__":
    main()

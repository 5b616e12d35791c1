"""What a table's DEFAULT expressions cost every statement that reads it (schema 12).

    .venv/bin/python bench/bench_table_defaults.py [--rounds 500]

ClickHouse analyses a table's column defaults for each statement on it. On an empty embedded
chDB store this times ``SELECT SpanId FROM t WHERE TraceId = 'x'`` on three copies of
``otel_traces``: with schema 7's derived-column defaults (the text of migration 0007 for the
columns migration 0012 rewrote), as the table is now, and with no defaults at all; the three are
alternated ``--rounds`` times. Prints wall p50/p10/p90 and each table's DDL size; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.store.chdb import ChdbTraceStore  # noqa: E402
from schemas.derived_sql import DERIVED_DEFAULTS  # noqa: E402

_REWRITTEN = ("InputTokens", "OutputTokens", "InputPreview", "OutputPreview")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retrace-defaults-") as tmp:
        store = ChdbTraceStore(Path(tmp))
        store.migrate()
        old = (ROOT / "schemas/migrations/0007_derived_column_defaults.sql").read_text()
        clauses = [
            line.strip().rstrip(",;")
            for line in old.splitlines()
            if re.match(rf"\s+MODIFY COLUMN ({'|'.join(_REWRITTEN)}) ", line)
        ]
        store._command("CREATE TABLE schema7 AS otel_traces")
        store._command("ALTER TABLE schema7 " + ", ".join(clauses))
        store._command("CREATE TABLE no_defaults AS otel_traces")
        for column in DERIVED_DEFAULTS:
            store._command(f"ALTER TABLE no_defaults MODIFY COLUMN `{column}` REMOVE DEFAULT")
        tables = ("schema7", "otel_traces", "no_defaults")
        times: dict[str, list[float]] = {t: [] for t in tables}
        for _ in range(args.rounds):
            for table in tables:
                start = time.perf_counter()
                store._session.query(f"SELECT SpanId FROM {table} WHERE TraceId = 'x'", "CSV")
                times[table].append(time.perf_counter() - start)
        for table in tables:
            ddl = store._query_arrow(
                "SELECT create_table_query FROM system.tables"
                f" WHERE database = currentDatabase() AND name = '{table}'"
            ).column(0)[0]
            xs = sorted(times[table])
            n = len(xs)
            print(
                f"{table:12s} DDL {len(ddl.as_py()):6,d} chars  p50 {xs[n // 2] * 1e3:5.2f} ms"
                f"  p10 {xs[n // 10] * 1e3:5.2f} ms  p90 {xs[n * 9 // 10] * 1e3:5.2f} ms"
            )
        store.close()


if __name__ == "__main__":
    main()

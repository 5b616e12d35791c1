"""Where a cold single-trace read's time goes inside chDB, and what was tried against it.

    .venv/bin/python bench/bench_trace_read_profile.py DIR [--reads 50]

DIR is a store built by ``bench_store.py --spans 5000000 --data-dir DIR`` (use a copy: this opens
it, so it is migrated). Every read is of a different 200-span trace (cold). Prints, asserting
nothing:

* the spans statement of ``get_trace`` (``TRACE_SPANS_SQL``) and variants without its feedback
  subquery, without its time bounds, and with neither: wall p50 and the engine's own ProfileEvents
  per statement (query analysis, which runs the scalar subqueries; plan optimisation; plan and
  pipeline build; reading threads; CPU);
* ``get_trace`` as it is against a variant reading the bounds and the feedback in one statement
  of their own first, the bounds then bound as constants (alternated);
* the spans statement with query settings that might cut its fixed cost (alternated).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.store import _rows  # noqa: E402
from collector.store import _sql as q  # noqa: E402
from collector.store.chdb import ChdbTraceStore  # noqa: E402
from schemas.models import TraceDetail  # noqa: E402

PROJECT = "bench"
_EVENTS = (
    "QueryAnalysisMicroseconds",
    "QueryPlanOptimizeMicroseconds",
    "QueryPlanBuildMicroseconds",
    "QueryPipelineBuildMicroseconds",
    "LocalThreadPoolBusyMicroseconds",
    "OSCPUVirtualTimeMicroseconds",
)
_FEEDBACK = ", " + q._FEEDBACK_OF_TRACE
_BOUND = "\n  AND Timestamp >= bounds.1 AND Timestamp <= bounds.2"
_WITH = q.TRACE_SPANS_SQL[: q.TRACE_SPANS_SQL.index(") AS bounds") + len(") AS bounds")]
_UNBOUNDED = q.TRACE_SPANS_SQL.replace(_BOUND, "").replace(_WITH, "")
_CONSTANT_BOUNDS = _UNBOUNDED.replace(_FEEDBACK, "") + (
    "  AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64})"
    " AND Timestamp <= fromUnixTimestamp64Nano({hi:Int64})\n"
)
_BOUNDS_AND_FEEDBACK = f"""
SELECT toUnixTimestamp64Nano(min(Start)) AS Lo, toUnixTimestamp64Nano(max(End)) AS Hi,
       count() AS N, {q._FEEDBACK_OF_TRACE}
FROM {q.TRACE_ID_TS_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
"""


def _trace_ids(store: ChdbTraceStore, n: int) -> list[str]:
    return [
        str(r["TraceId"])
        for r in store._rows(
            "SELECT TraceId FROM retrace_trace_summaries WHERE ProjectId = {p:String}"
            " GROUP BY TraceId HAVING sum(SpanCount) = 200 ORDER BY rand() LIMIT {n:UInt32}",
            {"p": PROJECT, "n": n},
        )
    ]


def _events(store: ChdbTraceStore) -> dict[str, int]:
    return {
        r["event"]: int(r["value"]) for r in store._rows("SELECT event, value FROM system.events")
    }


def _get_trace_two_statements(store: ChdbTraceStore, trace_id: str) -> TraceDetail | None:
    """get_trace with the bounds and feedback read first, the bounds then constants."""
    params = {"project": PROJECT, "trace_id": trace_id}
    head = store._rows(_BOUNDS_AND_FEEDBACK, params)[0]
    if not int(head["N"]):
        return None
    feedback = _rows.feedback_from_column(head["Feedback"])
    found = store._query_arrow(
        _CONSTANT_BOUNDS, {**params, "lo": head["Lo"], "hi": head["Hi"]}
    ).to_pylist()
    rows = _rows.ordered_unique_spans(found)
    payloads = store._resolve(PROJECT, rows)
    return TraceDetail.model_construct(
        trace=_rows.summary_from_spans(rows),
        spans=[_rows.span_from_row(r, payloads) for r in rows],
        feedback=feedback,
    )


def _alternated(
    reads: dict[str, Callable[[str], Any]], ids: list[str], rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in reads}
    trace_ids = iter(ids)
    for _ in range(rounds):
        for label, read in reads.items():
            trace_id = next(trace_ids)
            start = time.perf_counter()
            read(trace_id)
            times[label].append((time.perf_counter() - start) * 1000)
    return times


def _print(times: dict[str, list[float]]) -> None:
    for label, xs in times.items():
        xs.sort()
        print(
            f"  {label:46s} wall p50 {statistics.median(xs):6.1f} ms  p10 {xs[len(xs) // 10]:6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    store = ChdbTraceStore(args.data_dir)
    store.migrate()
    n = args.reads
    ids = _trace_ids(store, 16 * n + 8)
    if len(ids) < 16 * n + 8:
        raise SystemExit(
            f"{args.data_dir} holds too few 200-span traces: build it with bench_store"
        )
    trace_ids = iter(ids)
    store.get_trace(PROJECT, next(trace_ids))  # warm the process, not a trace

    print(f"1. the spans statement, {n} cold reads each (ms per statement)")
    variants = {
        "as get_trace runs it": q.TRACE_SPANS_SQL,
        "without the feedback subquery": q.TRACE_SPANS_SQL.replace(_FEEDBACK, ""),
        "without the time bounds": _UNBOUNDED,
        "without either": _UNBOUNDED.replace(_FEEDBACK, ""),
    }
    for label, sql in variants.items():
        before, walls = _events(store), []
        for _ in range(n):
            params = {"project": PROJECT, "trace_id": next(trace_ids)}
            start = time.perf_counter()
            store._query_arrow(sql, params)
            walls.append((time.perf_counter() - start) * 1000)
        after = _events(store)
        per_read = {e: (after.get(e, 0) - before.get(e, 0)) / n / 1000 for e in _EVENTS}
        spent = "  ".join(
            f"{e.removesuffix('Microseconds')} {ms:.2f}" for e, ms in per_read.items()
        )
        print(f"  {label:32s} wall p50 {statistics.median(walls):6.1f} | {spent}")

    print(f"2. get_trace, {n} alternated pairs")
    _print(
        _alternated(
            {
                "as it is (bounds and feedback as subqueries)": lambda t: store.get_trace(
                    PROJECT, t
                ),
                "bounds + feedback first, bounds as constants": lambda t: _get_trace_two_statements(
                    store, t
                ),
            },
            [next(trace_ids) for _ in range(2 * n)],
            n,
        )
    )

    print(f"3. the spans statement with settings, {n} alternated rounds")
    settings = {
        "as it is": "",
        "max_threads = 1": "max_threads = 1",
        "no PREWHERE": "optimize_move_to_prewhere = 0",
        "no skip indexes": "use_skip_indexes = 0",
        "no query-condition cache": "use_query_condition_cache = 0",
        "no plan optimisations": "query_plan_enable_optimizations = 0",
    }
    _print(
        _alternated(
            {
                label: lambda t, s=setting: store._query_arrow(
                    q.TRACE_SPANS_SQL + (f" SETTINGS {s}" if s else ""),
                    {"project": PROJECT, "trace_id": t},
                )
                for label, setting in settings.items()
            },
            [next(trace_ids) for _ in range(len(settings) * n)],
            n,
        )
    )
    store.close()


if __name__ == "__main__":
    main()

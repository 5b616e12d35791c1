"""Trace store benchmark: insert throughput, trace fetch, trace list, bytes per span.

    .venv/bin/python bench/bench_store.py --spans 5000000            # chDB in a temp dir
    .venv/bin/python bench/bench_store.py --clickhouse-url http://127.0.0.1:8123

Prints figures; asserts nothing. Phases:
 (a) insert throughput of realistic agent spans (chat spans carry ~2 KB of messages as payloads,
     tool spans arguments and results), through ``TraceStore.insert_spans`` in spool-sized batches;
 (d) compressed bytes per span, with and without payloads, for those realistic spans;
 (b) trace fetch p50/p99 of 200-span traces from a store filled to ``--spans`` spans (the bulk is
     generated in SQL with ``INSERT ... SELECT FROM numbers()``);
 (c) trace list (50 newest, with a filter) p50/p99, lists sorted by counts, stats, span search;
 (e) the spans of (a) delivered again in new batches (a client retrying everything): insert time,
     and whether the store still holds each span once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.store import TraceStore, open_store
from schemas import attributes as attr
from schemas.models import (
    RunStatus,
    SpanQuery,
    SpanRecord,
    StatsQuery,
    StatusCode,
    TraceQuery,
)
from schemas.settings import Settings

PROJECT = "bench"
WORDS = [
    "the",
    "agent",
    "reads",
    "the",
    "table",
    "and",
    "counts",
    "rows",
    "grouped",
    "by",
    "region",
    "then",
    "plots",
    "the",
    "revenue",
    "trend",
    "for",
    "each",
    "quarter",
    "while",
    "checking",
    "null",
    "values",
    "outliers",
    "and",
    "currency",
    "conversions",
]


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def realistic_trace(rng: random.Random, t0: int) -> tuple[list[SpanRecord], dict[str, bytes]]:
    """One run: invoke_agent root, 5 chat spans (~2 KB input messages), 4 tool spans."""
    trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
    root_id = f"{rng.getrandbits(64):016x}"
    spans: list[SpanRecord] = []
    payloads: dict[str, bytes] = {}

    def blob(value: object) -> str:
        data = json.dumps(value).encode()
        digest = hashlib.sha256(data).hexdigest()
        payloads[digest] = data
        return digest

    question = _text(rng, 80)
    history = [
        {"role": "system", "content": _text(rng, 1400)},
        {"role": "user", "content": question},
    ]
    t = t0 + 1_000_000
    for step in range(9):
        span_id = f"{rng.getrandbits(64):016x}"
        if step % 2 == 0:
            history.append({"role": "assistant", "content": _text(rng, 250)})
            out = {"role": "assistant", "content": _text(rng, 200)}
            spans.append(
                SpanRecord(
                    project_id=PROJECT,
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=root_id,
                    name="chat gpt-4o-mini",
                    service_name="retrace-runner",
                    attributes={
                        attr.GEN_AI_OPERATION_NAME: attr.OP_CHAT,
                        attr.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                        attr.GEN_AI_USAGE_INPUT_TOKENS: "812",
                    },
                    start_time_unix_nano=t,
                    duration_ns=rng.randint(200, 2000) * 1_000_000,
                    status_code=StatusCode.OK,
                    operation=attr.OP_CHAT,
                    agent_name="analyst",
                    model="gpt-4o-mini",
                    input_tokens=rng.randint(300, 3000),
                    output_tokens=rng.randint(20, 400),
                    step_index=step,
                    payload_refs={
                        attr.GEN_AI_INPUT_MESSAGES: blob(history[-6:]),
                        attr.GEN_AI_OUTPUT_MESSAGES: blob([out]),
                    },
                )
            )
        else:
            tool = rng.choice(["run_python", "run_sql", "read_file"])
            spans.append(
                SpanRecord(
                    project_id=PROJECT,
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=root_id,
                    name=f"execute_tool {tool}",
                    service_name="retrace-runner",
                    attributes={
                        attr.GEN_AI_OPERATION_NAME: attr.OP_EXECUTE_TOOL,
                        attr.GEN_AI_TOOL_NAME: tool,
                        attr.RETRACE_SANDBOX_BACKEND: "gvisor",
                        attr.RETRACE_SANDBOX_EXIT_CODE: "0",
                    },
                    start_time_unix_nano=t,
                    duration_ns=rng.randint(20, 900) * 1_000_000,
                    status_code=StatusCode.OK,
                    operation=attr.OP_EXECUTE_TOOL,
                    agent_name="analyst",
                    tool_name=tool,
                    step_index=step,
                    payload_refs={
                        attr.GEN_AI_TOOL_CALL_ARGUMENTS: blob({"code": _text(rng, 200)}),
                        attr.GEN_AI_TOOL_CALL_RESULT: blob({"stdout": _text(rng, 300)}),
                    },
                )
            )
        t += 3_000_000_000
    spans.insert(
        0,
        SpanRecord(
            project_id=PROJECT,
            trace_id=trace_id,
            span_id=root_id,
            name="invoke_agent analyst",
            service_name="retrace-runner",
            attributes={attr.RETRACE_RUN_STATUS: RunStatus.COMPLETED.value},
            start_time_unix_nano=t0,
            duration_ns=t - t0,
            status_code=StatusCode.OK,
            operation=attr.OP_INVOKE_AGENT,
            agent_name="analyst",
            input_preview=question[:200],
            output_preview=_text(rng, 120),
        ),
    )
    return spans, payloads


# Bulk rows: 200 spans per trace, one trace per 10 s over the days before now, about 2 KB of
# attributes per span kept inline (payload refs point to hashes that need not exist).
BULK_SQL = """
INSERT INTO otel_traces
    (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
     ResourceAttributes, SpanAttributes, Duration, StatusCode, ProjectId, Operation, AgentName,
     Model, ToolName, InputTokens, OutputTokens, StepIndex, PayloadRefs, InputPreview,
     OutputPreview)
SELECT
    fromUnixTimestamp64Nano(toInt64({t0:Int64} + intDiv(number, 200) * 10000000000
        + (number % 200) * 40000000)) AS Timestamp,
    lower(hex(MD5(concat({seed:String}, toString(intDiv(number, 200)))))) AS TraceId,
    lower(hex(substring(MD5(toString(number)), 1, 8))) AS SpanId,
    if(number % 200 = 0, '',
       lower(hex(substring(MD5(toString(number - number % 200)), 1, 8)))) AS ParentSpanId,
    multiIf(number % 200 = 0, 'invoke_agent analyst', number % 2 = 1, 'chat gpt-4o-mini',
            concat('execute_tool ', ['run_python', 'run_sql', 'read_file'][number % 3 + 1]))
        AS SpanName,
    'Internal' AS SpanKind,
    'retrace-runner' AS ServiceName,
    map('service.name', 'retrace-runner') AS ResourceAttributes,
    map('gen_ai.operation.name', if(number % 2 = 1, 'chat', 'execute_tool'),
        'retrace.run.status', if(number % 200 = 0, if(intDiv(number, 200) % 10 = 0, 'failed',
        'completed'), ''),
        'customer.id', concat('c-', toString(intDiv(number, 200) % 1000))) AS SpanAttributes,
    if(number % 200 = 0, 8000000000, 1000000 + (number * 7919) % 900000000) AS Duration,
    if(number % 200 = 0 AND intDiv(number, 200) % 10 = 0, 'Error', 'Ok') AS StatusCode,
    {project:String} AS ProjectId,
    multiIf(number % 200 = 0, 'invoke_agent', number % 2 = 1, 'chat', 'execute_tool')
        AS Operation,
    if(intDiv(number, 200) % 3 = 0, 'planner', 'analyst') AS AgentName,
    if(number % 2 = 1, 'gpt-4o-mini', '') AS Model,
    if(number % 2 = 0 AND number % 200 != 0,
       ['run_python', 'run_sql', 'read_file'][number % 3 + 1], '') AS ToolName,
    if(number % 2 = 1, 500 + number % 2000, 0) AS InputTokens,
    if(number % 2 = 1, 20 + number % 300, 0) AS OutputTokens,
    toInt32(number % 200) - 1 AS StepIndex,
    map('gen_ai.input.messages', lower(hex(SHA256(toString(number))))) AS PayloadRefs,
    if(number % 200 = 0, concat('question ', toString(intDiv(number, 200))), '')
        AS InputPreview,
    if(number % 200 = 0, 'an answer', '') AS OutputPreview
FROM numbers({first:UInt64}, {count:UInt64})
"""


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _fmt(values: list[float], cpu: list[float]) -> str:
    return (
        f"p50 {_pct(values, 50):7.2f} ms   p99 {_pct(values, 99):7.2f} ms   "
        f"(cpu p50 {_pct(cpu, 50):6.2f} ms, min {min(cpu):6.2f} ms, n={len(values)})"
    )


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def _insert_all(
    store: TraceStore, batches: list[tuple[list[SpanRecord], dict[str, bytes]]], token: str
) -> tuple[float, float]:
    """Insert every batch (each with its own dedup token); wall and in-process CPU seconds."""
    t = time.perf_counter()
    c = time.process_time()
    for n, (spans, payloads) in enumerate(batches):
        store.insert_spans(PROJECT, spans, payloads, dedup_token=f"{token}-{n}")
    return time.perf_counter() - t, time.process_time() - c


def _span_rows(store: TraceStore) -> int:
    rows = store._rows(  # type: ignore[attr-defined]
        "SELECT count() AS n FROM otel_traces WHERE ProjectId = {p:String}", {"p": PROJECT}
    )
    return int(rows[0]["n"])


def _storage(store: TraceStore) -> dict[str, tuple[int, int]]:
    rows = store._rows(  # type: ignore[attr-defined]
        "SELECT table, sum(rows) AS r, sum(data_compressed_bytes) AS b FROM system.parts "
        "WHERE active AND database = currentDatabase() GROUP BY table"
    )
    return {r["table"]: (int(r["r"]), int(r["b"])) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5_000_000, help="store size for (b), (c)")
    parser.add_argument("--insert-traces", type=int, default=10_000, help="10 spans each, (a)")
    parser.add_argument("--batch-spans", type=int, default=20_000)
    parser.add_argument("--fetches", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--clickhouse-url", default=None)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --data-dir: when the store there already holds --spans spans, skip (a), (d), "
        "(e) and the bulk fill and only read (a 5 M-span store takes minutes to build)",
    )
    parser.add_argument(
        "--lists-only", action="store_true", help="with --reuse: only the reads of (c)"
    )
    args = parser.parse_args()

    tmp = None
    if args.data_dir is None and not args.clickhouse_url:
        tmp = tempfile.TemporaryDirectory(prefix="retrace-bench-")
        args.data_dir = Path(tmp.name)
    settings = Settings(
        data_dir=args.data_dir or Path(".retrace-bench"),
        clickhouse_url=args.clickhouse_url,
        clickhouse_database=f"retrace_bench_{uuid.uuid4().hex[:8]}",
    )
    store = open_store(settings)
    print(f"backend: {store.backend_name}")

    reuse = bool(args.reuse and args.data_dir is not None and _span_rows(store) >= args.spans)
    if reuse:
        print(f"    reusing the store in {args.data_dir}: {_span_rows(store):,} spans")
        _reads(store, args)
        store.close()
        return

    # (a) insert throughput ------------------------------------------------------------------
    rng = random.Random(7)
    now = time.time_ns()
    start = now - 6 * 3600 * 1_000_000_000
    batches: list[tuple[list[SpanRecord], dict[str, bytes]]] = []
    spans_batch: list[SpanRecord] = []
    payload_batch: dict[str, bytes] = {}
    for i in range(args.insert_traces):
        spans, payloads = realistic_trace(rng, start + i * 2_000_000_000)
        spans_batch.extend(spans)
        payload_batch.update(payloads)
        if len(spans_batch) >= args.batch_spans:
            batches.append((spans_batch, payload_batch))
            spans_batch, payload_batch = [], {}
    if spans_batch:
        batches.append((spans_batch, payload_batch))
    total = sum(len(b[0]) for b in batches)
    payload_bytes = sum(len(v) for b in batches for v in b[1].values())
    elapsed, cpu = _insert_all(store, batches, "bench")
    print(
        f"(a) insert: {total} realistic spans ({payload_bytes / total:.0f} payload bytes/span) in "
        f"{len(batches)} batches of ~{args.batch_spans}: {elapsed:.2f} s = "
        f"{total / elapsed:,.0f} spans/s (in-process CPU {cpu:.2f} s = "
        f"{total / cpu:,.0f} spans per CPU-second; {_load()})"
    )

    # (d) storage --------------------------------------------------------------------------------
    sizes = _storage(store)
    span_rows, span_bytes = sizes.get("otel_traces", (0, 0))
    _, payload_stored = sizes.get("retrace_payloads", (0, 0))
    if span_rows:
        print(
            f"(d) bytes/span: {span_bytes / span_rows:.0f} without payloads, "
            f"{(span_bytes + payload_stored) / span_rows:.0f} with payloads "
            f"(payload bytes raw {payload_bytes / span_rows:.0f}/span)"
        )

    # (b) fill to --spans with SQL, then fetch -----------------------------------------------------
    bulk = max(0, args.spans - total)
    bulk -= bulk % 200
    chunk = 1_000_000
    t = time.perf_counter()
    bulk_start = now - (bulk // 200) * 10_000_000_000 - 3600 * 1_000_000_000
    for first in range(0, bulk, chunk):
        store._command(  # type: ignore[attr-defined]
            BULK_SQL,
            {
                "t0": bulk_start,
                "seed": "bench",
                "project": PROJECT,
                "first": first,
                "count": min(chunk, bulk - first),
            },
        )
    if bulk:
        print(f"    generated {bulk:,} spans in SQL in {time.perf_counter() - t:.1f} s")
    # Let background merges of the bulk parts finish: they run in this process (chDB) and would
    # be counted in the CPU figures below.
    t = time.perf_counter()
    while time.perf_counter() - t < 300:
        merging = store._rows("SELECT count() AS n FROM system.merges")  # type: ignore[attr-defined]
        if int(merging[0]["n"]) == 0:
            break
        time.sleep(1)
    print(f"    waited {time.perf_counter() - t:.0f} s for background merges")
    rows = store._rows(  # type: ignore[attr-defined]
        "SELECT count() AS n FROM otel_traces WHERE ProjectId = {p:String}", {"p": PROJECT}
    )
    print(f"    store holds {int(rows[0]['n']):,} spans")
    _reads(store, args)

    # (e) re-delivery ---------------------------------------------------------------------------
    before = _span_rows(store)
    elapsed, cpu = _insert_all(store, batches, "bench-again")
    print(
        f"(e) the {total} spans of (a) again, {len(batches)} new batches: {elapsed:.2f} s "
        f"(in-process CPU {cpu:.2f} s); spans stored {before:,} -> {_span_rows(store):,}; "
        f"{_load()}"
    )

    store.close()
    if tmp is not None:
        tmp.cleanup()


def _reads(store: TraceStore, args: argparse.Namespace) -> None:
    """(b) trace fetches and (c) lists of the filled store."""
    if not args.lists_only:
        _fetches(store, args)
    _lists(store)


def _fetches(store: TraceStore, args: argparse.Namespace) -> None:
    """(b) trace fetches."""
    ids = [
        str(r["TraceId"])
        for r in store._rows(  # type: ignore[attr-defined]
            "SELECT TraceId FROM retrace_trace_summaries WHERE ProjectId = {p:String} "
            "GROUP BY TraceId HAVING sum(SpanCount) = 200 ORDER BY rand() LIMIT {n:UInt32}",
            {"p": PROJECT, "n": args.fetches},
        )
    ]
    if ids:
        store.get_trace(PROJECT, ids[0])  # warm
        timings = []
        cpus = []
        for trace_id in ids:
            t = time.perf_counter()
            c = time.process_time()
            detail = store.get_trace(PROJECT, trace_id)
            cpus.append((time.process_time() - c) * 1000)
            timings.append((time.perf_counter() - t) * 1000)
            assert detail is not None and len(detail.spans) == 200
        print(f"(b) get_trace (200 spans): {_fmt(timings, cpus)}; {_load()}")
        # The lazy reads: the span tree without payloads, then one span with its payloads.
        span_of = {
            t: str(
                store._rows(  # type: ignore[attr-defined]
                    "SELECT any(SpanId) AS s FROM otel_traces WHERE ProjectId = {p:String} "
                    "AND TraceId = {t:String}",
                    {"p": PROJECT, "t": t},
                )[0]["s"]
            )
            for t in ids
        }
        for label, read in (
            ("get_trace_tree (200 spans)", lambda t: store.get_trace_tree(PROJECT, t)),
            ("get_span (1 span + payloads)", lambda t: store.get_span(PROJECT, t, span_of[t])),
        ):
            timings, cpus = [], []
            for trace_id in ids:
                t = time.perf_counter()
                c = time.process_time()
                found = read(trace_id)
                cpus.append((time.process_time() - c) * 1000)
                timings.append((time.perf_counter() - t) * 1000)
                assert found is not None
            print(f"(b) {label}: {_fmt(timings, cpus)}; {_load()}")
    # The realistic runs of (a): 10 spans whose 18 payloads (messages, tool I/O) are resolved.
    ids = [
        str(r["TraceId"])
        for r in store._rows(  # type: ignore[attr-defined]
            "SELECT TraceId FROM retrace_trace_summaries WHERE ProjectId = {p:String} "
            "GROUP BY TraceId HAVING sum(SpanCount) = 10 ORDER BY rand() LIMIT {n:UInt32}",
            {"p": PROJECT, "n": args.fetches},
        )
    ]
    if ids:
        timings = []
        cpus = []
        for trace_id in ids:
            t = time.perf_counter()
            c = time.process_time()
            detail = store.get_trace(PROJECT, trace_id)
            cpus.append((time.process_time() - c) * 1000)
            timings.append((time.perf_counter() - t) * 1000)
            assert detail is not None and len(detail.spans) == 10
        print(f"(b) get_trace (10 spans, 18 payloads): {_fmt(timings, cpus)}; {_load()}")


def _lists(store: TraceStore) -> None:
    """(c) lists, stats and span search."""
    day = datetime.now(UTC) - timedelta(days=1)
    by_tokens = TraceQuery(limit=50, sort="tokens")
    by_spans = TraceQuery(limit=50, sort="spans")
    for label, query in (
        ("50 newest", TraceQuery(limit=50)),
        ("50 newest, status=error", TraceQuery(limit=50, status="error")),
        ("50 newest, agent=planner, last 24h", TraceQuery(limit=50, agent="planner", start=day)),
        (
            "50 newest, attr customer.id=c-7, 24h",
            TraceQuery(limit=50, attributes={"customer.id": "c-7"}, start=day),
        ),
    ):
        store.list_traces(PROJECT, query)
        timings = []
        cpus = []
        for _ in range(30):
            t = time.perf_counter()
            c = time.process_time()
            page = store.list_traces(PROJECT, query)
            cpus.append((time.process_time() - c) * 1000)
            timings.append((time.perf_counter() - t) * 1000)
        print(f"(c) list_traces {label:38s}: {_fmt(timings, cpus)} -> {len(page.traces)} traces")
    # Reads that aggregate the counts of every trace, and the span search.
    for label, read in (
        ("list, 50 with the most tokens", lambda: store.list_traces(PROJECT, by_tokens)),
        ("list, 50 with the most spans", lambda: store.list_traces(PROJECT, by_spans)),
        ("stats, whole store", lambda: store.stats(PROJECT, StatsQuery())),
        ("search_spans, 50 newest", lambda: store.search_spans(PROJECT, SpanQuery(limit=50))),
    ):
        read()
        timings = []
        cpus = []
        for _ in range(10):
            t = time.perf_counter()
            c = time.process_time()
            read()
            cpus.append((time.process_time() - c) * 1000)
            timings.append((time.perf_counter() - t) * 1000)
        print(f"(c) {label:50s}: {_fmt(timings, cpus)}")
    print(_load())


if __name__ == "__main__":
    main()

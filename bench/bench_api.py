"""Query latency over the API: one 200-span trace, and the 50 newest traces with a filter.

    .venv/bin/python bench/bench_api.py [--background-spans 200000] [--requests 200]
                                        [--endpoint URL]

Starts a real ``retrace serve`` (embedded chDB in a temp dir) unless --endpoint is given, loads
background agent runs (bench_ingest's generator) plus one 200-span trace over OTLP/HTTP, waits
until they are stored, then times sequential requests from one keep-alive client and prints
p50/p90/p99 for ``GET /api/v1/traces/{id}``, its span tree (``/spans``, no payloads) and one span
with payloads (``/spans/{span_id}``), and ``GET /api/v1/traces?limit=50&agent=analyst``. Then
loads one ``--wide-spans`` trace (default 10,000) and prints the bytes and time of reading it whole
versus its span tree (every page) plus one span.
"""

from __future__ import annotations

import argparse
import gzip
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import build_requests, start_collector  # noqa: E402

from collector.metrics import parse_metrics  # noqa: E402
from schemas import attributes as A  # noqa: E402


def big_trace(n_spans: int) -> tuple[str, bytes]:
    """One agent run with ``n_spans`` spans (root + alternating chat/tool), gzip protobuf."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    trace_id = secrets.token_bytes(16)
    root_id = secrets.token_bytes(8)
    start = time.time_ns()
    spans = [
        Span(
            trace_id=trace_id,
            span_id=root_id,
            name="invoke_agent analyst",
            start_time_unix_nano=start,
            end_time_unix_nano=start + n_spans * 1_000_000,
            attributes=[
                kv(A.GEN_AI_OPERATION_NAME, "invoke_agent"),
                kv(A.GEN_AI_AGENT_NAME, "analyst"),
            ],
        )
    ]
    for i in range(1, n_spans):
        chat = i % 2 == 1
        attrs = (
            [
                kv(A.GEN_AI_OPERATION_NAME, "chat"),
                kv(A.GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
                kv(
                    A.GEN_AI_INPUT_MESSAGES,
                    f'[{{"role":"user","content":"step {i} ' + "x" * 2000 + '"}]',
                ),
            ]
            if chat
            else [
                kv(A.GEN_AI_OPERATION_NAME, "execute_tool"),
                kv(A.GEN_AI_TOOL_NAME, "run_sql"),
                kv(A.GEN_AI_TOOL_CALL_ARGUMENTS, f'{{"sql": "select {i}"}}'),
            ]
        )
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=secrets.token_bytes(8),
                parent_span_id=root_id,
                name="chat gpt-4o-mini" if chat else "execute_tool run_sql",
                start_time_unix_nano=start + i * 1_000_000,
                end_time_unix_nano=start + i * 1_000_000 + 900_000,
                attributes=attrs,
            )
        )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": [kv(A.SERVICE_NAME, "bench-agent")]},
                scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=spans)],
            )
        ]
    )
    return trace_id.hex(), gzip.compress(req.SerializeToString())


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49] * 1000:6.1f} ms   p90 {q[89] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms"


def _wide(http: httpx.Client, headers: dict[str, str], n_spans: int) -> None:
    """Bytes and time: a ``n_spans``-span trace whole versus its span tree and one span."""
    trace_id, body = big_trace(n_spans)
    assert http.post("/v1/traces", content=body, headers=headers).status_code == 200
    deadline = time.monotonic() + 600
    while True:
        r = http.get(f"/api/v1/traces/{trace_id}/spans", params={"limit": 1})
        if r.status_code == 200 and r.json()["trace"]["span_count"] >= n_spans:
            break
        assert time.monotonic() < deadline, "the wide trace was not stored in time"
        time.sleep(0.5)
    for _ in range(3):
        t = time.perf_counter()
        full = http.get(f"/api/v1/traces/{trace_id}")
        full_s = time.perf_counter() - t
        t = time.perf_counter()
        tree_bytes, pages, spans, cursor = 0, 0, 0, None
        while True:
            params: dict[str, str | int] = {"limit": 5000}
            if cursor:
                params["cursor"] = cursor
            page = http.get(f"/api/v1/traces/{trace_id}/spans", params=params)
            tree_bytes += len(page.content)
            pages += 1
            data = page.json()
            spans += len(data["spans"])
            cursor = data.get("next_cursor")
            if not cursor:
                break
        tree_s = time.perf_counter() - t
        t = time.perf_counter()
        one = http.get(f"/api/v1/traces/{trace_id}/spans/{data['spans'][-1]['span_id']}")
        one_s = time.perf_counter() - t
        assert spans == n_spans and len(full.json()["spans"]) == n_spans
        print(
            f"{n_spans:,}-span trace: full GET {len(full.content):,} bytes, "
            f"{full_s * 1000:.0f} ms;"
            f" span tree {tree_bytes:,} bytes in {pages} pages, {tree_s * 1000:.0f} ms;"
            f" one span {len(one.content):,} bytes, {one_s * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background-spans", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--wide-spans", type=int, default=10_000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="retrace-bench-api-"))
    proc = None
    url = args.endpoint
    if url is None:
        proc, url = start_collector(tmp / "data", tmp / "collector.log")
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            before = parse_metrics(http.get("/metrics").text).get("retrace_spans_stored_total", 0)
            sent = 0
            if args.background_spans:
                for body in build_requests(args.background_spans, 512, seed=7):
                    while http.post("/v1/traces", content=body, headers=headers).status_code != 200:
                        time.sleep(1)
                sent += args.background_spans
            trace_id, body = big_trace(200)
            assert http.post("/v1/traces", content=body, headers=headers).status_code == 200
            sent += 200
            while parse_metrics(http.get("/metrics").text)["retrace_spans_stored_total"] < (
                before + sent
            ):
                time.sleep(0.2)
            print(f"store holds {before + sent:,.0f}+ spans; timing {args.requests} requests each")

            detail = http.get(f"/api/v1/traces/{trace_id}").json()
            assert len(detail["spans"]) == 200, len(detail["spans"])
            samples = []
            for _ in range(args.requests):
                t = time.perf_counter()
                r = http.get(f"/api/v1/traces/{trace_id}")
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
            print(f"GET /api/v1/traces/{{id}} (200 spans):     {percentiles(samples)}")
            samples = []
            for _ in range(args.requests):
                t = time.perf_counter()
                r = http.get(f"/api/v1/traces/{trace_id}/spans")
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
            print(f"GET /api/v1/traces/{{id}}/spans (tree):    {percentiles(samples)}")
            span_id = detail["spans"][1]["span_id"]
            samples = []
            for _ in range(args.requests):
                t = time.perf_counter()
                r = http.get(f"/api/v1/traces/{trace_id}/spans/{span_id}")
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
            print(f"GET /api/v1/traces/{{id}}/spans/{{span}}:    {percentiles(samples)}")
            samples = []
            for _ in range(args.requests):
                t = time.perf_counter()
                r = http.get("/api/v1/traces", params={"limit": 50, "agent": "analyst"})
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200 and len(r.json()["traces"]) == 50
            print(f"GET /api/v1/traces?limit=50&agent=analyst: {percentiles(samples)}")
            if args.wide_spans:
                _wide(http, headers, args.wide_spans)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()

"""OTLP/HTTP ingest over a real socket: the official OTel SDK exporter, JSON, gzip, partial
success, every malformed case (400/413/415 with messages, never a 500), and /metrics."""

from __future__ import annotations

import gzip
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from schemas import attributes as A
from tests.fixtures.collector import RunningCollector, launch_collector

pytestmark = pytest.mark.integration

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    """One collector for this module (with a small body limit so 413 is cheap to provoke)."""
    data = tmp_path_factory.mktemp("ingest") / "retrace"
    env = {"RETRACE_MAX_BODY_BYTES": str(MAX_BODY), "RETRACE_DECODE_WORKERS": "2"}
    running = launch_collector(data, env=env)
    yield running
    running.kill()


def make_agent_spans(n_tools: int = 2) -> list[ReadableSpan]:
    """A small agent run made with the real OTel SDK: root, one chat span, tool spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({A.SERVICE_NAME: "ingest-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.collector")
    messages = json.dumps([{"role": "user", "content": "How many rows? " + "x" * 3000}])
    with tracer.start_as_current_span("invoke_agent analyst") as root:
        root.set_attribute(A.GEN_AI_OPERATION_NAME, "invoke_agent")
        root.set_attribute(A.GEN_AI_AGENT_NAME, "analyst")
        with tracer.start_as_current_span("chat gpt-test") as chat:
            chat.set_attribute(A.GEN_AI_OPERATION_NAME, "chat")
            chat.set_attribute(A.GEN_AI_REQUEST_MODEL, "gpt-test")
            chat.set_attribute(A.GEN_AI_INPUT_MESSAGES, messages)
            chat.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, 120)
        for i in range(n_tools):
            with tracer.start_as_current_span("execute_tool run_sql") as tool:
                tool.set_attribute(A.GEN_AI_OPERATION_NAME, "execute_tool")
                tool.set_attribute(A.GEN_AI_TOOL_NAME, "run_sql")
                tool.set_attribute(A.GEN_AI_TOOL_CALL_ARGUMENTS, json.dumps({"sql": f"select {i}"}))
                if i == n_tools - 1:
                    tool.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def _hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def json_span(trace_id: str, span_id: str, name: str, **extra: Any) -> dict[str, Any]:
    now = time.time_ns()
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 5_000_000),
        "attributes": [{"key": A.GEN_AI_OPERATION_NAME, "value": {"stringValue": "chat"}}],
        "status": {"code": 1},
    }
    span.update(extra)
    return span


def json_request(spans: list[dict[str, Any]]) -> bytes:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": A.SERVICE_NAME, "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }
    return json.dumps(body).encode()


def _post(server: RunningCollector, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/traces", content=body, headers=headers, timeout=30)


# --- the official SDK exporter ----------------------------------------------------------------


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otel_sdk_exporter_spans_become_queryable(
    server: RunningCollector, compression: Compression
) -> None:
    spans = make_agent_spans()
    exporter = OTLPSpanExporter(endpoint=server.url + "/v1/traces", compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    trace_id = _hex_trace(spans[0])
    detail = server.client.wait_for_trace(trace_id, min_spans=len(spans))
    by_id = {s.span_id: s for s in detail.spans}
    assert set(by_id) == {_hex_span(s) for s in spans}
    root = next(s for s in spans if s.parent is None)
    chat = next(s for s in spans if s.name == "chat gpt-test")
    got_root, got_chat = by_id[_hex_span(root)], by_id[_hex_span(chat)]
    assert got_root.parent_span_id == ""
    assert got_chat.parent_span_id == _hex_span(root)
    assert got_chat.name == "chat gpt-test" and got_chat.model == "gpt-test"
    assert got_chat.end_time >= got_chat.start_time
    # the 3 KB message was moved to the payload table and is resolved back on read
    assert got_chat.attributes[A.GEN_AI_INPUT_MESSAGES] == chat.attributes[A.GEN_AI_INPUT_MESSAGES]
    failed = [s for s in detail.spans if s.status == "Error"]
    assert len(failed) == 1 and failed[0].status_message == "boom"
    assert detail.trace.service_name == "ingest-test"

    raw = httpx.get(f"{server.url}/api/v1/traces/{trace_id}").json()
    for span in raw["spans"]:
        for key in ("span_id", "parent_span_id", "name", "start_time", "end_time", "status"):
            assert key in span
    page = httpx.get(f"{server.url}/api/v1/traces", params={"limit": 100}).json()
    assert trace_id in [t["trace_id"] for t in page["traces"]] and "next_cursor" in page


def test_protobuf_response_is_an_export_trace_service_response(server: RunningCollector) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    body = encode_spans(make_agent_spans(1)).SerializeToString()
    r = _post(
        server,
        gzip.compress(body),
        **{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-protobuf")
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 0


# --- JSON, gzip, partial success ---------------------------------------------------------------


def test_json_body_gzip_and_partial_success(server: RunningCollector) -> None:
    trace_id = secrets.token_hex(16)
    good = [json_span(trace_id, secrets.token_hex(8), f"chat {i}") for i in range(3)]
    bad = json_span("abc", secrets.token_hex(8), "bad trace id")
    r = _post(
        server,
        gzip.compress(json_request([*good, bad])),
        **{"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert partial["errorMessage"]
    detail = server.client.wait_for_trace(trace_id, min_spans=3)
    assert sorted(s.name for s in detail.spans) == ["chat 0", "chat 1", "chat 2"]
    assert {s.service_name for s in detail.spans} == {"json-svc"}


# --- malformed input: a clear 4xx, never a 500 --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (b"\xff\x00garbage", {"Content-Type": "application/x-protobuf"}, 400, ""),
        (b"{not json", {"Content-Type": "application/json"}, 400, "json"),
        (b'{"resourceSpans": 7}', {"Content-Type": "application/json"}, 400, "resourceSpans"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "text/plain"),
        (b"hello", {}, 415, ""),
        (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, ""),
        (b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "br"),
        (b"x" * (MAX_BODY + 1), {"Content-Type": "application/x-protobuf"}, 413, "limit"),
        (
            gzip.compress(b" " * (MAX_BODY * 20)),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            413,
            "",
        ),
    ],
    ids=[
        "garbage-protobuf",
        "bad-json",
        "wrong-json-shape",
        "text-plain",
        "no-content-type",
        "bad-gzip",
        "unknown-encoding",
        "too-large",
        "gzip-bomb",
    ],
)
def test_malformed_requests_get_clear_4xx(
    server: RunningCollector, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    r = _post(server, body, **headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] and error["message"]
    assert fragment.lower() in error["message"].lower()


def test_truncated_protobuf_bodies_never_500(server: RunningCollector) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    body = encode_spans(make_agent_spans(1)).SerializeToString()
    for cut in (1, 7, len(body) // 3, len(body) // 2, len(body) - 1):
        r = _post(server, body[:cut], **{"Content-Type": "application/x-protobuf"})
        assert r.status_code in (200, 400), (cut, r.status_code, r.text)


def test_empty_request_is_accepted(server: RunningCollector) -> None:
    r = _post(server, b"", **{"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_count_accepted_rejected_and_stored(tmp_path: Path) -> None:
    running = launch_collector(tmp_path / "retrace")
    try:
        trace_id = secrets.token_hex(16)
        spans = [json_span(trace_id, secrets.token_hex(8), f"s{i}") for i in range(5)]
        spans.append(json_span(trace_id, "zz", "bad span id"))
        r = _post(running, json_request(spans), **{"Content-Type": "application/json"})
        assert r.status_code == 200
        running.client.wait_for_trace(trace_id, min_spans=5)
        deadline = time.monotonic() + 20
        while True:
            metrics = running.client.metrics()
            if metrics["retrace_spans_stored_total"] == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert metrics["retrace_spans_accepted_total"] == 5
        assert metrics["retrace_spans_rejected_total"] == 1
        assert metrics["retrace_spans_stored_total"] == 5
        assert metrics["retrace_spool_bytes"] == 0
        text = httpx.get(running.url + "/metrics").text
        assert (
            'retrace_http_requests_total{method="POST",route="/v1/traces",status="200"} 1' in text
        )
        assert "retrace_http_request_duration_seconds_bucket" in text
    finally:
        running.kill()

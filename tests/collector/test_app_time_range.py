"""Span times over a real socket: what is accepted can be read back, what cannot is rejected.

Spans after 2106-02-07 (where a 32-bit DateTime ends) are stored and served like any other;
a span starting or ending after the last instant the store holds is rejected alone, by OTLP
partial success naming the reason, while its valid siblings are stored.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from schemas import attributes as A
from schemas.errors import NotFoundError
from schemas.models import MAX_SPAN_TIME_UNIX_NANO
from tests.collector.test_app_ingest import json_request, json_span
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration

LAST = "2149-06-06T23:59:59.999999999Z"
AFTER_2106 = int(datetime(2106, 2, 8, 9, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
MS = 1_000_000


def _times(start: int, end: int) -> dict[str, str]:
    return {"startTimeUnixNano": str(start), "endTimeUnixNano": str(end)}


def _run_spans(trace_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An agent run after 2106 (root, chat), and three spans of it the store cannot hold."""
    root = secrets.token_hex(8)
    agent = [{"key": A.GEN_AI_OPERATION_NAME, "value": {"stringValue": "invoke_agent"}}]
    good = [
        json_span(trace_id, root, "invoke_agent analyst", attributes=agent)
        | _times(AFTER_2106, AFTER_2106 + 50 * MS),
        json_span(trace_id, secrets.token_hex(8), "chat gpt-test", parentSpanId=root)
        | _times(AFTER_2106 + MS, AFTER_2106 + 20 * MS),
        # ends on the very last nanosecond the store holds
        json_span(trace_id, secrets.token_hex(8), "chat at the edge", parentSpanId=root)
        | _times(MAX_SPAN_TIME_UNIX_NANO - MS, MAX_SPAN_TIME_UNIX_NANO),
    ]
    bad = [
        json_span(trace_id, secrets.token_hex(8), "chat starts too late", parentSpanId=root)
        | _times(MAX_SPAN_TIME_UNIX_NANO + 1, MAX_SPAN_TIME_UNIX_NANO + MS),
        json_span(trace_id, secrets.token_hex(8), "chat ends too late", parentSpanId=root)
        | _times(AFTER_2106 + 2 * MS, MAX_SPAN_TIME_UNIX_NANO + 1),
        json_span(trace_id, secrets.token_hex(8), "chat past 2262", parentSpanId=root)
        | _times(2**63 + 5, 2**63 + 10),
    ]
    return good, bad


def _protobuf(spans: list[dict[str, Any]]) -> bytes:
    """The same spans as an OTLP protobuf request."""
    out = []
    for s in spans:
        out.append(
            Span(
                trace_id=bytes.fromhex(s["traceId"]),
                span_id=bytes.fromhex(s["spanId"]),
                parent_span_id=bytes.fromhex(s.get("parentSpanId", "")),
                name=s["name"],
                start_time_unix_nano=int(s["startTimeUnixNano"]),
                end_time_unix_nano=int(s["endTimeUnixNano"]),
                attributes=[
                    KeyValue(key=a["key"], value=AnyValue(string_value=a["value"]["stringValue"]))
                    for a in s["attributes"]
                ],
            )
        )
    service = KeyValue(key=A.SERVICE_NAME, value=AnyValue(string_value="pb-svc"))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[service]),
                scope_spans=[ScopeSpans(spans=out)],
            )
        ]
    )
    return request.SerializeToString()


def _rejection(encoding: str, response: httpx.Response) -> tuple[int, str]:
    assert response.status_code == 200, response.text
    if encoding == "json":
        partial = response.json()["partialSuccess"]
        return int(partial["rejectedSpans"]), str(partial["errorMessage"])
    reply = ExportTraceServiceResponse.FromString(response.content)
    return reply.partial_success.rejected_spans, reply.partial_success.error_message


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_late_spans_are_served_and_unrepresentable_ones_rejected(
    collector_server: RunningCollector, encoding: str
) -> None:
    url = collector_server.url
    client = collector_server.client
    trace_id = secrets.token_hex(16)
    good, bad = _run_spans(trace_id)
    spans = [good[0], bad[0], good[1], bad[1], good[2], bad[2]]
    if encoding == "json":
        body, content_type = json_request(spans), "application/json"
    else:
        body, content_type = _protobuf(spans), "application/x-protobuf"
    r = httpx.post(url + "/v1/traces", content=body, headers={"Content-Type": content_type})

    rejected, message = _rejection(encoding, r)
    assert rejected == 3
    assert message.startswith("rejected 3 of 6 spans")
    assert message.count(f"is after {LAST}, the latest time the store can hold") == 3
    assert "startTimeUnixNano" in message and "endTimeUnixNano" in message

    detail = client.wait_for_trace(trace_id, min_spans=3)
    assert sorted(s.name for s in detail.spans) == sorted(s["name"] for s in good)
    assert detail.spans[0].start_time_unix_nano == AFTER_2106
    assert detail.trace.end_time == datetime(2149, 6, 6, 23, 59, 59, 999_999, tzinfo=UTC)
    listed = client.list_traces(start=datetime(2100, 1, 1, tzinfo=UTC)).traces
    assert [t.trace_id for t in listed] == [trace_id] and listed[0].span_count == 3
    found = client.search_spans(trace_id=trace_id).spans
    assert len(found) == 3
    trajectory = client.get_trajectory(trace_id)
    assert trajectory.trace_id == trace_id and len(trajectory.steps) == 2
    exported = json.loads(client.export_trace(trace_id, "json"))
    assert len(exported["spans"]) == 3

    record = client.start_replay(trace_id, "recorded")
    assert record.original_trace_id == trace_id
    deadline = time.monotonic() + 90
    while client.get_replay(record.replay_id).status == "running":
        assert time.monotonic() < deadline, "replay subprocess never finished"
        time.sleep(0.5)

    client.delete_trace(trace_id)
    with pytest.raises(NotFoundError):
        client.get_trace(trace_id)

"""Attribute values nested too deeply: only the span (or resource) that holds one is rejected,
the same way in protobuf and in JSON, in the decoder and over HTTP.

Deep protobuf values are written on the wire by hand: the protobuf runtime refuses to build (or
copy) a message nested past its own depth limit, which is exactly the input under test.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector._decode_pool import DecodePool
from collector.otlp import decode_export_request
from schemas.attributes import SERVICE_NAME
from tests.collector.test_otlp import Decoded, read_back
from tests.fixtures.collector import RunningCollector, launch_collector

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
LIMIT = 4 << 20
START = 1_700_000_000_000_000_000
MAX_DEPTH = 32  # collector.otlp._values.MAX_ANY_VALUE_DEPTH: deeper values reject their span

Kind = Literal["array", "kvlist"]
Where = Literal["attributes", "event", "link"]


# --- the wire format, by hand -------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_any_value(depth: int, kind: Kind) -> bytes:
    """An AnyValue of ``depth`` arrays (or key/value lists) around the string "leaf"."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        if kind == "array":
            value = _field(5, _field(1, value))  # AnyValue.array_value.values[0]
        else:
            pair = _field(1, b"k") + _field(2, value)  # KeyValue{key, value}
            value = _field(6, _field(1, pair))  # AnyValue.kvlist_value.values[0]
    return value


def nested_json(depth: int, kind: Kind) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        if kind == "array":
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


@dataclass(frozen=True)
class SpanSpec:
    """One span to send: ``deep`` levels of nesting (None: a plain value) in ``where``."""

    n: int
    deep: int | None = None
    kind: Kind = "array"
    where: Where = "attributes"
    trace_id: bytes | None = None

    @property
    def name(self) -> str:
        return f"span-{self.n}"

    @property
    def rejected(self) -> bool:
        return self.deep is not None and self.deep > MAX_DEPTH

    def ids(self) -> tuple[bytes, bytes]:
        trace_id = self.trace_id or bytes([self.n % 250 + 1]) * 16
        return trace_id, (self.n + 1).to_bytes(8, "big")

    def protobuf(self) -> bytes:
        trace_id, span_id = self.ids()
        span = Span(
            trace_id=trace_id,
            span_id=span_id,
            name=self.name,
            start_time_unix_nano=START + self.n,
            end_time_unix_nano=START + self.n + 1000,
            attributes=[KeyValue(key="plain", value=AnyValue(string_value="x"))],
        )
        raw = span.SerializeToString()
        if self.deep is None:
            return raw
        pair = _field(1, b"deep") + _field(2, nested_any_value(self.deep, self.kind))
        if self.where == "attributes":
            return raw + _field(9, pair)  # Span.attributes
        if self.where == "event":
            event = b"\x09" + (START + self.n).to_bytes(8, "little")  # time_unix_nano (fixed64)
            return raw + _field(11, event + _field(2, b"ev") + _field(3, pair))  # Span.events
        link = _field(1, trace_id) + _field(2, bytes(7) + b"\x07") + _field(4, pair)
        return raw + _field(13, link)  # Span.links

    def json(self) -> dict[str, Any]:
        trace_id, span_id = self.ids()
        span: dict[str, Any] = {
            "traceId": trace_id.hex(),
            "spanId": span_id.hex(),
            "name": self.name,
            "startTimeUnixNano": str(START + self.n),
            "endTimeUnixNano": str(START + self.n + 1000),
            "attributes": [{"key": "plain", "value": {"stringValue": "x"}}],
        }
        if self.deep is None:
            return span
        pair = {"key": "deep", "value": nested_json(self.deep, self.kind)}
        if self.where == "attributes":
            span["attributes"].append(pair)
        elif self.where == "event":
            span["events"] = [
                {"timeUnixNano": str(START + self.n), "name": "ev", "attributes": [pair]}
            ]
        else:
            link = {"traceId": trace_id.hex(), "spanId": "00000000000000" + "07"}
            span["links"] = [{**link, "attributes": [pair]}]
        return span


@dataclass(frozen=True)
class ResourceSpec:
    spans: list[SpanSpec]
    deep: int | None = None  # nesting in a resource attribute
    scope_deep: int | None = None  # nesting in a scope attribute (scope attributes are not kept)

    def protobuf(self) -> bytes:
        resource = _field(1, _field(1, SERVICE_NAME.encode()) + _field(2, _field(1, b"svc")))
        if self.deep is not None:
            resource += _field(
                1, _field(1, b"deep") + _field(2, nested_any_value(self.deep, "array"))
            )
        scope = _field(1, b"scope") + _field(2, b"1.0")
        if self.scope_deep is not None:
            scope += _field(
                3, _field(1, b"deep") + _field(2, nested_any_value(self.scope_deep, "array"))
            )
        scope_spans = _field(1, scope) + b"".join(_field(2, s.protobuf()) for s in self.spans)
        return _field(1, resource) + _field(2, scope_spans)

    def json(self) -> dict[str, Any]:
        attributes = [{"key": SERVICE_NAME, "value": {"stringValue": "svc"}}]
        if self.deep is not None:
            attributes.append({"key": "deep", "value": nested_json(self.deep, "array")})
        scope: dict[str, Any] = {"name": "scope", "version": "1.0"}
        if self.scope_deep is not None:
            scope["attributes"] = [{"key": "deep", "value": nested_json(self.scope_deep, "array")}]
        return {
            "resource": {"attributes": attributes},
            "scopeSpans": [{"scope": scope, "spans": [s.json() for s in self.spans]}],
        }


def protobuf_body(resources: list[ResourceSpec]) -> bytes:
    return b"".join(_field(1, r.protobuf()) for r in resources)


def json_body(resources: list[ResourceSpec]) -> bytes:
    return json.dumps({"resourceSpans": [r.json() for r in resources]}).encode()


def decode(body: bytes, content_type: str) -> Decoded:
    return read_back(
        decode_export_request(
            body,
            content_type=content_type,
            content_encoding=None,
            project="p",
            max_body_bytes=LIMIT,
        )
    )


def both(resources: list[ResourceSpec]) -> dict[str, Decoded]:
    return {
        "protobuf": decode(protobuf_body(resources), PROTOBUF),
        "json": decode(json_body(resources), JSON),
    }


# --- the decoder ----------------------------------------------------------------------------------


def test_the_hand_written_wire_format_is_what_protobuf_writes() -> None:
    shallow = [ResourceSpec([SpanSpec(1), SpanSpec(2, deep=3), SpanSpec(3, deep=2, kind="kvlist")])]
    parsed = ExportTraceServiceRequest.FromString(protobuf_body(shallow))
    assert [s.name for s in parsed.resource_spans[0].scope_spans[0].spans] == [
        "span-1",
        "span-2",
        "span-3",
    ]
    batches = both(shallow)
    assert batches["protobuf"].spans == batches["json"].spans
    assert batches["protobuf"].spans[1].attributes["deep"] == '[[["leaf"]]]'


@pytest.mark.parametrize("kind", ["array", "kvlist"])
@pytest.mark.parametrize("where", ["attributes", "event", "link"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 40, 60, 200])
def test_a_span_nested_too_deeply_is_rejected_alone(kind: Kind, where: Where, depth: int) -> None:
    specs = [SpanSpec(1), SpanSpec(2, deep=depth, kind=kind, where=where), SpanSpec(3, deep=5)]
    for encoding, batch in both([ResourceSpec(specs)]).items():
        assert [s.name for s in batch.spans] == ["span-1", "span-3"], encoding
        assert batch.rejected == 1, encoding
        message = batch.message
        assert message.startswith("rejected 1 of 3 spans: resourceSpans[0].scopeSpans[0].spans[1]")
        assert "nested too deeply" in message, (encoding, message)


def test_values_at_the_depth_limit_are_kept() -> None:
    specs = [SpanSpec(1, deep=MAX_DEPTH), SpanSpec(2, deep=MAX_DEPTH, kind="kvlist")]
    batches = both([ResourceSpec(specs)])
    assert batches["protobuf"].rejected == batches["json"].rejected == 0
    assert batches["protobuf"].spans == batches["json"].spans
    assert len(batches["protobuf"].spans) == 2


def test_a_resource_nested_too_deeply_rejects_its_spans_only() -> None:
    resources = [
        ResourceSpec([SpanSpec(1), SpanSpec(2)], deep=80),
        ResourceSpec([SpanSpec(3), SpanSpec(4, deep=90)]),
    ]
    for encoding, batch in both(resources).items():
        assert [s.name for s in batch.spans] == ["span-3"], encoding
        assert batch.rejected == 3, encoding
        assert "resourceSpans[0].resource" in batch.message, encoding
        assert "resourceSpans[1].scopeSpans[0].spans[1]" in batch.message, encoding


def test_a_deep_scope_attribute_loses_no_span() -> None:
    # Scope attributes are not stored, in either encoding: their depth cannot cost a span.
    for encoding, batch in both([ResourceSpec([SpanSpec(1), SpanSpec(2)], scope_deep=80)]).items():
        assert [s.name for s in batch.spans] == ["span-1", "span-2"], encoding
        assert batch.rejected == 0 and batch.spans[0].scope_name == "scope", encoding


def test_a_span_that_is_not_protobuf_is_rejected_alone() -> None:
    good = ResourceSpec([SpanSpec(1)]).protobuf()
    broken = _field(1, _field(2, _field(2, b"\xff\xff\xff")))  # a Span of garbage
    batch = decode(_field(1, good) + broken, PROTOBUF)
    assert [s.name for s in batch.spans] == ["span-1"]
    assert batch.rejected == 1
    assert "resourceSpans[1].scopeSpans[0].spans[0]" in batch.message


SPANS = st.lists(
    st.builds(
        lambda deep, kind, where: (deep, kind, where),
        st.none() | st.integers(min_value=0, max_value=90),
        st.sampled_from(["array", "kvlist"]),
        st.sampled_from(["attributes", "event", "link"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(SPANS, min_size=1, max_size=3))
def test_protobuf_and_json_keep_and_reject_the_same_spans(
    groups: list[list[tuple[int | None, Kind, Where]]],
) -> None:
    resources, n = [], 0
    for group in groups:
        specs = []
        for deep, kind, where in group:
            n += 1
            specs.append(SpanSpec(n, deep=deep, kind=kind, where=where))
        resources.append(ResourceSpec(specs))
    expected = [s.name for r in resources for s in r.spans if not s.rejected]
    batches = both(resources)
    for encoding, batch in batches.items():
        assert [s.name for s in batch.spans] == expected, encoding
        assert batch.rejected == n - len(expected), encoding
        assert bool(batch.message) == (n > len(expected)), encoding
    assert batches["protobuf"].spans == batches["json"].spans


# --- over HTTP ------------------------------------------------------------------------------------


def test_a_decode_worker_rejects_the_deep_span_alone() -> None:
    specs = [SpanSpec(1), SpanSpec(2, deep=60), SpanSpec(3)]
    pool = DecodePool(1)
    pool._spawn()  # synchronously, so the worker path is the one taken
    try:
        assert pool.ready
        result = asyncio.run(
            pool.decode(protobuf_body([ResourceSpec(specs)]), PROTOBUF, None, "p", LIMIT)
        )
    finally:
        pool.close()
    assert (result.span_count, result.rejected) == (2, 1)
    assert "spans[1]: value nested too deeply" in result.message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    running = launch_collector(tmp_path_factory.mktemp("depth") / "retrace")
    yield running
    running.kill()


@pytest.mark.integration
def test_over_http_the_valid_siblings_of_a_too_deep_span_are_stored(
    server: RunningCollector,
) -> None:
    trace_id = secrets.token_bytes(16)  # a fresh trace for each server
    specs = [
        SpanSpec(1, trace_id=trace_id),
        SpanSpec(2, deep=60, trace_id=trace_id),
        SpanSpec(3, trace_id=trace_id),
        SpanSpec(4, deep=45, kind="kvlist", where="event", trace_id=trace_id),
    ]
    request_body = protobuf_body([ResourceSpec(specs)])
    r = httpx.post(
        server.url + "/v1/traces",
        content=request_body,
        headers={"Content-Type": PROTOBUF},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 2
    assert "nested too deeply" in reply.partial_success.error_message
    detail = server.client.wait_for_trace(trace_id.hex(), min_spans=2)
    assert sorted(s.name for s in detail.spans) == ["span-1", "span-3"]

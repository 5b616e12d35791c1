"""OTLP decoding: real SDK-encoded requests, the JSON mapping, partial success, every bad case."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status
from opentelemetry.trace import SpanKind as OtelSpanKind
from opentelemetry.trace import StatusCode as OtelStatus

from collector._span_batch import SPAN_SCHEMA, span_records, spans_to_arrow
from collector.otlp import (
    PREVIEW_CHARS,
    SpanBatch,
    decode_export_request,
    encode_export_response,
    message_preview,
)
from schemas import attributes as A
from schemas.attributes import SERVICE_NAME
from schemas.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from schemas.models import SpanKind, SpanRecord, StatusCode

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@contextmanager
def sdk_tracer(
    service: str = "test-agent", **resource: str
) -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    """A real SDK tracer whose finished spans land in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service, **resource}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider.get_tracer("retrace.tests", "1.2.3"), exporter
    finally:
        provider.shutdown()


def encode(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    """The official SDK encoder's request for these spans."""
    return encode_spans(spans)


def any_value_json(value: AnyValue) -> dict[str, Any]:
    which = value.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        return {"doubleValue": value.double_value}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode()}
    if which == "array_value":
        return {"arrayValue": {"values": [any_value_json(v) for v in value.array_value.values]}}
    return {"kvlistValue": {"values": attributes_json(value.kvlist_value.values)}}


def attributes_json(items: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": any_value_json(kv.value)} for kv in items]


def request_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP JSON mapping of a request, written per the spec: hex ids, int enums, int64 text."""
    resource_spans = []
    for rs in request.resource_spans:
        scope_spans = []
        for ss in rs.scope_spans:
            spans = []
            for span in ss.spans:
                item: dict[str, Any] = {
                    "traceId": span.trace_id.hex(),
                    "spanId": span.span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "startTimeUnixNano": str(span.start_time_unix_nano),
                    "endTimeUnixNano": str(span.end_time_unix_nano),
                    "attributes": attributes_json(span.attributes),
                    "events": [
                        {
                            "timeUnixNano": str(ev.time_unix_nano),
                            "name": ev.name,
                            "attributes": attributes_json(ev.attributes),
                        }
                        for ev in span.events
                    ],
                    "links": [
                        {
                            "traceId": ln.trace_id.hex(),
                            "spanId": ln.span_id.hex(),
                            "traceState": ln.trace_state,
                            "attributes": attributes_json(ln.attributes),
                        }
                        for ln in span.links
                    ],
                    "status": {"code": span.status.code, "message": span.status.message},
                }
                if span.parent_span_id:
                    item["parentSpanId"] = span.parent_span_id.hex()
                if span.trace_state:
                    item["traceState"] = span.trace_state
                spans.append(item)
            scope_spans.append(
                {"scope": {"name": ss.scope.name, "version": ss.scope.version}, "spans": spans}
            )
        resource_spans.append(
            {
                "resource": {"attributes": attributes_json(rs.resource.attributes)},
                "scopeSpans": scope_spans,
            }
        )
    return {"resourceSpans": resource_spans}


def json_body(request: ExportTraceServiceRequest) -> bytes:
    return json.dumps(request_json(request)).encode()


def kv(key: str, **value: Any) -> KeyValue:
    """A KeyValue, e.g. ``kv("a", string_value="x")``."""
    return KeyValue(key=key, value=AnyValue(**value))


def manual_request(spans: list[dict[str, Any]], service: str = "manual") -> bytes:
    """A protobuf request from span field dicts (for spans the SDK would refuse to make)."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(kv(SERVICE_NAME, string_value=service))
    ss = rs.scope_spans.add()
    ss.scope.name = "manual"
    for fields in spans:
        span = ss.spans.add()
        attributes = fields.pop("attributes", [])
        for name, value in fields.items():
            setattr(span, name, value)
        span.attributes.extend(attributes)
    return request.SerializeToString()


def valid_span(n: int = 1, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trace_id": bytes([n]) * 16,
        "span_id": bytes([n]) * 8,
        "name": f"span-{n}",
        "start_time_unix_nano": 1_700_000_000_000_000_000 + n,
        "end_time_unix_nano": 1_700_000_000_000_000_000 + n + 1000,
    }
    fields.update(overrides)
    return fields


# --- tests --------------------------------------------------------------------------------------

LIMIT = 4 << 20


def decode(
    body: bytes,
    content_type: str = PROTOBUF,
    encoding: str | None = None,
    *,
    project: str = "proj-a",
    limit: int = LIMIT,
) -> Decoded:
    return read_back(
        decode_export_request(
            body,
            content_type=content_type,
            content_encoding=encoding,
            project=project,
            max_body_bytes=limit,
        )
    )


@dataclass
class Decoded:
    """A decoded ``SpanBatch`` read back as validated span records, for assertions."""

    spans: list[SpanRecord]
    payloads: Mapping[str, bytes]
    rejected: int
    message: str


def read_back(batch: SpanBatch) -> Decoded:
    """``batch`` as span records. The builder fills the table without any model: it must be
    exactly the table the model path (``spans_to_arrow``) builds from the validated rows."""
    assert batch.spans.schema.equals(SPAN_SCHEMA)
    spans = span_records(batch.spans)
    assert spans_to_arrow(batch.project, spans).equals(batch.spans)
    return Decoded(spans, batch.payloads, batch.rejected, batch.message)


MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
    {"role": "user", "parts": [{"type": "text", "content": "first question"}]},
    {"role": "assistant", "parts": [{"type": "text", "content": "first answer"}]},
    {"role": "user", "parts": [{"type": "text", "content": "What is the revenue in 2024?"}]},
]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "It was 42 million."}]}]


def agent_run(tracer: Tracer) -> None:
    """One small agent run: root, a chat step, a tool step (with an event, a link, an error)."""
    with tracer.start_as_current_span(
        "invoke_agent analyst",
        attributes={
            A.GEN_AI_OPERATION_NAME: "invoke_agent",
            A.RETRACE_RUN_INPUT: "What is the revenue in 2024?",
            A.RETRACE_RUN_OUTPUT: "It was 42 million.",
        },
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=OtelSpanKind.CLIENT,
            attributes={
                A.GEN_AI_OPERATION_NAME: "chat",
                A.GEN_AI_REQUEST_MODEL: "gpt-4o",
                A.GEN_AI_INPUT_MESSAGES: json.dumps(MESSAGES),
                A.GEN_AI_OUTPUT_MESSAGES: json.dumps(OUTPUT),
                A.GEN_AI_SYSTEM_INSTRUCTIONS: "You are terse.",
                A.GEN_AI_USAGE_INPUT_TOKENS: 120,
                A.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
                A.GEN_AI_REQUEST_TEMPERATURE: 0.5,
                A.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                A.RETRACE_STEP_INDEX: 0,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool sql_query",
            links=[Link(root.get_span_context(), {"why": "caused-by"})],
            attributes={A.GEN_AI_TOOL_NAME: "sql_query", A.RETRACE_STEP_INDEX: 1},
        ) as tool:
            tool.add_event(A.EVENT_RETRY, {A.RETRACE_TOOL_ATTEMPT: 2})
            tool.set_status(Status(OtelStatus.ERROR, "table not found"))


@pytest.fixture
def run_request() -> ExportTraceServiceRequest:
    with sdk_tracer(service="analyst-svc", **{A.RETRACE_PROJECT: "someone-else"}) as (
        tracer,
        exporter,
    ):
        agent_run(tracer)
        return encode(list(exporter.get_finished_spans()))


def by_name(batch: Decoded) -> dict[str, SpanRecord]:
    return {span.name: span for span in batch.spans}


def test_protobuf_from_the_sdk_encoder_decodes_every_field(
    run_request: ExportTraceServiceRequest,
) -> None:
    batch = decode(run_request.SerializeToString())
    assert batch.rejected == 0 and batch.message == ""
    spans = by_name(batch)
    assert set(spans) == {"invoke_agent analyst", "chat gpt-4o", "execute_tool sql_query"}
    root, chat, tool = (
        spans["invoke_agent analyst"],
        spans["chat gpt-4o"],
        spans["execute_tool sql_query"],
    )
    source = {s.name: s for s in run_request.resource_spans[0].scope_spans[0].spans}
    for span in batch.spans:
        original = source[span.name]
        assert span.trace_id == original.trace_id.hex() and len(span.trace_id) == 32
        assert span.span_id == original.span_id.hex()
        assert span.start_time_unix_nano == original.start_time_unix_nano
        assert span.duration_ns == original.end_time_unix_nano - original.start_time_unix_nano
        assert span.project_id == "proj-a"  # the API key's project wins over the resource
        assert span.service_name == "analyst-svc"
        assert span.scope_name == "retrace.tests" and span.scope_version == "1.2.3"
        assert span.resource_attributes[A.RETRACE_PROJECT] == "someone-else"
    assert root.parent_span_id == "" and chat.parent_span_id == root.span_id
    assert chat.kind is SpanKind.CLIENT and root.kind is SpanKind.INTERNAL
    assert tool.status_code is StatusCode.ERROR and tool.status_message == "table not found"
    assert chat.status_code is StatusCode.UNSET
    assert [(e.name, e.attributes) for e in tool.events] == [
        (A.EVENT_RETRY, {A.RETRACE_TOOL_ATTEMPT: "2"})
    ]
    assert tool.events[0].timestamp_unix_nano >= tool.start_time_unix_nano
    assert [(ln.trace_id, ln.span_id, ln.attributes) for ln in tool.links] == [
        (root.trace_id, root.span_id, {"why": "caused-by"})
    ]
    # Derived columns.
    assert (root.operation, root.agent_name) == (A.OP_INVOKE_AGENT, "analyst")
    assert (chat.operation, chat.model, chat.input_tokens, chat.output_tokens) == (
        A.OP_CHAT,
        "gpt-4o",
        120,
        7,
    )
    assert chat.step_index == 0 and tool.step_index == 1 and root.step_index == -1
    assert (tool.operation, tool.tool_name) == (A.OP_EXECUTE_TOOL, "sql_query")
    # Scalars flattened like the ClickHouse exporter does.
    assert chat.attributes[A.GEN_AI_REQUEST_TEMPERATURE] == "0.5"
    assert chat.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == '["stop"]'
    assert chat.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == "120"


def test_payload_attributes_move_to_payloads_by_sha256(
    run_request: ExportTraceServiceRequest,
) -> None:
    batch = decode(run_request.SerializeToString())
    chat = by_name(batch)["chat gpt-4o"]
    for key in (A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES, A.GEN_AI_SYSTEM_INSTRUCTIONS):
        assert key not in chat.attributes
        digest = chat.payload_refs[key]
        assert hashlib.sha256(batch.payloads[digest]).hexdigest() == digest
    assert json.loads(batch.payloads[chat.payload_refs[A.GEN_AI_INPUT_MESSAGES]]) == MESSAGES
    root = by_name(batch)["invoke_agent analyst"]
    assert batch.payloads[root.payload_refs[A.RETRACE_RUN_INPUT]] == b"What is the revenue in 2024?"
    # Every payload is referenced by some span; nothing else is in the map.
    referenced = {d for s in batch.spans for d in s.payload_refs.values()}
    assert referenced == set(batch.payloads)


def test_previews_for_root_and_chat_spans(run_request: ExportTraceServiceRequest) -> None:
    spans = by_name(decode(run_request.SerializeToString()))
    root, chat = spans["invoke_agent analyst"], spans["chat gpt-4o"]
    assert root.input_preview == "What is the revenue in 2024?"
    assert root.output_preview == "It was 42 million."
    # The last user message, not the system prompt or the first question.
    assert chat.input_preview == "What is the revenue in 2024?"
    assert chat.output_preview == "It was 42 million."
    assert spans["execute_tool sql_query"].input_preview == ""


def test_payload_shared_by_many_spans_is_stored_once() -> None:
    system = "You are a careful analyst. " * 100  # > PAYLOAD_INLINE_MAX_BYTES
    with sdk_tracer() as (tracer, exporter):
        for i in range(5):
            with tracer.start_as_current_span(
                f"chat step {i}",
                attributes={
                    A.GEN_AI_SYSTEM_INSTRUCTIONS: system,
                    "app.big_note": "x" * 2000,
                    "app.small": "y" * 10,
                },
            ):
                pass
        body = encode(list(exporter.get_finished_spans())).SerializeToString()
    batch = decode(body)
    assert len(batch.spans) == 5
    system_refs = {s.payload_refs[A.GEN_AI_SYSTEM_INSTRUCTIONS] for s in batch.spans}
    note_refs = {s.payload_refs["app.big_note"] for s in batch.spans}
    assert len(system_refs) == 1 and len(note_refs) == 1
    assert len(batch.payloads) == 2
    assert batch.payloads[system_refs.pop()] == system.encode()
    # A long value of any key is a payload too; short ones stay inline.
    assert all(s.attributes["app.small"] == "y" * 10 for s in batch.spans)
    assert all("app.big_note" not in s.attributes for s in batch.spans)


def test_long_multibyte_value_counts_bytes_not_characters() -> None:
    text = "é" * 600  # 600 characters, 1200 UTF-8 bytes
    body = manual_request([valid_span(1, attributes=[kv("app.note", string_value=text)])])
    span = decode(body).spans[0]
    assert "app.note" in span.payload_refs and "app.note" not in span.attributes


def test_json_mapping_decodes_the_same_rows_as_protobuf(
    run_request: ExportTraceServiceRequest,
) -> None:
    from_protobuf = decode(run_request.SerializeToString())
    from_json = decode(json_body(run_request), JSON)
    assert from_json.spans == from_protobuf.spans
    assert from_json.payloads == from_protobuf.payloads


def test_json_accepts_enum_names_numbers_for_int64_and_base64_ids(
    run_request: ExportTraceServiceRequest,
) -> None:
    expected = decode(run_request.SerializeToString()).spans
    document = request_json(run_request)
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                span["kind"] = {1: "SPAN_KIND_INTERNAL", 3: "SPAN_KIND_CLIENT"}[span["kind"]]
                span["status"]["code"] = ["STATUS_CODE_UNSET", "", "STATUS_CODE_ERROR"][
                    span["status"]["code"]
                ]
                span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
                span["traceId"] = base64.b64encode(bytes.fromhex(span["traceId"])).decode()
                span["spanId"] = span["spanId"].upper()
    batch = decode(json.dumps(document).encode(), "application/json; charset=utf-8")
    assert batch.spans == expected


def test_json_any_values_of_every_kind_are_flattened() -> None:
    values = {
        "s": {"stringValue": "text"},
        "b": {"boolValue": False},
        "i": {"intValue": "-42"},
        "i2": {"intValue": 7},
        "d": {"doubleValue": 2.0},
        "d2": {"doubleValue": "NaN"},
        "bytes": {"bytesValue": base64.b64encode(b"\x00\x01").decode()},
        "arr": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {}]}},
        "map": {
            "kvlistValue": {
                "values": [
                    {"key": "k", "value": {"boolValue": True}},
                    {"key": "n", "value": {"arrayValue": {"values": [{"doubleValue": 1.5}]}}},
                ]
            }
        },
        "empty": {},
    }
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "values",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000001000",
        "attributes": [{"key": k, "value": v} for k, v in values.items()],
    }
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    attributes = decode(json.dumps(document).encode(), JSON).spans[0].attributes
    assert attributes == {
        "s": "text",
        "b": "false",
        "i": "-42",
        "i2": "7",
        "d": "2",
        "d2": "NaN",
        "bytes": "AAE=",
        "arr": '["a",1,null]',
        "map": '{"k":true,"n":[1.5]}',
        "empty": "",
    }


def test_derived_columns_from_array_values_are_plain_strings() -> None:
    value = ArrayValue(values=[AnyValue(string_value="planner")])
    body = manual_request([valid_span(1, attributes=[kv(A.GEN_AI_AGENT_NAME, array_value=value)])])
    span = decode(body).spans[0]
    assert span.agent_name == '["planner"]' and type(span.agent_name) is str
    assert type(span.attributes[A.GEN_AI_AGENT_NAME]) is str


def test_protobuf_any_values_of_every_kind_are_flattened() -> None:
    attributes = [
        kv("s", string_value="text"),
        kv("b", bool_value=True),
        kv("i", int_value=-3),
        kv("d", double_value=0.25),
        kv("big", double_value=1e22),
        kv("bytes", bytes_value=b"\xff"),
        kv(
            "arr", array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(bool_value=True)])
        ),
        kv("map", kvlist_value=KeyValueList(values=[kv("x", string_value="y")])),
        kv("empty"),
    ]
    span = decode(manual_request([valid_span(1, attributes=attributes)])).spans[0]
    assert span.attributes == {
        "s": "text",
        "b": "true",
        "i": "-3",
        "d": "0.25",
        "big": "1e+22",
        "bytes": "/w==",
        "arr": "[1,true]",
        "map": '{"x":"y"}',
        "empty": "",
    }


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip", "deflate", "raw-deflate", None])
def test_compressed_bodies(run_request: ExportTraceServiceRequest, encoding: str | None) -> None:
    raw = run_request.SerializeToString()
    if encoding is None:
        body, header = raw, "identity"
    elif encoding.lower() in ("gzip", "x-gzip"):
        body, header = gzip.compress(raw), encoding
    elif encoding == "deflate":
        body, header = zlib.compress(raw), "deflate"
    else:
        packer = zlib.compressobj(wbits=-15)
        body, header = packer.compress(raw) + packer.flush(), "deflate"
    assert decode(body, encoding=header).spans == decode(raw).spans


def test_multi_member_gzip_is_one_body(run_request: ExportTraceServiceRequest) -> None:
    raw = run_request.SerializeToString()
    half = len(raw) // 2
    body = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    assert decode(body, encoding="gzip").spans == decode(raw).spans


def test_unsupported_content_type_and_encoding() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        decode(b"{}", "text/plain")
    with pytest.raises(UnsupportedMediaTypeError, match="Content-Type"):
        decode(b"{}", "")
    with pytest.raises(UnsupportedMediaTypeError, match="br"):
        decode(b"{}", JSON, "br")


def test_body_over_the_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLargeError, match="exceeds the limit of 100 bytes"):
        decode(b"\x00" * 101, limit=100)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_bomb_is_stopped_at_the_limit(encoding: str) -> None:
    expanded = b"\x00" * (64 << 20)  # 64 MiB of zeros compress to ~64 KiB
    body = gzip.compress(expanded) if encoding == "gzip" else zlib.compress(expanded)
    assert len(body) < (1 << 20)
    with pytest.raises(PayloadTooLargeError, match="decompresses to more than"):
        decode(body, encoding=encoding, limit=1 << 20)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "message"),
    [
        (b"\xff\xff\xff\xff garbage", PROTOBUF, None, "invalid protobuf body"),
        (b"not json", JSON, None, "invalid JSON body"),
        (b'{"resourceSpans": {}}', JSON, None, "invalid JSON at resourceSpans: expected an array"),
        (b"[1, 2]", JSON, None, "invalid JSON at \\$: expected an object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": 3}]}]}',
            JSON,
            None,
            "invalid JSON at resourceSpans\\[0\\].scopeSpans\\[0\\].spans: expected an array",
        ),
        (
            gzip.compress(b"x" * 1000, mtime=0)[:-12],
            PROTOBUF,
            "gzip",
            "invalid gzip body: truncated",
        ),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", PROTOBUF, "gzip", "invalid gzip body"),
        (b"definitely not deflate", PROTOBUF, "deflate", "invalid deflate body"),
    ],
)
def test_undecodable_bodies_name_the_problem(
    body: bytes, content_type: str, encoding: str | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        decode(body, content_type, encoding)
    assert type(caught.value) is InvalidInputError


def test_truncated_protobuf_is_invalid(run_request: ExportTraceServiceRequest) -> None:
    raw = run_request.SerializeToString()
    with pytest.raises(InvalidInputError, match="invalid protobuf body"):
        decode(raw[:-3])


def test_empty_requests_are_valid() -> None:
    assert decode(b"").spans == []
    assert decode(b"{}", JSON).spans == []
    assert decode(b'{"resourceSpans": []}', JSON).spans == []


def test_invalid_spans_are_rejected_and_valid_ones_kept() -> None:
    spans = [
        valid_span(1),
        valid_span(2, trace_id=b"\x02" * 8),
        valid_span(3, trace_id=bytes(16)),
        valid_span(4, span_id=bytes(8)),
        valid_span(5, name=""),
        valid_span(6, end_time_unix_nano=1),
        valid_span(7, parent_span_id=b"\x01" * 3),
        valid_span(8, start_time_unix_nano=0, end_time_unix_nano=0),
        valid_span(9, parent_span_id=bytes(8)),  # all-zero parent = a root span
    ]
    batch = decode(manual_request(spans))
    assert [s.name for s in batch.spans] == ["span-1", "span-9"]
    assert batch.spans[1].parent_span_id == ""
    assert batch.rejected == 7
    message = batch.message
    assert message.startswith("rejected 7 of 9 spans: ")
    assert "resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes, got 8" in message
    assert "spans[2].traceId: must not be all zero" in message
    assert "spans[3].spanId: must not be all zero" in message
    assert message.endswith("; ...")  # only the first problems are listed


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"spanId": ""}, "spans[0].spanId: is missing"),
        ({"name": ""}, "spans[0].name: is missing"),
        ({"endTimeUnixNano": "1"}, "spans[0].endTimeUnixNano: is before startTimeUnixNano"),
        ({"startTimeUnixNano": "soon"}, "spans[0].startTimeUnixNano: expected an unsigned integer"),
        ({"parentSpanId": "xyz"}, "spans[0].parentSpanId: expected 16 hex characters"),
        ({"kind": "SPAN_KIND_SIDEWAYS"}, "spans[0].kind: expected an enum number or name"),
        ({"attributes": [{"key": "a", "value": "plain"}]}, "expected an AnyValue object"),
        ({"attributes": [{"key": "a", "value": {"intValue": "1.5"}}]}, "expected a 64-bit integer"),
        ({"events": [{"timeUnixNano": -1}]}, "events[0].timeUnixNano: out of range"),
        ({"links": [{"traceId": "00" * 16, "spanId": "01" * 8}]}, "link ids must not be all zero"),
    ],
)
def test_json_span_problems_reject_that_span_only(fields: dict[str, Any], problem: str) -> None:
    good = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "ok",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000001000",
    }
    bad = {**good, "spanId": "c7ad6b7169203331", **fields}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [bad, good]}]}]}
    batch = decode(json.dumps(document).encode(), JSON)
    assert [s.name for s in batch.spans] == ["ok"]
    assert batch.rejected == 1
    assert problem in batch.message
    assert batch.message.startswith("rejected 1 of 2 spans: resourceSpans[0].scopeSpans[0].")


def test_json_bad_trace_id_names_its_path() -> None:
    span = {
        "traceId": "not-hex",
        "spanId": "b7ad6b7169203331",
        "name": "x",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    document = {"resourceSpans": [{"scopeSpans": [{}, {"spans": [span]}]}]}
    batch = decode(json.dumps(document).encode(), JSON)
    assert batch.rejected == 1
    assert (
        "resourceSpans[0].scopeSpans[1].spans[0].traceId: expected 32 hex characters"
        in batch.message
    )


def test_bad_resource_attributes_reject_that_resources_spans() -> None:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "x",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": 5}]},
                "scopeSpans": [{"spans": [span, span]}],
            },
            {"scopeSpans": [{"spans": [span]}]},
        ]
    }
    batch = decode(json.dumps(document).encode(), JSON)
    assert len(batch.spans) == 1 and batch.rejected == 2
    assert "resourceSpans[0].resource.attributes[0].key: expected a string" in batch.message


def test_secrets_are_redacted_everywhere_before_storage() -> None:
    openai_key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"use {openai_key}"}]}]
    with sdk_tracer(**{"deployment.db_url": "postgres://app:hunter2@db:5432/prod"}) as (
        tracer,
        exporter,
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                A.GEN_AI_OPERATION_NAME: "chat",
                A.GEN_AI_INPUT_MESSAGES: json.dumps(messages),
                A.GEN_AI_USAGE_INPUT_TOKENS: 10,
                A.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
                "http.request.header.authorization": "Bearer abc123xyz789",
                "app.api_key": "plain-secret-value",
                "app.note": "aws key AKIAIOSFODNN7EXAMPLE found",
            },
        ) as span:
            span.add_event("log", {"line": "token ghp_" + "a1" * 18})
        body = encode(list(exporter.get_finished_spans())).SerializeToString()
    for batch in (
        decode(body),
        decode(json_body(ExportTraceServiceRequest.FromString(body)), JSON),
    ):
        span = batch.spans[0]
        stored = json.dumps(span.model_dump(mode="json")) + repr(batch.payloads)
        for secret in (openai_key, "hunter2", "abc123xyz789", "plain-secret-value", "AKIAIOSFODNN"):
            assert secret not in stored
        assert span.attributes["app.api_key"] == "[REDACTED:secret_attribute]"
        assert span.attributes["app.note"] == "aws key [REDACTED:aws_access_key] found"
        assert span.events[0].attributes["line"] == "token [REDACTED:github_token]"
        assert span.resource_attributes["deployment.db_url"] == (
            "postgres://app:[REDACTED:url_password]@db:5432/prod"
        )
        messages_stored = json.loads(batch.payloads[span.payload_refs[A.GEN_AI_INPUT_MESSAGES]])
        assert messages_stored[0]["parts"][0]["content"] == "use [REDACTED:openai_key]"
        assert span.input_preview == "use [REDACTED:openai_key]"
        # Token counts are not secrets.
        assert (span.input_tokens, span.output_tokens) == (10, 2)
        assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == "10"
        assert span.attributes[A.RETRACE_REDACTED] == "6"


def test_clean_spans_carry_no_redaction_count(run_request: ExportTraceServiceRequest) -> None:
    assert all(
        A.RETRACE_REDACTED not in s.attributes
        for s in decode(run_request.SerializeToString()).spans
    )


def test_secret_inside_a_flattened_map_is_redacted() -> None:
    config = KeyValueList(
        values=[kv("password", string_value="hunter2"), kv("user", string_value="bob")]
    )
    body = manual_request([valid_span(1, attributes=[kv("db", kvlist_value=config)])])
    span = decode(body).spans[0]
    assert json.loads(span.attributes["db"]) == {
        "password": "[REDACTED:secret_field]",
        "user": "bob",
    }
    assert span.attributes[A.RETRACE_REDACTED] == "1"


def test_secret_hidden_behind_json_escapes_is_redacted() -> None:
    hidden = "sk\\u002dproj-Abc123Def456Ghi789Jkl012Mno345"
    body = (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",'
        '"spanId":"b7ad6b7169203331","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2",'
        '"attributes":[{"key":"note","value":{"stringValue":"' + hidden + '"}}]}]}]}]}'
    )
    span = decode(body.encode(), JSON).spans[0]
    assert span.attributes["note"] == "[REDACTED:openai_key]"


def test_export_response_protobuf_and_json() -> None:
    full = ExportTraceServiceResponse.FromString(encode_export_response(0, "", PROTOBUF))
    assert not full.HasField("partial_success")
    partial = ExportTraceServiceResponse.FromString(encode_export_response(3, "bad ids", PROTOBUF))
    assert partial.partial_success.rejected_spans == 3
    assert partial.partial_success.error_message == "bad ids"
    assert json.loads(encode_export_response(0, "", JSON)) == {}
    assert json.loads(encode_export_response(2, "why", "application/json; charset=utf-8")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}
    }


def test_other_conventions_are_mapped_at_ingest() -> None:
    with sdk_tracer() as (tracer, exporter):
        with tracer.start_as_current_span(
            "ChatOpenAI",
            attributes={
                A.OI_SPAN_KIND: "LLM",
                A.OI_LLM_MODEL_NAME: "gpt-4o-mini",
                A.OI_LLM_TOKEN_PROMPT: 11,
                A.OI_LLM_TOKEN_COMPLETION: 5,
                A.OI_INPUT_VALUE: "hello there",
                A.OI_OUTPUT_VALUE: "general kenobi",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "search.tool",
            attributes={A.TL_SPAN_KIND: "tool", A.TL_ENTITY_NAME: "web_search"},
        ):
            pass
        body = encode(list(exporter.get_finished_spans())).SerializeToString()
    spans = by_name(decode(body))
    llm = spans["ChatOpenAI"]
    assert (llm.operation, llm.model, llm.input_tokens, llm.output_tokens) == (
        A.OP_CHAT,
        "gpt-4o-mini",
        11,
        5,
    )
    assert (llm.input_preview, llm.output_preview) == ("hello there", "general kenobi")
    assert (spans["search.tool"].operation, spans["search.tool"].tool_name) == (
        A.OP_EXECUTE_TOOL,
        "web_search",
    )


@pytest.mark.parametrize(
    ("text", "role", "expected"),
    [
        ("plain text\n\n  answer", None, "plain text answer"),
        ('"a JSON string"', None, "a JSON string"),
        (
            json.dumps([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}]),
            "user",
            "q1",
        ),
        (
            json.dumps(
                [{"role": "assistant", "parts": [{"type": "tool_call", "name": "run_python"}]}]
            ),
            None,
            "[tool call: run_python]",
        ),
        (
            json.dumps([{"role": "assistant", "tool_calls": [{"function": {"name": "sql"}}]}]),
            None,
            "[tool call: sql]",
        ),
        (json.dumps({"input": "the task"}), None, "the task"),
        ("[not json", None, "[not json"),
        (json.dumps([1, 2]), None, "[1, 2]"),
    ],
)
def test_message_preview(text: str, role: str | None, expected: str) -> None:
    assert message_preview(text, role=role) == expected


def test_preview_is_short_and_on_one_line() -> None:
    long_input = "line of the task\n" * 100
    body = manual_request(
        [valid_span(1, attributes=[kv(A.RETRACE_RUN_INPUT, string_value=long_input)])]
    )
    preview = decode(body).spans[0].input_preview
    assert len(preview) == PREVIEW_CHARS and preview.endswith("…")
    assert "\n" not in preview and preview.startswith("line of the task line of")

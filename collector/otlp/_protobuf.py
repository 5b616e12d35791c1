"""The OTLP protobuf decoder: an ``ExportTraceServiceRequest`` body, span by span, into the builder.

A body parses in one go; one the parser refuses as a whole (a value nested past its depth limit,
a span that is not valid protobuf) is parsed again piecewise, envelope then each resource and
span alone, to lose only what is at fault.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector._span_batch import EventRow, LinkRow
from collector.otlp._builder import BatchBuilder, SpanProblem, check_event_time, check_span_times
from collector.otlp._values import KINDS, MAX_ANY_VALUE_DEPTH, STATUSES, format_double, json_text
from schemas.attributes import SERVICE_NAME
from schemas.errors import InvalidInputError
from schemas.models import SpanKind, StatusCode

_ZERO_TRACE_ID: Final = bytes(16)
_ZERO_SPAN_ID: Final = bytes(8)


# --- attribute values ---------------------------------------------------------------------------


def _pb_value(value: AnyValue, depth: int = 0) -> str:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which is None:
        return ""
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return format_double(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json_text(_pb_raw(value, depth))


def _pb_raw(value: AnyValue, depth: int) -> Any:
    """An AnyValue as a plain JSON-able value (for arrays and maps flattened to JSON)."""
    if depth > MAX_ANY_VALUE_DEPTH:
        raise SpanProblem("attributes", "value nested too deeply")
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else format_double(number)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "array_value":
        return [_pb_raw(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_raw(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if which == "string_value_strindex":
        return value.string_value_strindex
    return None


def _pb_attributes(items: Iterable[KeyValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in items:
        value = kv.value
        # A non-empty string_value means the oneof holds a string: skips WhichOneof on the
        # common case.
        text = value.string_value
        out[kv.key] = text if text else _pb_value(value)
    return out


# --- the request ----------------------------------------------------------------------------------


def _envelope_type() -> type[Message]:
    """``ExportTraceServiceRequest`` down to the scopes, with each span left as bytes.

    Wire-compatible with the real messages (a length-delimited field is a message or bytes
    alike), so one request parses in C without descending into any span or resource. Scope
    attributes are not declared: they stay unparsed unknown fields (nothing keeps them).
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="retrace/otlp_envelope.proto", package="retrace.otlp_envelope", syntax="proto3"
    )

    def message(name: str, *fields: tuple[int, str, int, int, str]) -> None:
        declared = file.message_type.add(name=name)
        for number, field_name, kind, label, type_name in fields:
            added = declared.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = type_name

    repeated, single = field.LABEL_REPEATED, field.LABEL_OPTIONAL
    nested = field.TYPE_MESSAGE
    message(
        "Request", (1, "resource_spans", nested, repeated, ".retrace.otlp_envelope.ResourceSpans")
    )
    # Repeated bytes: a message field sent in several pieces is their concatenation (merge).
    message(
        "ResourceSpans",
        (1, "resource", field.TYPE_BYTES, repeated, ""),
        (2, "scope_spans", nested, repeated, ".retrace.otlp_envelope.ScopeSpans"),
    )
    message(
        "ScopeSpans",
        (1, "scope", nested, single, ".retrace.otlp_envelope.Scope"),
        (2, "spans", field.TYPE_BYTES, repeated, ""),
    )
    message(
        "Scope",
        (1, "name", field.TYPE_STRING, single, ""),
        (2, "version", field.TYPE_STRING, single, ""),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    request: type[Message] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{file.package}.Request")
    )
    return request


_ENVELOPE: Final = _envelope_type()
_PARSE_ERRORS: Final = (DecodeError, RecursionError, ValueError)
_Parsed = TypeVar("_Parsed", bound=Message)


class _Undecodable:
    """A span or resource the protobuf parser refused (see ``_decode_protobuf_piecewise``)."""

    __slots__ = ("problem",)

    def __init__(self, error: Exception) -> None:
        text = str(error).lower()
        too_deep = "depth" in text or "too deep" in text or isinstance(error, RecursionError)
        self.problem = "value nested too deeply" if too_deep else "is not valid protobuf"


@dataclass(slots=True)
class _PiecewiseScopeSpans:
    scope: Any  # the envelope's Scope: name and version
    spans: list[Span | _Undecodable]


@dataclass(slots=True)
class _PiecewiseResourceSpans:
    resource: Resource | _Undecodable
    scope_spans: list[_PiecewiseScopeSpans]


def _parse_or_undecodable(message_type: type[_Parsed], data: bytes) -> _Parsed | _Undecodable:
    try:
        parsed: _Parsed = message_type.FromString(data)
    except _PARSE_ERRORS as exc:
        return _Undecodable(exc)
    return parsed


def _decode_protobuf_piecewise(raw: bytes) -> list[_PiecewiseResourceSpans]:
    """The request parsed in pieces: the envelope, then each resource and each span alone.

    For a body the one-shot parse refused. protobuf fails a whole message when any part nests
    past its depth limit (100 messages); parsed apart, only the span or resource at fault is
    lost, as in JSON. Raises ``_PARSE_ERRORS`` when the envelope itself is broken.
    """
    envelope: Any = _ENVELOPE.FromString(raw)
    return [
        _PiecewiseResourceSpans(
            _parse_or_undecodable(Resource, b"".join(resource_spans.resource)),
            [
                _PiecewiseScopeSpans(
                    scope_spans.scope,
                    [_parse_or_undecodable(Span, data) for data in scope_spans.spans],
                )
                for scope_spans in resource_spans.scope_spans
            ],
        )
        for resource_spans in envelope.resource_spans
    ]


def decode_protobuf(raw: bytes, builder: BatchBuilder) -> None:
    """Feed every span of a protobuf request to ``builder``; a broken envelope raises 400."""
    resources: Iterable[Any]
    try:
        resources = ExportTraceServiceRequest.FromString(raw).resource_spans
    except _PARSE_ERRORS as exc:
        try:
            resources = _decode_protobuf_piecewise(raw)
        except _PARSE_ERRORS:
            raise InvalidInputError(f"invalid protobuf body: {exc or 'cannot parse'}") from None
    for r_index, resource_spans in enumerate(resources):
        r_path = f"resourceSpans[{r_index}]"
        try:
            resource = resource_spans.resource
            if type(resource) is _Undecodable:
                raise SpanProblem("attributes", resource.problem)
            resource_attributes = _pb_attributes(resource.attributes)
        except SpanProblem as problem:
            count = sum(len(scope.spans) for scope in resource_spans.scope_spans)
            builder.reject(f"{r_path}.resource.{problem.text}", count)
            continue
        resource_attributes, resource_redacted = builder.redact_map(resource_attributes)
        service_name = resource_attributes.get(SERVICE_NAME, "")
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for p_index, span in enumerate(scope_spans.spans):
                if type(span) is _Undecodable:
                    path = f"{r_path}.scopeSpans[{s_index}].spans[{p_index}]"
                    builder.reject(f"{path}: {span.problem}")
                    continue
                try:
                    _pb_span(
                        span,
                        builder,
                        service_name,
                        resource_attributes,
                        scope_name,
                        scope_version,
                        resource_redacted,
                    )
                except SpanProblem as problem:
                    path = f"{r_path}.scopeSpans[{s_index}].spans[{p_index}]"
                    builder.reject(f"{path}.{problem.text}")


def _pb_span(
    span: Any,
    builder: BatchBuilder,
    service_name: str,
    resource_attributes: dict[str, str],
    scope_name: str,
    scope_version: str,
    redacted: int,
) -> None:
    trace_id = span.trace_id
    if len(trace_id) != 16:
        raise SpanProblem("traceId", f"expected 16 bytes, got {len(trace_id)}")
    if trace_id == _ZERO_TRACE_ID:
        raise SpanProblem("traceId", "must not be all zero")
    span_id = span.span_id
    if len(span_id) != 8:
        raise SpanProblem("spanId", f"expected 8 bytes, got {len(span_id)}")
    if span_id == _ZERO_SPAN_ID:
        raise SpanProblem("spanId", "must not be all zero")
    parent = span.parent_span_id
    if parent:
        if len(parent) != 8:
            raise SpanProblem("parentSpanId", f"expected 8 bytes or none, got {len(parent)}")
        parent_hex = "" if parent == _ZERO_SPAN_ID else parent.hex()
    else:
        parent_hex = ""
    name = span.name
    if not name:
        raise SpanProblem("name", "is missing")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    check_span_times("", start, end)
    kind_number = span.kind
    kind = KINDS[kind_number] if 0 <= kind_number < 6 else SpanKind.UNSPECIFIED
    status = span.status
    code_number = status.code
    status_code = STATUSES[code_number] if 0 <= code_number < 3 else StatusCode.UNSET

    events: list[EventRow] = []
    for e_index, ev in enumerate(span.events):
        try:
            event, count = builder.event(ev.time_unix_nano, ev.name, _pb_attributes(ev.attributes))
        except SpanProblem as problem:
            raise SpanProblem(f"events[{e_index}]", problem.text) from None
        check_event_time(f"events[{e_index}].", ev.time_unix_nano)
        events.append(event)
        redacted += count
    links: list[LinkRow] = []
    for l_index, ln in enumerate(span.links):
        link_trace = ln.trace_id
        link_span = ln.span_id
        if len(link_trace) != 16 or link_trace == _ZERO_TRACE_ID:
            raise SpanProblem(f"links[{l_index}].traceId", "expected 16 non-zero bytes")
        if len(link_span) != 8 or link_span == _ZERO_SPAN_ID:
            raise SpanProblem(f"links[{l_index}].spanId", "expected 8 non-zero bytes")
        try:
            link, count = builder.link(
                link_trace.hex(), link_span.hex(), ln.trace_state, _pb_attributes(ln.attributes)
            )
        except SpanProblem as problem:
            raise SpanProblem(f"links[{l_index}]", problem.text) from None
        links.append(link)
        redacted += count

    builder.add_span(
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_span_id=parent_hex,
        trace_state=span.trace_state,
        name=name,
        kind=kind,
        service_name=service_name,
        resource_attributes=dict(resource_attributes),
        scope_name=scope_name,
        scope_version=scope_version,
        attributes=_pb_attributes(span.attributes),
        start=start,
        end=end,
        status_code=status_code,
        status_message=status.message,
        events=events,
        links=links,
        redacted=redacted,
    )

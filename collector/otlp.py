"""OTLP/HTTP trace decoding: an ``ExportTraceServiceRequest`` body becomes stored span rows.

Pure functions, no sockets: the FastAPI app hands over the raw body and headers and gets back a
``DecodedBatch`` (or a ``RetraceError`` naming what was wrong). Both OTLP encodings are read:
``application/x-protobuf`` and the OTLP JSON mapping (hex ids, enums as ints or names, 64-bit
integers as strings or numbers), plain, gzip or deflate.

What happens to each span on the way:

* it is validated; an invalid span (bad ids, no name, end before start, a value nested deeper
  than 32 levels...) is rejected alone and counted, the valid ones are kept (OTLP partial
  success). In protobuf too: a body the parser refuses as a whole (a value nested past its
  depth limit) is parsed again piecewise, envelope then each span, to lose only the bad span;
* attribute values are flattened to strings the way the OTel ClickHouse exporter does (arrays and
  maps as JSON, bytes as base64) and secrets in them are redacted (``collector.redact``);
* payload attributes (``schemas.attributes.PAYLOAD_KEYS``, and any value longer than
  ``PAYLOAD_INLINE_MAX_BYTES``) move out of ``attributes`` into ``DecodedBatch.payloads`` by sha256,
  with ``payload_refs[key] = sha256`` left on the span;
* the Retrace columns are derived (``collector.conventions``) and root/chat spans get short
  human-readable input/output previews.

This is the ingest hot path: rows are built without pydantic validation (the decoder guarantees
the field types) and repeated payloads are redacted and hashed once per batch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.conventions import derive_columns
from collector.redact import is_secret_key, may_contain_secret, redact_text, redact_value
from schemas.attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    OI_INPUT_VALUE,
    OI_OUTPUT_VALUE,
    OP_CHAT,
    PAYLOAD_INLINE_MAX_BYTES,
    PAYLOAD_KEYS,
    RETRACE_REDACTED,
    RETRACE_RUN_INPUT,
    RETRACE_RUN_OUTPUT,
    SERVICE_NAME,
    TL_ENTITY_INPUT,
    TL_ENTITY_OUTPUT,
)
from schemas.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from schemas.models import (
    MAX_SPAN_TIME_UNIX_NANO,
    SpanEvent,
    SpanKind,
    SpanLink,
    SpanRecord,
    StatusCode,
)

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "PREVIEW_CHARS",
    "DecodedBatch",
    "decode_export_request",
    "encode_export_response",
    "message_preview",
]

CONTENT_TYPE_PROTOBUF: Final = "application/x-protobuf"
CONTENT_TYPE_JSON: Final = "application/json"
_PROTOBUF_TYPES: Final = frozenset({CONTENT_TYPE_PROTOBUF, "application/protobuf"})

PREVIEW_CHARS: Final = 300
_MAX_PROBLEMS_LISTED: Final = 3
_MAX_ANY_VALUE_DEPTH: Final = 32
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_ZERO_TRACE_ID: Final = bytes(16)
_ZERO_SPAN_ID: Final = bytes(8)
_ZERO_TRACE_HEX: Final = "0" * 32
_ZERO_SPAN_HEX: Final = "0" * 16

_KINDS: Final = (
    SpanKind.UNSPECIFIED,
    SpanKind.INTERNAL,
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
)
_KIND_NAMES: Final = {f"SPAN_KIND_{kind.name}": kind for kind in _KINDS}
_STATUSES: Final = (StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR)
_STATUS_NAMES: Final = {f"STATUS_CODE_{status.name}": status for status in _STATUSES}

_HEX32: Final = re.compile(r"[0-9a-fA-F]{32}")
_HEX16: Final = re.compile(r"[0-9a-fA-F]{16}")


@dataclass(slots=True)
class DecodedBatch:
    """The spans of one export request, ready for the store.

    ``payloads`` maps sha256 hex -> content for every payload a span's ``payload_refs`` names
    (each stored once however many spans share it). ``rejected_spans`` and ``error_message`` are
    what the OTLP partial-success response reports.
    """

    spans: list[SpanRecord] = field(default_factory=list)
    payloads: dict[str, bytes] = field(default_factory=dict)
    rejected_spans: int = 0
    error_message: str = ""


# --- request envelope ---------------------------------------------------------------------------


def _media_type(content_type: str | None) -> Literal["protobuf", "json"]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _PROTOBUF_TYPES:
        return "protobuf"
    if media == CONTENT_TYPE_JSON:
        return "json"
    shown = content_type if content_type else "none"
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type {shown!r}: OTLP/HTTP accepts "
        f"{CONTENT_TYPE_PROTOBUF!r} or {CONTENT_TYPE_JSON!r}"
    )


def _decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, "gzip", limit)
    if encoding == "deflate":
        # HTTP "deflate" is zlib-wrapped, but some clients send raw deflate.
        if len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0:
            return _inflate(body, zlib.MAX_WBITS, "deflate", limit)
        return _inflate(body, -zlib.MAX_WBITS, "deflate", limit)
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Encoding {content_encoding!r}: use gzip, deflate or identity"
    )


def _inflate(body: bytes, wbits: int, name: str, limit: int) -> bytes:
    """Decompress with an output cap, so a small bomb cannot expand past ``limit`` in memory."""
    parts: list[bytes] = []
    total = 0
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(data, limit + 1 - total)
            total += len(chunk)
            if total > limit:
                raise PayloadTooLargeError(
                    f"{name} body decompresses to more than the limit of {limit} bytes"
                )
            parts.append(chunk)
            if not inflater.eof:
                raise InvalidInputError(f"invalid {name} body: truncated compressed stream")
            data = inflater.unused_data
            # gzip allows several members back to back; anything else after the end is an error.
            if not data:
                break
            if name != "gzip":
                raise InvalidInputError(f"invalid {name} body: data after the end of the stream")
    except zlib.error as exc:
        raise InvalidInputError(f"invalid {name} body: {exc}") from None
    return b"".join(parts)


def decode_export_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    project: str,
    max_body_bytes: int,
) -> DecodedBatch:
    """Decode an OTLP/HTTP ``ExportTraceServiceRequest`` body into span rows and payloads.

    ``project`` (from the API key) is written on every span, whatever the resource says. Raises
    ``UnsupportedMediaTypeError`` for another content type or encoding, ``PayloadTooLargeError``
    when the body, or what it decompresses to, exceeds ``max_body_bytes``, and
    ``InvalidInputError`` when it cannot be decoded. Invalid spans do not raise: they are counted
    in ``rejected_spans`` and described in ``error_message``.
    """
    media = _media_type(content_type)
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(
            f"request body of {len(body)} bytes exceeds the limit of {max_body_bytes} bytes"
        )
    if not isinstance(body, bytes):
        body = bytes(body)
    raw = _decompress(body, content_encoding, max_body_bytes)
    builder = _BatchBuilder(
        project, scan_text=may_contain_secret(raw, json_escapes=media == "json")
    )
    if media == "protobuf":
        _decode_protobuf(raw, builder)
    else:
        _decode_json(raw, builder)
    return builder.finish()


def encode_export_response(rejected: int, message: str, content_type: str | None) -> bytes:
    """The ``ExportTraceServiceResponse`` body, in the request's encoding (JSON or protobuf).

    ``partial_success`` is set only when spans were rejected or there is a message, as OTLP asks.
    """
    try:
        json_response = _media_type(content_type) == "json"
    except UnsupportedMediaTypeError:
        json_response = False
    partial = rejected > 0 or bool(message)
    if json_response:
        if not partial:
            return b"{}"
        body: bytes = orjson.dumps(
            {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
        )
        return body
    response = ExportTraceServiceResponse()
    if partial:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    data: bytes = response.SerializeToString()
    return data


# --- building rows ------------------------------------------------------------------------------


class _SpanProblem(Exception):
    """One span (or a resource/scope and its spans) is invalid; the message names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.text = f"{path}: {problem}"


_new = object.__new__
_set = object.__setattr__
_SPAN_FIELDS: Final = frozenset(SpanRecord.model_fields)
_EVENT_FIELDS: Final = frozenset(SpanEvent.model_fields)
_LINK_FIELDS: Final = frozenset(SpanLink.model_fields)


def _construct(cls: type[Any], fields: frozenset[str], values: dict[str, Any]) -> Any:
    # What BaseModel.model_construct does, without its per-field default handling (every field
    # is given) -- validation would cost more than the rest of decoding together.
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(fields))  # per instance: assignment adds to it
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


class _Payload:
    __slots__ = ("digest", "redacted", "text")

    def __init__(self, text: str, redacted: int, digest: str) -> None:
        self.text = text
        self.redacted = redacted
        self.digest = digest


class _BatchBuilder:
    """Collects span rows, payloads and rejections for one request."""

    def __init__(self, project: str, *, scan_text: bool) -> None:
        self.project = project
        # False when the whole body was found free of secret candidates: only keys are checked.
        self.scan_text = scan_text
        self.spans: list[SpanRecord] = []
        self.payloads: dict[str, bytes] = {}
        self.rejected = 0
        self.problems: list[str] = []
        # raw value -> its redacted text and hash, so a payload repeated in many spans (system
        # prompt, tool definitions) is redacted and hashed once.
        self._payload_cache: dict[str, _Payload] = {}
        self._text_cache: dict[str, tuple[str, int]] = {}

    def reject(self, problem: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.rejected += count
        if len(self.problems) <= _MAX_PROBLEMS_LISTED:
            self.problems.append(problem)

    def finish(self) -> DecodedBatch:
        message = ""
        if self.rejected:
            total = self.rejected + len(self.spans)
            shown = "; ".join(self.problems[:_MAX_PROBLEMS_LISTED])
            more = len(self.problems) > _MAX_PROBLEMS_LISTED
            message = f"rejected {self.rejected} of {total} spans: {shown}" + (
                "; ..." if more else ""
            )
        return DecodedBatch(self.spans, self.payloads, self.rejected, message)

    # -- attributes ------------------------------------------------------------------------------

    def redact_map(self, attributes: dict[str, str]) -> tuple[dict[str, str], int]:
        """Redact short attribute maps (resource, event, link attributes) in place."""
        scan = self.scan_text and _may_contain_secret(attributes.values())
        total = 0
        for key, value in attributes.items():
            if value:
                text, count = self._redact_short(key, value, scan)
                if text is not value:
                    attributes[key] = text
                total += count
        return attributes, total

    def _redact_short(self, key: str, value: str, scan: bool) -> tuple[str, int]:
        if is_secret_key(key):
            return redact_value(key, str(value))
        if type(value) is not str:
            # A flattened array/map: its JSON text is not verbatim in the body, always scan it.
            return redact_text(str(value))
        if not scan:
            return value, 0
        cached = self._text_cache.get(value)
        if cached is None:
            cached = redact_text(value)
            self._text_cache[value] = cached
        return cached

    def _payload(self, key: str, value: str, scan: bool) -> _Payload:
        if is_secret_key(key):
            text, count = redact_value(key, str(value))
            return self._store_payload(text, count)
        if type(value) is not str:
            text, count = redact_text(str(value))
            return self._store_payload(text, count)
        cached = self._payload_cache.get(value)
        if cached is None:
            # Cached even when not scanned: not scanning means this very text is clean.
            text, count = redact_text(value) if scan else (value, 0)
            cached = self._store_payload(text, count)
            self._payload_cache[value] = cached
        return cached

    def _store_payload(self, text: str, redacted: int) -> _Payload:
        encoded = text.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(encoded).hexdigest()
        self.payloads[digest] = encoded
        return _Payload(text, redacted, digest)

    # -- one span --------------------------------------------------------------------------------

    def add_span(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        trace_state: str,
        name: str,
        kind: SpanKind,
        service_name: str,
        resource_attributes: dict[str, str],
        scope_name: str,
        scope_version: str,
        attributes: dict[str, str],
        start: int,
        end: int,
        status_code: StatusCode,
        status_message: str,
        events: list[SpanEvent],
        links: list[SpanLink],
        redacted: int,
    ) -> None:
        derived = derive_columns(name, attributes)
        operation, agent_name, model, tool_name = (
            derived.operation,
            derived.agent_name,
            derived.model,
            derived.tool_name,
        )
        if (
            type(operation) is not str
            or type(agent_name) is not str
            or type(model) is not str
            or type(tool_name) is not str
        ):
            # Taken from a flattened array/map value: store plain strings.
            operation, agent_name, model = str(operation), str(agent_name), str(model)
            tool_name = str(tool_name)
        refs: dict[str, str] = {}
        payload_texts: dict[str, str] = {}
        moved: list[str] = []
        # A body with a secret candidate somewhere: look closer only at spans that have one.
        scan = self.scan_text and _may_contain_secret(attributes.values(), status_message)
        for key, value in attributes.items():
            if not value:
                continue
            role = _KEY_ROLES.get(key)
            if role is None:
                role = _key_role(key)
            size = len(value)
            if role == _PAYLOAD_KEY or (
                size > PAYLOAD_INLINE_MAX_BYTES
                or (
                    size * 4 > PAYLOAD_INLINE_MAX_BYTES
                    and _utf8_len(value) > PAYLOAD_INLINE_MAX_BYTES
                )
            ):
                payload = self._payload(key, value, scan)
                refs[key] = payload.digest
                payload_texts[key] = payload.text
                redacted += payload.redacted
                moved.append(key)
            elif role == _SECRET_KEY or scan or type(value) is not str:
                text, count = self._redact_short(key, value, scan)
                if text is not value:
                    attributes[key] = text
                redacted += count
        for key in moved:
            del attributes[key]

        input_preview = output_preview = ""
        if payload_texts and (not parent_span_id or operation == OP_CHAT):
            input_preview, output_preview = _previews(payload_texts)
        if status_message:
            status_message, count = self._redact_short("", status_message, scan)
            redacted += count
        if redacted:
            attributes[RETRACE_REDACTED] = str(redacted)

        self.spans.append(
            _construct(
                SpanRecord,
                _SPAN_FIELDS,
                {
                    "project_id": self.project,
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "parent_span_id": parent_span_id,
                    "trace_state": trace_state,
                    "name": name,
                    "kind": kind,
                    "service_name": service_name,
                    "resource_attributes": resource_attributes,
                    "scope_name": scope_name,
                    "scope_version": scope_version,
                    "attributes": attributes,
                    "start_time_unix_nano": start,
                    "duration_ns": end - start,
                    "status_code": status_code,
                    "status_message": status_message,
                    "events": events,
                    "links": links,
                    "operation": operation,
                    "agent_name": agent_name,
                    "model": model,
                    "tool_name": tool_name,
                    "input_tokens": derived.input_tokens,
                    "output_tokens": derived.output_tokens,
                    "step_index": derived.step_index,
                    "payload_refs": refs,
                    "input_preview": input_preview,
                    "output_preview": output_preview,
                },
            )
        )

    def event(self, time: int, name: str, attributes: dict[str, str]) -> tuple[SpanEvent, int]:
        attributes, count = self.redact_map(attributes)
        values = {"timestamp_unix_nano": time, "name": name, "attributes": attributes}
        return _construct(SpanEvent, _EVENT_FIELDS, values), count

    def link(
        self, trace_id: str, span_id: str, trace_state: str, attributes: dict[str, str]
    ) -> tuple[SpanLink, int]:
        attributes, count = self.redact_map(attributes)
        values = {
            "trace_id": trace_id,
            "span_id": span_id,
            "trace_state": trace_state,
            "attributes": attributes,
        }
        return _construct(SpanLink, _LINK_FIELDS, values), count


_PLAIN_KEY: Final = 0
_PAYLOAD_KEY: Final = 1
_SECRET_KEY: Final = 2
# attribute key -> its role, so the per-attribute hot loop does one dict lookup.
_KEY_ROLES: dict[str, int] = {key: _PAYLOAD_KEY for key in PAYLOAD_KEYS}
_KEY_ROLES_MAX: Final = 16384


def _key_role(key: str) -> int:
    role = (
        _PAYLOAD_KEY if key in PAYLOAD_KEYS else _SECRET_KEY if is_secret_key(key) else _PLAIN_KEY
    )
    if len(_KEY_ROLES) >= _KEY_ROLES_MAX:
        _KEY_ROLES.clear()
        _KEY_ROLES.update({payload_key: _PAYLOAD_KEY for payload_key in PAYLOAD_KEYS})
    _KEY_ROLES[key] = role
    return role


def _may_contain_secret(values: Iterable[str], *more: str) -> bool:
    """One prefilter pass over many values (joined: a match across a seam only costs time)."""
    joined = "\n".join((*values, *more))
    return bool(joined) and may_contain_secret(joined.encode("utf-8", "surrogatepass"))


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


# Spans later than MAX_SPAN_TIME_UNIX_NANO cannot be stored and found again.
_LAST_SECOND: Final = datetime.fromtimestamp(MAX_SPAN_TIME_UNIX_NANO // 1_000_000_000, UTC)
_TOO_LATE: Final = (
    f"is after {_LAST_SECOND:%Y-%m-%dT%H:%M:%S}.{MAX_SPAN_TIME_UNIX_NANO % 1_000_000_000:09d}Z,"
    " the latest time the store can hold"
)


def _check_times(prefix: str, start: int, end: int) -> None:
    """Validate a span's times; ``prefix`` is the span's path plus "." (or "" when relative)."""
    if start <= 0:
        raise _SpanProblem(f"{prefix}startTimeUnixNano", "is missing")
    if start > MAX_SPAN_TIME_UNIX_NANO:
        raise _SpanProblem(f"{prefix}startTimeUnixNano", _TOO_LATE)
    if end > MAX_SPAN_TIME_UNIX_NANO:
        raise _SpanProblem(f"{prefix}endTimeUnixNano", _TOO_LATE)
    if end < start:
        raise _SpanProblem(f"{prefix}endTimeUnixNano", "is before startTimeUnixNano")


# --- flattening attribute values ------------------------------------------------------------------


def _format_double(value: float) -> str:
    """Format like the OTel collector's ``Value.AsString`` (ES6 number to string)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if value.is_integer() and magnitude < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text and 1e-6 <= magnitude < 1e21:
        return format(Decimal(text), "f")
    return text


class _Flattened(str):
    """JSON text of a flattened array/map value; marks it for redaction scanning."""

    __slots__ = ()


def _json_text(value: Any) -> str:
    return _Flattened(orjson.dumps(value).decode())


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
        return _format_double(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return _json_text(_pb_raw(value, depth))


def _pb_raw(value: AnyValue, depth: int) -> Any:
    """An AnyValue as a plain JSON-able value (for arrays and maps flattened to JSON)."""
    if depth > _MAX_ANY_VALUE_DEPTH:
        raise _SpanProblem("attributes", "value nested too deeply")
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else _format_double(number)
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


# --- protobuf ---------------------------------------------------------------------------------


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


def _decode_protobuf(raw: bytes, builder: _BatchBuilder) -> None:
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
                raise _SpanProblem("attributes", resource.problem)
            resource_attributes = _pb_attributes(resource.attributes)
        except _SpanProblem as problem:
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
                except _SpanProblem as problem:
                    path = f"{r_path}.scopeSpans[{s_index}].spans[{p_index}]"
                    builder.reject(f"{path}.{problem.text}")


def _pb_span(
    span: Any,
    builder: _BatchBuilder,
    service_name: str,
    resource_attributes: dict[str, str],
    scope_name: str,
    scope_version: str,
    redacted: int,
) -> None:
    trace_id = span.trace_id
    if len(trace_id) != 16:
        raise _SpanProblem("traceId", f"expected 16 bytes, got {len(trace_id)}")
    if trace_id == _ZERO_TRACE_ID:
        raise _SpanProblem("traceId", "must not be all zero")
    span_id = span.span_id
    if len(span_id) != 8:
        raise _SpanProblem("spanId", f"expected 8 bytes, got {len(span_id)}")
    if span_id == _ZERO_SPAN_ID:
        raise _SpanProblem("spanId", "must not be all zero")
    parent = span.parent_span_id
    if parent:
        if len(parent) != 8:
            raise _SpanProblem("parentSpanId", f"expected 8 bytes or none, got {len(parent)}")
        parent_hex = "" if parent == _ZERO_SPAN_ID else parent.hex()
    else:
        parent_hex = ""
    name = span.name
    if not name:
        raise _SpanProblem("name", "is missing")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    _check_times("", start, end)
    kind_number = span.kind
    kind = _KINDS[kind_number] if 0 <= kind_number < 6 else SpanKind.UNSPECIFIED
    status = span.status
    code_number = status.code
    status_code = _STATUSES[code_number] if 0 <= code_number < 3 else StatusCode.UNSET

    events: list[SpanEvent] = []
    for e_index, ev in enumerate(span.events):
        try:
            event, count = builder.event(ev.time_unix_nano, ev.name, _pb_attributes(ev.attributes))
        except _SpanProblem as problem:
            raise _SpanProblem(f"events[{e_index}]", problem.text) from None
        if ev.time_unix_nano > _INT64_MAX:
            raise _SpanProblem(f"events[{e_index}].timeUnixNano", "out of range")
        events.append(event)
        redacted += count
    links: list[SpanLink] = []
    for l_index, ln in enumerate(span.links):
        link_trace = ln.trace_id
        link_span = ln.span_id
        if len(link_trace) != 16 or link_trace == _ZERO_TRACE_ID:
            raise _SpanProblem(f"links[{l_index}].traceId", "expected 16 non-zero bytes")
        if len(link_span) != 8 or link_span == _ZERO_SPAN_ID:
            raise _SpanProblem(f"links[{l_index}].spanId", "expected 8 non-zero bytes")
        try:
            link, count = builder.link(
                link_trace.hex(), link_span.hex(), ln.trace_state, _pb_attributes(ln.attributes)
            )
        except _SpanProblem as problem:
            raise _SpanProblem(f"links[{l_index}]", problem.text) from None
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


# --- JSON ---------------------------------------------------------------------------------------


def _invalid_json(path: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"invalid JSON at {path}: {problem}")


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    # The OTLP JSON mapping uses lowerCamelCase; protobuf JSON parsers also accept field names.
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    return value


def _json_list(obj: Mapping[str, Any], camel: str, snake: str, path: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _SpanProblem(f"{path}.{camel}", "expected an array")
    return value


def _json_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _SpanProblem(path, "expected an object")
    return value


def _json_str(obj: Mapping[str, Any], camel: str, snake: str, path: str) -> str:
    value = _get(obj, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _SpanProblem(f"{path}.{camel}", "expected a string")
    return value


def _json_uint64(obj: Mapping[str, Any], camel: str, snake: str, path: str) -> int:
    value = _get(obj, camel, snake)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _SpanProblem(f"{path}.{camel}", "expected an unsigned integer")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20) or (
        isinstance(value, float) and value.is_integer()
    ):
        number = int(value)
    else:
        raise _SpanProblem(f"{path}.{camel}", "expected an unsigned integer")
    if not 0 <= number <= _UINT64_MAX:
        raise _SpanProblem(f"{path}.{camel}", "out of range")
    return number


def _json_enum(value: Any, names: Mapping[str, Any], path: str) -> int | str:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _SpanProblem(path, "expected an enum number or name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in names:
            return value
        if value.isascii() and value.isdigit() and len(value) < 10:
            return int(value)
    raise _SpanProblem(path, "expected an enum number or name")


def _json_id(value: Any, length: int, path: str, *, optional: bool = False) -> str:
    """Hex id as the OTLP JSON mapping requires; base64 (protobuf's JSON) is tolerated too."""
    if value is None or value == "":
        if optional:
            return ""
        raise _SpanProblem(path, "is missing")
    if not isinstance(value, str):
        raise _SpanProblem(path, f"expected {length * 2} hex characters")
    pattern = _HEX32 if length == 16 else _HEX16
    if len(value) == length * 2 and pattern.fullmatch(value):
        return value.lower()
    if len(value) == ((length + 2) // 3) * 4:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == length:
            return raw.hex()
    raise _SpanProblem(path, f"expected {length * 2} hex characters")


def _json_value(value: Any, path: str, depth: int = 0) -> str:
    if not isinstance(value, dict):
        raise _SpanProblem(path, "expected an AnyValue object")
    if len(value) == 1:
        ((which, inner),) = value.items()
    elif not value:
        return ""
    else:
        raise _SpanProblem(path, "an AnyValue has exactly one field")
    if which == "stringValue" and isinstance(inner, str):
        return inner
    raw = _json_raw(value, path, depth)
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return _format_double(raw)
    if raw is None:
        return ""
    return _json_text(raw)


_ANY_VALUE_FIELDS: Final = {
    "string_value": "stringValue",
    "bool_value": "boolValue",
    "int_value": "intValue",
    "double_value": "doubleValue",
    "array_value": "arrayValue",
    "kvlist_value": "kvlistValue",
    "bytes_value": "bytesValue",
}
_DOUBLE_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_raw(value: Any, path: str, depth: int) -> Any:
    """A JSON AnyValue as a plain value; bytes as base64, special doubles as strings."""
    if depth > _MAX_ANY_VALUE_DEPTH:
        raise _SpanProblem(path, "value nested too deeply")
    if not isinstance(value, dict):
        raise _SpanProblem(path, "expected an AnyValue object")
    if not value:
        return None
    if len(value) != 1:
        raise _SpanProblem(path, "an AnyValue has exactly one field")
    ((which, inner),) = value.items()
    which = _ANY_VALUE_FIELDS.get(which, which)
    where = f"{path}.{which}"
    if which == "stringValue":
        if isinstance(inner, str):
            return inner
        raise _SpanProblem(where, "expected a string")
    if which == "boolValue":
        if isinstance(inner, bool):
            return inner
        raise _SpanProblem(where, "expected true or false")
    if which == "intValue":
        if isinstance(inner, int) and not isinstance(inner, bool):
            number = inner
        elif (isinstance(inner, str) and _is_int_text(inner)) or (
            isinstance(inner, float) and inner.is_integer()
        ):
            number = int(inner)
        else:
            raise _SpanProblem(where, "expected a 64-bit integer")
        if not -(2**63) <= number <= _INT64_MAX:
            raise _SpanProblem(where, "out of range for a 64-bit integer")
        return number
    if which == "doubleValue":
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            number_f = float(inner)
            return number_f if math.isfinite(number_f) else _format_double(number_f)
        if isinstance(inner, str):
            if inner in _DOUBLE_WORDS:
                return _format_double(_DOUBLE_WORDS[inner])
            try:
                return float(inner)
            except ValueError:
                pass
        raise _SpanProblem(where, "expected a number")
    if which == "bytesValue":
        if isinstance(inner, str):
            try:
                decoded = base64.b64decode(inner + "=" * (-len(inner) % 4), altchars=b"-_")
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is not None:
                return base64.b64encode(decoded).decode()
        raise _SpanProblem(where, "expected base64 text")
    if which == "arrayValue":
        items = _json_list(_json_object(inner, where), "values", "values", where)
        return [_json_raw(item, f"{where}.values[{i}]", depth + 1) for i, item in enumerate(items)]
    if which == "kvlistValue":
        items = _json_list(_json_object(inner, where), "values", "values", where)
        out: dict[str, Any] = {}
        for i, item in enumerate(items):
            item_path = f"{where}.values[{i}]"
            kv = _json_object(item, item_path)
            key = _json_str(kv, "key", "key", item_path)
            out[key] = _json_raw(kv.get("value", {}), f"{item_path}.value", depth + 1)
        return out
    raise _SpanProblem(path, f"unknown AnyValue field {which!r}")


def _is_int_text(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return 0 < len(digits) <= 19 and digits.isascii() and digits.isdigit()


def _json_attributes(items: Any, path: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _SpanProblem(path, "expected an array")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _SpanProblem(f"{path}[{i}]", "expected a key/value object")
        key = item.get("key")
        if not isinstance(key, str):
            raise _SpanProblem(f"{path}[{i}].key", "expected a string")
        value = item.get("value")
        if value is None:
            out[key] = ""
        elif type(value) is dict and len(value) == 1 and type(value.get("stringValue")) is str:
            out[key] = value["stringValue"]
        else:
            out[key] = _json_value(value, f"{path}[{i}].value")
    return out


def _decode_json(raw: bytes, builder: _BatchBuilder) -> None:
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON body: {exc}") from None
    if not isinstance(request, dict):
        raise _invalid_json("$", "expected an object")
    resource_spans = _get(request, "resourceSpans", "resource_spans")
    if resource_spans is None:
        return
    if not isinstance(resource_spans, list):
        raise _invalid_json("resourceSpans", "expected an array")
    for r_index, rs in enumerate(resource_spans):
        r_path = f"resourceSpans[{r_index}]"
        if not isinstance(rs, dict):
            raise _invalid_json(r_path, "expected an object")
        scopes = _get(rs, "scopeSpans", "scope_spans")
        if scopes is None:
            continue
        if not isinstance(scopes, list):
            raise _invalid_json(f"{r_path}.scopeSpans", "expected an array")
        for s_index, ss in enumerate(scopes):
            s_path = f"{r_path}.scopeSpans[{s_index}]"
            if not isinstance(ss, dict):
                raise _invalid_json(s_path, "expected an object")
            spans = ss.get("spans")
            if spans is not None and not isinstance(spans, list):
                raise _invalid_json(f"{s_path}.spans", "expected an array")
        try:
            resource = _get(rs, "resource", "resource") or {}
            resource = _json_object(resource, f"{r_path}.resource")
            resource_attributes = _json_attributes(
                resource.get("attributes"), f"{r_path}.resource.attributes"
            )
        except _SpanProblem as problem:
            builder.reject(problem.text, sum(len(ss.get("spans") or ()) for ss in scopes))
            continue
        resource_attributes, resource_redacted = builder.redact_map(resource_attributes)
        service_name = resource_attributes.get(SERVICE_NAME, "")
        for s_index, ss in enumerate(scopes):
            s_path = f"{r_path}.scopeSpans[{s_index}]"
            spans = ss.get("spans") or []
            try:
                scope = _json_object(ss.get("scope") or {}, f"{s_path}.scope")
                scope_name = _json_str(scope, "name", "name", f"{s_path}.scope")
                scope_version = _json_str(scope, "version", "version", f"{s_path}.scope")
            except _SpanProblem as problem:
                builder.reject(problem.text, len(spans))
                continue
            for p_index, span in enumerate(spans):
                path = f"{s_path}.spans[{p_index}]"
                try:
                    _json_span(
                        span,
                        path,
                        builder,
                        service_name,
                        resource_attributes,
                        scope_name,
                        scope_version,
                        resource_redacted,
                    )
                except _SpanProblem as problem:
                    builder.reject(problem.text)


def _json_span(
    span: Any,
    path: str,
    builder: _BatchBuilder,
    service_name: str,
    resource_attributes: dict[str, str],
    scope_name: str,
    scope_version: str,
    redacted: int,
) -> None:
    span = _json_object(span, path)
    trace_id = _json_id(_get(span, "traceId", "trace_id"), 16, f"{path}.traceId")
    if trace_id == _ZERO_TRACE_HEX:
        raise _SpanProblem(f"{path}.traceId", "must not be all zero")
    span_id = _json_id(_get(span, "spanId", "span_id"), 8, f"{path}.spanId")
    if span_id == _ZERO_SPAN_HEX:
        raise _SpanProblem(f"{path}.spanId", "must not be all zero")
    parent = _json_id(
        _get(span, "parentSpanId", "parent_span_id"), 8, f"{path}.parentSpanId", optional=True
    )
    if parent == _ZERO_SPAN_HEX:
        parent = ""
    name = _json_str(span, "name", "name", path)
    if not name:
        raise _SpanProblem(f"{path}.name", "is missing")
    start = _json_uint64(span, "startTimeUnixNano", "start_time_unix_nano", path)
    end = _json_uint64(span, "endTimeUnixNano", "end_time_unix_nano", path)
    _check_times(f"{path}.", start, end)

    kind_value = _json_enum(span.get("kind"), _KIND_NAMES, f"{path}.kind")
    if isinstance(kind_value, str):
        kind = _KIND_NAMES[kind_value]
    else:
        kind = _KINDS[kind_value] if 0 <= kind_value < 6 else SpanKind.UNSPECIFIED
    status = _json_object(span.get("status") or {}, f"{path}.status")
    code_value = _json_enum(status.get("code"), _STATUS_NAMES, f"{path}.status.code")
    if isinstance(code_value, str):
        status_code = _STATUS_NAMES[code_value]
    else:
        status_code = _STATUSES[code_value] if 0 <= code_value < 3 else StatusCode.UNSET
    status_message = _json_str(status, "message", "message", f"{path}.status")

    events: list[SpanEvent] = []
    for e_index, ev in enumerate(_json_list(span, "events", "events", path)):
        e_path = f"{path}.events[{e_index}]"
        ev = _json_object(ev, e_path)
        time = _json_uint64(ev, "timeUnixNano", "time_unix_nano", e_path)
        if time > _INT64_MAX:
            raise _SpanProblem(f"{e_path}.timeUnixNano", "out of range")
        event, count = builder.event(
            time,
            _json_str(ev, "name", "name", e_path),
            _json_attributes(ev.get("attributes"), f"{e_path}.attributes"),
        )
        events.append(event)
        redacted += count
    links: list[SpanLink] = []
    for l_index, ln in enumerate(_json_list(span, "links", "links", path)):
        l_path = f"{path}.links[{l_index}]"
        ln = _json_object(ln, l_path)
        link_trace = _json_id(_get(ln, "traceId", "trace_id"), 16, f"{l_path}.traceId")
        link_span = _json_id(_get(ln, "spanId", "span_id"), 8, f"{l_path}.spanId")
        if link_trace == _ZERO_TRACE_HEX or link_span == _ZERO_SPAN_HEX:
            raise _SpanProblem(l_path, "link ids must not be all zero")
        link, count = builder.link(
            link_trace,
            link_span,
            _json_str(ln, "traceState", "trace_state", l_path),
            _json_attributes(ln.get("attributes"), f"{l_path}.attributes"),
        )
        links.append(link)
        redacted += count

    builder.add_span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        trace_state=_json_str(span, "traceState", "trace_state", path),
        name=name,
        kind=kind,
        service_name=service_name,
        resource_attributes=dict(resource_attributes),
        scope_name=scope_name,
        scope_version=scope_version,
        attributes=_json_attributes(span.get("attributes"), f"{path}.attributes"),
        start=start,
        end=end,
        status_code=status_code,
        status_message=status_message,
        events=events,
        links=links,
        redacted=redacted,
    )


# --- previews -------------------------------------------------------------------------------------

_INPUT_KEYS: Final = (RETRACE_RUN_INPUT, GEN_AI_INPUT_MESSAGES, OI_INPUT_VALUE, TL_ENTITY_INPUT)
_OUTPUT_KEYS: Final = (
    RETRACE_RUN_OUTPUT,
    GEN_AI_OUTPUT_MESSAGES,
    OI_OUTPUT_VALUE,
    TL_ENTITY_OUTPUT,
)
_MESSAGE_KEYS: Final = frozenset({GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES})


def _previews(texts: Mapping[str, str]) -> tuple[str, str]:
    input_preview = output_preview = ""
    for key in _INPUT_KEYS:
        text = texts.get(key)
        if text:
            input_preview = message_preview(text, role="user" if key in _MESSAGE_KEYS else None)
            if input_preview:
                break
    for key in _OUTPUT_KEYS:
        text = texts.get(key)
        if text:
            output_preview = message_preview(text, role=None)
            if output_preview:
                break
    return input_preview, output_preview


def message_preview(text: str, *, role: str | None) -> str:
    """A short human-readable preview of a message list or a plain/JSON text payload.

    For a GenAI message list (``[{"role", "parts"|"content"}]``) it is the text of the last
    message with ``role`` (or the last message when ``role`` is None); JSON strings are unquoted;
    anything else is the text itself. At most ``PREVIEW_CHARS`` characters, whitespace collapsed.
    """
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{", '"'):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            value = None
        else:
            extracted = _preview_from_json(value, role)
            if extracted is not None:
                return _shorten(extracted)
    return _shorten(text)


def _preview_from_json(value: Any, role: str | None) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "role" in value or "parts" in value or "content" in value:
            return _message_text(value)
        for key in ("input", "output", "text", "content", "answer", "result", "query", "task"):
            inner = value.get(key)
            if isinstance(inner, str):
                return inner
        return None
    if isinstance(value, list):
        # The last message with the wanted role, else the last message.
        fallback: dict[str, Any] | None = None
        for message in reversed(value):
            if isinstance(message, dict):
                if role is None or message.get("role") == role:
                    return _message_text(message)
                if fallback is None:
                    fallback = message
        return _message_text(fallback) if fallback is not None else None
    return None


def _message_text(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    pieces: list[str] = []
    parts = message.get("parts")
    if not isinstance(parts, list):
        parts = content if isinstance(content, list) else []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict):
            part_text = part.get("content", part.get("text"))
            if isinstance(part_text, str):
                pieces.append(part_text)
            elif part.get("type") == "tool_call" and isinstance(part.get("name"), str):
                pieces.append(f"[tool call: {part['name']}]")
    if not pieces:
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                if isinstance(call, dict):
                    name = call.get("name")
                    function = call.get("function")
                    if not isinstance(name, str) and isinstance(function, dict):
                        name = function.get("name")
                    if isinstance(name, str):
                        pieces.append(f"[tool call: {name}]")
    return " ".join(pieces) if pieces else None


def _shorten(text: str) -> str:
    """At most ``PREVIEW_CHARS`` characters on one line, runs of whitespace as one space."""
    head = text[: PREVIEW_CHARS + 64]
    if "\n" in head or "\r" in head or "\t" in head:
        head = head.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if "  " in head:
        head = " ".join(head.split())
    head = head.strip()
    if len(head) > PREVIEW_CHARS:
        return head[: PREVIEW_CHARS - 1] + "…"
    return head

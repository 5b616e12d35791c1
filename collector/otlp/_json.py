"""The OTLP JSON decoder: a request in the OTLP JSON mapping, span by span, into the builder.

Hex ids (base64 tolerated), enums as numbers or names, 64-bit integers as strings or numbers,
lowerCamelCase field names (snake_case accepted). A malformed envelope is a 400 naming the JSON
path; a malformed span, resource or scope rejects only its own spans.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from collector._span_batch import EventRow, LinkRow
from collector.otlp._builder import BatchBuilder, SpanProblem, check_event_time, check_span_times
from collector.otlp._values import (
    INT64_MAX,
    KIND_NAMES,
    KINDS,
    MAX_ANY_VALUE_DEPTH,
    STATUS_NAMES,
    STATUSES,
    format_double,
    json_text,
)
from schemas.attributes import SERVICE_NAME
from schemas.errors import InvalidInputError
from schemas.models import SpanKind, StatusCode

_UINT64_MAX: Final = 2**64 - 1
_ZERO_TRACE_HEX: Final = "0" * 32
_ZERO_SPAN_HEX: Final = "0" * 16
_HEX32: Final = re.compile(r"[0-9a-fA-F]{32}")
_HEX16: Final = re.compile(r"[0-9a-fA-F]{16}")


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
        raise SpanProblem(f"{path}.{camel}", "expected an array")
    return value


def _json_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpanProblem(path, "expected an object")
    return value


def _json_str(obj: Mapping[str, Any], camel: str, snake: str, path: str) -> str:
    value = _get(obj, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpanProblem(f"{path}.{camel}", "expected a string")
    return value


def _json_uint64(obj: Mapping[str, Any], camel: str, snake: str, path: str) -> int:
    value = _get(obj, camel, snake)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpanProblem(f"{path}.{camel}", "expected an unsigned integer")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20) or (
        isinstance(value, float) and value.is_integer()
    ):
        number = int(value)
    else:
        raise SpanProblem(f"{path}.{camel}", "expected an unsigned integer")
    if not 0 <= number <= _UINT64_MAX:
        raise SpanProblem(f"{path}.{camel}", "out of range")
    return number


def _json_enum(value: Any, names: Mapping[str, Any], path: str) -> int | str:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpanProblem(path, "expected an enum number or name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in names:
            return value
        if value.isascii() and value.isdigit() and len(value) < 10:
            return int(value)
    raise SpanProblem(path, "expected an enum number or name")


def _json_id(value: Any, length: int, path: str, *, optional: bool = False) -> str:
    """Hex id as the OTLP JSON mapping requires; base64 (protobuf's JSON) is tolerated too."""
    if value is None or value == "":
        if optional:
            return ""
        raise SpanProblem(path, "is missing")
    if not isinstance(value, str):
        raise SpanProblem(path, f"expected {length * 2} hex characters")
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
    raise SpanProblem(path, f"expected {length * 2} hex characters")


def _json_value(value: Any, path: str, depth: int = 0) -> str:
    if not isinstance(value, dict):
        raise SpanProblem(path, "expected an AnyValue object")
    if len(value) == 1:
        ((which, inner),) = value.items()
    elif not value:
        return ""
    else:
        raise SpanProblem(path, "an AnyValue has exactly one field")
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
        return format_double(raw)
    if raw is None:
        return ""
    return json_text(raw)


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
    if depth > MAX_ANY_VALUE_DEPTH:
        raise SpanProblem(path, "value nested too deeply")
    if not isinstance(value, dict):
        raise SpanProblem(path, "expected an AnyValue object")
    if not value:
        return None
    if len(value) != 1:
        raise SpanProblem(path, "an AnyValue has exactly one field")
    ((which, inner),) = value.items()
    which = _ANY_VALUE_FIELDS.get(which, which)
    where = f"{path}.{which}"
    if which == "stringValue":
        if isinstance(inner, str):
            return inner
        raise SpanProblem(where, "expected a string")
    if which == "boolValue":
        if isinstance(inner, bool):
            return inner
        raise SpanProblem(where, "expected true or false")
    if which == "intValue":
        if isinstance(inner, int) and not isinstance(inner, bool):
            number = inner
        elif (isinstance(inner, str) and _is_int_text(inner)) or (
            isinstance(inner, float) and inner.is_integer()
        ):
            number = int(inner)
        else:
            raise SpanProblem(where, "expected a 64-bit integer")
        if not -(2**63) <= number <= INT64_MAX:
            raise SpanProblem(where, "out of range for a 64-bit integer")
        return number
    if which == "doubleValue":
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            number_f = float(inner)
            return number_f if math.isfinite(number_f) else format_double(number_f)
        if isinstance(inner, str):
            if inner in _DOUBLE_WORDS:
                return format_double(_DOUBLE_WORDS[inner])
            try:
                return float(inner)
            except ValueError:
                pass
        raise SpanProblem(where, "expected a number")
    if which == "bytesValue":
        if isinstance(inner, str):
            try:
                decoded = base64.b64decode(inner + "=" * (-len(inner) % 4), altchars=b"-_")
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is not None:
                return base64.b64encode(decoded).decode()
        raise SpanProblem(where, "expected base64 text")
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
    raise SpanProblem(path, f"unknown AnyValue field {which!r}")


def _is_int_text(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return 0 < len(digits) <= 19 and digits.isascii() and digits.isdigit()


def _json_attributes(items: Any, path: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise SpanProblem(path, "expected an array")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SpanProblem(f"{path}[{i}]", "expected a key/value object")
        key = item.get("key")
        if not isinstance(key, str):
            raise SpanProblem(f"{path}[{i}].key", "expected a string")
        value = item.get("value")
        if value is None:
            out[key] = ""
        elif type(value) is dict and len(value) == 1 and type(value.get("stringValue")) is str:
            out[key] = value["stringValue"]
        else:
            out[key] = _json_value(value, f"{path}[{i}].value")
    return out


def decode_json(raw: bytes, builder: BatchBuilder) -> None:
    """Feed every span of a JSON request to ``builder``; a malformed envelope raises 400."""
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
        except SpanProblem as problem:
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
            except SpanProblem as problem:
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
                except SpanProblem as problem:
                    builder.reject(problem.text)


def _json_span(
    span: Any,
    path: str,
    builder: BatchBuilder,
    service_name: str,
    resource_attributes: dict[str, str],
    scope_name: str,
    scope_version: str,
    redacted: int,
) -> None:
    span = _json_object(span, path)
    trace_id = _json_id(_get(span, "traceId", "trace_id"), 16, f"{path}.traceId")
    if trace_id == _ZERO_TRACE_HEX:
        raise SpanProblem(f"{path}.traceId", "must not be all zero")
    span_id = _json_id(_get(span, "spanId", "span_id"), 8, f"{path}.spanId")
    if span_id == _ZERO_SPAN_HEX:
        raise SpanProblem(f"{path}.spanId", "must not be all zero")
    parent = _json_id(
        _get(span, "parentSpanId", "parent_span_id"), 8, f"{path}.parentSpanId", optional=True
    )
    if parent == _ZERO_SPAN_HEX:
        parent = ""
    name = _json_str(span, "name", "name", path)
    if not name:
        raise SpanProblem(f"{path}.name", "is missing")
    start = _json_uint64(span, "startTimeUnixNano", "start_time_unix_nano", path)
    end = _json_uint64(span, "endTimeUnixNano", "end_time_unix_nano", path)
    check_span_times(f"{path}.", start, end)

    kind_value = _json_enum(span.get("kind"), KIND_NAMES, f"{path}.kind")
    if isinstance(kind_value, str):
        kind = KIND_NAMES[kind_value]
    else:
        kind = KINDS[kind_value] if 0 <= kind_value < 6 else SpanKind.UNSPECIFIED
    status = _json_object(span.get("status") or {}, f"{path}.status")
    code_value = _json_enum(status.get("code"), STATUS_NAMES, f"{path}.status.code")
    if isinstance(code_value, str):
        status_code = STATUS_NAMES[code_value]
    else:
        status_code = STATUSES[code_value] if 0 <= code_value < 3 else StatusCode.UNSET
    status_message = _json_str(status, "message", "message", f"{path}.status")

    events: list[EventRow] = []
    for e_index, ev in enumerate(_json_list(span, "events", "events", path)):
        e_path = f"{path}.events[{e_index}]"
        ev = _json_object(ev, e_path)
        time = _json_uint64(ev, "timeUnixNano", "time_unix_nano", e_path)
        check_event_time(f"{e_path}.", time)
        event, count = builder.event(
            time,
            _json_str(ev, "name", "name", e_path),
            _json_attributes(ev.get("attributes"), f"{e_path}.attributes"),
        )
        events.append(event)
        redacted += count
    links: list[LinkRow] = []
    for l_index, ln in enumerate(_json_list(span, "links", "links", path)):
        l_path = f"{path}.links[{l_index}]"
        ln = _json_object(ln, l_path)
        link_trace = _json_id(_get(ln, "traceId", "trace_id"), 16, f"{l_path}.traceId")
        link_span = _json_id(_get(ln, "spanId", "span_id"), 8, f"{l_path}.spanId")
        if link_trace == _ZERO_TRACE_HEX or link_span == _ZERO_SPAN_HEX:
            raise SpanProblem(l_path, "link ids must not be all zero")
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

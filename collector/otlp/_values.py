"""OTLP values as Retrace stores them: span kinds, status codes, flattened attribute values.

Shared by both decoders, so protobuf and JSON spell every value the same way: arrays and maps as
JSON text, bytes as base64, doubles like the OTel collector's ``Value.AsString``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

import orjson

from schemas.models import SpanKind, StatusCode

MAX_ANY_VALUE_DEPTH: Final = 32  # a value nested deeper rejects its span
INT64_MAX: Final = 2**63 - 1

# OTLP enum numbers -> the stored spelling, and the JSON mapping's enum names.
KINDS: Final = (
    SpanKind.UNSPECIFIED,
    SpanKind.INTERNAL,
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
)
KIND_NAMES: Final = {f"SPAN_KIND_{kind.name}": kind for kind in KINDS}
STATUSES: Final = (StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR)
STATUS_NAMES: Final = {f"STATUS_CODE_{status.name}": status for status in STATUSES}


def format_double(value: float) -> str:
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


class Flattened(str):
    """JSON text of a flattened array/map value; marks it for redaction scanning."""

    __slots__ = ()


def json_text(value: Any) -> str:
    """An array or map value flattened to JSON text (marked ``Flattened``)."""
    return Flattened(orjson.dumps(value).decode())

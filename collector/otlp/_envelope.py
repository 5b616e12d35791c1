"""The OTLP/HTTP request envelope: media type, content encoding, size limits, the response.

Everything about an export request except its spans: which decoder its ``Content-Type`` picks,
its decompression (with an output cap, so a small bomb cannot expand in memory), the body size
limit, and the ``ExportTraceServiceResponse`` body sent back in the request's encoding.
"""

from __future__ import annotations

import zlib
from typing import Final, Literal

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from schemas.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError

CONTENT_TYPE_PROTOBUF: Final = "application/x-protobuf"
CONTENT_TYPE_JSON: Final = "application/json"
_PROTOBUF_TYPES: Final = frozenset({CONTENT_TYPE_PROTOBUF, "application/protobuf"})


def media_type(content_type: str | None) -> Literal["protobuf", "json"]:
    """Which OTLP encoding a ``Content-Type`` names; ``UnsupportedMediaTypeError`` for others."""
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


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body decoded per ``Content-Encoding`` (gzip, deflate, identity), at most ``limit``."""
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


def check_body_size(body: bytes, limit: int) -> None:
    """Raise ``PayloadTooLargeError`` when the body as received is over ``limit`` bytes."""
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"request body of {len(body)} bytes exceeds the limit of {limit} bytes"
        )


def encode_export_response(rejected: int, message: str, content_type: str | None) -> bytes:
    """The ``ExportTraceServiceResponse`` body, in the request's encoding (JSON or protobuf).

    ``partial_success`` is set only when spans were rejected or there is a message, as OTLP asks.
    """
    try:
        json_response = media_type(content_type) == "json"
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

"""``decode_export_request``: one OTLP/HTTP export request, end to end, into a ``SpanBatch``."""

from __future__ import annotations

from collector._span_batch import SpanBatch
from collector.otlp._builder import BatchBuilder
from collector.otlp._envelope import check_body_size, decompress, media_type
from collector.otlp._json import decode_json
from collector.otlp._protobuf import decode_protobuf
from collector.redact import may_contain_secret


def decode_export_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    project: str,
    max_body_bytes: int,
) -> SpanBatch:
    """Decode an OTLP/HTTP ``ExportTraceServiceRequest`` body into the store's span batch.

    ``project`` (from the API key) is written on every span, whatever the resource says. Raises
    ``UnsupportedMediaTypeError`` for another content type or encoding, ``PayloadTooLargeError``
    when the body, or what it decompresses to, exceeds ``max_body_bytes``, and
    ``InvalidInputError`` when it cannot be decoded. Invalid spans do not raise: they are counted
    in ``rejected`` and described in ``message``.
    """
    media = media_type(content_type)
    check_body_size(body, max_body_bytes)
    if not isinstance(body, bytes):
        body = bytes(body)
    raw = decompress(body, content_encoding, max_body_bytes)
    builder = BatchBuilder(project, scan_text=may_contain_secret(raw, json_escapes=media == "json"))
    if media == "protobuf":
        decode_protobuf(raw, builder)
    else:
        decode_json(raw, builder)
    return builder.finish()

"""OTLP/HTTP trace ingest: an ``ExportTraceServiceRequest`` body becomes the store's ``SpanBatch``.

Pure functions, no sockets: the FastAPI app (in a decode worker) hands over the raw body and
headers and gets back a ``SpanBatch`` (or a ``RetraceError`` naming what was wrong). Both OTLP
encodings are read: ``application/x-protobuf`` and the OTLP JSON mapping (hex ids, enums as ints
or names, 64-bit integers as strings or numbers), plain, gzip or deflate.

What happens to each span on the way:

* it is validated; an invalid span (bad ids, no name, end before start, a value nested deeper
  than 32 levels...) is rejected alone and counted, the valid ones are kept (OTLP partial
  success). In protobuf too: a body the parser refuses as a whole (a value nested past its
  depth limit) is parsed again piecewise, envelope then each span, to lose only the bad span;
* attribute values are flattened to strings the way the OTel ClickHouse exporter does (arrays and
  maps as JSON, bytes as base64) and secrets in them are redacted (``collector.redact``);
* payload attributes (``schemas.attributes.PAYLOAD_KEYS``, and any value longer than
  ``PAYLOAD_INLINE_MAX_BYTES``) move out of the attributes into ``SpanBatch.payloads`` by
  sha256, with ``PayloadRefs[key] = sha256`` left on the span;
* the Retrace columns are derived (``collector.conventions``) and root/chat spans get short
  human-readable input/output previews;
* the kept spans become one Arrow table in the store's ``otel_traces`` layout, which the writer
  inserts as it is.

Modules: ``_envelope`` (media type, decompression, size limit, the response), ``_protobuf`` and
``_json`` (the decoders), ``_builder`` (per-span validation, redaction, payloads, the batch),
``_previews``, ``_values`` (how OTLP values are spelled), ``_decode`` (the entry point).
"""

from __future__ import annotations

from collector._span_batch import SpanBatch
from collector.otlp._decode import decode_export_request
from collector.otlp._envelope import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    encode_export_response,
)
from collector.otlp._previews import PREVIEW_CHARS, message_preview

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "PREVIEW_CHARS",
    "SpanBatch",
    "decode_export_request",
    "encode_export_response",
    "message_preview",
]

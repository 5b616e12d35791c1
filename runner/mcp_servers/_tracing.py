"""Span export for the bundled MCP servers.

mcp 2.x wraps every inbound request in a SERVER span whose parent is the trace context found in
the request's ``_meta`` (``mcp.server._otel``). Those spans only leave the process if a tracer
provider with an exporter is installed; this module installs one at server start-up (keeping
only spans whose parent came from a caller):
OTLP/HTTP to the collector when ``RETRACE_ENDPOINT`` is set, and/or JSON lines to a file
(``--span-file``, for tests and debugging).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from schemas.attributes import SERVICE_NAME
from schemas.settings import Settings


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (trace_id/span_id as hex)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": trace.format_trace_id(ctx.trace_id),
                        "span_id": trace.format_span_id(ctx.span_id),
                        "parent_span_id": (
                            trace.format_span_id(span.parent.span_id) if span.parent else None
                        ),
                        "kind": span.kind.name,
                        "attributes": dict(span.attributes or {}),
                        "status": span.status.status_code.name,
                    },
                    default=str,
                )
            )
        with self._lock, self._path.open("a", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in lines)
        return SpanExportResult.SUCCESS


def configure_server_tracing(
    service_name: str, settings: Settings, *, span_file: Path | None = None
) -> TracerProvider | None:
    """Install a global tracer provider exporting this server's spans; None if nowhere to send.

    The endpoint is used only when ``RETRACE_ENDPOINT`` was given explicitly (the settings'
    default URL would otherwise make every server try a collector that may not exist).
    """
    exporters: list[tuple[SpanExporter, bool]] = []
    if "endpoint" in settings.model_fields_set:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        url = settings.endpoint.rstrip("/") + "/v1/traces"
        exporters.append((OTLPSpanExporter(endpoint=url, headers=headers, timeout=5), True))
    if span_file is not None:
        exporters.append((JsonLinesSpanExporter(span_file), False))
    if not exporters:
        return None
    # Only spans that join a caller's trace are kept: requests that arrive without trace context
    # (start-up discovery, tools/list before a run) would otherwise each become a one-span trace
    # of their own and bury the agent runs in the trace list.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=ParentBased(root=ALWAYS_OFF),
    )
    for exporter, batched in exporters:
        processor = (
            BatchSpanProcessor(exporter, schedule_delay_millis=200)
            if batched
            else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider

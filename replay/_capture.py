"""Capture a replay's own spans in process and read them as a ``TraceDetail``.

The replay run exports its spans to a :class:`CaptureExporter`; the replay engine reads the
replayed trajectory from them with the same :func:`replay.trajectory_from_detail`
that reads the recording, so both sides of a comparison are parsed by one code path. When an
endpoint is given the captured spans are forwarded there (one OTLP batch), which is what makes
the replay a trace in the collector, linked to its original.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode as OtelStatusCode

from schemas import attributes as A
from schemas.models import SpanEvent, SpanLink, SpanView, TraceDetail, TraceSummary


class CaptureExporter(SpanExporter):
    """Keeps every exported span in memory (thread-safe)."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    @property
    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self._spans)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def _attrs(attributes: Any) -> dict[str, str]:
    return {str(k): _string(v) for k, v in (attributes or {}).items()}


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_view(span: ReadableSpan) -> SpanView:
    """One SDK span as the query API would return it."""
    ctx = span.context
    assert ctx is not None
    attrs = _attrs(span.attributes)
    start = span.start_time or 0
    end = span.end_time or start
    code = span.status.status_code
    status = {OtelStatusCode.ERROR: "Error", OtelStatusCode.OK: "Ok"}.get(code, "Unset")
    step_index = attrs.get(A.RETRACE_STEP_INDEX, "")
    return SpanView(
        trace_id=_hex(ctx.trace_id, 32),
        span_id=_hex(ctx.span_id, 16),
        parent_span_id=_hex(span.parent.span_id, 16) if span.parent is not None else "",
        name=span.name,
        kind=span.kind.name.capitalize(),
        service_name=str((span.resource.attributes or {}).get(A.SERVICE_NAME, "")),
        start_time=datetime.fromtimestamp(start / 1e9, tz=UTC),
        end_time=datetime.fromtimestamp(end / 1e9, tz=UTC),
        start_time_unix_nano=start,
        duration_ns=max(0, end - start),
        status=status,
        status_message=span.status.description or "",
        attributes=attrs,
        resource_attributes=_attrs(span.resource.attributes),
        events=[
            SpanEvent(timestamp_unix_nano=e.timestamp, name=e.name, attributes=_attrs(e.attributes))
            for e in span.events
        ],
        links=[
            SpanLink(
                trace_id=_hex(link.context.trace_id, 32),
                span_id=_hex(link.context.span_id, 16),
                attributes=_attrs(link.attributes),
            )
            for link in span.links
        ],
        operation=attrs.get(A.GEN_AI_OPERATION_NAME, ""),
        agent_name=attrs.get(A.GEN_AI_AGENT_NAME, ""),
        model=attrs.get(A.GEN_AI_REQUEST_MODEL, ""),
        tool_name=attrs.get(A.GEN_AI_TOOL_NAME, ""),
        step_index=int(step_index) if step_index.lstrip("-").isdigit() else -1,
    )


def detail_from_spans(spans: Sequence[ReadableSpan], trace_id: str | None = None) -> TraceDetail:
    """The ``TraceDetail`` of one trace among captured spans (the latest root's, by default)."""
    views = sorted((span_view(s) for s in spans), key=lambda v: v.start_time_unix_nano)
    if trace_id is None:
        roots = [v for v in views if not v.parent_span_id]
        trace_id = roots[-1].trace_id if roots else (views[-1].trace_id if views else "")
    views = [v for v in views if v.trace_id == trace_id]
    now = datetime.fromtimestamp(0, tz=UTC)
    start = views[0].start_time if views else now
    end = max((v.end_time for v in views), default=now)
    summary = TraceSummary(
        trace_id=trace_id,
        start_time=start,
        end_time=end,
        duration_ms=(end - start).total_seconds() * 1000,
        span_count=len(views),
        error_count=sum(v.status == "Error" for v in views),
        status="error" if any(v.status == "Error" for v in views) else "ok",
    )
    return TraceDetail(trace=summary, spans=views)

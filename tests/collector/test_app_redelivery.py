"""Spans an OTLP client delivers more than once, over a real socket: each counts once.

An exporter whose request timed out sends the same spans again in a new request. The collector
stores every delivery (each request is its own spool batch); trace summaries, span search and
stats must still count each (trace, span id) once.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.test_app_ingest import _hex_trace, make_agent_spans
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration


def _wait_stored(server: RunningCollector, count: int) -> None:
    """Until the collector has written ``count`` spans to the store (ingest is asynchronous)."""
    deadline = time.monotonic() + 30
    while server.client.metrics()["retrace_spans_stored_total"] < count:
        assert time.monotonic() < deadline, f"fewer than {count} spans stored after 30 s"
        time.sleep(0.1)


def test_redelivered_spans_count_once_in_summaries_spans_and_stats(
    collector_server: RunningCollector,
) -> None:
    spans = make_agent_spans(n_tools=2)  # root, chat (120 input tokens), two run_sql, one fails
    exporter = OTLPSpanExporter(endpoint=collector_server.url + "/v1/traces")
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    _wait_stored(collector_server, len(spans))
    # The client did not see the answer in time and sends everything again, then part of it.
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans[1:3]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    _wait_stored(collector_server, 2 * len(spans) + 2)

    client = collector_server.client
    trace_id = _hex_trace(spans[0])
    [summary] = client.list_traces().traces
    assert summary.trace_id == trace_id
    assert summary.span_count == 4
    assert (summary.llm_calls, summary.tool_calls) == (1, 2)
    assert summary.input_tokens == 120
    assert summary.error_count == 1
    assert client.get_trace(trace_id).trace == summary
    assert [t.trace_id for t in client.list_traces(sort="spans").traces] == [trace_id]

    found = client.search_spans(trace_id=trace_id).spans
    assert len(found) == 4 and len({s.span_id for s in found}) == 4

    stats = client.stats()
    assert (stats.runs, stats.errors, stats.input_tokens) == (1, 1, 120)
    tools = [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools]
    assert tools == [("run_sql", 2, 1)]

"""Span tree ordering, orphans, cycles and windows over big traces."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import attributes as A
from schemas.models import SpanView
from ui._tree import (
    MAX_RENDERED_SPANS,
    latest_run_status,
    page_count,
    page_of,
    span_tree,
    window,
)


def _span(span_id: str, parent: str, start: int, status: str = "Ok") -> SpanView:
    moment = datetime.fromtimestamp(start / 1e9, UTC)
    return SpanView(
        trace_id="t" * 32,
        span_id=span_id,
        parent_span_id=parent,
        name=f"span {span_id}",
        kind="Internal",
        service_name="svc",
        start_time=moment,
        end_time=moment,
        start_time_unix_nano=start,
        duration_ns=1_000_000,
        status=status,
    )


def test_depth_first_with_children_by_start_time() -> None:
    spans = [
        _span("c2", "root", 300),
        _span("root", "", 100),
        _span("c1", "root", 200, status="Error"),
        _span("g1", "c1", 250),
    ]
    rows = span_tree(spans)
    assert [r.span.span_id for r in rows] == ["root", "c1", "g1", "c2"]
    assert [r.depth for r in rows] == [0, 1, 2, 1]
    assert rows[1].is_error and rows[2].offset_ms == 150e-6


def test_orphans_and_self_parents_become_roots_and_nothing_is_lost() -> None:
    spans = [_span("a", "missing", 1), _span("b", "b", 2), _span("c", "a", 3)]
    rows = span_tree(spans)
    assert sorted(r.span.span_id for r in rows) == ["a", "b", "c"]


def test_ten_thousand_deep_spans_do_not_recurse() -> None:
    spans = [_span(f"s{i}", f"s{i - 1}" if i else "", i) for i in range(10_000)]
    rows = span_tree(spans)
    assert len(rows) == 10_000 and rows[-1].depth == 9_999
    assert page_count(len(rows)) == -(-10_000 // MAX_RENDERED_SPANS)
    assert len(window(rows, 0)) == MAX_RENDERED_SPANS
    assert window(rows, 10**6)[-1].span.span_id == "s9999"
    assert page_of(rows, "s9999") == page_count(len(rows)) - 1


def test_latest_root_segment_gives_the_run_status() -> None:
    first = _span("r1", "", 100)
    first.operation = A.OP_INVOKE_AGENT
    first.attributes[A.RETRACE_RUN_STATUS] = "pending_approval"
    resumed = _span("r2", "", 500)
    resumed.operation = A.OP_INVOKE_AGENT
    resumed.attributes[A.RETRACE_RUN_STATUS] = "completed"
    assert latest_run_status([resumed, first, _span("c", "r1", 200)]) == "completed"
    assert latest_run_status([_span("x", "", 1)]) == ""

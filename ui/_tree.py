"""The span tree of a trace as an ordered, indented list, and windows of it for big traces.

Pure: takes ``SpanView`` lists from the API, returns rows. A 10,000-span trace is paged in
windows of ``MAX_RENDERED_SPANS`` so neither the tree nor the timeline grows without bound.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from schemas import attributes as attr
from schemas.models import SpanView

MAX_RENDERED_SPANS = 200


# The span fields a trace page's tree reads (span_tree, TreeRow, latest_run_status, the table in
# ui._span_table): the page asks the collector for these only (GET /traces/{id}/spans?fields=);
# the selected span is read whole. A field used on a tree row must be added here.
TREE_FIELDS = (
    "span_id",
    "parent_span_id",
    "name",
    "start_time_unix_nano",
    "duration_ns",
    "status",
    "operation",
    f"attributes.{attr.RETRACE_SANDBOX_BACKEND}",
    f"attributes.{attr.RETRACE_SANDBOX_INSECURE}",
    f"attributes.{attr.RETRACE_RUN_STATUS}",
)


@dataclass(frozen=True)
class TreeRow:
    span: SpanView
    depth: int
    offset_ms: float  # start relative to the trace's first span
    duration_ms: float
    is_error: bool

    @property
    def label(self) -> str:
        return f"{'  ' * self.depth}{self.span.name}"

    @property
    def sandbox(self) -> str:
        """Where a tool step ran (``retrace.sandbox.backend``: gvisor, bwrap, process, remote),
        ``process (insecure)`` when marked so; "" for spans that are not tool steps."""
        attrs = self.span.attributes
        backend = attrs.get(attr.RETRACE_SANDBOX_BACKEND, "")
        if backend and attrs.get(attr.RETRACE_SANDBOX_INSECURE, "").lower() == "true":
            return f"{backend} (insecure)"
        return backend


def span_tree(spans: list[SpanView]) -> list[TreeRow]:
    """Spans in depth-first order (children by start time); orphans become roots."""
    if not spans:
        return []
    ids = {span.span_id for span in spans}
    children: dict[str, list[SpanView]] = defaultdict(list)
    roots: list[SpanView] = []
    for span in spans:
        parent = span.parent_span_id
        if parent and parent in ids and parent != span.span_id:
            children[parent].append(span)
        else:
            roots.append(span)
    for group in children.values():
        group.sort(key=lambda s: (s.start_time_unix_nano, s.span_id))
    roots.sort(key=lambda s: (s.start_time_unix_nano, s.span_id))
    t0 = min(span.start_time_unix_nano for span in spans)
    rows: list[TreeRow] = []
    seen: set[str] = set()
    # Iterative DFS: deep traces must not hit the recursion limit.
    stack: list[tuple[SpanView, int]] = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        rows.append(
            TreeRow(
                span=span,
                depth=depth,
                offset_ms=(span.start_time_unix_nano - t0) / 1e6,
                duration_ms=span.duration_ns / 1e6,
                is_error=span.status.lower() == "error",
            )
        )
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return rows


def window(rows: list[TreeRow], page: int, size: int = MAX_RENDERED_SPANS) -> list[TreeRow]:
    """Rows of one page (0-based) of the tree; an out-of-range page is clamped."""
    pages = page_count(len(rows), size)
    page = min(max(page, 0), pages - 1)
    return rows[page * size : (page + 1) * size]


def page_count(total: int, size: int = MAX_RENDERED_SPANS) -> int:
    return max(1, (total + size - 1) // size)


def page_of(rows: list[TreeRow], span_id: str, size: int = MAX_RENDERED_SPANS) -> int:
    """The page holding ``span_id`` (0 when absent)."""
    for index, row in enumerate(rows):
        if row.span.span_id == span_id:
            return index // size
    return 0


def latest_run_status(spans: list[SpanView]) -> str:
    """``retrace.run.status`` of the latest root ``invoke_agent`` segment ("" when none)."""
    ids = {span.span_id for span in spans}
    roots = [
        span
        for span in spans
        if span.operation == attr.OP_INVOKE_AGENT
        and (not span.parent_span_id or span.parent_span_id not in ids)
        and attr.RETRACE_RUN_STATUS in span.attributes
    ]
    if not roots:
        return ""
    latest = max(roots, key=lambda span: (span.start_time_unix_nano, span.span_id))
    return latest.attributes[attr.RETRACE_RUN_STATUS]

"""The waterfall timeline of a trace (plotly horizontal bars over the span tree's rows)."""

from __future__ import annotations

import plotly.graph_objects as go

from schemas import attributes as attr
from ui._escape import html_text
from ui._tree import TreeRow

_COLORS = {
    attr.OP_INVOKE_AGENT: "#6c5ce7",
    attr.OP_CHAT: "#0984e3",
    attr.OP_EXECUTE_TOOL: "#00b894",
}
_ERROR_COLOR = "#d63031"
_OTHER_COLOR = "#95a5a6"


def waterfall(rows: list[TreeRow], selected_span_id: str = "") -> go.Figure:
    """One bar per row, in tree order top to bottom; errors red, the selected span outlined.

    Plotly reads tags (links among them) in labels: span names are escaped as HTML.
    """
    labels = [html_text(f"{row.label} · {row.span.span_id[:6]}") for row in rows]
    colors = [
        _ERROR_COLOR if row.is_error else _COLORS.get(row.span.operation, _OTHER_COLOR)
        for row in rows
    ]
    widths = [3 if row.span.span_id == selected_span_id else 0 for row in rows]
    figure = go.Figure(
        go.Bar(
            y=labels,
            x=[max(row.duration_ms, 0.001) for row in rows],
            base=[row.offset_ms for row in rows],
            orientation="h",
            marker={"color": colors, "line": {"color": "#2d3436", "width": widths}},
            customdata=[[row.span.span_id, row.duration_ms] for row in rows],
            hovertemplate="%{y}<br>start +%{base:.1f} ms<br>%{customdata[1]:.1f} ms<extra></extra>",
        )
    )
    figure.update_layout(
        height=min(120 + 22 * len(rows), 4000),
        margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis_title="ms since trace start",
        yaxis={"autorange": "reversed", "automargin": True},
        showlegend=False,
    )
    return figure

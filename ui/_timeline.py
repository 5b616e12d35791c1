"""The waterfall timeline of a trace: a Vega-Lite spec of horizontal bars over the span tree's rows.

Vega-Lite, not plotly: a trace opened in a new tab loads the browser's chart library cold, and
Streamlit's Vega-Lite bundle is about a sixth of plotly's (0.8 MB against 4.7 MB of JavaScript),
which was most of a cold trace page's time. Vega draws labels and tooltips as text (no markup).
"""

from __future__ import annotations

from typing import Any

from schemas import attributes as attr
from ui._tree import TreeRow

_COLORS = {
    attr.OP_INVOKE_AGENT: "#6c5ce7",
    attr.OP_CHAT: "#0984e3",
    attr.OP_EXECUTE_TOOL: "#00b894",
}
_ERROR_COLOR = "#d63031"
_OTHER_COLOR = "#95a5a6"
_ROW_PX = 20


def waterfall(rows: list[TreeRow], selected_span_id: str = "") -> dict[str, Any]:
    """One bar per row, in tree order top to bottom; errors red, the selected span outlined.

    Each bar's label is the row's indented name and its span id's first 6 characters (labels
    must differ: rows sharing one would share a band).
    """
    values = [
        {
            "row": index,
            "label": f"{row.label} · {row.span.span_id[:6]}",
            "start": row.offset_ms,
            "end": row.offset_ms + max(row.duration_ms, 0.001),
            "ms": round(row.duration_ms, 3),
            "color": _ERROR_COLOR
            if row.is_error
            else _COLORS.get(row.span.operation, _OTHER_COLOR),
            "selected": row.span.span_id == selected_span_id,
        }
        for index, row in enumerate(rows)
    ]
    return {
        "data": {"values": values},
        "height": {"step": _ROW_PX},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {
                "field": "label",
                "type": "nominal",
                "sort": {"field": "row", "order": "ascending"},
                "axis": {"title": None, "labelLimit": 360},
            },
            "x": {"field": "start", "type": "quantitative", "title": "ms since trace start"},
            "x2": {"field": "end"},
            "color": {"field": "color", "type": "nominal", "scale": None, "legend": None},
            "stroke": {"condition": {"test": "datum.selected", "value": "#2d3436"}, "value": None},
            "strokeWidth": {"condition": {"test": "datum.selected", "value": 3}, "value": 0},
            "tooltip": [
                {"field": "label", "type": "nominal", "title": "span"},
                {"field": "start", "type": "quantitative", "title": "start +ms", "format": ".1f"},
                {"field": "ms", "type": "quantitative", "title": "ms", "format": ".1f"},
            ],
        },
    }

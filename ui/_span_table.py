"""The span tree and its waterfall as one HTML table: a row per span, its bar on the time axis.

A trace page drew its tree as ``st.dataframe`` (1.2 MB of grid JavaScript) and its waterfall as a
Vega-Lite chart (0.8 MB more); a trace opened in a new tab waited for both libraries. One
``st.html`` table is drawn as soon as it arrives. Each span's name is a link to
``trace?trace=<id>&span=<span>`` (opened inside the app by ``ui._inapp``; a plain link to share),
which selects it. Every value is escaped with ``html_text``.
"""

from __future__ import annotations

from schemas import attributes as attr
from ui._escape import html_text
from ui._inapp import IN_APP_CLASS
from ui._links import trace_link
from ui._tree import TreeRow

TABLE_CLASS = "retrace-spans"
COLUMNS = ("span", "ms", "sandbox", "status", "timeline")

_COLORS = {
    attr.OP_INVOKE_AGENT: "#6c5ce7",
    attr.OP_CHAT: "#0984e3",
    attr.OP_EXECUTE_TOOL: "#00b894",
}
_ERROR_COLOR = "#d63031"
_OTHER_COLOR = "#95a5a6"
_INDENT_REM = 0.9

_STYLE = f"""<style>
.{TABLE_CLASS}-wrap {{ max-height: 560px; overflow: auto; }}
table.{TABLE_CLASS} {{ border-collapse: collapse; font-size: 0.85rem; width: 100%; }}
table.{TABLE_CLASS} th, table.{TABLE_CLASS} td {{
  border-bottom: 1px solid rgba(49, 51, 63, 0.1); padding: 0.15rem 0.5rem; text-align: left;
  white-space: nowrap; }}
table.{TABLE_CLASS} td.name {{ max-width: 26rem; overflow: hidden; text-overflow: ellipsis; }}
table.{TABLE_CLASS} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.{TABLE_CLASS} td.timeline {{ width: 40%; min-width: 12rem; }}
table.{TABLE_CLASS} td.timeline div {{ height: 0.8rem; min-width: 2px; border-radius: 2px; }}
table.{TABLE_CLASS} tr.selected td {{ background: rgba(9, 132, 227, 0.12); }}
table.{TABLE_CLASS} tr.selected td.timeline div {{ outline: 2px solid #2d3436; }}
table.{TABLE_CLASS} tr.error td.status {{ color: {_ERROR_COLOR}; font-weight: 600; }}
</style>"""


def _row(row: TreeRow, trace_id: str, selected: str, t0: float, span_ms: float) -> str:
    span = row.span
    name = ("└ " if row.depth else "") + span.name
    link = (
        f'<a class="{IN_APP_CLASS}" href="{html_text(trace_link(trace_id, span.span_id))}"'
        f' target="_self">{html_text(name)}</a>'
    )
    color = _ERROR_COLOR if row.is_error else _COLORS.get(span.operation, _OTHER_COLOR)
    left = (row.offset_ms - t0) / span_ms * 100
    width = max(row.duration_ms, 0.0) / span_ms * 100
    bar = (
        f'<div style="margin-left: {left:.3f}%; width: {width:.3f}%; background: {color};"'
        f' title="+{row.offset_ms:,.1f} ms, {row.duration_ms:,.1f} ms"></div>'
    )
    classes = " ".join(
        c
        for c in ("selected" if span.span_id == selected else "", "error" if row.is_error else "")
        if c
    )
    status = "ERROR" if row.is_error else span.status
    class_attr = f' class="{classes}"' if classes else ""
    return (
        f'<tr{class_attr} data-span="{html_text(span.span_id)}">'
        f'<td class="name" style="padding-left: {0.5 + _INDENT_REM * row.depth:.1f}rem"'
        f' title="{html_text(name)}">{link}</td>'
        f'<td class="n">{row.duration_ms:,.1f}</td>'
        f"<td>{html_text(row.sandbox)}</td>"
        f'<td class="status">{html_text(status)}</td>'
        f'<td class="timeline">{bar}</td></tr>'
    )


def span_table_html(rows: list[TreeRow], trace_id: str, selected_span_id: str) -> str:
    """``rows`` (a window of the tree) as a table, ``selected_span_id``'s row marked; the time
    axis spans the rows shown, from the first start to the last end."""
    if rows:
        t0 = min(row.offset_ms for row in rows)
        end = max(row.offset_ms + max(row.duration_ms, 0.0) for row in rows)
    else:
        t0 = end = 0.0
    span_ms = max(end - t0, 1e-6)
    head = "".join(f"<th>{name}</th>" for name in COLUMNS[:-1])
    head += f"<th>timeline (+{t0:,.1f} to +{end:,.1f} ms)</th>"
    body = "".join(_row(row, trace_id, selected_span_id, t0, span_ms) for row in rows)
    return (
        f'{_STYLE}<div class="{TABLE_CLASS}-wrap"><table class="{TABLE_CLASS}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


KV_CLASS = "retrace-attributes"
_KV_STYLE = f"""<style>
table.{KV_CLASS} {{ border-collapse: collapse; font-size: 0.85rem; }}
table.{KV_CLASS} th, table.{KV_CLASS} td {{
  border-bottom: 1px solid rgba(49, 51, 63, 0.1); padding: 0.15rem 0.5rem; text-align: left;
  vertical-align: top; white-space: pre-wrap; overflow-wrap: anywhere; }}
table.{KV_CLASS} td:first-child {{ white-space: nowrap; font-family: monospace; }}
</style>"""


def key_value_table_html(pairs: list[tuple[str, str]]) -> str:
    """A two-column table (key, value) of text; every value escaped, none interpreted."""
    body = "".join(f"<tr><td>{html_text(k)}</td><td>{html_text(v)}</td></tr>" for k, v in pairs)
    return (
        f'{_KV_STYLE}<table class="{KV_CLASS}"><thead><tr><th>key</th><th>value</th></tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )

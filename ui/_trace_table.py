"""The trace list as one HTML table: every row's trace a real link, drawn by one element.

A page of 50 runs as ``st.dataframe`` plus 50 ``st.page_link`` rows made the browser load the
grid's 1.2 MB of JavaScript and draw 50 widgets before the list showed; one ``st.html`` table is
drawn as soon as it arrives. Links carry ``IN_APP_CLASS`` so ``ui._inapp`` opens them inside the
running app (as ``st.page_link`` does); they stay plain ``<a href="trace?trace=...">`` links that
open in a new tab or can be shared.

Every value is escaped with ``html_text`` (Streamlit's ``st.html`` also sanitizes); none is
markdown here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from schemas.models import TraceSummary
from ui._escape import html_text
from ui._inapp import IN_APP_CLASS
from ui._links import trace_link
from ui._pricing import PriceTable

TABLE_CLASS = "retrace-traces"

_STYLE = f"""<style>
.{TABLE_CLASS}-wrap {{ overflow-x: auto; max-width: 100%; }}
table.{TABLE_CLASS} {{ border-collapse: collapse; font-size: 0.85rem; white-space: nowrap; }}
table.{TABLE_CLASS} th, table.{TABLE_CLASS} td {{
  border-bottom: 1px solid rgba(49, 51, 63, 0.1); padding: 0.2rem 0.6rem; text-align: left;
  max-width: 22rem; overflow: hidden; text-overflow: ellipsis; }}
table.{TABLE_CLASS} th {{ font-weight: 600; }}
table.{TABLE_CLASS} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.{TABLE_CLASS} tr.error td.status {{ color: #d63031; font-weight: 600; }}
</style>"""

COLUMNS = (
    "trace",
    "run",
    "started",
    "status",
    "run status",
    "agent",
    "duration ms",
    "steps",
    "spans",
    "tokens",
    "cost $",
    "errors",
    "models",
    "tools",
    "input",
    "answer",
    "session",
    "user",
)
_NUMERIC = frozenset({"duration ms", "steps", "spans", "tokens", "cost $", "errors"})


def _link(href: str, inner_html: str) -> str:
    return f'<a class="{IN_APP_CLASS}" href="{html_text(href)}" target="_self">{inner_html}</a>'


def _cell(column: str, inner_html: str, title: str = "") -> str:
    classes = " ".join(
        c for c in ("n" if column in _NUMERIC else "", "status" if column == "status" else "") if c
    )
    attrs = (f' class="{classes}"' if classes else "") + (
        f' title="{html_text(title)}"' if title else ""
    )
    return f"<td{attrs}>{inner_html}</td>"


def _text(column: str, value: object, *, long: bool = False) -> str:
    text = "" if value is None else str(value)
    return _cell(column, html_text(text), text if long and len(text) > 40 else "")


def _row(t: TraceSummary, prices: PriceTable, replays: bool) -> str:
    replay = " · replay" if t.replay_of else ""
    label = f"<code>{html_text(t.trace_id[:12])}</code>{replay}"
    cells = [_cell("trace", _link(trace_link(t.trace_id), label))]
    if replays:
        cells.append(
            _cell(
                "replay of",
                _link(
                    trace_link(t.replay_of),
                    f"replay of <code>{html_text(t.replay_of)}</code>",
                )
                if t.replay_of
                else "",
            )
        )
    cost = prices.cost(t.models, t.input_tokens, t.output_tokens)
    cells += [
        _text("run", (t.input_preview or t.root_span_name)[:80], long=True),
        _text("started", t.start_time.strftime("%Y-%m-%d %H:%M:%S")),
        _text("status", t.status),
        _text("run status", t.run_status),
        _text("agent", t.agent_name or t.service_name),
        _text("duration ms", f"{t.duration_ms:,.1f}"),
        _text("steps", t.llm_calls + t.tool_calls),
        _text("spans", t.span_count),
        _text("tokens", f"{t.input_tokens + t.output_tokens:,}"),
        _text("cost $", "" if cost is None else f"${cost:.5f}"),
        _text("errors", t.error_count),
        _text("models", ", ".join(t.models)),
        _text("tools", ", ".join(t.tools)),
        _text("input", t.input_preview[:200], long=True),
        _text("answer", t.output_preview[:200], long=True),
        _text("session", t.session_id),
        _text("user", t.user_id),
    ]
    row_class = ' class="error"' if t.status == "error" else ""
    return f"<tr{row_class}>{''.join(cells)}</tr>"


def columns(replays: bool) -> Sequence[str]:
    """The table's column headers, left to right."""
    return (COLUMNS[0], "replay of", *COLUMNS[1:]) if replays else COLUMNS


def trace_table_html(traces: Iterable[TraceSummary], prices: PriceTable, *, replays: bool) -> str:
    """One page of runs as a table; with ``replays`` a 'replay of' column links each replay's
    original next to it."""
    head = "".join(f"<th>{html_text(name)}</th>" for name in columns(replays))
    body = "".join(_row(t, prices, replays) for t in traces)
    return (
        f'{_STYLE}<div class="{TABLE_CLASS}-wrap"><table class="{TABLE_CLASS}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )

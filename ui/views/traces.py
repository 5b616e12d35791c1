"""Traces: the filterable, sortable, paginated list of runs. Filters live in the URL."""

from __future__ import annotations

import polars as pl
import streamlit as st

from schemas.models import TracePage
from ui import _filters as f
from ui._connection import client, price_table, shown_errors
from ui._escape import md_code, md_text
from ui._links import trace_link

# An empty, 10-pixel Vega-Lite chart: the trace page draws its timeline with Vega-Lite.
_PRELOAD: dict[str, object] = {
    "data": {"values": []},
    "mark": "point",
    "height": 10,
    "config": {"view": {"stroke": None}},
}

st.title("Traces")


def _current_params() -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = dict(st.query_params.to_dict())
    if f.P_ATTR in st.query_params:
        params[f.P_ATTR] = st.query_params.get_all(f.P_ATTR)
    return params


def _apply(new: f.TraceFilters) -> None:
    st.session_state["trace_cursors"] = []
    st.query_params.from_dict(new.to_params())
    st.rerun()


filters = f.TraceFilters()
with shown_errors("use the filters in this link", stop=False):
    filters = f.filters_from_params(_current_params())

with st.form("filters", border=True):
    row1 = st.columns([1, 1, 1, 1, 1])
    time_range = row1[0].selectbox(
        "Time range", list(f.TIME_RANGES), index=list(f.TIME_RANGES).index(filters.time_range)
    )
    status = row1[1].selectbox("Status", f.STATUSES, index=f.STATUSES.index(filters.status))
    agent = row1[2].text_input("Agent", filters.agent)
    model = row1[3].text_input("Model", filters.model)
    tool = row1[4].text_input("Tool", filters.tool)
    row2 = st.columns([2, 1, 2, 1, 1, 1])
    text = row2[0].text_input("Search inputs and answers", filters.text)
    min_ms = row2[1].text_input(
        "Min duration (ms)",
        "" if filters.min_duration_ms is None else f"{filters.min_duration_ms:g}",
    )
    attrs = row2[2].text_input(
        "Attributes (key=value, comma-separated)",
        ", ".join(f"{k}={v}" for k, v in filters.attributes),
    )
    sort = row2[3].selectbox("Sort by", f.SORT_FIELDS, index=f.SORT_FIELDS.index(filters.sort))
    order = row2[4].selectbox("Order", ["desc", "asc"], index=["desc", "asc"].index(filters.order))
    sizes = list(f.PAGE_SIZES) if filters.limit in f.PAGE_SIZES else [*f.PAGE_SIZES, filters.limit]
    limit = row2[5].selectbox("Page size", sizes, index=sizes.index(filters.limit))
    row3 = st.columns([1, 1, 1, 3])
    session = row3[0].text_input("Session", filters.session)
    user = row3[1].text_input("End user", filters.user)
    feedback = row3[2].text_input("With feedback named", filters.feedback)
    submitted = st.form_submit_button("Apply filters", type="primary")

if submitted:
    params: dict[str, str | list[str]] = {
        f.P_RANGE: time_range,
        f.P_STATUS: status,
        f.P_AGENT: agent,
        f.P_MODEL: model,
        f.P_TOOL: tool,
        f.P_TEXT: text,
        f.P_MIN_MS: min_ms.strip(),
        f.P_ATTR: [part for part in attrs.split(",") if part.strip()],
        f.P_SORT: sort,
        f.P_ORDER: order,
        f.P_LIMIT: str(limit),
        f.P_SESSION: session,
        f.P_USER: user,
        f.P_FEEDBACK: feedback,
    }
    with shown_errors("apply the filters"):
        _apply(f.filters_from_params(params))


# Replays are no runs: left out unless asked for, then each is marked with its original. The
# URL says which (a shared link shows the same list): the toggle follows it, and writes it.
def _toggle_replays() -> None:
    st.session_state["trace_cursors"] = []
    st.query_params.pop(f.P_CURSOR, None)
    if st.session_state["show-replays"]:
        st.query_params[f.P_REPLAYS] = "1"
    else:
        st.query_params.pop(f.P_REPLAYS, None)


st.session_state["show-replays"] = filters.replays
st.toggle(
    "Show replays",
    key="show-replays",
    on_change=_toggle_replays,
    help="List replays too, each marked 'replay of' the run it replays (a link to it).",
)

page = TracePage(traces=[])
with shown_errors("list traces"):
    page = client().list_traces(filters.to_query())

prices = price_table()
if not page.traces:
    st.info(
        "No traces match these filters."
        if filters.to_params()
        else "No traces yet. Point an agent's OTLP exporter at the collector or run `retrace demo`."
    )
else:
    frame = pl.DataFrame(
        {
            "trace": [trace_link(t.trace_id) for t in page.traces],
            "started": [t.start_time for t in page.traces],
            "status": [t.status for t in page.traces],
            "run status": [t.run_status for t in page.traces],
            "agent": [t.agent_name or t.service_name for t in page.traces],
            "duration ms": [round(t.duration_ms, 1) for t in page.traces],
            "steps": [t.llm_calls + t.tool_calls for t in page.traces],
            "spans": [t.span_count for t in page.traces],
            "tokens": [t.input_tokens + t.output_tokens for t in page.traces],
            "cost $": [prices.cost(t.models, t.input_tokens, t.output_tokens) for t in page.traces],
            "errors": [t.error_count for t in page.traces],
            "models": [", ".join(t.models) for t in page.traces],
            "tools": [", ".join(t.tools) for t in page.traces],
            "input": [t.input_preview[:200] for t in page.traces],
            "answer": [t.output_preview[:200] for t in page.traces],
            "replay of": [trace_link(t.replay_of) if t.replay_of else None for t in page.traces],
            "session": [t.session_id for t in page.traces],
            "user": [t.user_id for t in page.traces],
        },
        strict=False,
    )
    if filters.replays:  # next to the trace: which run each replay replays
        frame = frame.select("trace", "replay of", pl.exclude("trace", "replay of"))
    st.dataframe(
        frame,
        hide_index=True,
        key="trace_table",
        column_config={
            "trace": st.column_config.LinkColumn(
                "trace", display_text=r"trace=([0-9a-f]{12})", width="small"
            ),
            "replay of": st.column_config.LinkColumn(
                "replay of", display_text=r"trace=([^&]{1,12})", width="small"
            ),
            "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            "cost $": st.column_config.NumberColumn(format="$%.5f"),
        },
    )
    # st.dataframe draws on a canvas; these real links keep every trace one click (and one
    # screen reader hop) away. st.page_link navigates inside the running app (no page reload),
    # and is still an <a href="trace?trace=..."> that can be opened in a new tab or shared.
    with st.expander(f"Open a trace ({len(page.traces)} on this page)", expanded=True):
        for t in page.traces:
            # A page link's label is markdown: cut the raw text, then escape it.
            preview = md_text((t.input_preview or t.root_span_name)[:80])
            replay = " · replay" if t.replay_of else ""
            st.page_link(
                "views/trace.py",
                label=f"{md_code(t.trace_id)} · {md_text(t.status)}{replay} · {preview}",
                query_params={"trace": t.trace_id},
            )
            if t.replay_of:
                st.page_link(
                    "views/trace.py",
                    label=f"↳ replay of {md_code(t.replay_of)}",
                    query_params={"trace": t.replay_of},
                )

cursors: list[str] = st.session_state.setdefault("trace_cursors", [])
nav = st.columns([1, 1, 6])
if nav[0].button("First page", disabled=not filters.cursor):
    st.session_state["trace_cursors"] = []
    st.query_params.pop(f.P_CURSOR, None)
    st.rerun()
if nav[1].button("Next page", disabled=page.next_cursor is None):
    cursors.append(filters.cursor)
    st.query_params[f.P_CURSOR] = page.next_cursor or ""
    st.rerun()
# Last on the page, after the list is drawn: an empty 10-pixel chart makes the browser load the
# charting library now, so a trace opened from here draws its timeline without that wait.
st.vega_lite_chart(_PRELOAD, key="preload-charts")
nav[2].caption(
    f"Page {len(cursors) + 1} · {len(page.traces)} traces"
    + (" · more available" if page.next_cursor else "")
)

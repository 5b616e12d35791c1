"""Traces: the filterable, sortable, paginated list of runs. Filters live in the URL."""

from __future__ import annotations

import streamlit as st

from schemas.models import TracePage
from ui import _filters as f
from ui._connection import client, price_table, shown_errors
from ui._inapp import install as install_in_app_links
from ui._trace_table import trace_table_html

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
    # One element for the whole page of runs (see ui._trace_table): drawn as soon as it arrives.
    st.html(trace_table_html(page.traces, prices, replays=filters.replays))
    install_in_app_links()

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
nav[2].caption(
    f"Page {len(cursors) + 1} · {len(page.traces)} traces"
    + (" · more available" if page.next_cursor else "")
)

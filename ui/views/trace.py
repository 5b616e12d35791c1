"""Trace detail: the span tree with its waterfall; the selected span's payloads below."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import streamlit as st

from schemas import attributes as A
from schemas.models import FeedbackSource, SuiteSource, parse_feedback_value
from ui import _tree
from ui._connection import client, price_table, shown_errors
from ui._escape import md_code, md_text
from ui._inapp import install as install_in_app_links
from ui._links import same_tab_link, session_link, trace_link
from ui._page import trace_id_from_url
from ui._span_panel import render_span
from ui._span_table import span_table_html

_FAILED = {"failed", "incomplete", "rejected", "guardrail"}
_WAITING = {"running", "pending_approval"}


@st.cache_resource(show_spinner=False)
def _pool() -> ThreadPoolExecutor:
    """Threads for the page's independent collector reads (the client is thread-safe)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="retrace-ui-read")


st.title("Trace")
trace_id = trace_id_from_url("No trace selected. Open one from the Traces page, or enter its id.")

# The page reads the span tree without payloads and with only the fields a tree row shows
# (GET /traces/{id}/spans?fields=..., ui._tree.TREE_FIELDS: a 2,000-span tree is under a third of
# its full JSON) and the selected span whole on demand. Selecting spans reruns this
# page; keep the tree and the spans opened for the session so a big trace is fetched once, not
# on every click. "Reload" (or another trace) fetches it again.
_CACHE_KEY = "trace-detail-cache"
_SPANS_KEY = "trace-span-cache"
_CACHE_SECONDS = 60.0
cached = st.session_state.get(_CACHE_KEY)
# The suites this page lists are read while the tree is (independent reads, one round trip).
suites_all = _pool().submit(client().list_suites)
suites_member = _pool().submit(client().list_suites, trace_id=trace_id)
if st.sidebar.button("Reload trace") or not (
    cached and cached[0] == trace_id and time.monotonic() - cached[1] < _CACHE_SECONDS
):
    with shown_errors(f"load trace {trace_id}"):
        detail = client().get_trace_tree_all(trace_id, fields=_tree.TREE_FIELDS)
    st.session_state[_CACHE_KEY] = (trace_id, time.monotonic(), detail)
    st.session_state[_SPANS_KEY] = {}
else:
    detail = cached[2]

summary = detail.trace
agent_name = summary.agent_name or summary.service_name
# A run resumed after an approval has one root segment per resume: the latest one says how the
# run stands now.
run_status = _tree.latest_run_status(detail.spans) or summary.run_status or summary.status
status_color = (
    "red"
    if summary.status == "error" or run_status in _FAILED
    else "orange"
    if run_status in _WAITING
    else "green"
)
st.markdown(
    f":{status_color}-badge[{md_text(run_status)}] {md_code(trace_id)} · {md_text(agent_name)}"
    f" · {md_text(summary.root_span_name)}"
)
cols = st.columns(6)
cols[0].metric("Duration", f"{summary.duration_ms:,.0f} ms")
cols[1].metric("Spans", f"{summary.span_count:,}")
cols[2].metric("Steps", f"{summary.llm_calls + summary.tool_calls}")
cols[3].metric("Tokens", f"{summary.input_tokens + summary.output_tokens:,}")
cost = price_table().cost(summary.models, summary.input_tokens, summary.output_tokens)
cols[4].metric("Est. cost", "—" if cost is None else f"${cost:.4f}")
cols[5].metric("Errors", summary.error_count)
if summary.replay_of:
    st.markdown(
        "This run is a replay of "
        + same_tab_link(trace_link(summary.replay_of), summary.replay_of, code=True),
        unsafe_allow_html=True,
    )
if summary.session_id or summary.user_id:
    who = f"user {md_text(summary.user_id)}" if summary.user_id else ""
    if summary.session_id:
        session = "session " + same_tab_link(
            session_link(summary.session_id), summary.session_id, code=True
        )
        st.markdown(" · ".join(p for p in (session, who) if p), unsafe_allow_html=True)
    else:
        st.markdown(who)
with st.expander(f"Feedback ({len(detail.feedback)})", expanded=bool(detail.feedback)):
    if detail.feedback:
        st.dataframe(
            pl.DataFrame(
                {
                    "name": [f.name for f in detail.feedback],
                    "value": [json.dumps(f.value, ensure_ascii=False) for f in detail.feedback],
                    "comment": [f.comment for f in detail.feedback],
                    "source": [f.source.value for f in detail.feedback],
                    "span": [f.span_id for f in detail.feedback],
                    "at": [f.created_at for f in detail.feedback],
                }
            ),
            hide_index=True,
            key="feedback-table",
        )
    with st.form("add-feedback", clear_on_submit=True):
        name = st.text_input("Name", placeholder="complaint", key="feedback-name")
        value = st.text_input("Value (true/false, a number or text)", key="feedback-value")
        comment = st.text_input("Comment", key="feedback-comment")
        if st.form_submit_button("Add feedback"):
            with shown_errors("add feedback", stop=False):
                client().add_feedback(
                    trace_id,
                    name.strip(),
                    parse_feedback_value(value),
                    comment=comment,
                    source=FeedbackSource.REVIEWER,
                )
                st.session_state.pop(_CACHE_KEY, None)  # show it: fetch the trace again
                st.rerun()
_SUITE_FLASH = "suite-added-message"
with shown_errors("list the suites", stop=False):
    all_suites = [s.name for s in suites_all.result()]
    member = [s.name for s in suites_member.result()]
    flash = st.session_state.pop(_SUITE_FLASH, None)
    if flash:
        st.success(flash)
    with st.expander(f"Suites ({len(member)})"):
        if member:
            st.markdown("In " + ", ".join(md_code(name) for name in member))
        st.caption(
            "A suite is a set of traces replayed as regression tests: "
            "`retrace ci --suite NAME --endpoint URL`."
        )
        with st.form("add-to-suite", clear_on_submit=True):
            others = [name for name in all_suites if name not in member]
            picked = st.selectbox(
                "Suite", others, index=None, placeholder="Pick a suite", key="suite-pick"
            )
            typed = st.text_input(
                "…or a new suite", placeholder="checkout-regressions", key="suite-new"
            )
            note = st.text_input("Note", key="suite-note")
            if st.form_submit_button("Add to suite"):
                name = typed.strip() or picked or ""
                if not name:
                    st.error("Pick a suite or type the name of a new one.")
                else:
                    with shown_errors(f"add this trace to suite {name}", stop=False):
                        client().add_to_suite(name, [trace_id], note=note, source=SuiteSource.UI)
                        st.session_state[_SUITE_FLASH] = f"Added to suite {name}."
                        st.rerun()
links = st.columns(2)
links[0].page_link(
    "views/replay.py",
    label="Replay this trace",
    icon=":material/replay:",
    query_params={"trace": trace_id},
)
links[1].page_link(
    "views/compare.py",
    label="Compare with…",
    icon=":material/compare_arrows:",
    query_params={"a": trace_id},
)
if summary.input_preview or summary.output_preview:
    with st.expander("Input and answer", expanded=False):
        st.text(f"Input: {summary.input_preview}")
        st.text(f"Answer: {summary.output_preview}")

rows = _tree.span_tree(detail.spans)
if not rows:
    st.info("This trace has no spans (yet).")
    st.stop()

selected_id = st.query_params.get("span", "")
ids = {row.span.span_id for row in rows}
if selected_id not in ids:
    # Open on the error that caused the failure: the first failing span below the root.
    errors = [row for row in rows if row.is_error]
    inner = [row for row in errors if row.depth > 0]
    selected_id = (inner or errors or rows)[0].span.span_id

pages = _tree.page_count(len(rows))
page = 0
if pages > 1:
    st.info(
        f"This trace has {len(rows):,} spans. To stay responsive the tree and the timeline show "
        f"{_tree.MAX_RENDERED_SPANS} spans at a time; choose a window below."
    )
    page = (
        st.number_input(
            f"Span window (1–{pages})",
            min_value=1,
            max_value=pages,
            value=_tree.page_of(rows, selected_id) + 1,
            key=f"window-{trace_id}",
        )
        - 1
    )
shown = _tree.window(rows, page)

select_key = f"span-select-{trace_id}-{page}"
if st.session_state.get(select_key) in ids and st.query_params.get(
    "span", ""
) == st.session_state.get("span-param"):
    selected_id = st.session_state[select_key]  # the user's last choice in this session
# The tree and its waterfall in one element (ui._span_table): each span's name is a link that
# selects it (the URL's span; the selectbox below follows it).
st.markdown("**Span tree**")
st.html(span_table_html(shown, trace_id, selected_id))
install_in_app_links()

labels = {
    r.span.span_id: f"{'· ' * r.depth}{r.span.name} ({r.duration_ms:,.0f} ms)"
    + (" — ERROR" if r.is_error else "")
    for r in shown
}
options = list(labels)
if selected_id not in labels:
    selected_id = options[0]
url_span = st.query_params.get("span", "")
if select_key not in st.session_state or (
    url_span != st.session_state.get("span-param") and url_span in labels
):
    # First view, or the link changed under us: the URL decides which span is open.
    st.session_state[select_key] = selected_id
choice = st.selectbox(
    "Selected span", options, format_func=lambda span_id: labels[span_id], key=select_key
)
if choice != url_span:
    st.query_params["span"] = choice
st.session_state["span-param"] = choice
span = next(r.span for r in shown if r.span.span_id == choice)
# The selected span whole (its payloads: messages, tool arguments and results; its resource),
# fetched once per session.
opened = st.session_state.setdefault(_SPANS_KEY, {})
if choice not in opened:
    with shown_errors(f"load span {choice}"):
        opened[choice] = client().get_span(trace_id, choice)
span = opened[choice]
st.divider()
with st.container(border=True):
    render_span(span)
    if span.step_index >= 0 and span.operation in (A.OP_CHAT, A.OP_EXECUTE_TOOL):
        # A step of the run: replay it from here (earlier steps served from the recording).
        st.page_link(
            "views/replay.py",
            label=f"Replay from step {span.step_index}",
            icon=":material/fast_forward:",
            query_params={"trace": trace_id, "from_step": str(span.step_index)},
            help="Serve the steps before this one from the recording and run from this step "
            "on (choose the mode and the change on the Replay page)",
        )

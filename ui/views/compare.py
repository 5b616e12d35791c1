"""Compare: any two traces side by side (``/compare?a=<id>&b=<id>``), aligned step by step, with
the first place where B departs from A highlighted — e.g. the run a user complained about
against a good run of the same task. The comparison is the collector's (``GET /api/v1/diff``),
the same analysis as a replay's divergence report.
"""

from __future__ import annotations

import streamlit as st

from schemas.models import TraceQuery, TraceSummary, Trajectory
from ui._connection import client, shown_errors
from ui._escape import md_text
from ui._links import same_tab_link, trace_link
from ui._report_view import COMPARE, render_report

st.title("Compare traces")
a = st.query_params.get("a", "").strip().lower()
b = st.query_params.get("b", "").strip().lower()


def _label(summary: TraceSummary) -> str:
    when = summary.start_time.strftime("%Y-%m-%d %H:%M:%S")
    task = " ".join(summary.input_preview.split())[:70]
    return f"{summary.trace_id} · {when} · {summary.run_status or summary.status} · {task}"


if not a or not b:
    st.info(
        "Pick two traces: A (say the run a user complained about) and B (a good run of the "
        "same task). The page shows where B first departs from A."
    )
    candidates: list[TraceSummary] = []
    if a:
        with shown_errors(f"load trace {a}"):
            chosen = client().get_trace(a).trace
        st.markdown(
            f"A: {same_tab_link(trace_link(a), a, code=True)} · "
            f"{md_text(chosen.agent_name or chosen.service_name)}",
            unsafe_allow_html=True,
        )
        with shown_errors("list traces to compare with", stop=False):
            query = TraceQuery(agent=chosen.agent_name or None, include_replays=True, limit=50)
            candidates = [t for t in client().list_traces(query).traces if t.trace_id != a]
    with st.form("pick-traces"):
        entered_a = st.text_input("Trace A", value=a, key="compare-a")
        picked = (
            st.selectbox(
                "Trace B (runs of the same agent, newest first)",
                [None, *candidates],
                format_func=lambda t: "—" if t is None else _label(t),
                key="compare-pick-b",
            )
            if candidates
            else None
        )
        entered_b = st.text_input("or trace B's id", value=b, key="compare-b")
        if st.form_submit_button("Compare", type="primary"):
            new_b = entered_b.strip() or (picked.trace_id if picked is not None else "")
            st.query_params["a"] = entered_a.strip()
            st.query_params["b"] = new_b
            st.rerun()
    st.stop()

with shown_errors(f"compare trace {a} with trace {b}"):
    result = client().diff_traces(a, b)
st.markdown(
    f"A {same_tab_link(trace_link(a), a, code=True)} vs "
    f"B {same_tab_link(trace_link(b), b, code=True)}",
    unsafe_allow_html=True,
)
first_run = Trajectory(trace_id=a)
second_run = Trajectory(trace_id=b)
with shown_errors(f"load the trajectory of {a}"):
    first_run = client().get_trajectory(a)
with shown_errors(f"load the trajectory of {b}"):
    second_run = client().get_trajectory(b)
if first_run.input != second_run.input:
    st.caption(f"A's task: {md_text(first_run.input)} · B's task: {md_text(second_run.input)}")
render_report(result.report, first_run, second_run, COMPARE)

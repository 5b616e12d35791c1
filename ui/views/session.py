"""A session (conversation): its runs oldest first, read as the conversation across its traces.

``/session?session=<id>``. Each run shows what the user asked, what the agent answered, whether
it failed and its feedback, with a link to the trace. Replays are left out (the API's rule).
"""

from __future__ import annotations

import streamlit as st

from ui._connection import client, shown_errors
from ui._escape import md_code, md_text

st.title("Session")
session_id = st.query_params.get("session", "").strip()
if not session_id:
    st.info("No session selected. Open one from a trace's page, or enter its id.")
    entered = st.text_input("Session id")
    if entered:
        st.query_params["session"] = entered.strip()
        st.rerun()
    st.stop()

with shown_errors(f"load session {session_id}"):
    detail = client().get_session(session_id)
summary = detail.session
st.markdown(f"{md_code(summary.session_id)} · user {md_text(summary.user_id or '—')}")
cols = st.columns(4)
cols[0].metric("Runs", f"{summary.trace_count:,}")
cols[1].metric("Failed runs", f"{summary.error_count:,}")
cols[2].metric("Feedback", f"{summary.feedback_count:,}")
cols[3].metric("Span of time", f"{(summary.last_time - summary.first_time).total_seconds():,.0f} s")

for t in detail.traces:
    st.divider()
    failed = t.status == "error"
    st.page_link(
        "views/trace.py",
        label=f"{md_text(t.start_time.strftime('%Y-%m-%d %H:%M:%S'))} · {md_code(t.trace_id)}"
        + (" · :red-badge[failed]" if failed else ""),
        query_params={"trace": t.trace_id},
    )
    with st.chat_message("user"):
        st.text(t.input_preview or "(no input recorded)")
    with st.chat_message("assistant"):
        st.text(t.output_preview or "(no answer recorded)")

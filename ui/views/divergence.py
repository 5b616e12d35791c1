"""Divergence: recorded and replayed trajectories side by side, aligned, first divergence first."""

from __future__ import annotations

import streamlit as st

from schemas.models import DivergenceReport, Trajectory
from ui._connection import client, shown_errors
from ui._escape import md_code, md_text
from ui._links import same_tab_link, trace_link
from ui._report_view import REPLAY, render_report

st.title("Divergence")
trace_id = st.query_params.get("trace", "").strip().lower()
replay_id = st.query_params.get("replay", "").strip()

if not trace_id and not replay_id:
    st.info("Open a replay from a trace's Replay page to compare it with the recording.")
    st.stop()

if not replay_id:
    with shown_errors(f"list the replays of {trace_id}"):
        replays = client().list_replays(trace_id)
    if not replays:
        st.info(f"Trace {md_text(trace_id)} has not been replayed yet. Launch a replay first.")
        st.page_link(
            "views/replay.py",
            label="Replay it",
            icon=":material/replay:",
            query_params={"trace": trace_id},
        )
        st.stop()
    replay_id = st.selectbox(
        "Replay", [r.replay_id for r in replays], format_func=lambda rid: rid, key="pick-replay"
    )

with shown_errors(f"load replay {replay_id}"):
    record = client().get_replay(replay_id)
trace_id = record.original_trace_id

st.markdown(
    f"Recording {same_tab_link(trace_link(trace_id), trace_id, code=True)} vs replay "
    f"{md_code(record.replay_id)} ({record.mode.value})"
    + (
        f" → {same_tab_link(trace_link(record.replay_trace_id), record.replay_trace_id, code=True)}"
        if record.replay_trace_id
        else ""
    ),
    unsafe_allow_html=True,
)
if record.status == "running":
    st.info("This replay is still running; the report appears when it finishes.")
    if st.button("Refresh"):
        st.rerun()
    st.stop()
if record.status == "failed" and record.report is None:
    error = md_text(record.error or "no error message")
    st.error(f"This replay failed before producing a report: {error}")
    st.stop()
if record.report is None:
    st.info("This replay has no divergence report.")
    st.stop()
report: DivergenceReport = record.report

recorded = Trajectory(trace_id=trace_id)
replayed = Trajectory(trace_id=record.replay_trace_id or "")
with shown_errors(f"load the trajectory of {trace_id}"):
    recorded = client().get_trajectory(trace_id)
if record.replay_trace_id:
    with shown_errors(f"load the trajectory of replay {record.replay_trace_id}", stop=False):
        replayed = client().get_trajectory(record.replay_trace_id)

render_report(report, recorded, replayed, REPLAY)

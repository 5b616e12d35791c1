"""Divergence: recorded and replayed trajectories side by side, aligned, first divergence first."""

from __future__ import annotations

import polars as pl
import streamlit as st

from schemas.models import DivergenceReport, Step, Trajectory
from ui._connection import client, shown_errors
from ui._divergence import (
    MatchRun,
    PairRow,
    alignment_rows,
    short_json,
    step_by_index,
    step_essentials,
    step_title,
)
from ui._escape import md_code, md_text
from ui._links import same_tab_link, trace_link
from ui._span_panel import json_value, long_text

_DIFF_DETAILS = 5  # diff entries also shown in full, side by side

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
metrics = report.metrics

cols = st.columns(6)
cols[0].metric("Verdict", "diverged" if report.diverged else "identical")
cols[1].metric("Steps recorded", metrics.steps_recorded)
extra_steps = metrics.steps_replayed - metrics.steps_recorded
cols[2].metric("Steps replayed", metrics.steps_replayed, delta=extra_steps or None)
cols[3].metric("Steps matched", metrics.steps_matched)
cols[4].metric("Tokens Δ", f"{metrics.input_tokens_delta + metrics.output_tokens_delta:+,}")
cols[5].metric("Latency Δ", f"{metrics.latency_delta_ms:+,.0f} ms")
if metrics.final_answer_changed:
    st.warning("The final answer changed.")
    answer_cols = st.columns(2)
    answer_cols[0].markdown("**Recorded answer**")
    answer_cols[0].text(metrics.recorded_answer)
    answer_cols[1].markdown("**Replayed answer**")
    answer_cols[1].text(metrics.replayed_answer)

recorded = Trajectory(trace_id=trace_id)
replayed = Trajectory(trace_id=record.replay_trace_id or "")
with shown_errors(f"load the trajectory of {trace_id}"):
    recorded = client().get_trajectory(trace_id)
if record.replay_trace_id:
    with shown_errors(f"load the trajectory of replay {record.replay_trace_id}", stop=False):
        replayed = client().get_trajectory(record.replay_trace_id)

first = report.first_divergence
if first is None:
    st.success("No divergence: the replay took the same steps with the same inputs and outputs.")
else:
    with st.container(border=True):
        st.error(
            f"First divergence · {first.kind.value} · recorded step "
            f"{first.recorded_index if first.recorded_index is not None else '—'} vs replayed step "
            f"{first.replayed_index if first.replayed_index is not None else '—'}: "
            f"{md_text(first.summary)}"
        )
        if first.diff:
            st.markdown("**Diff**")
            st.dataframe(
                pl.DataFrame(
                    {
                        "path": [d.path for d in first.diff],
                        "op": [d.op for d in first.diff],
                        "recorded": [short_json(d.recorded) for d in first.diff],
                        "replayed": [short_json(d.replayed) for d in first.diff],
                    }
                ),
                hide_index=True,
            )
            for index, entry in enumerate(first.diff[:_DIFF_DETAILS]):
                sides = st.columns(2)
                for column, label, value in (
                    (sides[0], "recorded", entry.recorded),
                    (sides[1], "replayed", entry.replayed),
                ):
                    with column:
                        st.caption(f"{md_text(entry.path)} · {label}")
                        if isinstance(value, str):
                            long_text(value, f"diff-{index}-{label}", language="text")
                        else:
                            json_value(value, f"diff-{index}-{label}", expanded=True)
        before = step_by_index(recorded.steps, first.recorded_index)
        after = step_by_index(replayed.steps, first.replayed_index)
        sides = st.columns(2)
        for column, label, step in ((sides[0], "Recorded", before), (sides[1], "Replayed", after)):
            with column:
                st.markdown(f"**{label}** · {md_text(step_title(step))}")
                if step is not None:
                    json_value(step_essentials(step), f"first-{label}", expanded=True)


def _side(step: Step | None, key: str) -> None:
    st.markdown(md_text(step_title(step)))
    if step is not None:
        with st.expander("details"):
            json_value(step_essentials(step), key)


_STATUS_ICONS = {
    "diverged": ":material/error:",
    "extra": ":material/add_circle:",
    "missing": ":material/remove_circle:",
}
st.subheader("Aligned steps")
head = st.columns(2)
head[0].markdown("**Recorded**")
head[1].markdown("**Replayed**")
for row_index, row in enumerate(alignment_rows(report)):
    if isinstance(row, MatchRun):
        lo, hi = row.pairs[0].recorded_index, row.pairs[-1].recorded_index
        with st.expander(
            f"{len(row.pairs)} matching steps (recorded #{lo}–#{hi})",
            icon=":material/check_circle:",
        ):
            for pair in row.pairs:
                recorded_step = step_by_index(recorded.steps, pair.recorded_index)
                replayed_step = step_by_index(replayed.steps, pair.replayed_index)
                st.markdown(
                    f"- {md_text(step_title(recorded_step))} ≡ {md_text(step_title(replayed_step))}"
                )
        continue
    assert isinstance(row, PairRow)
    icon = _STATUS_ICONS.get(row.pair.status, "")
    with st.container(border=row.is_first_divergence):
        if row.is_first_divergence:
            st.markdown(f"{icon} **{row.pair.status} — first divergence**")
        else:
            st.markdown(f"{icon} {row.pair.status}")
        sides = st.columns(2)
        with sides[0]:
            _side(step_by_index(recorded.steps, row.pair.recorded_index), f"rec-{row_index}")
        with sides[1]:
            _side(step_by_index(replayed.steps, row.pair.replayed_index), f"rep-{row_index}")

"""Replay: launch a replay of a trace in any mode, follow its progress, list earlier replays."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from schemas.models import ReplayMode, ReplayRecord
from ui._connection import client, shown_errors
from ui._escape import md_code, md_text
from ui._links import divergence_link, same_tab_link, trace_link
from ui._page import trace_id_from_url

st.title("Replay")
trace_id = trace_id_from_url(
    "Choose a trace to replay: open it from the Traces page, or enter its id."
)

with shown_errors(f"load trace {trace_id}"):
    summary = client().get_trace(trace_id).trace
st.markdown(
    f"Trace {same_tab_link(trace_link(trace_id), trace_id, code=True)}"
    f" · {md_text(summary.agent_name or summary.service_name)}"
    f" · {summary.llm_calls} LLM calls · {summary.tool_calls} tool calls",
    unsafe_allow_html=True,
)

_MODE_HELP = {
    ReplayMode.RECORDED: "model answers and tool results from the recording (tests agent code)",
    ReplayMode.LIVE_TOOLS: "model answers from the recording, tools re-run in the sandbox",
    ReplayMode.LIVE_MODEL: "a model runs live (choose it below), recorded tool results reused",
}


def _from_step_param() -> int | None:
    """``from_step`` of the link ("Replay from step K" on a step of the Trace page)."""
    raw = st.query_params.get("from_step", "")
    return int(raw) if raw.isdigit() else None


with st.form("launch"):
    mode = (
        st.radio(
            "Mode",
            list(ReplayMode),
            format_func=lambda m: f"{m.value} — {_MODE_HELP[m]}",
            key="replay-mode",
        )
        or ReplayMode.RECORDED
    )
    model = st.text_input(
        "Model for live-model (provider:model; empty keeps the recorded agent's model)",
        placeholder="openai:gpt-4o-mini",
        help="Recorded models: " + md_text(", ".join(summary.models) or "none"),
    )
    script = st.text_input("Offline model script for live-model (optional)", "")
    prompt = st.text_area(
        "System prompt for the replay (optional; empty keeps the recorded prompt)",
        "",
        height=100,
    )
    from_step = st.number_input(
        "Replay from step (optional; empty replays every step)",
        min_value=0,
        value=_from_step_param(),
        step=1,
        key="replay-from-step",
        help="Steps before it are served from the recording (model and tools); from it on the "
        "mode applies, with the change above. The report compares from this step on.",
    )
    launch = st.form_submit_button("Launch replay", type="primary")

if launch:
    with shown_errors(f"launch a {mode.value} replay", stop=False):
        record = client().start_replay(
            trace_id,
            mode=mode,
            model=(model.strip() or None) if mode == ReplayMode.LIVE_MODEL else None,
            script=script.strip() or None,
            prompt=prompt.strip() or None,
            from_step=None if from_step is None else int(from_step),
        )
        st.query_params["replay"] = record.replay_id
        st.rerun()


def _show_record(record: ReplayRecord) -> None:
    how = record.mode.value
    if record.from_step is not None:
        how += f", from step {record.from_step}"
    if record.status == "running":
        st.info(f"Replay {md_code(record.replay_id)} ({how}) is running…")
    elif record.status == "failed":
        error = md_text(record.error or "no error message")
        st.error(f"Replay {md_code(record.replay_id)} failed: {error}")
    else:
        verdict = (
            f"diverged at step {record.first_divergence_step} "
            f"({md_text(record.first_divergence_kind)})"
            if record.diverged
            else "matched the recording"
        )
        (st.warning if record.diverged else st.success)(
            f"Replay {md_code(record.replay_id)} ({how}) completed: {verdict}."
        )
        st.page_link(
            "views/divergence.py",
            label="Open the divergence report",
            icon=":material/difference:",
            query_params={"trace": record.original_trace_id, "replay": record.replay_id},
        )


replay_id = st.query_params.get("replay", "")
if replay_id:

    @st.fragment(run_every=timedelta(seconds=1.5))
    def _progress() -> None:
        with shown_errors(f"load replay {replay_id}", stop=False):
            record = client().get_replay(replay_id)
            _show_record(record)
            if record.status != "running" and st.session_state.get("replay-done") != replay_id:
                # Finished: one full rerun refreshes the list below, then polling stops.
                st.session_state["replay-done"] = replay_id
                st.rerun()

    if st.session_state.get("replay-done") == replay_id:
        with shown_errors(f"load replay {replay_id}", stop=False):
            _show_record(client().get_replay(replay_id))
    else:
        _progress()

st.subheader("Earlier replays")
with shown_errors(f"list the replays of {trace_id}"):
    replays = client().list_replays(trace_id)
if not replays:
    st.caption("No replays of this trace yet.")
else:
    st.dataframe(
        pl.DataFrame(
            {
                "replay": [divergence_link(trace_id, r.replay_id) for r in replays],
                "mode": [r.mode.value for r in replays],
                "from step": [r.from_step for r in replays],
                "status": [r.status for r in replays],
                "diverged": [r.diverged for r in replays],
                "first divergence": [
                    f"step {r.first_divergence_step} · {r.first_divergence_kind}"
                    if r.diverged
                    else ""
                    for r in replays
                ],
                "created": [r.created_at for r in replays],
                "replay trace": [r.replay_trace_id for r in replays],
            }
        ),
        hide_index=True,
        column_config={
            "replay": st.column_config.LinkColumn(display_text=r"replay=([^&]+)"),
        },
    )
    st.markdown(
        "\n".join(
            f"- {same_tab_link(divergence_link(trace_id, r.replay_id), r.replay_id)}"
            f" · {r.mode.value} · {md_text(r.status)}" + (" · diverged" if r.diverged else "")
            for r in replays
        ),
        unsafe_allow_html=True,
    )

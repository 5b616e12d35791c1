"""A divergence report drawn in the page: verdict and metrics, the first divergence with its
diff, then both runs' steps aligned side by side. The divergence page (a recording and its
replay) and the compare page (any two traces, A and B) draw their reports with it.

Every value from a run goes through ``ui._escape`` or an element that never interprets it
(``st.text``, ``st.dataframe``, ``st.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import streamlit as st

from schemas.models import DivergenceReport, Step, Trajectory
from ui._divergence import (
    MatchRun,
    PairRow,
    alignment_rows,
    diff_cells,
    step_by_index,
    step_essentials,
    step_title,
)
from ui._escape import md_code, md_text
from ui._span_panel import json_value, long_text

_DIFF_DETAILS = 5  # diff entries also shown in full, side by side
_STATUS_ICONS = {
    "diverged": ":material/error:",
    "extra": ":material/add_circle:",
    "missing": ":material/remove_circle:",
}


@dataclass(frozen=True)
class Sides:
    """What the two runs are called on the page."""

    first: str  # "Recorded" | "A"
    second: str  # "Replayed" | "B"
    first_column: str  # in the diff table: "recorded" | "A"
    second_column: str
    first_steps: str  # the metrics naming each run's step count
    second_steps: str
    same: str  # what "no divergence" means here


REPLAY = Sides(
    "Recorded",
    "Replayed",
    "recorded",
    "replayed",
    "Steps recorded",
    "Steps replayed",
    "the replay took the same steps with the same inputs and outputs.",
)
COMPARE = Sides(
    "A",
    "B",
    "A",
    "B",
    "Steps in A",
    "Steps in B",
    "B took the same steps as A with the same inputs and outputs.",
)


def render_report(
    report: DivergenceReport, first: Trajectory, second: Trajectory, sides: Sides
) -> None:
    """The whole report: metrics, first divergence, aligned steps."""
    _metrics(report, sides)
    _first_divergence(report, first, second, sides)
    _aligned_steps(report, first, second, sides)


def _metrics(report: DivergenceReport, sides: Sides) -> None:
    metrics = report.metrics
    cols = st.columns(6)
    cols[0].metric("Verdict", "diverged" if report.diverged else "identical")
    cols[1].metric(sides.first_steps, metrics.steps_recorded)
    extra_steps = metrics.steps_replayed - metrics.steps_recorded
    cols[2].metric(sides.second_steps, metrics.steps_replayed, delta=extra_steps or None)
    cols[3].metric("Steps matched", metrics.steps_matched)
    cols[4].metric("Tokens Δ", f"{metrics.input_tokens_delta + metrics.output_tokens_delta:+,}")
    cols[5].metric("Latency Δ", f"{metrics.latency_delta_ms:+,.0f} ms")
    if metrics.final_answer_changed:
        st.warning("The final answer changed.")
        answer_cols = st.columns(2)
        answer_cols[0].markdown(f"**{sides.first} answer**")
        answer_cols[0].text(metrics.recorded_answer)
        answer_cols[1].markdown(f"**{sides.second} answer**")
        answer_cols[1].text(metrics.replayed_answer)


def _first_divergence(
    report: DivergenceReport, first_run: Trajectory, second_run: Trajectory, sides: Sides
) -> None:
    first = report.first_divergence
    if first is None:
        st.success(f"No divergence: {sides.same}")
        return
    with st.container(border=True, key="first-divergence"):
        st.error(
            f"First divergence · {first.kind.value} · {sides.first} step "
            f"{first.recorded_index if first.recorded_index is not None else '—'} vs "
            f"{sides.second} step "
            f"{first.replayed_index if first.replayed_index is not None else '—'}: "
            f"{md_text(first.summary)}"
        )
        if first.diff:
            st.markdown("**Diff** (each value around where the two differ)")
            cells = [diff_cells(d) for d in first.diff]
            st.dataframe(
                pl.DataFrame(
                    {
                        "path": [d.path for d in first.diff],
                        "op": [d.op for d in first.diff],
                        "change": [c[2] for c in cells],
                        sides.first_column: [c[0] for c in cells],
                        sides.second_column: [c[1] for c in cells],
                    }
                ),
                hide_index=True,
                key="first-divergence-diff",
            )
            for index, entry in enumerate(first.diff[:_DIFF_DETAILS]):
                note = cells[index][2]
                if note:
                    st.markdown(f"{md_code(entry.path)}: {md_text(note)}")
                columns = st.columns(2)
                for column, label, value in (
                    (columns[0], sides.first_column, entry.recorded),
                    (columns[1], sides.second_column, entry.replayed),
                ):
                    with column:
                        st.caption(f"{md_text(entry.path)} · {md_text(label)}")
                        if isinstance(value, str):
                            long_text(value, f"diff-{index}-{label}", language="text")
                        else:
                            json_value(value, f"diff-{index}-{label}", expanded=True)
        before = step_by_index(first_run.steps, first.recorded_index)
        after = step_by_index(second_run.steps, first.replayed_index)
        columns = st.columns(2)
        for column, label, step in (
            (columns[0], sides.first, before),
            (columns[1], sides.second, after),
        ):
            with column:
                st.markdown(f"**{label}** · {md_text(step_title(step))}")
                if step is not None:
                    json_value(step_essentials(step), f"first-{label}", expanded=True)


def _side(step: Step | None, key: str) -> None:
    st.markdown(md_text(step_title(step)))
    if step is not None:
        with st.expander("details"):
            json_value(step_essentials(step), key)


def _aligned_steps(
    report: DivergenceReport, first_run: Trajectory, second_run: Trajectory, sides: Sides
) -> None:
    st.subheader("Aligned steps")
    head = st.columns(2)
    head[0].markdown(f"**{sides.first}**")
    head[1].markdown(f"**{sides.second}**")
    for row_index, row in enumerate(alignment_rows(report)):
        if isinstance(row, MatchRun):
            lo, hi = row.pairs[0].recorded_index, row.pairs[-1].recorded_index
            with st.expander(
                f"{len(row.pairs)} matching steps ({sides.first_column} #{lo}–#{hi})",
                icon=":material/check_circle:",
            ):
                for pair in row.pairs:
                    left = step_by_index(first_run.steps, pair.recorded_index)
                    right = step_by_index(second_run.steps, pair.replayed_index)
                    st.markdown(f"- {md_text(step_title(left))} ≡ {md_text(step_title(right))}")
            continue
        assert isinstance(row, PairRow)
        icon = _STATUS_ICONS.get(row.pair.status, "")
        key = "first-divergence-row" if row.is_first_divergence else f"aligned-{row_index}"
        with st.container(border=row.is_first_divergence, key=key):
            if row.is_first_divergence:
                st.markdown(f"{icon} **{row.pair.status} — first divergence**")
            else:
                st.markdown(f"{icon} {row.pair.status}")
            columns = st.columns(2)
            with columns[0]:
                _side(step_by_index(first_run.steps, row.pair.recorded_index), f"a-{row_index}")
            with columns[1]:
                _side(step_by_index(second_run.steps, row.pair.replayed_index), f"b-{row_index}")

"""Alignment rows: matches collapsed, the first divergence marked."""

from __future__ import annotations

from schemas.models import (
    AlignedPair,
    Divergence,
    DivergenceKind,
    DivergenceMetrics,
    DivergenceReport,
    ReplayMode,
    Step,
)
from ui._divergence import (
    MatchRun,
    PairRow,
    alignment_rows,
    step_by_index,
    step_essentials,
    step_title,
)


def _report(first: Divergence | None) -> DivergenceReport:
    return DivergenceReport(
        original_trace_id="a",
        mode=ReplayMode.RECORDED,
        diverged=first is not None,
        first_divergence=first,
        alignment=[
            AlignedPair(recorded_index=0, replayed_index=0, status="match"),
            AlignedPair(recorded_index=1, replayed_index=1, status="match"),
            AlignedPair(recorded_index=2, replayed_index=2, status="diverged"),
            AlignedPair(recorded_index=3, replayed_index=None, status="missing"),
            AlignedPair(recorded_index=4, replayed_index=3, status="match"),
        ],
        metrics=DivergenceMetrics(steps_recorded=5, steps_replayed=4, steps_matched=3),
    )


def test_matches_collapse_and_first_divergence_is_marked() -> None:
    first = Divergence(
        kind=DivergenceKind.OTHER_ARGUMENTS, recorded_index=2, replayed_index=2, summary="args"
    )
    rows = alignment_rows(_report(first))
    assert [type(r).__name__ for r in rows] == ["MatchRun", "PairRow", "PairRow", "MatchRun"]
    assert isinstance(rows[0], MatchRun) and len(rows[0].pairs) == 2
    assert isinstance(rows[1], PairRow) and rows[1].is_first_divergence
    assert isinstance(rows[2], PairRow) and not rows[2].is_first_divergence


def test_first_divergence_outside_alignment_marks_first_difference() -> None:
    first = Divergence(
        kind=DivergenceKind.ERROR_STATUS, recorded_index=None, replayed_index=None, summary="x"
    )
    rows = alignment_rows(_report(first))
    assert isinstance(rows[1], PairRow) and rows[1].is_first_divergence


def test_step_lookup_and_titles() -> None:
    steps = [Step(index=0, kind="llm", model="gpt"), Step(index=1, kind="tool", tool_name="sql")]
    assert step_title(step_by_index(steps, 1)) == "#1 tool sql"
    assert step_title(step_by_index(steps, None)) == "—"


def test_llm_step_essentials_read_like_a_person_would() -> None:
    step = Step(
        index=0,
        kind="llm",
        model="m",
        output_message={"type": "ai", "data": {"content": "Let me query.", "tool_calls": []}},
        tool_calls=[{"name": "query", "args": {"sql": "select 1"}, "id": "c"}],
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "Revenue?"}]}],
    )
    essentials = step_essentials(step)
    assert essentials["answer"] == "Let me query."
    assert essentials["tool_calls"] == [{"name": "query", "arguments": {"sql": "select 1"}}]
    assert essentials["last_input"] == [{"role": "user", "text": "Revenue?"}]
    tool = Step(index=1, kind="tool", tool_name="query", arguments={"sql": "x"}, result="1")
    assert step_essentials(tool)["result"] == "1"

"""Rows of the divergence page: the alignment of two trajectories, with matching runs collapsed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from replay import change_excerpts, change_note
from schemas.models import AlignedPair, DiffEntry, DivergenceReport, Step
from ui._payloads import parse_messages


@dataclass(frozen=True)
class MatchRun:
    """Consecutive matching steps shown as one collapsed row."""

    pairs: list[AlignedPair]


@dataclass(frozen=True)
class PairRow:
    pair: AlignedPair
    is_first_divergence: bool


AlignmentRow = MatchRun | PairRow


def alignment_rows(report: DivergenceReport) -> list[AlignmentRow]:
    """The alignment with each run of matches folded into one ``MatchRun``."""
    first = report.first_divergence
    rows: list[AlignmentRow] = []
    run: list[AlignedPair] = []
    for pair in report.alignment:
        if pair.status == "match":
            run.append(pair)
            continue
        if run:
            rows.append(MatchRun(run))
            run = []
        is_first = first is not None and (
            (pair.recorded_index, pair.replayed_index)
            == (first.recorded_index, first.replayed_index)
        )
        rows.append(PairRow(pair, is_first))
    if run:
        rows.append(MatchRun(run))
    marked = any(isinstance(r, PairRow) and r.is_first_divergence for r in rows)
    if first is not None and not marked:
        # The report's first divergence is not in the alignment (e.g. a status-only divergence):
        # mark the first non-matching row instead so something is highlighted.
        for index, row in enumerate(rows):
            if isinstance(row, PairRow):
                rows[index] = PairRow(row.pair, True)
                break
    return rows


def step_by_index(steps: list[Step], index: int | None) -> Step | None:
    if index is None:
        return None
    for step in steps:
        if step.index == index:
            return step
    return steps[index] if 0 <= index < len(steps) else None


def step_title(step: Step | None) -> str:
    """One line naming a step: ``#3 tool run_python`` / ``#2 llm gpt-4o``.

    Plain text holding recorded names: escape it (``ui._escape.md_text``) to put it in markdown.
    """
    if step is None:
        return "—"
    what = step.tool_name if step.kind == "tool" else (step.model or step.name)
    error = " (error)" if step.error else ""
    return f"#{step.index} {step.kind} {what}{error}"


def step_essentials(step: Step) -> dict[str, Any]:
    """What a person compares between two versions of a step."""
    if step.kind == "tool":
        return {
            "tool": step.tool_name,
            "arguments": step.arguments,
            "result": step.result,
            "error": step.error,
        }
    turns = parse_messages(json.dumps([step.output_message])) if step.output_message else None
    text = "\n".join(
        part.text for turn in turns or [] for part in turn.parts if part.kind == "text"
    )
    last_input = (
        parse_messages(json.dumps(step.input_messages[-1:])) if step.input_messages else None
    )
    return {
        "model": step.model,
        "answer": text,
        "tool_calls": [
            {"name": call.get("name", ""), "arguments": call.get("args", call.get("arguments"))}
            for call in step.tool_calls
        ],
        "last_input": [
            {"role": turn.role, "text": part.text or part.data}
            for turn in last_input or []
            for part in turn.parts
        ],
        "error": step.error,
    }


def diff_cells(entry: DiffEntry, width: int = 120) -> tuple[str, str, str]:
    """A diff entry's two values, each as a window around where they differ, and a note on what
    changed (``inserted " LIMIT 3"``): a long value's change is visible in a one-line cell."""
    before, after = change_excerpts(entry.recorded, entry.replayed, width=width)
    return str(before), str(after), change_note(entry.recorded, entry.replayed)

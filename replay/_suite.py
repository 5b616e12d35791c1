"""Suite results for CI: JUnit XML and a markdown summary of many replay outcomes. Pure.

Each trajectory is named after its run's task (its input, shortened to a slug) and its trace id,
``which-product-categories-bring-in[4bf92f35…]``, so a failing case says which task broke.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from replay._excerpt import change_excerpts, change_note
from replay._replayer import ReplayOutcome
from schemas.models import DiffEntry, DivergenceReport

_NOT_WORD = re.compile(r"[^0-9a-z]+")
_SLUG_CHARS = 48


def task_slug(task: str, limit: int = _SLUG_CHARS) -> str:
    """A run's task as a short name safe in test ids and file names: lowercase words joined by
    ``-``, cut at a word boundary to at most ``limit`` characters."""
    slug = _NOT_WORD.sub("-", task.lower()).strip("-")
    if len(slug) <= limit:
        return slug
    cut = slug[: limit + 1].rsplit("-", 1)[0]
    return cut if cut else slug[:limit]


def case_name(task: str, trace_id: str, fallback: str = "") -> str:
    """A test case's name: ``<task slug>[<trace id>]``; either part alone when the other is
    unknown, else ``fallback`` (e.g. a golden file's stem)."""
    slug = task_slug(task)
    if slug and trace_id:
        return f"{slug}[{trace_id}]"
    return slug or trace_id or fallback


def _entry(entry: DiffEntry) -> str:
    """One diff entry on one line, each value as a window around where the two differ."""
    before, after = change_excerpts(entry.recorded, entry.replayed, width=120)
    note = change_note(entry.recorded, entry.replayed)
    line = f"  {entry.op:6} {entry.path}: {before} -> {after}"
    return f"{line}  ({note})" if note else line


def _answer(recorded: Any, replayed: Any) -> str:
    before, after = change_excerpts(recorded, replayed, width=120)
    note = change_note(recorded, replayed)
    return f"final answer: {before} -> {after}" + (f"  ({note})" if note else "")


def describe(report: DivergenceReport, *, max_divergences: int = 10) -> str:
    """A plain-text account of a report: the first divergence with its diff, then the rest."""
    m = report.metrics
    what = (
        f"replay of {report.original_trace_id} ({report.mode.value})"
        if report.mode is not None
        else f"trace {report.replay_trace_id} vs {report.original_trace_id}"
    )
    lines = [
        f"{what}: " + ("DIVERGED" if report.diverged else "no divergence"),
        f"steps: {m.steps_matched}/{m.steps_recorded} matched, {m.steps_replayed} replayed; "
        f"tokens Δ in {m.input_tokens_delta:+d} out {m.output_tokens_delta:+d}; "
        f"final answer {'changed' if m.final_answer_changed else 'unchanged'}",
    ]
    if report.nondeterministic:
        lines.append(f"non-deterministic (not a code change): {report.nondeterminism}")
    first = report.first_divergence
    if first is not None:
        lines.append(f"first divergence: [{first.kind.value}] {first.summary}")
        lines += [_entry(entry) for entry in first.diff[:20]]
    elif m.final_answer_changed:
        lines.append(_answer(m.recorded_answer, m.replayed_answer))
    rest = report.divergences[1 : 1 + max_divergences]
    if rest:
        lines.append("other divergences:")
        lines += [f"  [{d.kind.value}] {d.summary}" for d in rest]
        if len(report.divergences) > 1 + max_divergences:
            lines.append(f"  … and {len(report.divergences) - 1 - max_divergences} more")
    return "\n".join(lines)


def outcome_name(outcome: ReplayOutcome) -> str:
    """The test-case name of one replay outcome (see ``case_name``)."""
    source = outcome.source or outcome.original_trace_id
    stem = source.rsplit("/", 1)[-1].removesuffix(".json")
    return case_name(outcome.task, outcome.original_trace_id, stem)


def junit_xml(outcomes: Sequence[ReplayOutcome], *, suite_name: str = "retrace-replay") -> str:
    """JUnit XML: one testcase per trajectory; a divergence is a failure, a replay that could
    not run is an error."""
    failures = sum(1 for o in outcomes if not o.error and o.diverged)
    errors = sum(1 for o in outcomes if o.error)
    total_time = sum(o.duration_s for o in outcomes)
    root = ET.Element(
        "testsuites",
        name=suite_name,
        tests=str(len(outcomes)),
        failures=str(failures),
        errors=str(errors),
        time=f"{total_time:.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(outcomes)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{total_time:.3f}",
    )
    for outcome in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"retrace.replay.{outcome.mode.value}",
            name=outcome_name(outcome),
            time=f"{outcome.duration_s:.3f}",
        )
        if outcome.error:
            error = ET.SubElement(case, "error", message=outcome.error[:500], type="ReplayError")
            error.text = outcome.error
        elif outcome.report is not None and outcome.report.diverged:
            first = outcome.report.first_divergence
            message = first.summary if first is not None else "final answer changed"
            failure = ET.SubElement(
                case,
                "failure",
                message=message[:500],
                type=first.kind.value if first is not None else "final_answer",
            )
            failure.text = describe(outcome.report)
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="original_trace_id", value=outcome.original_trace_id)
        ET.SubElement(props, "property", name="task", value=outcome.task)
        ET.SubElement(props, "property", name="replay_trace_id", value=outcome.replay_trace_id)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def markdown_summary(outcomes: Sequence[ReplayOutcome], *, title: str = "Retrace replay") -> str:
    """A markdown table of the suite (for a CI job summary or a PR comment)."""
    passed = sum(1 for o in outcomes if o.ok)
    diverged = sum(1 for o in outcomes if not o.error and o.diverged)
    errors = sum(1 for o in outcomes if o.error)
    problems = [
        *([_count(diverged, "divergence")] if diverged else []),
        *([_count(errors, "error")] if errors else []),
    ]
    verdict = "❌ " + ", ".join(problems) if problems else "✅ no divergence"
    lines = [
        f"## {title}: {verdict}",
        "",
        f"{len(outcomes)} trajectories · {passed} passed · {_count(diverged, 'divergence')} · "
        f"{_count(errors, 'error')}",
        "",
        "| trajectory | mode | result | first divergence | steps matched |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.error:
            result, first, matched = "error", _cell(o.error), "–"
        else:
            report = o.report
            assert report is not None
            m = report.metrics
            result = "divergence" if report.diverged else "passed"
            d = report.first_divergence
            first = (
                f"`{d.kind.value}` {_cell(d.summary)}"
                if d is not None
                else ("final answer changed" if m.final_answer_changed else "")
            )
            matched = f"{m.steps_matched}/{m.steps_recorded}"
        lines.append(
            f"| {_cell(outcome_name(o))} | {o.mode.value} | {result} | {first} | {matched} |"
        )
    return "\n".join(lines) + "\n"

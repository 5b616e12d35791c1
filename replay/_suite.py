"""Suite results for CI: JUnit XML and a markdown summary of many replay outcomes. Pure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from replay._replayer import ReplayOutcome
from schemas.models import DivergenceReport


def _value(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(report: DivergenceReport, *, max_divergences: int = 10) -> str:
    """A plain-text account of a report: the first divergence with its diff, then the rest."""
    m = report.metrics
    lines = [
        f"replay of {report.original_trace_id} ({report.mode.value}): "
        + ("DIVERGED" if report.diverged else "no divergence"),
        f"steps: {m.steps_matched}/{m.steps_recorded} matched, {m.steps_replayed} replayed; "
        f"tokens Δ in {m.input_tokens_delta:+d} out {m.output_tokens_delta:+d}; "
        f"final answer {'changed' if m.final_answer_changed else 'unchanged'}",
    ]
    if report.nondeterministic:
        lines.append(f"non-deterministic (not a code change): {report.nondeterminism}")
    first = report.first_divergence
    if first is not None:
        lines.append(f"first divergence: [{first.kind.value}] {first.summary}")
        for entry in first.diff[:20]:
            lines.append(
                f"  {entry.op:6} {entry.path}: {_value(entry.recorded)} -> {_value(entry.replayed)}"
            )
    elif m.final_answer_changed:
        lines.append(f"final answer: {_value(m.recorded_answer)} -> {_value(m.replayed_answer)}")
    rest = report.divergences[1 : 1 + max_divergences]
    if rest:
        lines.append("other divergences:")
        lines += [f"  [{d.kind.value}] {d.summary}" for d in rest]
        if len(report.divergences) > 1 + max_divergences:
            lines.append(f"  … and {len(report.divergences) - 1 - max_divergences} more")
    return "\n".join(lines)


def _name(outcome: ReplayOutcome) -> str:
    source = outcome.source or outcome.original_trace_id
    return source.rsplit("/", 1)[-1].removesuffix(".json") or outcome.original_trace_id


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
            name=_name(outcome),
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
        ET.SubElement(props, "property", name="replay_trace_id", value=outcome.replay_trace_id)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(outcomes: Sequence[ReplayOutcome], *, title: str = "Retrace replay") -> str:
    """A markdown table of the suite (for a CI job summary or a PR comment)."""
    passed = sum(1 for o in outcomes if o.ok)
    diverged = sum(1 for o in outcomes if not o.error and o.diverged)
    errors = sum(1 for o in outcomes if o.error)
    verdict = "✅ no divergence" if passed == len(outcomes) else "❌ divergence"
    lines = [
        f"## {title}: {verdict}",
        "",
        f"{len(outcomes)} trajectories · {passed} passed · {diverged} diverged · {errors} errors",
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
            result = "diverged" if report.diverged else "passed"
            d = report.first_divergence
            first = (
                f"`{d.kind.value}` {_cell(d.summary)}"
                if d is not None
                else ("final answer changed" if m.final_answer_changed else "")
            )
            matched = f"{m.steps_matched}/{m.steps_recorded}"
        lines.append(f"| {_cell(_name(o))} | {o.mode.value} | {result} | {first} | {matched} |")
    return "\n".join(lines) + "\n"

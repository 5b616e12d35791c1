"""Divergence analysis: compare a recorded and a replayed trajectory and build the report.

Pure. Steps are aligned (see ``_align``), each pair is compared aspect by aspect, and the first
divergence in run order is reported with a structured diff. Kinds, most specific first for a
tool step: other tool, policy/approval, other arguments, error vs success, other output; for an
LLM step: other messages (prompt, tools offered), error vs success, other output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replay._align import align
from replay._diff import (
    DEFAULT_CONFIG,
    DiffConfig,
    MessageMemo,
    canonical_messages,
    canonical_tool,
    json_diff,
    loads_maybe,
    normalize,
)
from replay._trajectory import step_label
from schemas.models import (
    AlignedPair,
    DiffEntry,
    Divergence,
    DivergenceKind,
    DivergenceMetrics,
    DivergenceReport,
    ReplayMode,
    Step,
    Trajectory,
)


@dataclass(frozen=True)
class Unanswered:
    """A request the recording could not answer, as seen at the seam during the replay."""

    replayed_index: int  # the step index the request had in the replay
    step_kind: str  # "llm" | "tool"
    summary: str
    recorded_index: int | None = None
    diff: tuple[DiffEntry, ...] = ()


@dataclass(frozen=True)
class Sides:
    """How summaries name the two runs: a recording and its replay, or two traces A and B."""

    first: str = "the recording"
    second: str = "the replay"
    second_step: str = "replay"  # prefixes a step found only in the second run


REPLAY_SIDES = Sides()
DIFF_SIDES = Sides(first="A", second="B", second_step="B")


@dataclass(frozen=True)
class _View:
    """The comparable content of one step, normalized once."""

    step: Step
    name: str
    inputs: Any  # llm: canonical input messages; tool: arguments
    offered: Any  # llm: canonical tool definitions
    output: Any  # llm: canonical output message; tool: result
    failed: bool
    policy: Any
    keys: dict[str, str]  # canonical JSON of each field: strict equality (false != 0), cheap


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _keyed(known: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    keys = {
        name: (known or {}).get(name) or _key(fields[name])
        for name in ("inputs", "offered", "output", "policy")
    }
    return {**fields, "keys": keys}


def _view(step: Step, config: DiffConfig, memo: MessageMemo) -> _View:
    if step.kind == "llm":
        known: dict[str, str] = {}
        if memo.usable:  # each message of the history canonicalized once per report
            history = memo.owned_history(step, step.input_messages)
            inputs: Any = [m.value for m in history]
            known["inputs"] = "[" + ", ".join(m.key for m in history) + "]"  # = _key(inputs)
            output = None if step.output_message is None else memo.message(step.output_message)
            if output is not None:
                known["output"] = output.key
            output_value = None if output is None else output.value
        else:
            inputs = normalize(canonical_messages(step.input_messages), config, "/input_messages")
            output_value = None
            if step.output_message is not None:
                output_value = canonical_messages([step.output_message])[0]
            output_value = normalize(output_value, config, "/output_message")
        return _View(
            **_keyed(
                known,
                step=step,
                name=step.model,
                inputs=inputs,
                offered=normalize(
                    sorted(
                        (canonical_tool(t) for t in step.tool_definitions), key=lambda t: t["name"]
                    ),
                    config,
                    "/tool_definitions",
                ),
                output=output_value,
                failed=step.error is not None,
                policy=None,
            )
        )
    return _View(
        **_keyed(
            step=step,
            name=step.tool_name,
            inputs=normalize(step.arguments, config, "/arguments"),
            offered=None,
            output=normalize(loads_maybe(step.result), config, "/result"),
            failed=step.error is not None,
            policy=normalize(
                {"decision": step.policy_decision, "approval": (step.approval or {}).get("status")},
                config,
                "/policy",
            ),
        )
    )


def _similarity(a: _View, b: _View) -> int:
    if a.step.kind != b.step.kind:
        return -1
    same_inputs = a.keys["inputs"] == b.keys["inputs"]
    same_output = a.keys["output"] == b.keys["output"]
    score = 1
    if a.step.kind == "tool":
        score += 4 * (a.name == b.name) + 2 * same_inputs + same_output
    else:
        score += 2 * same_inputs + 2 * same_output + (a.keys["offered"] == b.keys["offered"])
    return score


def _compare(
    a: _View, b: _View, config: DiffConfig, sides: Sides, memo: MessageMemo
) -> list[Divergence]:
    """Every aspect in which a replayed step differs from its recorded partner."""
    rec, rep = a.step, b.step
    out: list[Divergence] = []

    def add(kind: DivergenceKind, summary: str, diff: list[DiffEntry]) -> None:
        out.append(
            Divergence(
                kind=kind,
                recorded_index=rec.index,
                replayed_index=rep.index,
                step_kind=rec.kind,
                summary=summary,
                diff=diff,
            )
        )

    label = step_label(rec)
    if rec.kind == "tool":
        if a.name != b.name:
            add(
                DivergenceKind.OTHER_TOOL,
                f"{label}: {sides.second} called {b.name!r} instead of {a.name!r}",
                [DiffEntry(path="/tool_name", op="change", recorded=a.name, replayed=b.name)],
            )
        if a.keys["policy"] != b.keys["policy"]:
            add(
                DivergenceKind.POLICY,
                f"{label}: policy/approval decided differently",
                json_diff(a.policy, b.policy, config, "/policy"),
            )
        if a.name == b.name and a.keys["inputs"] != b.keys["inputs"]:
            add(
                DivergenceKind.OTHER_ARGUMENTS,
                f"{label}: called with other arguments",
                json_diff(rec.arguments, rep.arguments, config, "/arguments"),
            )
    else:
        if a.keys["inputs"] != b.keys["inputs"] or a.keys["offered"] != b.keys["offered"]:
            diff = memo.diff(rec.input_messages, rep.input_messages, "/input_messages")
            diff += json_diff(a.offered, b.offered, config, "/tool_definitions")
            add(DivergenceKind.OTHER_MESSAGES, f"{label}: the model was asked something else", diff)
    if a.failed != b.failed:
        add(
            DivergenceKind.ERROR_STATUS,
            f"{label}: {'failed' if b.failed else 'succeeded'} in {sides.second}, "
            f"{'failed' if a.failed else 'succeeded'} in {sides.first}",
            [DiffEntry(path="/error", op="change", recorded=rec.error, replayed=rep.error)],
        )
    elif a.keys["output"] != b.keys["output"] and not (rec.kind == "tool" and a.name != b.name):
        path = "/output_message" if rec.kind == "llm" else "/result"
        add(
            DivergenceKind.OTHER_OUTPUT,
            f"{label}: {'the model answered' if rec.kind == 'llm' else 'the tool returned'} "
            "something else",
            json_diff(a.output, b.output, config, path),
        )
    return out


def _tokens(steps: Sequence[Step]) -> tuple[int, int]:
    return sum(s.input_tokens for s in steps), sum(s.output_tokens for s in steps)


def build_report(
    recorded: Trajectory,
    replayed: Trajectory,
    mode: ReplayMode | None,
    *,
    unanswered: Sequence[Unanswered] = (),
    config: DiffConfig = DEFAULT_CONFIG,
    from_step: int | None = None,
    sides: Sides = REPLAY_SIDES,
    memo: MessageMemo | None = None,
) -> DivergenceReport:
    """Align the two runs, list every divergence in run order and summarize.

    ``unanswered`` are requests the recording could not answer; each becomes an ``UNANSWERABLE``
    divergence placed at the replay step where it happened (ahead of other findings there).
    ``from_step``: a replay from that step (the steps before it were served from the recording)
    is compared from it on; the earlier steps of either run are left out of the report.
    ``mode`` is None for a comparison of two runs that is not a replay (``diff_trajectories``).
    ``memo``: canonical messages already computed (a replay's request checks), else a new one.
    """
    if memo is None or memo.config is not config:
        memo = MessageMemo(config)
    start = from_step or 0
    rec_steps = [s for s in recorded.steps if s.index >= start]
    rep_steps = [s for s in replayed.steps if s.index >= start]
    if start:
        recorded = recorded.model_copy(update={"steps": rec_steps})
        replayed = replayed.model_copy(update={"steps": rep_steps})
    rec_views = [_view(s, config, memo) for s in recorded.steps]
    rep_views = [_view(s, config, memo) for s in replayed.steps]
    pairs = align(rec_views, rep_views, _similarity)

    alignment: list[AlignedPair] = []
    ordered: list[tuple[int, int, Divergence]] = []  # (position, priority, divergence)
    matched = 0
    position_of_replayed: dict[int, int] = {}
    for position, (ri, pi) in enumerate(pairs):
        rx, px = ri, pi  # positions; from a step on, the steps' own indexes
        if start:
            rx = recorded.steps[ri].index if ri is not None else None
            px = replayed.steps[pi].index if pi is not None else None
        if px is not None:
            position_of_replayed[px] = position
        if ri is not None and pi is not None:
            found = _compare(rec_views[ri], rep_views[pi], config, sides, memo)
            status = "diverged" if found else "match"
            matched += not found
            ordered.extend((position, 1, d) for d in found)
        else:  # a gap: a recorded step missing from the replay, or an extra replayed one
            missing = ri is not None
            step = rec_steps[ri] if ri is not None else rep_steps[pi or 0]
            status = "missing" if missing else "extra"
            gap = Divergence(
                kind=DivergenceKind.MISSING_STEP if missing else DivergenceKind.EXTRA_STEP,
                recorded_index=rx,
                replayed_index=px,
                step_kind=step.kind,
                summary=(
                    f"{step_label(step)}: did not happen in {sides.second}"
                    if missing
                    else f"{sides.second_step} {step_label(step)}: not in {sides.first}"
                ),
            )
            ordered.append((position, 1, gap))
        alignment.append(AlignedPair(recorded_index=rx, replayed_index=px, status=status))

    for item in unanswered:
        position = position_of_replayed.get(item.replayed_index, len(pairs))
        # The replay stopped there: recorded steps the aligner put between the replay's earlier
        # steps and this request (missing because the run ended) come after it.
        before = [p for i, p in position_of_replayed.items() if i < item.replayed_index]
        position = min(position, max(before) + 1 if before else 0)
        ordered.append(
            (
                position,
                0,
                Divergence(
                    kind=DivergenceKind.UNANSWERABLE,
                    recorded_index=item.recorded_index,
                    replayed_index=item.replayed_index,
                    step_kind="llm" if item.step_kind == "llm" else "tool",
                    summary=item.summary,
                    diff=list(item.diff),
                ),
            )
        )
    ordered.sort(key=lambda entry: (entry[0], entry[1]))
    divergences = [d for _, _, d in ordered]

    rec_in, rec_out = _tokens(rec_steps)
    rep_in, rep_out = _tokens(rep_steps)
    rec_ns = sum(s.duration_ns for s in rec_steps)
    rep_ns = sum(s.duration_ns for s in rep_steps)
    answer_changed = _key(normalize(recorded.output, config)) != _key(
        normalize(replayed.output, config)
    )
    metrics = DivergenceMetrics(
        steps_recorded=len(rec_steps),
        steps_replayed=len(rep_steps),
        steps_matched=matched,
        input_tokens_delta=rep_in - rec_in,
        output_tokens_delta=rep_out - rec_out,
        latency_delta_ms=(rep_ns - rec_ns) / 1e6,
        final_answer_changed=answer_changed,
        recorded_answer=recorded.output,
        replayed_answer=replayed.output,
    )
    return DivergenceReport(
        original_trace_id=recorded.trace_id,
        replay_trace_id=replayed.trace_id,
        mode=mode,
        diverged=bool(divergences) or answer_changed,
        first_divergence=divergences[0] if divergences else None,
        divergences=divergences,
        alignment=alignment,
        metrics=metrics,
        from_step=from_step or None,
    )


def diff_trajectories(
    a: Trajectory, b: Trajectory, *, config: DiffConfig = DEFAULT_CONFIG
) -> DivergenceReport:
    """Compare two recorded runs (say a complaint's run against a good run of the same task).

    The same alignment and first-divergence analysis as a replay, with run A in the recording's
    place and run B in the replay's: ``original_trace_id`` is A, ``replay_trace_id`` is B,
    ``recorded_index``/``replayed_index`` index A's and B's steps, and ``mode`` is None.
    """
    return build_report(a, b, None, config=config, sides=DIFF_SIDES)


def report_fingerprint(report: DivergenceReport) -> dict[str, Any]:
    """The report without what is measured rather than replayed (the replay's trace id and the
    latency delta): two replays of the same code must give equal fingerprints."""
    data = report.model_dump(mode="json")
    data["replay_trace_id"] = ""
    data["metrics"]["latency_delta_ms"] = 0.0
    return data

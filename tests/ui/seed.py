"""Seed a real collector with agent-like traces, sent by the OpenTelemetry SDK over OTLP/HTTP.

Used by the UI's AppTest and browser tests and by bench/bench_ui.py. Spans look like the runner's:
an ``invoke_agent`` root, ``chat`` spans with GenAI messages and token usage, ``execute_tool``
spans with arguments, results, sandbox stats and a workspace snapshot; one run fails in a tool,
one is stopped by policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from collector.client import CollectorClient
from runner.tracing import PinnableIdGenerator, pinned_trace_id
from schemas import attributes as A
from schemas.models import (
    AlignedPair,
    Approval,
    DiffEntry,
    Divergence,
    DivergenceKind,
    DivergenceMetrics,
    DivergenceReport,
    ReplayMode,
    ReplayRecord,
)

MS = 1_000_000
QUESTION = "Which region had the highest revenue in 2024?"
ANSWER = "EMEA had the highest revenue in 2024: 1.25M USD."
SCRIPT = "import csv\nrows = list(csv.DictReader(open('sales.csv')))\nprint(len(rows))"
FILE_TEXT = "region,revenue\nEMEA,1250000\nAMER,990000\n"


@dataclass(frozen=True)
class SeededTraces:
    ok: str  # completed run: chat -> run_python -> chat
    failed: str  # run_python raised; run failed
    denied: str  # a policy denial and a guardrail event
    manifest_hash: str
    file_hash: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def otlp_tracer(
    endpoint: str, api_key: str | None = None, service: str = "data-agent"
) -> Iterator[Tracer]:
    """A tracer whose spans go to ``endpoint``'s OTLP/HTTP ingest; flushed on exit."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    provider = TracerProvider(
        resource=Resource.create({A.SERVICE_NAME: service}), id_generator=PinnableIdGenerator()
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=30),
            max_export_batch_size=2000,
            max_queue_size=200_000,
            schedule_delay_millis=200,
        )
    )
    try:
        yield provider.get_tracer("retrace.tests.ui")
    finally:
        provider.force_flush(60_000)
        provider.shutdown()


def _messages(*turns: tuple[str, list[dict[str, Any]]]) -> str:
    return json.dumps([{"role": role, "parts": parts} for role, parts in turns])


def _text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "content": content}]


class _Run:
    """Builds one run's spans with explicit, increasing timestamps."""

    def __init__(self, tracer: Tracer, agent: str, start_ns: int, run_id: str) -> None:
        self.tracer = tracer
        self.agent = agent
        self.clock = start_ns
        self.step = 0
        self.root: Span = tracer.start_span(  # type: ignore[assignment]
            f"{A.OP_INVOKE_AGENT} {agent}",
            kind=SpanKind.INTERNAL,
            start_time=start_ns,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.GEN_AI_AGENT_NAME: agent,
                A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                A.RETRACE_RUN_ID: run_id,
                A.RETRACE_RUN_STATUS: "running",
                A.RETRACE_RUN_INPUT: QUESTION,
            },
        )
        self.context = set_span_in_context(self.root)

    def child(
        self, name: str, duration_ms: float, attributes: dict[str, Any], *, gap_ms: float = 1
    ) -> Span:
        self.clock += int(gap_ms * MS)
        span: Span = self.tracer.start_span(  # type: ignore[assignment]
            name,
            kind=SpanKind.CLIENT,
            context=self.context,
            start_time=self.clock,
            attributes={A.RETRACE_STEP_INDEX: self.step, **attributes},
        )
        self.step += 1
        self.clock += int(duration_ms * MS)
        return span

    def chat(self, inputs: str, outputs: str, tokens: tuple[int, int], ms: float = 40) -> Span:
        span = self.child(
            "chat gpt-4o-mini",
            ms,
            {
                A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                A.GEN_AI_AGENT_NAME: self.agent,
                A.GEN_AI_INPUT_MESSAGES: inputs,
                A.GEN_AI_OUTPUT_MESSAGES: outputs,
                A.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
                A.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
            },
        )
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=self.clock)
        return span

    def tool(self, name: str, arguments: dict[str, Any], ms: float = 25) -> Span:
        return self.child(
            f"{A.OP_EXECUTE_TOOL} {name}",
            ms,
            {
                A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                A.GEN_AI_TOOL_NAME: name,
                A.GEN_AI_TOOL_CALL_ID: f"call_{self.step}",
                A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps(arguments),
                A.GEN_AI_AGENT_NAME: self.agent,
                A.RETRACE_MCP_SERVER: "sandbox",
                A.RETRACE_SANDBOX_BACKEND: "gvisor",
            },
        )

    def finish(self, status: str, answer: str | None, error: str | None = None) -> str:
        self.root.set_attribute(A.RETRACE_RUN_STATUS, status)
        if answer is not None:
            self.root.set_attribute(A.RETRACE_RUN_OUTPUT, answer)
        self.root.set_status(Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK))
        self.root.end(end_time=self.clock + MS)
        return format(self.root.get_span_context().trace_id, "032x")


def _ok_run(tracer: Tracer, start_ns: int, manifest: str, agent: str = "data-scientist") -> str:
    run = _Run(tracer, agent, start_ns, run_id=f"run-ok-{start_ns}")
    run.root.set_attribute(A.RETRACE_SANDBOX_SERVERS, json.dumps({"sandbox": "gvisor"}))
    call = {
        "type": "tool_call",
        "id": "call_1",
        "name": "run_python",
        "arguments": {"code": SCRIPT},
    }
    run.chat(
        _messages(
            ("system", _text("You are a careful data scientist.")), ("user", _text(QUESTION))
        ),
        _messages(("assistant", [call])),
        (420, 38),
    )
    tool = run.tool("run_python", {"code": SCRIPT})
    tool.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, "3\n")
    tool.set_attribute(A.RETRACE_TOOL_ERROR, "false")
    tool.set_attribute(A.RETRACE_SANDBOX_EXIT_CODE, 0)
    tool.set_attribute(A.RETRACE_SANDBOX_CPU_MS, 31)
    tool.set_attribute(A.RETRACE_SANDBOX_MEMORY_BYTES, 18_000_000)
    tool.set_attribute(A.RETRACE_SANDBOX_LIMITS, json.dumps({"memory_bytes": 268435456}))
    tool.set_attribute(
        A.RETRACE_SANDBOX_POLICY, json.dumps({"backend": "gvisor", "network": "none"})
    )
    tool.set_attribute(A.RETRACE_WORKSPACE_AFTER, manifest)
    tool.set_attribute(A.RETRACE_POLICY_DECISION, "allow")
    tool.set_status(Status(StatusCode.OK))
    tool.end(end_time=run.clock)
    run.chat(
        _messages(
            ("user", _text(QUESTION)),
            ("assistant", [call]),
            ("tool", [{"type": "tool_call_response", "id": "call_1", "response": "3\n"}]),
        ),
        _messages(("assistant", _text(ANSWER))),
        (510, 22),
    )
    return run.finish("completed", ANSWER)


def _failed_run(tracer: Tracer, start_ns: int) -> str:
    run = _Run(tracer, "data-scientist", start_ns, run_id=f"run-failed-{start_ns}")
    call = {"type": "tool_call", "id": "c", "name": "run_python", "arguments": {"code": "1/0"}}
    run.chat(
        _messages(("user", _text("Divide by zero please"))),
        _messages(("assistant", [call])),
        (120, 12),
    )
    tool = run.tool("run_python", {"code": "1/0"}, ms=60)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as exc:
        tool.record_exception(exc)
    tool.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, "ZeroDivisionError: division by zero")
    tool.set_attribute(A.RETRACE_TOOL_ERROR, "true")
    tool.set_attribute(A.RETRACE_SANDBOX_EXIT_CODE, 1)
    tool.set_status(Status(StatusCode.ERROR, "ZeroDivisionError: division by zero"))
    tool.end(end_time=run.clock)
    return run.finish("failed", None, error="run failed")


def _denied_run(tracer: Tracer, start_ns: int) -> str:
    run = _Run(tracer, "sql-analyst", start_ns, run_id=f"run-denied-{start_ns}")
    call = {"type": "tool_call", "id": "d", "name": "sql", "arguments": {"query": "DROP TABLE x"}}
    run.chat(
        _messages(("user", _text("Clean up the sales table"))),
        _messages(("assistant", [call])),
        (200, 15),
    )
    tool = run.tool("sql", {"query": "DROP TABLE x"}, ms=2)
    tool.set_attribute(A.RETRACE_POLICY_DECISION, "deny")
    tool.set_attribute(A.RETRACE_POLICY_RULE, "sql-read-only")
    tool.set_attribute(A.RETRACE_POLICY_REASON, "SQL must be read-only (DROP)")
    tool.add_event(
        A.EVENT_POLICY, {A.RETRACE_POLICY_DECISION: "deny", A.RETRACE_POLICY_RULE: "sql-read-only"}
    )
    tool.set_status(Status(StatusCode.ERROR, "denied by policy"))
    tool.end(end_time=run.clock)
    run.root.add_event(A.EVENT_GUARDRAIL, {A.RETRACE_GUARDRAIL: "max_turns"})
    run.root.set_attribute(A.RETRACE_GUARDRAIL, "max_turns")
    return run.finish("guardrail", "I could not complete this safely.")


def seed_agent_traces(
    endpoint: str, put_payload: Callable[[str, bytes], Any], api_key: str | None = None
) -> SeededTraces:
    """Three runs (ok, failed, denied) plus a workspace snapshot; returns their trace ids."""
    file_bytes = FILE_TEXT.encode()
    file_hash = sha256(file_bytes)
    # The manifest shape runner.sandbox.WorkspaceSnapshots writes.
    manifest = json.dumps(
        {
            "sales.csv": {"hash": file_hash, "mode": 420, "size": len(file_bytes)},
            "out": {"dir": True},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest_hash = sha256(manifest)
    put_payload(file_hash, file_bytes)
    put_payload(manifest_hash, manifest)
    now = time.time_ns() - 60 * 1_000 * MS
    with otlp_tracer(endpoint, api_key) as tracer:
        ok = _ok_run(tracer, now, manifest_hash)
        failed = _failed_run(tracer, now + 5_000 * MS)
        denied = _denied_run(tracer, now + 10_000 * MS)
    return SeededTraces(ok, failed, denied, manifest_hash, file_hash)


def seed_wide_trace(endpoint: str, spans: int, api_key: str | None = None) -> str:
    """One run with ``spans`` spans (chat/tool pairs under the root)."""
    start = time.time_ns() - 30 * 60 * 1_000 * MS
    with otlp_tracer(endpoint, api_key, service="wide-agent") as tracer:
        run = _Run(tracer, "wide-agent", start, run_id=f"run-wide-{start}")
        for index in range(spans - 1):
            if index % 2 == 0:
                run.chat(
                    _messages(("user", _text(f"step {index}"))),
                    _messages(("assistant", _text(f"ok {index}"))),
                    (10, 2),
                    ms=0.5,
                )
            else:
                span = run.tool("run_python", {"code": f"print({index})"}, ms=0.5)
                span.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, str(index))
                span.end(end_time=run.clock)
        return run.finish("completed", "done")


def seed_many_runs(endpoint: str, runs: int, api_key: str | None = None) -> None:
    """``runs`` small runs (root + chat + tool) spread over the last day, for list benchmarks."""
    base = time.time_ns() - 24 * 3600 * 1_000 * MS
    step = (23 * 3600 * 1_000 * MS) // max(runs, 1)
    with otlp_tracer(endpoint, api_key, service="bench-agent") as tracer:
        for index in range(runs):
            run = _Run(tracer, f"agent-{index % 7}", base + index * step, run_id=f"bench-{index}")
            run.chat(
                _messages(("user", _text(f"question {index}"))),
                _messages(("assistant", _text(f"answer {index}"))),
                (100 + index % 50, 20),
            )
            span = run.tool("sql" if index % 3 else "run_python", {"query": f"select {index}"})
            failed = index % 17 == 0
            span.set_status(Status(StatusCode.ERROR, "boom") if failed else Status(StatusCode.OK))
            span.end(end_time=run.clock)
            run.finish(
                "failed" if failed else "completed",
                f"answer {index}",
                error="run failed" if failed else None,
            )


@dataclass(frozen=True)
class OverviewTraces:
    quick: list[str]  # completed runs of 1, 2, 3 and 4 s, no wait
    waited: str  # 2 s, paused an hour for approval, resumed, 3 s more
    paused: str  # 1 s, then paused for approval (still waiting)
    replay: str  # a replay of ``waited`` lasting half an hour
    approval_id: str  # the approval ``waited`` waited for
    wait_ms: float  # how long ``waited`` waited


def _segment(
    tracer: Tracer,
    start_ns: int,
    seconds: float,
    status: str,
    *,
    continues: Span | None = None,
    attributes: dict[str, Any] | None = None,
) -> Span:
    """One root segment of a run, as the runner writes it: an ``invoke_agent`` span with a chat
    under it, ending with ``status`` 3 ms short of ``seconds``. ``continues`` resumes that
    segment's run: same trace (pinned as the runner pins it), a new root linked to the old."""
    context = continues.get_span_context() if continues is not None else None
    with pinned_trace_id(format(context.trace_id, "032x") if context else None):
        run = _Run(tracer, "approver-agent", start_ns, run_id=f"run-{start_ns}")
    if context is not None:
        run.root.add_link(context)
    for key, value in (attributes or {}).items():
        run.root.set_attribute(key, value)
    run.chat(
        _messages(("user", _text(QUESTION))),
        _messages(("assistant", _text(ANSWER))),
        (100, 10),
        ms=seconds * 1000 - 5,
    )
    run.finish(status, ANSWER if status == "completed" else None)
    return run.root


def seed_overview_runs(
    endpoint: str, client: CollectorClient, api_key: str | None = None
) -> OverviewTraces:
    """Runs for the overview's figures, all started within two minutes of one hour three hours ago
    (the replay aside, two hours later): four quick runs,
    one that waited an hour for a human's approval (recorded as the runner records it: a paused
    segment, an approval row, a resumed segment an hour later), one still waiting, and a replay
    of the run that waited."""
    hour = 3600 * 1_000 * MS
    # A minute into the hour three hours ago: every run starts in that one hour (one bucket).
    base = (time.time_ns() - 3 * hour) // hour * hour + 60_000 * MS
    quick = []
    with otlp_tracer(endpoint, api_key, service="approver") as tracer:
        for index, seconds in enumerate((1, 2, 3, 4)):
            root = _segment(tracer, base + index * 10_000 * MS, seconds, "completed")
            quick.append(format(root.get_span_context().trace_id, "032x"))
        approval_id = f"approval-{base}"
        first = _segment(
            tracer,
            base + 60_000 * MS,
            2,
            "pending_approval",
            attributes={A.RETRACE_APPROVAL_ID: approval_id},
        )
        waited = format(first.get_span_context().trace_id, "032x")
        pause_end = int(first.end_time or 0)
        resumed_at = pause_end + hour
        _segment(tracer, resumed_at, 3, "completed", continues=first)
        still = _segment(tracer, base + 120_000 * MS, 1, "pending_approval")
        paused = format(still.get_span_context().trace_id, "032x")
        replay_root = _segment(
            tracer,
            base + 2 * hour,
            1800,
            "completed",
            attributes={A.RETRACE_REPLAY_OF: waited},
        )
        replay = format(replay_root.get_span_context().trace_id, "032x")
    # The approval row as the runner's pause created it. (Deciding it through the API stamps the
    # decision now; the spans carry when the run really resumed, which is what stats read.)
    client.save_approval(
        Approval(
            approval_id=approval_id,
            run_id=f"run-{base + 60_000 * MS}",
            trace_id=waited,
            tool_name="send_email",
            reason="calls to 'send_email' need approval",
            rule="email",
            requested_at=datetime.fromtimestamp(pause_end / 1e9, UTC),
        )
    )
    for trace_id in [*quick, waited, paused, replay]:
        client.wait_for_trace(trace_id, min_spans=4 if trace_id == waited else 2)
    return OverviewTraces(quick, waited, paused, replay, approval_id, (resumed_at - pause_end) / MS)


# --- hostile span data ----------------------------------------------------------------------


def hostile_text(leak_url: str, tag: str) -> str:
    """One line that attacks wherever it lands unescaped: markdown, HTML, a code span, a chart.

    Outside a code span its markdown image and ``<img onerror>`` act; its backticks then hold the
    rest in a code span. Put inside a code span (```{value}```) it closes that span first, and its
    ``<iframe srcdoc>`` script, second image, markdown and HTML links act. Streamlit's colour
    directive and LaTeX close it. Images and links point at ``leak_url``; ``tag`` (a few lowercase
    letters, so the value stays under 300 characters, the length the UI still shows as markdown)
    names the field it was put in, so a fetch says which render site leaked.
    """
    return (
        f"![i]({leak_url}/md/{tag}) <img src=x onerror=alert('{tag}')> {tag}`"
        f" <iframe srcdoc=\"<script>alert('{tag}')</script>\"></iframe> ![j]({leak_url}/md2/{tag})"
        f' [l]({leak_url}/l/{tag}) <a href="{leak_url}/a/{tag}">a</a> :red[r] $x^2$ `z'
    )


HOSTILE_APPROVAL = "appr-hostile-1"
HOSTILE_FAILED_REPLAY = "rp-hostile-failed"
HOSTILE_DIVERGED_REPLAY = "rp-hostile-diverged"


@dataclass(frozen=True)
class HostileTraces:
    trace: str  # root + chat + tool span, every free-text field hostile
    root_span: str
    chat_span: str
    tool_span: str
    json_trace: str  # one span sent as OTLP JSON with a hostile service and span name


def seed_hostile_traces(
    endpoint: str,
    put_payload: Callable[[str, bytes], Any],
    hostile: Callable[[str], str],
) -> HostileTraces:
    """Runs whose names, messages, events and attributes are ``hostile(field)`` values.

    Sent as real senders would: the SDK's OTLP/protobuf exporter, and one OTLP/JSON request.
    """
    binary = b"\x00\x01binary"
    binary_hash = sha256(binary)
    manifest = json.dumps({f"out/{hostile('filepath')}": {"hash": binary_hash, "size": 8}}).encode()
    manifest_hash = sha256(manifest)
    put_payload(binary_hash, binary)
    put_payload(manifest_hash, manifest)
    start = time.time_ns() - 30 * 1_000 * MS
    with otlp_tracer(endpoint, service=hostile("service")) as tracer:
        run = _Run(tracer, hostile("agent"), start, run_id=f"run-hostile-{start}")
        run.root.set_attribute(A.RETRACE_RUN_INPUT, hostile("input"))
        run.root.set_attribute(A.RETRACE_REPLAY_OF, hostile("replayof"))
        run.root.add_event(A.EVENT_GUARDRAIL, {A.RETRACE_GUARDRAIL: hostile("guardev")})
        run.root.set_attribute(A.RETRACE_GUARDRAIL, hostile("guardrl"))
        call = {
            "type": "tool_call",
            "id": hostile("callid"),
            "name": hostile("callname"),
            "arguments": {"q": hostile("callarg")},
        }
        chat = run.child(
            f"chat {hostile('model')}",
            30,
            {
                A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                A.GEN_AI_REQUEST_MODEL: hostile("model"),
                A.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [{"role": hostile("role"), "parts": _text(hostile("usertext"))}]
                ),
                A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [{"role": "assistant", "parts": [call], "finish_reason": hostile("finish")}]
                ),
                A.GEN_AI_USAGE_INPUT_TOKENS: 10,
                A.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
            },
        )
        chat.end(end_time=run.clock)
        tool = run.tool(hostile("tool"), {hostile("argname"): "first line\nsecond line"})
        tool.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, hostile("result"))
        tool.set_attribute(A.RETRACE_TOOL_ERROR, "true")
        tool.set_attribute(A.RETRACE_SANDBOX_BACKEND, hostile("backend"))
        tool.set_attribute(A.RETRACE_SANDBOX_EXIT_CODE, hostile("exitcode"))
        tool.set_attribute(A.RETRACE_MCP_SERVER, hostile("mcp"))
        tool.set_attribute(A.RETRACE_WORKSPACE_AFTER, manifest_hash)
        tool.set_attribute(A.RETRACE_POLICY_DECISION, hostile("decision"))
        tool.set_attribute(A.RETRACE_POLICY_RULE, hostile("rule"))
        tool.set_attribute(A.RETRACE_POLICY_REASON, hostile("reason"))
        tool.set_attribute(A.RETRACE_APPROVAL_ID, hostile("apprid"))
        tool.set_attribute(A.RETRACE_APPROVAL_STATUS, hostile("apprstat"))
        tool.set_attribute(A.RETRACE_APPROVAL_DECIDED_BY, hostile("decider"))
        tool.add_event(A.EVENT_POLICY, {A.RETRACE_POLICY_RULE: hostile("polevent")})
        tool.add_event(hostile("evname"), {hostile("evkey"): hostile("evvalue")})
        tool.add_event(
            A.EVENT_EXCEPTION,
            {
                A.EXCEPTION_TYPE: hostile("exctype"),
                A.EXCEPTION_MESSAGE: hostile("excmsg"),
                A.EXCEPTION_STACKTRACE: hostile("stack"),
            },
        )
        tool.set_status(Status(StatusCode.ERROR, hostile("statmsg")))
        tool.end(end_time=run.clock)
        trace = run.finish(hostile("runstat"), hostile("answer"), error=hostile("rootstat"))
        ids = (format(span.get_span_context().span_id, "016x") for span in (run.root, chat, tool))
        root_span, chat_span, tool_span = ids
        # The run above is a replay, which stats leave out: a run (not a replay) whose call of
        # the hostile tool fails puts the tool's name on the overview's failing-tools chart.
        original = _Run(tracer, hostile("agent"), run.clock + MS, run_id=f"run-hostile-o-{start}")
        failing = original.tool(hostile("tool"), {"q": "x"})
        failing.set_attribute(A.RETRACE_TOOL_ERROR, "true")
        failing.set_status(Status(StatusCode.ERROR, hostile("statmsg")))
        failing.end(end_time=original.clock)
        original.finish("failed", None, error=hostile("rootstat"))
    json_trace = _send_otlp_json_span(endpoint, hostile("jsonsvc"), hostile("jsonspan"))
    return HostileTraces(trace, root_span, chat_span, tool_span, json_trace)


def save_hostile_records(
    client: CollectorClient, traces: HostileTraces, hostile: Callable[[str], str]
) -> None:
    """A pending approval and two replay records (failed; diverged) of ``traces.trace``.

    Saved through the collector's API, as any key holder could; their free-text fields are
    ``hostile(field)`` values (ids stay plain: they travel in URLs).
    """
    h = hostile
    now = datetime.now(UTC)
    client.save_approval(
        Approval(
            approval_id=HOSTILE_APPROVAL,
            run_id="run-hostile-approval",
            trace_id=traces.trace,
            span_id=traces.tool_span,
            tool_name=h("apprtool"),
            arguments={h("apprkey"): h("apprarg")},
            reason=h("apprwhy"),
            rule=h("apprrule"),
            requested_at=now,
        )
    )
    client.save_replay(
        ReplayRecord(
            replay_id=HOSTILE_FAILED_REPLAY,
            original_trace_id=traces.trace,
            mode=ReplayMode.RECORDED,
            status="failed",
            created_at=now,
            updated_at=now,
            error=h("rperror"),
        )
    )
    report = DivergenceReport(
        original_trace_id=traces.trace,
        replay_trace_id=traces.trace,
        mode=ReplayMode.LIVE_MODEL,
        diverged=True,
        first_divergence=Divergence(
            kind=DivergenceKind.OTHER_ARGUMENTS,
            recorded_index=1,
            replayed_index=1,
            step_kind="tool",
            summary=h("summary"),
            diff=[
                DiffEntry(
                    path=h("diffpath"),
                    op="change",
                    recorded=h("diffold"),
                    replayed={"k": h("diffnew")},
                )
            ],
        ),
        alignment=[
            AlignedPair(recorded_index=0, replayed_index=0, status="match"),
            AlignedPair(recorded_index=1, replayed_index=1, status="diverged"),
        ],
        metrics=DivergenceMetrics(
            steps_recorded=2,
            steps_replayed=2,
            steps_matched=1,
            final_answer_changed=True,
            recorded_answer=h("recanswer"),
            replayed_answer=h("repanswer"),
        ),
    )
    client.save_replay(
        ReplayRecord(
            replay_id=HOSTILE_DIVERGED_REPLAY,
            original_trace_id=traces.trace,
            replay_trace_id=traces.trace,
            mode=ReplayMode.LIVE_MODEL,
            status="completed",
            created_at=now,
            updated_at=now,
            diverged=True,
            first_divergence_step=1,
            first_divergence_kind=h("kind"),
            report=report,
        )
    )


def _send_otlp_json_span(endpoint: str, service: str, name: str) -> str:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time_ns() - 20 * 1_000 * MS
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_json_attr(A.SERVICE_NAME, service)]},
                "scopeSpans": [
                    {
                        "scope": {"name": "hostile"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": name,
                                "kind": 1,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 5 * MS),
                                "status": {"code": 2, "message": name},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    response = httpx.post(f"{endpoint}/v1/traces", json=body, timeout=30)
    response.raise_for_status()
    return trace_id


def _json_attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}

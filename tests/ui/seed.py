"""Seed a real collector with agent-like traces, sent by the OpenTelemetry SDK over OTLP/HTTP.

Used by the UI's AppTest and browser tests and by bench/bench_ui.py. Spans look like the runner's:
an ``invoke_agent`` root, ``chat`` spans with GenAI messages and token usage, ``execute_tool``
spans with arguments, results, sandbox stats and a workspace snapshot; one run fails in a tool,
one is stopped by policy.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from schemas import attributes as A

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
    provider = TracerProvider(resource=Resource.create({A.SERVICE_NAME: service}))
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

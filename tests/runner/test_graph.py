"""The agent graph end to end: offline model, an in-test tool executor, in-memory spans."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runner.config import AgentConfig, GuardrailsConfig
from runner.offline import OfflineModel, OfflineScript
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from schemas import attributes as A
from schemas.models import RunStatus


class FakeTools:
    """A tiny in-test ToolExecutor: ``add`` adds, ``flaky`` fails on its first call, ``boom``
    raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.flaky_calls = 0

    async def list_tools(self) -> list[ToolSpec]:
        schema = {"type": "object", "properties": {"a": {"type": "number"}}}
        return [
            ToolSpec("add", "add two numbers", schema, server="math"),
            ToolSpec("flaky", "fails once", schema, server="math"),
            ToolSpec("boom", "always raises", schema, server="math"),
            ToolSpec("delete_rows", "deletes", schema, server="db"),
        ]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        self.calls.append((name, arguments))
        if name == "add":
            total = arguments["a"] + arguments["b"]
            return ToolResult(json.dumps({"sum": total}), metadata={"backend": "process"})
        if name == "flaky":
            self.flaky_calls += 1
            if self.flaky_calls == 1:
                return ToolResult("transient failure", is_error=True, metadata={"exit_code": 1})
            return ToolResult(json.dumps({"ok": True}), metadata={"exit_code": 0})
        if name == "boom":
            raise RuntimeError("tool crashed")
        return ToolResult("deleted", metadata={})


SCRIPT = OfflineScript.model_validate(
    {
        "name": "test-model",
        "tasks": [
            {
                "name": "add",
                "match": "add",
                "steps": [
                    {"thought": "adding", "call": "add", "args": {"a": 2, "b": 3}},
                    {"call": "add", "args": {"a": "{{ last.sum }}", "b": 10}},
                    {"answer": "The total is {{ last.sum }} (first {{ results.0.sum }})."},
                ],
            },
            {
                "name": "flaky",
                "match": "flaky",
                "steps": [{"call": "flaky", "args": {}}, {"answer": "flaky said {{ last }}"}],
            },
            {
                "name": "boom",
                "match": "boom",
                "steps": [
                    {
                        "call": "boom",
                        "args": {},
                        "alternative": {"call": "add", "args": {"a": 1, "b": 1}},
                    },
                    {"answer": "recovered with {{ last.sum }}"},
                ],
            },
            {
                "name": "loop",
                "match": "loop",
                "steps": [
                    {"call": "add", "args": {"a": 1, "b": 1}},
                    {"call": "add", "args": {"a": 1, "b": 1}},
                    {"call": "add", "args": {"a": 1, "b": 1}},
                    {"answer": "never"},
                ],
            },
            {
                "name": "delete",
                "match": "delete",
                "steps": [
                    {"call": "delete_rows", "args": {"table": "orders"}},
                    {"answer": "Could not delete: {{ last }}"},
                ],
            },
        ],
    }
)


def _run(task: str, config: AgentConfig | None = None, **kwargs: Any):
    return asyncio.run(_arun(task, config, **kwargs))


def _config(**guardrails: Any) -> AgentConfig:
    return AgentConfig(
        name="tester",
        model="offline:test-model",
        guardrails=GuardrailsConfig(backoff_base_s=0.001, **guardrails),
    )


async def _arun(task: str, config: AgentConfig | None = None, **kwargs: Any):
    exporter = InMemorySpanExporter()
    tools = FakeTools()
    result = await run_agent(
        task,
        config or _config(),
        model=OfflineModel(SCRIPT),
        tools=tools,
        runtime=LiveRuntime(seed=7),
        span_exporter=exporter,
        **kwargs,
    )
    return result, exporter.get_finished_spans(), tools


def test_offline_run_completes_with_one_span_per_step() -> None:
    result, spans, tools = _run("please add numbers")
    assert result.status == RunStatus.COMPLETED
    assert result.answer == "The total is 15 (first 5)."
    assert tools.calls == [("add", {"a": 2, "b": 3}), ("add", {"a": 5, "b": 10})]
    names = [s.name for s in spans]
    assert names.count("chat test-model") == 3
    assert names.count("execute_tool add") == 2
    root = next(s for s in spans if s.parent is None)
    assert root.name == "invoke_agent tester"
    assert root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    assert root.attributes[A.RETRACE_RUN_OUTPUT] == result.answer
    assert root.attributes[A.RETRACE_RUN_ID] == result.run_id
    assert format(root.context.trace_id, "032x") == result.trace_id
    assert json.loads(root.attributes[A.RETRACE_RANDOM_VALUES]) == []
    assert len(json.loads(root.attributes[A.RETRACE_CLOCK_VALUES])) >= 3
    steps = sorted(
        (s.attributes[A.RETRACE_STEP_INDEX], s.name) for s in spans if s.parent is not None
    )
    assert [i for i, _ in steps] == [0, 1, 2, 3, 4]
    first_chat = next(s for s in spans if s.attributes.get(A.RETRACE_STEP_INDEX) == 0)
    messages = json.loads(first_chat.attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert first_chat.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert json.loads(first_chat.attributes[A.RETRACE_MODEL_TOOL_CALLS])[0]["name"] == "add"
    tool_span = next(s for s in spans if s.attributes.get(A.RETRACE_STEP_INDEX) == 1)
    assert tool_span.attributes[A.GEN_AI_TOOL_CALL_RESULT] == '{"sum": 5}'
    assert tool_span.attributes[A.RETRACE_SANDBOX_BACKEND] == "process"
    assert tool_span.attributes[A.RETRACE_MCP_SERVER] == "math"
    assert tool_span.attributes[A.RETRACE_POLICY_DECISION] == "allow"
    for span in spans:
        assert span.context.trace_id == root.context.trace_id


def test_tool_error_is_retried_with_backoff_and_recorded() -> None:
    result, spans, tools = _run("be flaky")
    assert result.status == RunStatus.COMPLETED
    assert tools.flaky_calls == 2
    attempts = [s for s in spans if s.name == "execute_tool flaky"]
    assert [s.attributes[A.RETRACE_TOOL_ATTEMPT] for s in attempts] == [1, 2]
    assert attempts[0].attributes[A.RETRACE_TOOL_ERROR] == "true"
    assert attempts[0].events[0].name == A.EVENT_RETRY
    root = next(s for s in spans if s.parent is None)
    # the jitter came from the seeded runtime and is recorded
    assert len(json.loads(root.attributes[A.RETRACE_RANDOM_VALUES])) == 1


def test_raising_tool_becomes_an_error_and_the_script_takes_its_alternative() -> None:
    result, spans, _ = _run("boom", _config(tool_retries=0))
    assert result.status == RunStatus.COMPLETED
    assert result.answer == "recovered with 2"
    boom = next(s for s in spans if s.name == "execute_tool boom")
    assert "RuntimeError: tool crashed" in boom.attributes[A.GEN_AI_TOOL_CALL_RESULT]


def test_loop_detection_stops_the_run() -> None:
    result, spans, tools = _run("loop", _config(loop_threshold=3))
    assert result.status == RunStatus.GUARDRAIL
    assert "loop detected" in result.answer
    assert len(tools.calls) == 2
    root = next(s for s in spans if s.parent is None)
    assert root.attributes[A.RETRACE_RUN_STATUS] == "guardrail"
    event = next(e for e in root.events if e.name == A.EVENT_GUARDRAIL)
    assert event.attributes[A.RETRACE_GUARDRAIL] == "loop_detected"


def test_max_turns_and_token_budget() -> None:
    result, _, _ = _run("please add", _config(max_turns=1))
    assert result.status == RunStatus.GUARDRAIL
    assert "1 turns" in result.answer
    result, spans, _ = _run("please add", _config(token_budget=5))
    assert result.status == RunStatus.GUARDRAIL
    root = next(s for s in spans if s.parent is None)
    assert [e.attributes[A.RETRACE_GUARDRAIL] for e in root.events] == ["token_budget"]


def test_wall_time_budget_uses_the_runtime_clock() -> None:
    class SlowClock(LiveRuntime):
        def __init__(self) -> None:
            super().__init__(seed=1)
            self.t = 1000.0

        def now(self) -> float:
            self.t += 10.0
            return self.t

    exporter = InMemorySpanExporter()
    result = asyncio.run(
        run_agent(
            "please add",
            _config(wall_time_s=15),
            model=OfflineModel(SCRIPT),
            tools=FakeTools(),
            runtime=SlowClock(),
            span_exporter=exporter,
        )
    )
    assert result.status == RunStatus.GUARDRAIL
    assert "time budget" in result.answer


def test_policy_deny_returns_a_tool_error_to_the_model() -> None:
    config = _config().model_copy(update={"policy": {"tools": {"deny": ["delete_rows"]}}})
    result, spans, tools = _run("delete the rows", config)
    assert result.status == RunStatus.COMPLETED
    assert tools.calls == []
    assert result.answer.startswith("Could not delete: Denied by policy rule 'tools.deny'")
    span = next(s for s in spans if s.name == "execute_tool delete_rows")
    assert span.attributes[A.RETRACE_POLICY_DECISION] == "deny"
    assert span.attributes[A.RETRACE_TOOL_ERROR] == "true"
    assert any(e.name == A.EVENT_POLICY for e in span.events)


def test_unknown_task_gets_the_fallback_answer() -> None:
    result, spans, _ = _run("what is the meaning of life")
    assert result.status == RunStatus.COMPLETED
    assert result.answer == SCRIPT.fallback
    assert len(spans) == 2


def test_same_seed_same_trajectory() -> None:
    first, spans1, _ = _run("be flaky")
    second, spans2, _ = _run("be flaky")
    assert first.answer == second.answer

    def shape(spans):
        return [(s.name, s.attributes.get(A.GEN_AI_TOOL_CALL_ARGUMENTS)) for s in spans]

    assert shape(spans1) == shape(spans2)


def test_policy_rate_limit_counts_calls_that_ran() -> None:
    config = _config().model_copy(
        update={
            "policy": {"rate_limits": [{"name": "one-add", "tools": ["add"], "max_per_run": 1}]}
        }
    )
    result, spans, tools = _run("please add numbers", config)
    assert len(tools.calls) == 1
    second = [s for s in spans if s.name == "execute_tool add"][1]
    assert second.attributes[A.RETRACE_POLICY_DECISION] == "deny"
    assert second.attributes[A.RETRACE_POLICY_RULE] == "one-add"
    assert result.status == RunStatus.COMPLETED

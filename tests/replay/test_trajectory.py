"""trajectory_from_detail, missing_for_mode and the golden-file format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay import (
    dump_trajectory,
    load_trajectory,
    missing_for_mode,
    require_for_mode,
    trajectory_from_detail,
)
from schemas import attributes as A
from schemas.errors import InvalidInputError, TrajectoryIncompleteError
from schemas.models import (
    TRAJECTORY_FORMAT_VERSION,
    ReplayMode,
    SpanEvent,
    SpanView,
    TraceDetail,
    TraceSummary,
)

T0 = 1_700_000_000_000_000_000


def span(
    span_id: str,
    *,
    parent: str = "",
    name: str = "",
    start: int = 0,
    op: str = "",
    attrs: dict[str, Any] | None = None,
    step_index: int = -1,
    status: str = "Unset",
    status_message: str = "",
    events: list[SpanEvent] | None = None,
    model: str = "",
    tool: str = "",
) -> SpanView:
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (attrs or {}).items()}
    ts = datetime.fromtimestamp((T0 + start) / 1e9, tz=UTC)
    return SpanView(
        trace_id="t1",
        span_id=span_id,
        parent_span_id=parent,
        name=name or op,
        kind="Internal",
        service_name="svc",
        start_time=ts,
        end_time=ts,
        start_time_unix_nano=T0 + start,
        duration_ns=1000,
        status=status,
        status_message=status_message,
        attributes=encoded,
        events=events or [],
        operation=op,
        model=model,
        tool_name=tool,
        step_index=step_index,
    )


def detail(spans: list[SpanView]) -> TraceDetail:
    now = datetime.fromtimestamp(T0 / 1e9, tz=UTC)
    summary = TraceSummary(
        trace_id="t1",
        start_time=now,
        end_time=now,
        duration_ms=1.0,
        span_count=len(spans),
        error_count=0,
        status="ok",
    )
    return TraceDetail(trace=summary, spans=spans)


def retrace_trace() -> TraceDetail:
    """A run as the Retrace runner records it: root, chat, tool (denied later), chat."""
    root = span(
        "r",
        op=A.OP_INVOKE_AGENT,
        name="invoke_agent demo",
        attrs={
            A.RETRACE_RUN_ID: "run-1",
            A.RETRACE_RUN_INPUT: "count rows",
            A.RETRACE_RUN_OUTPUT: "42 rows",
            A.RETRACE_RUN_STATUS: "completed",
            A.RETRACE_AGENT_CONFIG: {"name": "demo", "model": "offline:ds"},
            A.RETRACE_SEED: "7",
            A.RETRACE_CODE_VERSION: "abc123",
            A.RETRACE_CLOCK_VALUES: [1.5, 2.5],
            A.RETRACE_RANDOM_VALUES: [0.25],
            A.RETRACE_IDS: ["id-1", "id-2"],
            A.GEN_AI_AGENT_NAME: "demo",
            A.GEN_AI_REQUEST_MODEL: "offline:ds",
        },
    )
    chat0 = span(
        "c0",
        parent="r",
        start=30,  # out of start-time order on purpose: the step index wins
        op=A.OP_CHAT,
        step_index=0,
        model="ds",
        attrs={
            A.GEN_AI_INPUT_MESSAGES: [{"role": "user", "content": "count rows"}],
            A.RETRACE_MODEL_RESPONSE: {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"name": "query", "args": {"sql": "select 1"}, "id": "call-1"}],
            },
            A.RETRACE_MODEL_PARAMETERS: {"temperature": 0},
            A.GEN_AI_TOOL_DEFINITIONS: [{"name": "query", "parameters": {}}],
            A.GEN_AI_USAGE_INPUT_TOKENS: "10",
            A.GEN_AI_USAGE_OUTPUT_TOKENS: "5",
        },
    )
    tool1 = span(
        "x1",
        parent="r",
        start=20,
        op=A.OP_EXECUTE_TOOL,
        step_index=1,
        tool="query",
        attrs={
            A.GEN_AI_TOOL_CALL_ARGUMENTS: {"sql": "select 1"},
            A.GEN_AI_TOOL_CALL_RESULT: {"rows": [[42]]},
            A.GEN_AI_TOOL_CALL_ID: "call-1",
            A.RETRACE_MCP_SERVER: "data",
            A.RETRACE_SANDBOX_BACKEND: "gvisor",
            A.RETRACE_SANDBOX_EXIT_CODE: "0",
            A.RETRACE_WORKSPACE_AFTER: "m1",
        },
        events=[
            SpanEvent(
                timestamp_unix_nano=T0,
                name=A.EVENT_POLICY,
                attributes={A.RETRACE_POLICY_DECISION: "allow", A.RETRACE_POLICY_RULE: "r1"},
            )
        ],
    )
    # a span made inside the MCP server, nested under the tool span: not a step of its own
    inner = span("in", parent="x1", start=21, op=A.OP_EXECUTE_TOOL, tool="inner")
    tool2 = span(
        "x2",
        parent="r",
        start=25,
        op=A.OP_EXECUTE_TOOL,
        step_index=2,
        tool="write_file",
        status="Error",
        status_message="denied by policy",
        attrs={
            A.GEN_AI_TOOL_CALL_ARGUMENTS: {"path": "/etc/passwd"},
            A.RETRACE_MCP_SERVER: "data",
            A.GEN_AI_TOOL_CALL_RESULT: "denied",
            A.RETRACE_TOOL_ERROR: "true",
            A.RETRACE_POLICY_DECISION: "deny",
            A.RETRACE_APPROVAL_ID: "ap-1",
            A.RETRACE_APPROVAL_STATUS: "rejected",
        },
    )
    chat3 = span(
        "c3",
        parent="r",
        start=40,
        op=A.OP_CHAT,
        step_index=3,
        model="ds",
        attrs={
            A.GEN_AI_INPUT_MESSAGES: [{"role": "user", "content": "count rows"}],
            A.GEN_AI_OUTPUT_MESSAGES: [{"role": "assistant", "content": "42 rows"}],
        },
    )
    return detail([root, chat0, tool1, inner, tool2, chat3])


def test_retrace_trace_becomes_ordered_steps() -> None:
    traj = trajectory_from_detail(retrace_trace())
    assert [s.kind for s in traj.steps] == ["llm", "tool", "tool", "llm"]
    assert [s.index for s in traj.steps] == [0, 1, 2, 3]
    assert traj.run_id == "run-1"
    assert traj.input == "count rows"
    assert traj.output == "42 rows"
    assert traj.seed == 7
    assert traj.code_version == "abc123"
    assert traj.agent_config == {"name": "demo", "model": "offline:ds"}
    assert traj.clock_values == [1.5, 2.5]
    assert traj.random_values == [0.25]
    assert traj.ids == ["id-1", "id-2"]
    assert traj.agent_name == "demo"

    chat0, tool1, tool2, chat3 = traj.steps
    assert chat0.tool_calls == [{"name": "query", "args": {"sql": "select 1"}, "id": "call-1"}]
    assert chat0.output_message is not None and chat0.output_message["role"] == "assistant"
    assert chat0.parameters == {"temperature": 0}
    assert chat0.tool_definitions == [{"name": "query", "parameters": {}}]
    assert (chat0.input_tokens, chat0.output_tokens) == (10, 5)
    assert tool1.tool_name == "query"
    assert tool1.arguments == {"sql": "select 1"}
    assert json.loads(tool1.result) == {"rows": [[42]]}
    assert tool1.exit_code == 0
    assert tool1.policy_decision == "allow" and tool1.policy_rule == "r1"
    assert tool1.mcp_server == "data" and tool1.sandbox_backend == "gvisor"
    assert tool2.error == "denied by policy"
    assert tool2.policy_decision == "deny"
    assert tool2.approval == {"approval_id": "ap-1", "status": "rejected", "decided_by": ""}
    # the workspace before step 2 is the one after step 1
    assert tool2.snapshot_before == "m1"
    assert chat3.output_message == {"role": "assistant", "content": "42 rows"}


def test_start_time_order_when_step_indexes_are_missing() -> None:
    spans = [
        span("r", op=A.OP_INVOKE_AGENT),
        span("b", parent="r", start=20, op=A.OP_EXECUTE_TOOL, tool="second"),
        span("a", parent="r", start=10, op=A.OP_EXECUTE_TOOL, tool="first"),
    ]
    traj = trajectory_from_detail(detail(spans))
    assert [s.tool_name for s in traj.steps] == ["first", "second"]


def test_openinference_trace_gives_best_effort_trajectory() -> None:
    spans = [
        span(
            "root",
            name="agent",
            attrs={A.OI_SPAN_KIND: "AGENT", A.OI_INPUT_VALUE: "hi", A.OI_OUTPUT_VALUE: "bye"},
        ),
        span(
            "llm",
            parent="root",
            start=1,
            name="ChatOpenAI",
            attrs={
                A.OI_SPAN_KIND: "LLM",
                A.OI_LLM_MODEL_NAME: "gpt-x",
                A.OI_INPUT_VALUE: {"messages": [{"role": "user", "content": "hi"}]},
                A.OI_OUTPUT_VALUE: "plain text answer",
                A.OI_LLM_TOKEN_PROMPT: "3",
            },
        ),
        span(
            "tool",
            parent="root",
            start=2,
            name="search",
            attrs={A.OI_SPAN_KIND: "TOOL", A.OI_TOOL_NAME: "search", A.OI_INPUT_VALUE: "cats"},
        ),
    ]
    traj = trajectory_from_detail(detail(spans))
    assert traj.input == "hi" and traj.output == "bye"
    llm, tool = traj.steps
    assert llm.model == "gpt-x"
    assert llm.input_messages == [{"role": "user", "content": "hi"}]
    assert llm.output_message == {"role": "assistant", "content": "plain text answer"}
    assert llm.input_tokens == 3
    assert tool.tool_name == "search"
    assert tool.arguments == {"input": "cats"}
    # no config, no tool result: what replay lacks is named exactly
    missing = missing_for_mode(traj, ReplayMode.RECORDED)
    assert f"the agent config ({A.RETRACE_AGENT_CONFIG} on the root span)" in missing
    assert "step 1 (execute_tool search): no recorded result" in missing


def test_missing_for_mode_names_each_gap() -> None:
    traj = trajectory_from_detail(retrace_trace())
    assert missing_for_mode(traj, ReplayMode.RECORDED) == []
    assert missing_for_mode(traj, "live-model") == []
    traj.steps[1].result = None
    traj.steps[3].output_message = None
    traj.steps[2].snapshot_before = ""
    assert missing_for_mode(traj, ReplayMode.RECORDED) == [
        "step 1 (execute_tool query): no recorded result",
        "step 3 (chat ds): no recorded model response",
    ]
    assert missing_for_mode(traj, ReplayMode.LIVE_TOOLS) == [
        "step 2 (execute_tool write_file): no workspace snapshot before the call",
        "step 3 (chat ds): no recorded model response",
    ]
    assert missing_for_mode(traj, ReplayMode.LIVE_MODEL) == []
    with pytest.raises(TrajectoryIncompleteError, match="step 1 \\(execute_tool query\\)"):
        require_for_mode(traj, ReplayMode.RECORDED)
    traj.agent_config = {}
    assert missing_for_mode(traj, ReplayMode.LIVE_MODEL, config_supplied=True) == []
    assert len(missing_for_mode(traj, ReplayMode.LIVE_MODEL)) == 1


def test_golden_round_trip_is_stable() -> None:
    traj = trajectory_from_detail(retrace_trace())
    text = dump_trajectory(traj)
    again = load_trajectory(text, source="golden.json")
    assert again == traj
    assert dump_trajectory(again) == text


def test_newer_format_version_is_refused_clearly() -> None:
    data = json.loads(dump_trajectory(trajectory_from_detail(retrace_trace())))
    data["format_version"] = TRAJECTORY_FORMAT_VERSION + 1
    data["some_future_field"] = 1
    with pytest.raises(TrajectoryIncompleteError, match="newer than"):
        load_trajectory(data, source="future.json")


def test_malformed_golden_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_trajectory("{", source="x.json")
    with pytest.raises(InvalidInputError, match="steps"):
        load_trajectory({"trace_id": "t", "steps": "nope"})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from([*sorted(A.PAYLOAD_KEYS), A.RETRACE_CLOCK_VALUES, A.RETRACE_IDS]),
        _json | st.text(max_size=8),
        max_size=6,
    ),
    op=st.sampled_from([A.OP_CHAT, A.OP_EXECUTE_TOOL, A.OP_INVOKE_AGENT, ""]),
)
def test_any_attribute_values_never_crash(values: dict[str, Any], op: str) -> None:
    spans = [
        span("r", op=A.OP_INVOKE_AGENT, attrs=values),
        span("s", parent="r", op=op, attrs=values),
    ]
    traj = trajectory_from_detail(detail(spans))
    for mode in ReplayMode:
        assert isinstance(missing_for_mode(traj, mode), list)


def test_resumed_run_segments_are_one_trajectory() -> None:
    first = span(
        "r1",
        op=A.OP_INVOKE_AGENT,
        attrs={
            A.RETRACE_RUN_ID: "run-9",
            A.RETRACE_RUN_INPUT: "delete rows",
            A.RETRACE_RUN_OUTPUT: "Waiting for approval",
            A.RETRACE_RUN_STATUS: "pending_approval",
            A.RETRACE_CLOCK_VALUES: [1.0],
            A.RETRACE_IDS: ["run-9"],
        },
    )
    second = span(
        "r2",
        start=100,
        op=A.OP_INVOKE_AGENT,
        attrs={
            A.RETRACE_RUN_ID: "run-9",
            A.RETRACE_RUN_OUTPUT: "deleted",
            A.RETRACE_RUN_STATUS: "completed",
            A.RETRACE_CLOCK_VALUES: [2.0],
        },
    )
    traj = trajectory_from_detail(detail([second, first]))
    assert traj.input == "delete rows"
    assert (traj.output, traj.run_status) == ("deleted", "completed")
    assert traj.clock_values == [1.0, 2.0]
    assert traj.ids == ["run-9"]

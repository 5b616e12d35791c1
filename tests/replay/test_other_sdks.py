"""Traces of a LangGraph app instrumented only by OpenInference or OpenLLMetry (no Retrace code).

Each test records the fixture graph (``tests.replay.langgraph_fixture``: a ``StateGraph`` with a
real ``BaseChatModel`` subclass, a ``ToolNode`` and two ``@tool`` tools) in a subprocess with the
SDK's LangChain instrumentor and the stock OTLP/HTTP exporter, into a real collector; reads the
trace back through the collector's API; and checks the trajectory against what the graph does
when run again from the recorded input: one step per model call and per tool call, in order,
with the model's answers (tool calls and their ids included), the tool results and errors.
When the spans hide their outputs, replay names the first step lacking what it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from replay import require_for_mode, trajectory_from_detail
from replay._diff import canonical_messages, canonical_tool
from schemas import attributes as A
from schemas.errors import TrajectoryIncompleteError
from schemas.models import StatusCode, Trajectory
from tests.replay.langgraph_fixture import QUESTION, SYSTEM_PROMPT, UNKNOWN_QUESTION, build_graph

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAPH_REF = "tests.replay.langgraph_fixture:graph"
SDKS = ["openinference", "openllmetry"]
# Spans per run: OpenInference 20 (the graph; per node run its chain span: 3 agent, 2 tools,
# 3 tools_condition; per model call a RunnableSequence, a ChatPromptTemplate and the model;
# 2 tool calls), OpenLLMetry one more (an invoke_agent span on top).
SPANS = {"openinference": 20, "openllmetry": 21}


def record(collector: Any, sdk: str, *, question: str = QUESTION, hide: bool = False) -> str:
    """Run the graph under ``sdk`` in a fresh process exporting to ``collector``; its trace id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE_", "TRACELOOP_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    argv = [sys.executable, "-m", "tests.replay.record_other_sdk", "--sdk", sdk]
    argv += ["--endpoint", collector.url, "--question", question]
    if hide:
        argv.append("--hide-outputs")
        env["TRACELOOP_TRACE_CONTENT"] = "false"
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip().splitlines()[-1]
    collector.client.wait_for_trace(trace_id, min_spans=SPANS[sdk])
    return trace_id


def retrace(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m retrace ARGS`` in the repository, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "retrace", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def fetch(collector: Any, trace_id: str) -> Trajectory:
    """The trajectory as the collector serves it, checked against the one built from the spans."""
    served: Trajectory = collector.client.get_trajectory(trace_id)
    assert served == trajectory_from_detail(collector.client.get_trace(trace_id))
    return served


def rerun(graph_input: Any) -> list[BaseMessage]:
    """The messages the graph produces when invoked again with the recorded input."""
    result = build_graph().invoke(graph_input)
    messages: list[BaseMessage] = result["messages"]
    return messages


def assert_matches_run(trajectory: Trajectory, messages: list[BaseMessage]) -> None:
    """One step per AI / tool message after the question, with the same content, in order."""
    produced = messages[1:]
    assert [s.kind for s in trajectory.steps] == [
        "llm" if isinstance(m, AIMessage) else "tool" for m in produced
    ]
    calls: dict[str, Any] = {}
    for number, (step, message) in enumerate(zip(trajectory.steps, produced, strict=True)):
        assert step.index == number
        if isinstance(message, AIMessage):
            assert step.output_message is not None
            (answer,) = messages_from_dict([step.output_message])
            assert isinstance(answer, AIMessage)
            assert answer.content == message.content
            assert answer.tool_calls == message.tool_calls  # names, args and ids
            assert step.tool_calls == message.tool_calls
            asked = [
                message_to_dict(m) for m in [SystemMessage(SYSTEM_PROMPT), *messages[: number + 1]]
            ]
            assert canonical_messages(step.input_messages) == canonical_messages(asked)
            calls.update({str(c["id"]): c for c in message.tool_calls})
            continue
        assert isinstance(message, ToolMessage)
        call = calls[message.tool_call_id]
        assert (step.tool_name, step.tool_call_id) == (call["name"], message.tool_call_id)
        assert step.arguments == call["args"]
        if message.status == "error":
            assert step.status == StatusCode.ERROR.value
            # what the tool raised, as instrument() records it (the replay raises it again)
            assert step.error == step.result == "ValueError: no capital known for Atlantis"
        else:
            assert step.error is None
            assert step.result == message.content


@pytest.mark.parametrize("sdk", SDKS)
def test_langgraph_trace_gives_the_graphs_steps(collector_server: Any, sdk: str) -> None:
    trace_id = record(collector_server, sdk)
    trajectory = fetch(collector_server, trace_id)
    assert trajectory.graph_input == {"messages": [["user", QUESTION]]}
    messages = rerun(trajectory.graph_input)
    assert messages[-1].content == "The capital of France is Paris, and 2+3=5."
    assert_matches_run(trajectory, messages)
    # input and output as instrument() records them: the first and last message's text
    assert (trajectory.input, trajectory.output) == (QUESTION, messages[-1].content)
    for step in trajectory.steps:
        offered = [canonical_tool(d)["name"] for d in step.tool_definitions]
        assert offered == (["lookup_capital", "add"] if step.kind == "llm" else [])
    assert [s.tool_name for s in trajectory.steps if s.kind == "tool"] == ["lookup_capital", "add"]
    assert [s.arguments for s in trajectory.steps if s.kind == "tool"] == [
        {"country": "France"},
        {"a": 2, "b": 3},
    ]
    assert [s.result for s in trajectory.steps if s.kind == "tool"] == ["Paris", "5"]
    require_for_mode(trajectory, "recorded", graph=True)  # nothing missing


@pytest.mark.parametrize("sdk", SDKS)
def test_a_failing_tool_is_a_step_with_its_error(collector_server: Any, sdk: str) -> None:
    trace_id = record(collector_server, sdk, question=UNKNOWN_QUESTION)
    trajectory = fetch(collector_server, trace_id)
    assert trajectory.graph_input == {"messages": [["user", UNKNOWN_QUESTION]]}
    messages = rerun(trajectory.graph_input)
    assert messages[-1].content == "I could not find the capital of Atlantis, and 4+4=8."
    assert_matches_run(trajectory, messages)
    failed = trajectory.steps[1]
    assert (failed.tool_name, failed.arguments) == ("lookup_capital", {"country": "Atlantis"})
    require_for_mode(trajectory, "recorded", graph=True)  # an error is a recorded outcome


@pytest.mark.parametrize(
    ("sdk", "first_step", "graph_input_kept"),
    [
        ("openinference", "step 0 (chat CapitalsModel)", True),
        ("openllmetry", "step 0 (chat CapitalsModel.chat)", False),
    ],
    ids=SDKS,
)
def test_hidden_outputs_name_the_first_step_replay_lacks(
    collector_server: Any, sdk: str, first_step: str, graph_input_kept: bool
) -> None:
    trace_id = record(collector_server, sdk, hide=True)
    trajectory = fetch(collector_server, trace_id)
    # the steps are still there, in order; only what they returned is not
    assert [s.kind for s in trajectory.steps] == ["llm", "tool", "llm", "tool", "llm"]
    assert [s.output_message for s in trajectory.steps if s.kind == "llm"] == [None] * 3
    assert [s.result for s in trajectory.steps if s.kind == "tool"] == [None] * 2
    # OpenInference's hide_outputs keeps inputs; TRACELOOP_TRACE_CONTENT=false drops both
    assert (trajectory.graph_input is not None) is graph_input_kept
    with pytest.raises(TrajectoryIncompleteError) as caught:
        require_for_mode(trajectory, "recorded", graph=True)
    message = caught.value.message
    assert f"{first_step}: no recorded model response" in message
    assert "step 1 " not in message and "4 later step(s) lack theirs too" in message
    assert A.OI_OUTPUT_VALUE in message and "TRACELOOP_TRACE_CONTENT=false" in message
    assert ("the graph's input" in message) is not graph_input_kept

    done = retrace("replay", trace_id, "--mode", "recorded", "--endpoint", collector_server.url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{first_step}: no recorded model response" in done.stderr
    assert "Traceback" not in done.stderr


def assert_graph_replays_recorded(collector: Any, sdk: str, question: str) -> None:
    """``retrace replay --graph`` re-runs the fixture graph from the trace: no divergence."""
    trace_id = record(collector, sdk, question=question)
    done = retrace(
        "replay", trace_id, "--graph", GRAPH_REF, "--mode", "recorded",
        "--endpoint", collector.url, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["error"] == ""
    report = body["report"]
    assert report["diverged"] is False and report["first_divergence"] is None
    assert report["metrics"]["steps_matched"] == report["metrics"]["steps_recorded"] == 5
    # the replay is a trace of its own whose steps are the recording's, in order (its spans
    # reach the store asynchronously: a root and at least the five steps)
    collector.client.wait_for_trace(body["replay_trace_id"], min_spans=6)
    replayed = collector.client.get_trajectory(body["replay_trace_id"])
    original = collector.client.get_trajectory(trace_id)
    assert [(s.kind, s.tool_name) for s in replayed.steps] == [
        (s.kind, s.tool_name) for s in original.steps
    ]


def test_openinference_graph_replays_recorded(collector_server: Any) -> None:
    assert_graph_replays_recorded(collector_server, "openinference", QUESTION)


def test_openllmetry_graph_replays_recorded(collector_server: Any) -> None:
    assert_graph_replays_recorded(collector_server, "openllmetry", QUESTION)


@pytest.mark.parametrize("sdk", SDKS)
def test_graph_replay_serves_a_recorded_tool_error(collector_server: Any, sdk: str) -> None:
    """The tool raised in the recording: the replay raises it again, ToolNode answers the model
    the same way, and the run matches."""
    assert_graph_replays_recorded(collector_server, sdk, UNKNOWN_QUESTION)


@pytest.mark.parametrize(
    ("sdk", "first_gap"),
    [
        ("openinference", "step 0 (chat CapitalsModel): no recorded model response"),
        ("openllmetry", "the graph's input"),
    ],
    ids=SDKS,
)
def test_graph_replay_of_hidden_outputs_exits_2_naming_the_first_gap(
    collector_server: Any, sdk: str, first_gap: str
) -> None:
    trace_id = record(collector_server, sdk, hide=True)
    done = retrace(
        "replay", trace_id, "--graph", GRAPH_REF, "--mode", "recorded",
        "--endpoint", collector_server.url,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert first_gap in done.stderr
    assert "step 0 (chat CapitalsModel" in done.stderr and "step 1 " not in done.stderr
    assert "Traceback" not in done.stderr

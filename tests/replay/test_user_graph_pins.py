"""What a replay of a user's graph pins: the global ``random``, ``uuid.uuid4()`` and the clock's
start (``instrument`` records them; ``replay/_graph.py`` serves them back). In process, through
the Python API, with a zero-argument factory as the graph reference."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from replay import Replayer
from replay._capture import detail_from_spans
from replay._trajectory import trajectory_from_detail
from runner.instrumentation import decode_random_state, encode_random_state, instrument
from schemas.errors import ConfigError
from schemas.models import Trajectory

REF = "tests.replay.test_user_graph_pins:build_graph"


@tool
def roll(sides: int) -> int:
    """Roll a die (really random: only a recording makes it repeatable)."""
    return random.SystemRandom().randint(1, sides)


def draw(state: MessagesState) -> dict[str, Any]:
    rolled = roll.invoke({"sides": 6})  # a tool called from graph code
    era = "old" if time.time() < 1.5e9 else "new"
    answer = f"{random.random():.6f} {uuid.uuid4()} {rolled} {era}"
    return {"messages": [AIMessage(answer)]}


def build_graph() -> Any:
    """The graph, from a zero-argument factory (what ``--graph MODULE:ATTR`` may name)."""
    builder = StateGraph(MessagesState)
    builder.add_node("draw", draw)
    builder.add_edge(START, "draw")
    return builder.compile()


def record() -> Trajectory:
    exporter = InMemorySpanExporter()
    graph = instrument(build_graph(), span_exporter=exporter, graph_ref=REF)
    graph.invoke({"messages": [HumanMessage("draw")]})
    return trajectory_from_detail(detail_from_spans(exporter.get_finished_spans()))


def test_random_state_round_trips() -> None:
    state = random.getstate()
    assert decode_random_state(encode_random_state(state)) == state


def test_random_ids_and_tool_results_are_served_back() -> None:
    recorded = record()
    assert recorded.graph_ref == REF and recorded.graph_method == "invoke"
    assert [s.tool_name for s in recorded.steps] == ["roll"]
    answer = recorded.output
    random.random()  # the process's random moved on since the recording
    outcome = Replayer().replay(recorded, "recorded")
    assert outcome.error == "" and outcome.report is not None
    assert not outcome.report.diverged, outcome.report.first_divergence
    assert outcome.report.metrics.replayed_answer == answer
    # the replay restored the caller's random afterwards, and uuid4 is plain again
    assert uuid.uuid4() != uuid.uuid4()


def test_the_clock_starts_at_the_recorded_time() -> None:
    recorded = record()
    assert recorded.output.endswith(" new")
    old = recorded.model_copy(update={"clock_values": [1.0e9]})
    outcome = Replayer().replay(old, "recorded")
    assert outcome.report is not None and outcome.report.diverged
    assert str(outcome.report.metrics.replayed_answer).endswith(" old")
    assert time.time() > 1.5e9  # only inside the replay


def test_live_tools_runs_the_tool_for_real() -> None:
    recorded = record()
    served = recorded.model_copy(deep=True)
    served.steps[0].result = "7"  # a die never rolls 7: only the recording can say so
    replayed = Replayer().replay(served, "recorded")
    assert replayed.report is not None and " 7 " in str(replayed.report.metrics.replayed_answer)
    live = Replayer().replay(served, "live-tools", graph=REF)
    assert live.report is not None and live.report.first_divergence is not None
    assert live.report.first_divergence.kind.value == "other_output"
    assert " 7 " not in str(live.report.metrics.replayed_answer)


def test_live_tools_of_the_recorded_graph_needs_no_retrace_tools() -> None:
    recorded = record()  # the recording names its graph: no graph= and no live_tools=
    live = Replayer().replay(recorded, "live-tools")
    assert live.error == "" and live.report is not None
    assert live.report.metrics.steps_replayed == len(recorded.steps)


def test_a_replay_run_for_a_collector_client_never_imports_a_graph(tmp_path: Path) -> None:
    recorded = record()
    with pytest.raises(ConfigError, match="never through the collector"):
        Replayer(confine_to=tmp_path).replay(recorded, "recorded")

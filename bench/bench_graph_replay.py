"""Replay of a user's own LangGraph graph (issue 11): a ~50-step graph (a chat model of its own
that calls a tool 24 times, then answers) recorded with ``instrument``, replayed in process in
each mode. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_graph_replay.py [--runs 10] [--calls 24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from replay import Replayer
from replay._capture import detail_from_spans
from replay._trajectory import trajectory_from_detail
from runner.instrumentation import instrument

CALLS = 24


class Counter(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "counter"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        if done < CALLS:
            call = {"name": "square", "args": {"n": done}, "id": f"c{done}", "type": "tool_call"}
            message = AIMessage("", tool_calls=[call])
        else:
            message = AIMessage(f"done after {done} calls")
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def square(n: int) -> int:
    """Square a number."""
    return n * n


def build_graph() -> Any:
    model = Counter().bind_tools([square])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_node("tools", ToolNode([square]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def main() -> None:
    global CALLS
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    CALLS = args.calls
    exporter = InMemorySpanExporter()
    graph = instrument(
        build_graph(), span_exporter=exporter, graph_ref="bench.bench_graph_replay:build_graph"
    )
    payload = {"messages": [HumanMessage("count")]}
    graph.invoke(payload, {"recursion_limit": 4 * CALLS + 10})
    started = time.perf_counter()
    for _ in range(args.runs):
        build_graph().invoke(payload, {"recursion_limit": 4 * CALLS + 10})
    plain = (time.perf_counter() - started) / args.runs
    recorded = trajectory_from_detail(detail_from_spans(exporter.get_finished_spans()))
    print(f"graph: {len(recorded.steps)} steps; a plain run (no Retrace): {plain * 1000:.1f} ms")
    replayer = Replayer()
    for mode in ("recorded", "live-tools", "live-model"):
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            outcome = replayer.replay(recorded, mode)
            times.append(time.perf_counter() - started)
            assert outcome.report is not None and not outcome.report.diverged, outcome.error
        median = statistics.median(times)
        print(
            f"{mode:10} replay: median {median * 1000:.1f} ms over {args.runs} runs "
            f"({median / len(recorded.steps) * 1000:.2f} ms per step, incl. the graph's own code)"
        )


if __name__ == "__main__":
    main()

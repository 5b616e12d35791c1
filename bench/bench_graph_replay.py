"""Replay of a user's own LangGraph graph (issue 11, target (a): a recorded replay adds at most
2 ms per step over running the same graph with the same fake model).

A ~50-step graph (a chat model of its own that calls a tool 24 times, then answers) is compiled
once and recorded once with ``instrument``; then, each ``--runs`` times:

* plain: ``graph.invoke`` on the compiled graph, no Retrace at all;
* instrumented: the same graph wrapped by ``instrument`` (spans to an in-memory exporter), i.e.
  what recording costs;
* each replay mode through ``Replayer().replay(trajectory, mode)`` (everything a user's call
  does: resolving ``module:attr``, the patched seams, capturing the replay's spans, reading them
  back, the report).

Prints median and p90 per variant and the per-step overhead ``(replay - plain) / steps`` against
both plain variants. Asserts nothing.

    .venv/bin/python bench/bench_graph_replay.py [--runs 20] [--calls 24] [--profile recorded]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import statistics
import sys
import time
from collections.abc import Callable
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

CALLS = 24
REF = "bench.bench_graph_replay:graph"  # what the replay resolves (this module, imported)


class Counter(BaseChatModel):
    """A fake model: asks for ``square(n)`` until CALLS tool results are in, then answers."""

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


graph = build_graph()  # compiled once, as a user's module would


def _timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (all threads of the process) seconds of each run, after a warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _profile(fn: Callable[[], Any], runs: int) -> None:
    """cProfile ``fn``, including the worker thread a sync graph's replay runs in (cProfile
    sees one thread: a second profiler is enabled inside ``InstrumentedGraph.invoke``)."""
    from runner.instrumentation import InstrumentedGraph

    fn()  # warm-up
    main_profiler, thread_profiler = cProfile.Profile(), cProfile.Profile()
    invoke = InstrumentedGraph.invoke

    def profiled(self: Any, *args: Any, **kwargs: Any) -> Any:
        thread_profiler.enable()
        try:
            return invoke(self, *args, **kwargs)
        finally:
            thread_profiler.disable()

    InstrumentedGraph.invoke = profiled  # type: ignore[method-assign]
    main_profiler.enable()
    for _ in range(runs):
        fn()
    main_profiler.disable()
    InstrumentedGraph.invoke = invoke  # type: ignore[method-assign]
    for title, profiler in (("main thread", main_profiler), ("graph thread", thread_profiler)):
        print(f"===== {title} =====")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--profile", choices=("recorded", "live-tools", "live-model"))
    args = parser.parse_args()

    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from replay import Replayer
    from replay._capture import detail_from_spans
    from replay._trajectory import trajectory_from_detail
    from runner.instrumentation import instrument

    # The replay imports REF's module by name: use that module (not __main__) throughout, so
    # the recording, the plain runs and the replays share one graph and one CALLS.
    bench = importlib.import_module("bench.bench_graph_replay")
    bench.CALLS = args.calls
    limit = {"recursion_limit": 4 * args.calls + 10}
    payload = {"messages": [HumanMessage("count")]}
    exporter = InMemorySpanExporter()
    instrumented = instrument(bench.graph, span_exporter=exporter, graph_ref=REF)
    instrumented.invoke(payload, limit)
    recorded = trajectory_from_detail(detail_from_spans(exporter.get_finished_spans()))
    steps = len(recorded.steps)

    replayer = Replayer()
    if args.profile:
        _profile(lambda: replayer.replay(recorded, args.profile), args.runs)
        return

    def replay(mode: str) -> Callable[[], Any]:
        def run() -> None:
            outcome = replayer.replay(recorded, mode)
            assert outcome.report is not None and not outcome.report.diverged, outcome.error

        return run

    def instrumented_run() -> None:
        instrumented.invoke(payload, limit)
        exporter.clear()

    variants = {
        "plain": _timed(lambda: bench.graph.invoke(payload, limit), args.runs),
        "instrumented": _timed(instrumented_run, args.runs),
    }
    for mode in ("recorded", "live-tools", "live-model"):
        variants[mode] = _timed(replay(mode), args.runs)
    print(f"graph: {steps} steps, {args.runs} runs each (after one warm-up run)")
    for clock, which in (("wall", 0), ("CPU", 1)):
        plain = statistics.median(variants["plain"][which])
        traced = statistics.median(variants["instrumented"][which])
        print(
            f"{clock + ' time':13} {'median ms':>10} {'p90 ms':>8}  {'ms/step over plain':>19}"
            f"  {'ms/step over instrumented':>26}"
        )
        for name, both in variants.items():
            times = both[which]
            median = statistics.median(times)
            over_plain = f"{(median - plain) / steps * 1000:.2f}" if name != "plain" else "-"
            over_traced = (
                f"{(median - traced) / steps * 1000:.2f}"
                if name not in ("plain", "instrumented")
                else "-"
            )
            print(
                f"{name:13} {median * 1000:10.1f} {_p90(times) * 1000:8.1f}  {over_plain:>19}"
                f"  {over_traced:>26}"
            )


if __name__ == "__main__":
    main()

"""Tracing overhead of the runner: per span, and for a 20-step offline run.

    .venv/bin/python bench/bench_tracing.py [--runs 30] [--spans 2000]

Compares the same run (offline model, in-process tools, so the agent's own code dominates and
the overhead share is the worst case) with tracing off (an ALWAYS_OFF sampler: spans are not
recorded) against tracing on with the real exporter path (BatchSpanProcessor + OTLP/HTTP
protobuf to a real ``retrace serve`` started here on a temp data dir). Prints figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: E402

import runner.run as run_module  # noqa: E402
from runner.config import AgentConfig, GuardrailsConfig  # noqa: E402
from runner.offline import OfflineModel, OfflineScript  # noqa: E402
from runner.runtime import LiveRuntime  # noqa: E402
from runner.seams import ToolResult, ToolSpec  # noqa: E402
from runner.tracing import PinnableIdGenerator, RunTracer, build_tracer_provider  # noqa: E402

SANDBOX_CALL_S = 0.030  # the warm-pool gVisor p50 target for one tool call
CALLS = 10  # 10 tool calls + 10 model calls that ask for them = 20 steps (+ the final answer)
SCRIPT = OfflineScript.model_validate(
    {
        "name": "bench",
        "tasks": [
            {
                "name": "b",
                "match": "bench",
                "steps": [
                    *({"call": "echo", "args": {"text": f"value {i} " * 20}} for i in range(CALLS)),
                    {"answer": "done: {{ last }}"},
                ],
            }
        ],
    }
)
CONFIG = AgentConfig(
    name="bench",
    model="offline:bench",
    guardrails=GuardrailsConfig(max_turns=50, loop_threshold=50),
)


class EchoTools:
    delay_s = 0.0

    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec("echo", "echo", {"type": "object"}, server="bench")]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return ToolResult(json.dumps({"echo": arguments["text"]}))


def _untraced_provider(**_: Any) -> TracerProvider:
    return TracerProvider(sampler=ALWAYS_OFF, id_generator=PinnableIdGenerator())


async def _one_run(endpoint: str | None, delay_s: float) -> float:
    tools = EchoTools()
    tools.delay_s = delay_s
    start = time.perf_counter()
    result = await run_module.run_agent(
        "bench it",
        CONFIG,
        model=OfflineModel(SCRIPT),
        tools=tools,
        runtime=LiveRuntime(seed=1),
        endpoint=endpoint,
    )
    elapsed = time.perf_counter() - start
    assert result.steps == 2 * CALLS + 1, result
    return elapsed


def _runs(n: int, endpoint: str | None, traced: bool, delay_s: float = 0.0) -> list[float]:
    original = run_module.build_tracer_provider
    if not traced:
        run_module.build_tracer_provider = _untraced_provider  # type: ignore[assignment]
    try:
        asyncio.run(_one_run(endpoint, delay_s))  # warm-up
        return [asyncio.run(_one_run(endpoint, delay_s)) for _ in range(n)]
    finally:
        run_module.build_tracer_provider = original


def _per_span(n: int, endpoint: str) -> tuple[float, float]:
    """Microseconds per chat span (10-message input) and per tool span, exporter attached."""
    provider = build_tracer_provider(endpoint=endpoint)
    tracer = RunTracer(provider, agent_name="bench", provider_name="offline", model_name="m")
    tracer.start_root({})
    messages = [SystemMessage("system prompt " * 20)] + [
        HumanMessage(f"message {i} " * 30) for i in range(9)
    ]
    answer = AIMessage(
        "answer " * 30,
        usage_metadata={"input_tokens": 300, "output_tokens": 30, "total_tokens": 330},
    )
    start = time.perf_counter()
    for i in range(n):
        with tracer.chat_span(messages, [], step_index=i, parameters={"temperature": 0}) as span:
            tracer.record_chat(span, answer)
    chat_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for i in range(n):
        with tracer.tool_span(
            "echo", call_id=f"c{i}", arguments={"text": "x" * 200}, step_index=i
        ) as span:
            tracer.record_tool_result(span, ToolResult("y" * 200))
    tool_us = (time.perf_counter() - start) / n * 1e6
    tracer.finish_root(run_module.RunStatus.COMPLETED)
    provider.shutdown()
    return chat_us, tool_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--spans", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = 43000 + os.getpid() % 1000
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(Path(tmp) / "data"),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{endpoint}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            off = _runs(args.runs, endpoint, traced=False)
            on = _runs(args.runs, endpoint, traced=True)
            slow_runs = max(3, args.runs // 5)
            slow_off = _runs(slow_runs, endpoint, traced=False, delay_s=SANDBOX_CALL_S)
            slow_on = _runs(slow_runs, endpoint, traced=True, delay_s=SANDBOX_CALL_S)
            chat_us, tool_us = _per_span(args.spans, endpoint)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    off_ms, on_ms = statistics.median(off) * 1e3, statistics.median(on) * 1e3
    print(f"20-step offline run (10 tool calls, in-process tools), median of {args.runs}:")
    print(f"  tracing off (ALWAYS_OFF sampler): {off_ms:8.2f} ms")
    print(f"  tracing on (OTLP/HTTP batch)    : {on_ms:8.2f} ms")
    print(
        f"  overhead                        : {on_ms - off_ms:8.2f} ms "
        f"({(on_ms - off_ms) / off_ms * 100:.1f}% of the untraced run; "
        f"{(on_ms - off_ms) / (2 * CALLS + 2) * 1e3:.0f} us per span)"
    )
    s_off, s_on = statistics.median(slow_off) * 1e3, statistics.median(slow_on) * 1e3
    print(
        f"same run, each tool call taking {SANDBOX_CALL_S * 1e3:.0f} ms (a warm-pool sandbox "
        f"call), median of {slow_runs}:"
    )
    print(
        f"  tracing off: {s_off:8.2f} ms   on: {s_on:8.2f} ms   overhead "
        f"{(s_on - s_off) / s_off * 100:.1f}%"
    )
    print(f"per span, exporter attached, {args.spans} spans each:")
    print(f"  chat span (10-message input)    : {chat_us:8.1f} us")
    print(f"  execute_tool span               : {tool_us:8.1f} us")


if __name__ == "__main__":
    main()

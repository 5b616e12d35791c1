"""Tracing overhead of the runner: per span, and for a 20-step offline run.

    .venv/bin/python bench/bench_tracing.py [--runs 30] [--spans 2000]

Compares the same run (offline model, in-process tools, so the agent's own code dominates and
the overhead share is the worst case) with tracing off (an ALWAYS_OFF sampler: spans are not
recorded) against tracing on with the real exporter path (the shared BatchSpanProcessor +
OTLP/HTTP protobuf to a real ``retrace serve`` started here on a temp data dir), alternating
runs; then the same with tool calls that take a sandbox's time, and with the real sandbox MCP
server. Prints figures only.
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
from runner.tracing import (  # noqa: E402
    PinnableIdGenerator,
    RunTracer,
    build_tracer_provider,
    flush_exports,
)

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


def _runs(n: int, endpoint: str | None, delay_s: float = 0.0) -> tuple[list[float], list[float]]:
    """``n`` untraced and ``n`` traced runs, alternating (machine-load drift hits both)."""
    original = run_module.build_tracer_provider
    off: list[float] = []
    on: list[float] = []
    try:
        for i in range(2 * n + 2):
            traced = i % 2 == 1
            run_module.build_tracer_provider = (  # type: ignore[assignment]
                original if traced else _untraced_provider
            )
            elapsed = asyncio.run(_one_run(endpoint, delay_s))
            if i >= 2:  # one warm-up run of each
                (on if traced else off).append(elapsed)
    finally:
        run_module.build_tracer_provider = original
    return off, on


def _flush_ms(endpoint: str) -> float:
    """How long the final export of one run's spans takes (what the CLI waits for once)."""
    flush_exports()
    asyncio.run(_one_run(endpoint, 0.0))
    start = time.perf_counter()
    flush_exports()
    return (time.perf_counter() - start) * 1e3


SANDBOX_SCRIPT = OfflineScript.model_validate(
    {
        "name": "bench",
        "tasks": [
            {
                "name": "b",
                "match": "bench",
                "steps": [
                    *(
                        {"call": "run_python", "args": {"code": f"print(sum(range({i} * 1000)))"}}
                        for i in range(CALLS)
                    ),
                    {"answer": "done: {{ last }}"},
                ],
            }
        ],
    }
)


def _sandbox_runs(n: int, endpoint: str, backend: str) -> tuple[list[float], list[float]]:
    """The 20-step run against the real sandbox MCP server (stdio) on ``backend``, alternating
    untraced and traced runs (so drift in machine load hits both); server start-up and a
    warm-up run are outside the timed part. Returns (off, on) durations."""
    from runner.assembly import live_tools
    from runner.config import McpServerConfig
    from schemas.settings import Settings

    server = McpServerConfig(
        name="sandbox", command="{python}", args=["-m", "runner.mcp_servers.sandbox_server"]
    )
    config = CONFIG.model_copy(update={"mcp_servers": [server]})
    settings = Settings(endpoint=endpoint, sandbox_backend=backend, insecure=True)
    original = run_module.build_tracer_provider
    off: list[float] = []
    on: list[float] = []

    async def timed() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with live_tools(config, settings, Path(tmp), None) as tools:
                for i in range(2 * n + 1):
                    traced = i % 2 == 0
                    run_module.build_tracer_provider = (  # type: ignore[assignment]
                        original if traced else _untraced_provider
                    )
                    start = time.perf_counter()
                    result = await run_module.run_agent(
                        "bench it",
                        config,
                        model=OfflineModel(SANDBOX_SCRIPT),
                        tools=tools,
                        runtime=LiveRuntime(seed=1),
                        endpoint=endpoint,
                    )
                    elapsed = time.perf_counter() - start
                    assert result.steps == 2 * CALLS + 1, result
                    if i:  # the first run warms the sandbox up
                        (on if traced else off).append(elapsed)

    try:
        asyncio.run(timed())
    finally:
        run_module.build_tracer_provider = original
    return off, on


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
    parser.add_argument("--sandbox-runs", type=int, default=5)
    parser.add_argument("--backend", default="gvisor", choices=["gvisor", "bwrap", "process"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = 43000 + os.getpid() % 1000
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retrace",
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
            off, on = _runs(args.runs, endpoint)
            slow_runs = max(3, args.runs // 5)
            slow_off, slow_on = _runs(slow_runs, endpoint, delay_s=SANDBOX_CALL_S)
            flush_ms = statistics.median(_flush_ms(endpoint) for _ in range(5))
            chat_us, tool_us = _per_span(args.spans, endpoint)
            real_off, real_on = _sandbox_runs(args.sandbox_runs, endpoint, args.backend)
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
    r_off, r_on = statistics.median(real_off) * 1e3, statistics.median(real_on) * 1e3
    print(
        f"same 20 steps, 10 run_python calls on the real sandbox MCP server ({args.backend}), "
        f"median of {args.sandbox_runs}:"
    )
    print(
        f"  tracing off: {r_off:8.2f} ms   on: {r_on:8.2f} ms   overhead "
        f"{(r_on - r_off) / r_off * 100:.1f}%"
    )
    print(
        f"final export of one run's 22 spans to the collector (flush_exports, once per CLI "
        f"run): {flush_ms:.1f} ms"
    )
    print(f"per span, exporter attached, {args.spans} spans each:")
    print(f"  chat span (10-message input)    : {chat_us:8.1f} us")
    print(f"  execute_tool span               : {tool_us:8.1f} us")


if __name__ == "__main__":
    main()

"""MCP servers in their own sandbox vs as host processes: cold start-up and tool-call round trip.

    .venv/bin/python bench/bench_mcp_sandbox.py [--calls 200] [--starts 3]
        [--backends process,gvisor,bwrap]

Per server — the bundled data server (``query`` of one row) and ``mcp-server-time`` from PyPI
(``get_current_time``) — and per backend (``process``: a plain host process as before; ``gvisor``
/ ``bwrap``: the server's own sandbox, as a run starts it): the cold start (spawn + sandbox
boot + MCP handshake + tools/list, through ``McpToolExecutor``) over ``--starts`` starts, then
``--calls`` sequential calls on one warm server, p50/p99 in ms; and the warm overhead of each
sandbox over ``process`` (p50 difference). Calls go through the same ``McpToolExecutor.call``
a run uses (per-call cgroup reads included).

Also printed: the server side's CPU per call (steadier than latency on a shared box): for a
sandboxed server the sandbox's host cgroup (the server plus gVisor's sentry and gofer, or bwrap),
for a host process its own CPU from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.mcp_bridge import McpServer, McpToolExecutor  # noqa: E402
from runner.sandbox.servers import ServerPolicy  # noqa: E402

TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
SERVERS: dict[str, tuple[str, list[str], str, dict[str, Any]]] = {
    "data": (
        sys.executable,
        ["-m", "runner.mcp_servers.data_server"],
        "query",
        {"sql": "SELECT 1"},
    ),
    "mcp-server-time": (
        TIME_SERVER,
        ["--local-timezone", "UTC"],
        "get_current_time",
        {"timezone": "Europe/Paris"},
    ),
}


def _server(name: str, backend: str) -> McpServer:
    command, args, _, _ = SERVERS[name]
    policy = None if backend == "process" else ServerPolicy(backend=backend)  # type: ignore[arg-type]
    return McpServer(name, command, list(args), policy=policy)


def _q(samples_ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(sorted(samples_ms), n=100)
    return q[49], q[98]


async def _cold(name: str, backend: str) -> float:
    start = time.perf_counter()
    async with McpToolExecutor([_server(name, backend)]) as tools:
        await tools.list_tools()
        took = time.perf_counter() - start
    return took * 1000


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                out.add(int(entry))
    return out


def _process_cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_MS


def _server_cpu_ms(executor: McpToolExecutor, pid: int | None) -> float:
    """CPU the server side has used so far: its sandbox's cgroup, or its host process."""
    (conn,) = executor._servers.values()
    if conn.sandbox is not None:
        return (conn.sandbox.cpu_ns() or 0) / 1e6
    return _process_cpu_ms(pid) if pid is not None else float("nan")


async def _warm(name: str, backends: list[str], calls: int) -> dict[str, list[float]]:
    """Round trips of one warm server per backend, the backends' calls interleaved (A B C A B
    C ...) so that the machine's shared load hits each of them alike."""
    _, _, tool, args = SERVERS[name]
    out: dict[str, list[float]] = {b: [] for b in backends}  # + "cpu:<backend>": [ms/call]
    executors = [McpToolExecutor([_server(name, b)]) for b in backends]
    pids: dict[str, int | None] = {}
    for backend, executor in zip(backends, executors, strict=True):
        before = _children()
        await executor.__aenter__()
        new = _children() - before
        pids[backend] = min(new) if backend == "process" and new else None
    try:
        for executor in executors:
            for _ in range(5):  # warm-up
                await executor.call(tool, args, step_index=0, call_id="warm")
        cpu0 = {b: _server_cpu_ms(e, pids[b]) for b, e in zip(backends, executors, strict=True)}
        for i in range(calls):
            for backend, executor in zip(backends, executors, strict=True):
                start = time.perf_counter()
                result = await executor.call(tool, args, step_index=i, call_id=str(i))
                out[backend].append((time.perf_counter() - start) * 1000)
                if result.is_error:
                    raise SystemExit(f"{name} on {backend}: {result.content}")
        for backend, executor in zip(backends, executors, strict=True):
            used = _server_cpu_ms(executor, pids[backend]) - cpu0[backend]
            out[f"cpu:{backend}"] = [used / calls]
    finally:
        for executor in reversed(executors):
            await executor.__aexit__(None, None, None)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--backends", default="process,gvisor,bwrap")
    opts = parser.parse_args()
    backends = opts.backends.split(",")
    print(
        f"{'server':<16} {'backend':<8} {'cold start p50':>15} {'call p50':>10} {'call p99':>10}"
        f" {'server CPU/call':>16}"
    )
    for name in SERVERS:
        colds: dict[str, list[float]] = {b: [] for b in backends}
        for _ in range(opts.starts):
            for backend in backends:
                colds[backend].append(await _cold(name, backend))
        warm = await _warm(name, backends, opts.calls)
        warm_p50: dict[str, float] = {}
        for backend in backends:
            p50, p99 = _q(warm[backend])
            warm_p50[backend] = p50
            cpu = warm[f"cpu:{backend}"][0]
            print(
                f"{name:<16} {backend:<8} {statistics.median(colds[backend]):12.0f} ms "
                f"{p50:7.2f} ms {p99:7.2f} ms {cpu:13.2f} ms"
            )
        if "process" in warm_p50:
            for backend, p50 in warm_p50.items():
                if backend != "process":
                    overhead = p50 - warm_p50["process"]
                    print(f"{name:<16} {backend:<8} warm overhead p50: {overhead:+.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())

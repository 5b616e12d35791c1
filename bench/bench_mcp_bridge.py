"""Tool-call latency through the MCP hop: McpToolExecutor -> stdio -> bundled server -> back.

    .venv/bin/python bench/bench_mcp_bridge.py [--calls 300] [--sandbox-backend BACKEND]

Times sequential ``call()``s of the data server (``query`` of one row from the sample dataset:
the MCP + JSON-RPC + policy-free bridge overhead) and, with ``--sandbox-backend``, of the
sandbox server's ``run_python`` (``print(1)``) on that backend. Prints p50/p90/p99 in ms.
Policy decisions are timed too (pure, in-process) for the SQL read-only rule.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.mcp_bridge import McpToolExecutor, data_server, sandbox_server  # noqa: E402
from runner.policy import Policy  # noqa: E402


def _report(label: str, samples_s: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100)
    print(
        f"{label:<40} n={len(ms):<5} p50={q[49]:8.3f} ms  p90={q[89]:8.3f} ms  p99={q[98]:8.3f} ms"
    )


async def _time_calls(
    tools: McpToolExecutor, name: str, args: dict[str, str], n: int
) -> list[float]:
    await tools.call(name, args, step_index=0, call_id="warm")
    out = []
    for i in range(n):
        start = time.perf_counter()
        result = await tools.call(name, args, step_index=i, call_id=str(i))
        out.append(time.perf_counter() - start)
        if result.is_error:
            raise SystemExit(f"{name} failed: {result.content}")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sandbox-backend", choices=["gvisor", "bwrap", "process"])
    args = parser.parse_args()

    async with McpToolExecutor([data_server()]) as tools:
        samples = await _time_calls(tools, "query", {"sql": "SELECT 1 AS one"}, args.calls)
    _report("data.query (stdio round trip)", samples)

    policy = Policy.from_dict(
        {"rules": [{"name": "ro", "check": "sql_read_only", "tools": ["query"]}]}
    )
    sql = "WITH t AS (SELECT customer_id, count(*) n FROM orders GROUP BY 1) SELECT * FROM t"
    decisions = []
    for _ in range(args.calls):
        start = time.perf_counter()
        policy.decide("query", {"sql": sql})
        decisions.append(time.perf_counter() - start)
    _report("policy.decide (sql_read_only, CTE)", decisions)

    if args.sandbox_backend:
        with tempfile.TemporaryDirectory() as tmp:
            server = sandbox_server(
                Path(tmp), backend=args.sandbox_backend, insecure=args.sandbox_backend == "process"
            )
            async with McpToolExecutor([server]) as tools:
                n = max(10, args.calls // 10)
                samples = await _time_calls(tools, "run_python", {"code": "print(1)"}, n)
            _report(f"sandbox.run_python ({args.sandbox_backend})", samples)


if __name__ == "__main__":
    asyncio.run(main())

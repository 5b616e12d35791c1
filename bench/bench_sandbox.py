"""Tool-call latency of a trivial Python tool (``python3 -c pass``) per sandbox backend.

    .venv/bin/python bench/bench_sandbox.py [--calls 30]

Rows: gVisor cold (a sandbox booted for the call), gVisor warm (served by a sandbox the pool
booted beforehand for the workspace), gVisor warm running ``/bin/sh -c :`` (the exec path, not
the Python fork path), bubblewrap, and a bare process. Latency is the caller's wall time of
``backend.run``; teardown happens in the background and is excluded, the pool refill is waited
for between calls (an agent's model turn sits between two tool calls). Needs root and runsc.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.sandbox import Limits, SandboxBackend, get_backend  # noqa: E402
from runner.sandbox.gvisor import GVisorBackend  # noqa: E402

TOOL = ["python3", "-c", "pass"]
LIMITS = Limits()


def measure(
    backend: SandboxBackend, ws: Path, argv: list[str], calls: int, between: Callable[[], None]
) -> list[float]:
    samples = []
    backend.run(argv, workspace=ws, limits=LIMITS)  # warm the page cache, not measured
    for _ in range(calls):
        between()
        start = time.perf_counter()
        result = backend.run(argv, workspace=ws, limits=LIMITS)
        samples.append((time.perf_counter() - start) * 1000.0)
        if result.exit_code != 0:
            raise SystemExit(f"{backend.name}: {argv} failed: {result}")
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="retrace-bench-") as tmp:
        ws = Path(tmp)
        cold = GVisorBackend(warm_pool_size=0)
        rows.append(("gvisor cold", measure(cold, ws, TOOL, args.calls, cold.wait_idle)))
        cold.close()

        warm = GVisorBackend(warm_pool_size=2)

        def refill() -> None:
            warm.wait_idle()
            warm.prewarm(ws, LIMITS)

        rows.append(("gvisor warm pool", measure(warm, ws, TOOL, args.calls, refill)))
        shell = measure(warm, ws, ["/bin/sh", "-c", ":"], args.calls, refill)
        rows.append(("gvisor warm pool, sh -c :", shell))
        served = dict(warm.served)
        warm.close()

        with get_backend("bwrap") as bwrap:
            rows.append(("bwrap", measure(bwrap, ws, TOOL, args.calls, lambda: None)))
        with get_backend("process", insecure=True) as process:
            rows.append(
                ("process (insecure)", measure(process, ws, TOOL, args.calls, lambda: None))
            )

    print(f"tool-call latency, {args.calls} calls each, argv {TOOL} unless noted (ms)")
    print(f"{'backend':<28}{'p50':>9}{'p99':>9}{'mean':>9}{'min':>9}")
    for name, samples in rows:
        print(
            f"{name:<28}{pct(samples, 0.5):>9.1f}{pct(samples, 0.99):>9.1f}"
            f"{statistics.fmean(samples):>9.1f}{min(samples):>9.1f}"
        )
    print(f"gvisor warm backend served: {served}")


if __name__ == "__main__":
    main()

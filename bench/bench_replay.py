"""Replay benchmarks: recorded-mode replay of a ~50-step trajectory, and ``retrace ci`` on 100
golden trajectories. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_replay.py [--runs 20] [--suite 100] [--workers 2]

Targets (issue 5): a 50-step recorded replay ≤ 0.5 s (≤ 10 ms of overhead per step beyond the
agent's own code); ``retrace ci`` on 100 golden trajectories ≤ 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay import Replayer, dump_trajectory, trajectory_from_detail
from replay._capture import CaptureExporter, detail_from_spans
from runner.config import AgentConfig, GuardrailsConfig, McpServerConfig
from runner.offline import OfflineModel
from runner.run import run_agent
from runner.runtime import LiveRuntime
from schemas.models import Trajectory
from tests.replay.agent_fixture import SCRIPT, TASK, FileTools


def long_script(calls: int) -> str:
    steps = "".join(
        f'      - call: query\n        args: {{sql: "select * from sales limit {i + 1}"}}\n'
        for i in range(calls)
    )
    return (
        "name: bench\ntasks:\n  - name: long\n    match: long analysis\n    steps:\n"
        + steps
        + '      - answer: "done: {{ last }}"\n'
    )


def record(script: str, task: str, tmp: Path, max_turns: int = 100) -> Trajectory:
    path = tmp / f"script-{abs(hash(script))}.yaml"
    path.write_text(script)
    config = AgentConfig(
        name="bench",
        model="offline:bench",
        offline_script=str(path),
        mcp_servers=[
            McpServerConfig(name="data", command="data-server"),
            McpServerConfig(name="files", command="files-server"),
        ],
        guardrails=GuardrailsConfig(max_turns=max_turns, loop_threshold=50),
    )
    capture = CaptureExporter()
    workspace = tmp / "ws"
    workspace.mkdir(exist_ok=True)
    result = asyncio.run(
        run_agent(
            task,
            config,
            model=OfflineModel.from_file(path, name="bench"),
            tools=FileTools(workspace),
            runtime=LiveRuntime(1),
            span_exporter=capture,
        )
    )
    return trajectory_from_detail(detail_from_spans(capture.spans, result.trace_id))


def bench_single(tmp: Path, runs: int) -> None:
    trajectory = record(long_script(25), "a long analysis", tmp)
    steps = len(trajectory.steps)
    replayer = Replayer()
    replayer.replay(trajectory, "recorded")  # warm imports and caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        outcome = replayer.replay(trajectory, "recorded")
        times.append(time.perf_counter() - start)
        assert outcome.report is not None and not outcome.report.diverged, outcome.report
    median = statistics.median(times)
    # the same run done live (offline model, in-process tools): the agent's own code's share
    live = []
    for _ in range(max(3, runs // 4)):
        start = time.perf_counter()
        record(long_script(25), "a long analysis", tmp)
        live.append(time.perf_counter() - start)
    live_median = statistics.median(live)
    print(f"recorded replay, {steps}-step trajectory, {runs} runs:")
    print(
        f"  median {median * 1000:.1f} ms  p90 {sorted(times)[int(runs * 0.9) - 1] * 1000:.1f} ms"
        f"  min {min(times) * 1000:.1f} ms  -> {steps / median:.0f} steps/s"
        f"  ({median / steps * 1000:.2f} ms/step; target ≤ 500 ms)"
    )
    print(
        f"  the live run of the same agent: median {live_median * 1000:.1f} ms -> replay overhead "
        f"{(median - live_median) / steps * 1000:+.2f} ms/step (target ≤ 10 ms)"
    )


def bench_ci(tmp: Path, suite: int, workers: int) -> None:
    base = record(SCRIPT, TASK, tmp)
    golden = tmp / "golden"
    golden.mkdir()
    for i in range(suite):
        copy = base.model_copy(deep=True)
        copy.trace_id = f"{i:032x}"
        (golden / f"golden-{i:03d}.json").write_text(dump_trajectory(copy))
    junit = tmp / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "retrace",
        "ci",
        str(golden),
        "--workers",
        str(workers),
        "--junit",
        str(junit),
        "--quiet",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    print(
        f"retrace ci, {suite} golden trajectories ({len(base.steps)} steps each), "
        f"{workers} workers:"
    )
    print(
        f"  {elapsed:.1f} s wall (exit {proc.returncode}; target ≤ 60 s)"
        f"  -> {suite / elapsed:.1f} trajectories/s, "
        f"{suite * len(base.steps) / elapsed:.0f} steps/s"
    )
    print(
        f"  {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--suite", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retrace-bench-replay-") as tmp:
        bench_single(Path(tmp), args.runs)
        bench_ci(Path(tmp), args.suite, args.workers)


if __name__ == "__main__":
    main()

"""``retrace ci`` over goldens of a user's own LangGraph graph (issue 11, target (b): 100 goldens
in at most 60 s on 2 cores).

A user project (tests/replay/user_graph_project.py: a chat model class of its own, two
``@tool`` tools, a ``ToolNode``; 5 steps a run) is written to a temporary directory; its graph
is run 100 times with varied questions through ``instrument(graph_ref="weatherapp.base:graph")``
and each run is written as a golden file the way ``retrace export`` writes one
(``trajectory_from_detail`` + ``dump_trajectory``). Then

    python -m retrace ci GOLDEN_DIR --graph weatherapp.base:graph --junit FILE --workers N

runs as a real subprocess in the project's directory, for each ``--workers`` value; prints the
wall time, the time per golden and the processes used, and the start-up cost of a bare
``python -m retrace --help`` for scale. Asserts only that every golden replays clean.

    .venv/bin/python bench/bench_graph_ci.py [--goldens 100] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CITIES = [
    "Paris",
    "Lyon",
    "Oslo",
    "Rome",
    "Lima",
    "Quito",
    "Cairo",
    "Delhi",
    "Tokyo",
    "Seoul",
    "Hanoi",
    "Dakar",
    "Accra",
    "Nairobi",
    "Kyiv",
    "Riga",
    "Vilnius",
    "Tallinn",
    "Dublin",
    "Lisbon",
    "Madrid",
    "Bern",
    "Vienna",
    "Prague",
    "Warsaw",
    "Sofia",
    "Athens",
    "Ankara",
    "Baku",
    "Tbilisi",
    "Yerevan",
    "Tehran",
    "Kabul",
    "Doha",
    "Muscat",
    "Amman",
    "Beirut",
    "Tunis",
    "Algiers",
    "Rabat",
    "Bamako",
    "Niamey",
    "Abuja",
    "Luanda",
    "Harare",
    "Lusaka",
    "Maputo",
    "Gaborone",
    "Windhoek",
    "Pretoria",
]
QUESTIONS = (
    "What is the weather in {}?",
    "Will I need an umbrella today in {}?",
    "How warm is it right now in {}",
    "weather report for {}",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO)  # Retrace itself; the project comes from the cwd
    return env


def record_goldens(project: Path, golden: Path, count: int) -> int:
    """``count`` runs of the project's graph, instrumented, as golden files; returns the steps
    of the first."""
    sys.path.insert(0, str(project))
    from langchain_core.messages import HumanMessage

    from replay._capture import CaptureExporter, detail_from_spans
    from replay._trajectory import dump_trajectory, trajectory_from_detail
    from runner.instrumentation import instrument

    graph = importlib.import_module("weatherapp.base").graph  # the project's own module

    golden.mkdir(parents=True)
    steps = 0
    for i in range(count):
        exporter = CaptureExporter()
        wrapped = instrument(
            graph, span_exporter=exporter, agent_name="weather-agent", graph_ref=REF
        )
        question = QUESTIONS[i % len(QUESTIONS)].format(CITIES[i % len(CITIES)])
        wrapped.invoke({"messages": [HumanMessage(question)]}, {"configurable": {"user": f"u{i}"}})
        trajectory = trajectory_from_detail(
            detail_from_spans(exporter.spans, wrapped.last_trace_id)
        )
        steps = steps or len(trajectory.steps)
        path = golden / f"{trajectory.trace_id}.json"
        path.write_text(dump_trajectory(trajectory), encoding="utf-8")
    return steps


REF = "weatherapp.base:graph"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--goldens", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each ci command")
    args = parser.parse_args()

    from tests.replay.user_graph_project import write_project

    with tempfile.TemporaryDirectory(prefix="retrace-bench-ci-") as tmp:
        project = write_project(Path(tmp) / "project")
        golden = Path(tmp) / "golden"
        started = time.perf_counter()
        steps = record_goldens(project, golden, args.goldens)
        print(
            f"recorded {args.goldens} goldens of {REF} ({steps} steps each) in "
            f"{time.perf_counter() - started:.1f} s (in process)"
        )
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "retrace", "--help"],
            cwd=project,
            env=_env(),
            capture_output=True,
            check=True,
        )
        print(f"python -m retrace --help: {time.perf_counter() - started:.2f} s (start-up)")
        for workers in args.workers:
            junit = Path(tmp) / f"junit-{workers}.xml"
            argv = [
                sys.executable,
                "-m",
                "retrace",
                "ci",
                str(golden),
                "--graph",
                REF,
                "--junit",
                str(junit),
                "--workers",
                str(workers),
                "--quiet",
            ]
            walls, cpus = [], []
            for _ in range(args.repeat):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                result = subprocess.run(
                    argv, cwd=project, env=_env(), capture_output=True, text=True
                )
                walls.append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                if result.returncode != 0:
                    print(result.stdout[-2000:], result.stderr[-2000:])
                    raise SystemExit(f"retrace ci exited {result.returncode}")
                assert f'tests="{args.goldens}" failures="0" errors="0"' in junit.read_text()
            wall = statistics.median(walls)
            processes = 1 if workers == 1 else 1 + workers
            print(
                f"retrace ci --workers {workers}: median {wall:.1f} s wall (max {max(walls):.1f}) "
                f"over {args.repeat} runs, {statistics.median(cpus):.1f} s CPU, "
                f"{wall / args.goldens * 1000:.0f} ms per golden, {processes} process(es); "
                f"{result.stdout.strip().splitlines()[-1]}"
            )


if __name__ == "__main__":
    main()

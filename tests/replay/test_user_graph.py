"""Replaying a user's OWN LangGraph graph (issue 11), through the real CLI in the user's project.

A project of its own (tests/replay/user_graph_project.py, written to a tmp dir) is recorded with
``instrument(graph, endpoint=collector, graph_ref=...)`` against a real collector; then
``retrace replay TRACE --graph MODULE:ATTR --mode ... --json`` runs as a subprocess with the
project as its working directory, against variants of the project's code. One recorded trace
per graph shape (sync invoke, async ainvoke, async astream), reused by every test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.collector import REPO_ROOT, RunningCollector, launch_collector
from tests.replay.user_graph_project import write_project

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)  # Retrace itself; the project comes from the cwd
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_in(project: Path, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Recorded:
    project: Path
    collector: RunningCollector
    traces: dict[str, str]  # shape -> trace id

    def replay(self, shape: str, *argv: str) -> tuple[int, dict[str, Any], str]:
        result = run_in(
            self.project,
            "-m",
            "retrace",
            "replay",
            self.traces[shape],
            "--endpoint",
            self.collector.url,
            "--json",
            *argv,
        )
        body = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
        return result.returncode, body, result.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("user-graph")
    project = write_project(root / "project")
    collector = launch_collector(root / "retrace")
    traces: dict[str, str] = {}
    try:
        for shape, module, method, ref in (
            ("sync", "weatherapp.base", "invoke", "weatherapp.base:graph"),
            ("async", "weatherapp.abase", "ainvoke", "weatherapp.abase:graph"),
            ("stream", "weatherapp.abase", "astream", "weatherapp.abase:graph"),
            ("noref", "weatherapp.base", "invoke", ""),
        ):
            result = run_in(project, "record.py", module, method, collector.url, ref)
            assert result.returncode == 0, result.stderr
            traces[shape] = result.stdout.strip().splitlines()[-1]
            collector.client.wait_for_trace(traces[shape], min_spans=6)
        yield Recorded(project, collector, traces)
    finally:
        collector.kill()


def _first(body: dict[str, Any]) -> tuple[str, int | None, int | None, list[str]] | None:
    first = body["report"]["first_divergence"]
    if first is None:
        return None
    paths = [entry["path"] for entry in first["diff"]]
    return first["kind"], first["recorded_index"], first["replayed_index"], paths


def test_the_recording_carries_what_a_replay_needs(recorded: Recorded) -> None:
    trajectory = recorded.collector.client.get_trajectory(recorded.traces["sync"])
    assert trajectory.graph_ref == "weatherapp.base:graph"
    assert trajectory.graph_method == "invoke"
    assert trajectory.graph_input["messages"][0]["kwargs"]["content"] == (
        "What is the weather in Paris?"
    )
    assert trajectory.graph_config == {"configurable": {"user": "ada"}, "tags": ["demo"]}
    assert trajectory.random_state and len(trajectory.ids) >= 1
    assert len(trajectory.clock_values) == 1
    assert [s.kind for s in trajectory.steps] == ["llm", "tool", "llm", "tool", "llm"]
    stream = recorded.collector.client.get_trajectory(recorded.traces["stream"])
    assert stream.graph_method == "astream"
    assert stream.graph_kwargs == {"stream_mode": "values"}


# (variant, mode) -> expected first divergence (kind, recorded index, replayed index, path
# prefix), or None for "no divergence" (exit 0).
EXPECTED: dict[tuple[str, str], tuple[str, int | None, int | None, str] | None] = {
    ("reformat", "recorded"): None,
    ("reformat", "live-tools"): None,
    ("reformat", "live-model"): None,
    ("prompt", "recorded"): ("other_messages", 0, 0, "/input_messages/0"),
    ("prompt", "live-tools"): ("other_messages", 0, 0, "/input_messages/0"),
    ("prompt", "live-model"): ("other_messages", 0, 0, "/input_messages/0"),
    # a changed tool result: invisible while the recording answers for the tool
    ("tool", "recorded"): None,
    ("tool", "live-tools"): ("other_output", 1, 1, "/result"),
    ("tool", "live-model"): None,
    # a node that calls a tool before the agent: no recorded answer for it
    ("node", "recorded"): ("unanswerable", 1, 0, "/arguments"),
    ("node", "live-tools"): ("extra_step", None, 0, ""),
    ("node", "live-model"): ("extra_step", None, 0, ""),
}


@pytest.mark.parametrize("shape", ["sync", "async"])
@pytest.mark.parametrize("variant,mode", sorted(EXPECTED))
def test_a_code_change_diverges_where_and_how_it_should(
    recorded: Recorded, shape: str, variant: str, mode: str
) -> None:
    module = f"weatherapp.{'a' if shape == 'async' else ''}{variant}:graph"
    code, body, stderr = recorded.replay(shape, "--graph", module, "--mode", mode)
    expected = EXPECTED[(variant, mode)]
    assert body, stderr
    assert body["error"] == "", body["error"]
    assert body["report"]["nondeterministic"] is False
    if expected is None:
        assert code == 0, (_first(body), stderr)
        assert body["report"]["diverged"] is False
        return
    assert code == 1, stderr
    found = _first(body)
    assert found is not None
    kind, rec, rep, prefix = expected
    assert found[:3] == (kind, rec, rep)
    assert not prefix or any(path.startswith(prefix) for path in found[3]), found


def test_the_recorded_graph_is_replayed_without_naming_it(recorded: Recorded) -> None:
    for shape in ("sync", "async", "stream"):
        code, body, stderr = recorded.replay(shape)
        assert code == 0, (shape, stderr, body and _first(body))
        assert body["report"]["metrics"]["steps_matched"] == 5
        assert body["run_status"] == "completed"


def test_a_streaming_graph_replays_through_astream(recorded: Recorded) -> None:
    code, body, _ = recorded.replay(
        "stream", "--graph", "weatherapp.atool:graph", "--mode", "live-tools"
    )
    assert code == 1
    assert _first(body) is not None and _first(body)[:3] == ("other_output", 1, 1)
    # the replay is a trace of its own in the collector, linked to the original
    replay_trace = body["replay_trace_id"]
    detail = recorded.collector.client.wait_for_trace(replay_trace, min_spans=6)
    root = next(s for s in detail.spans if not s.parent_span_id)
    assert root.attributes["retrace.replay_of"] == recorded.traces["stream"]
    assert root.attributes["retrace.replay.mode"] == "live-tools"
    assert root.attributes["retrace.graph.method"] == "astream"


def test_without_a_graph_ref_the_error_names_the_flag(recorded: Recorded) -> None:
    code, _, stderr = recorded.replay("noref")
    assert code == 2, stderr
    assert "--graph" in stderr and "Traceback" not in stderr
    # naming it works
    code, _, stderr = recorded.replay("noref", "--graph", "weatherapp.reformat:graph")
    assert code == 0, stderr


def test_a_bad_graph_reference_is_an_input_error(recorded: Recorded) -> None:
    for ref, message in (
        ("weatherapp.base", "module:attr"),
        ("weatherapp.missing:graph", "no module 'weatherapp.missing'"),
        ("weatherapp.base:nothing", "no attribute 'nothing'"),
        ("weatherapp.base:PROMPT", "not a compiled LangGraph graph"),
    ):
        code, _, stderr = recorded.replay("sync", "--graph", ref)
        assert code == 2, (ref, stderr)
        assert message in stderr and "Traceback" not in stderr, (ref, stderr)


def test_from_step_serves_earlier_steps_from_the_recording(recorded: Recorded) -> None:
    # the changed tool result at step 1 is served from the recording when replaying from step 2
    code, body, stderr = recorded.replay(
        "sync", "--graph", "weatherapp.tool:graph", "--mode", "live-tools", "--from-step", "2"
    )
    assert code == 0, (stderr, _first(body))
    alignment = body["report"]["alignment"]
    assert alignment[0]["recorded_index"] == 2 and alignment[0]["replayed_index"] == 2
    assert body["report"]["metrics"]["steps_recorded"] == 3
    # from step 1 the tool runs live: the divergence is there
    code, body, _ = recorded.replay(
        "async", "--graph", "weatherapp.atool:graph", "--mode", "live-tools", "--from-step", "1"
    )
    assert code == 1 and _first(body) is not None and _first(body)[:3] == ("other_output", 1, 1)
    # a changed prompt seen only from step 2 on: the report starts there
    code, body, _ = recorded.replay(
        "sync", "--graph", "weatherapp.prompt:graph", "--mode", "live-model", "--from-step", "2"
    )
    assert code == 1 and _first(body) is not None and _first(body)[:3] == ("other_messages", 2, 2)


def test_unpinned_nondeterminism_is_reported_as_such(recorded: Recorded) -> None:
    code, body, stderr = recorded.replay("sync", "--graph", "weatherapp.nondet:graph")
    assert code == 1
    report = body["report"]
    assert report["diverged"] and report["nondeterministic"] is True
    assert "two replays of the same code differ" in report["nondeterminism"]
    assert "non-determinism" in stderr


def test_live_model_with_an_offline_model_script(recorded: Recorded) -> None:
    script = recorded.project / "planner.yaml"
    script.write_text(
        "name: planner\n"
        "tasks:\n"
        "  - name: weather\n"
        "    match: weather\n"
        "    steps:\n"
        "      - call: weather\n"
        "        args: {city: Paris}\n"
        "      - call: add\n"
        "        args: {a: 5, b: 19}\n"
        "      - answer: It is nice in Paris.\n"
    )
    code, body, stderr = recorded.replay(
        "sync", "--mode", "live-model", "--model", "offline:planner", "--script", str(script)
    )
    assert code == 1, stderr
    # same tool calls (their results served from the recording), another final answer
    assert _first(body) is not None and _first(body)[:3] == ("other_output", 4, 4)
    assert body["report"]["metrics"]["replayed_answer"] == "It is nice in Paris."


def _export(recorded: Recorded, directory: Path, *shapes: str) -> None:
    traces = [recorded.traces[s] for s in shapes]
    result = run_in(
        recorded.project,
        "-m",
        "retrace",
        "export",
        *traces,
        "--to",
        str(directory),
        "--endpoint",
        recorded.collector.url,
    )
    assert result.returncode == 0, result.stderr


def test_ci_replays_goldens_of_a_users_graph(recorded: Recorded, tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    _export(recorded, golden, "sync", "noref")
    junit = tmp_path / "junit.xml"
    ok = run_in(
        recorded.project,
        "-m",
        "retrace",
        "ci",
        str(golden),
        "--graph",
        "weatherapp.reformat:graph",
        "--junit",
        str(junit),
        "--quiet",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2/2 trajectories replayed without divergence" in ok.stdout
    bad = run_in(
        recorded.project,
        "-m",
        "retrace",
        "ci",
        str(golden),
        "--graph",
        "weatherapp.tool:graph",
        "--mode",
        "live-tools",
        "--junit",
        str(junit),
        "--quiet",
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    xml = junit.read_text()
    assert 'tests="2"' in xml and 'failures="2"' in xml
    assert 'type="other_output"' in xml


def test_the_pytest_plugin_replays_goldens_of_a_users_graph(
    recorded: Recorded, tmp_path: Path
) -> None:
    golden = recorded.project / "golden"
    _export(recorded, golden, "async")

    def pytest_run(graph: str) -> subprocess.CompletedProcess[str]:
        return run_in(
            recorded.project,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "golden",
            "--retrace-golden",
            "golden",
            "--retrace-graph",
            graph,
            "-q",
        )

    passed = pytest_run("weatherapp.areformat:graph")
    assert passed.returncode == 0, passed.stdout
    assert "1 passed" in passed.stdout
    failed = pytest_run("weatherapp.aprompt:graph")
    assert failed.returncode == 1, failed.stdout
    assert "1 failed" in failed.stdout and "other_messages" in failed.stdout

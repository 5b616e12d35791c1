"""Suites from traces, end to end: a user's own LangGraph project records two runs into a real
collector (project ``alpha``), ``retrace suite add`` keeps them in a suite, and
``retrace ci --suite NAME --endpoint URL`` replays them — passing on the unchanged code, failing
(exit 1, naming the trace) once the project's code regresses. ``retrace suite export`` writes the
same suite as golden files that ``retrace ci DIR`` replays with the same outcome. Another
project's key sees none of it. Every command is a real ``python -m retrace`` subprocess run in
the project's directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.fixtures.demo_runs import DEMO, run_task
from tests.replay.test_user_graph import _env
from tests.replay.user_graph_project import RECORD, write_project

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


@dataclass
class World:
    project: Path
    collector: RunningCollector
    sync: str  # recorded with graph_ref weatherapp.base:graph
    async_: str  # recorded with graph_ref weatherapp.abase:graph

    def retrace(
        self, *argv: str, key: str | None = ALPHA, cwd: Path | None = None, endpoint: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "retrace", *argv]
        if endpoint:
            args += ["--endpoint", self.collector.url]
        if key:
            args += ["--api-key", key]
        return subprocess.run(
            args,
            cwd=cwd or self.project,
            env={**_env(), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("suites")
    project = write_project(root / "project")
    # the same recording script, sending with project alpha's key
    (project / "record_key.py").write_text(
        RECORD.replace("endpoint=endpoint,", "endpoint=endpoint, api_key=sys.argv[5],")
    )
    collector = launch_collector(root / "retrace", api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"])
    traces = []
    try:
        for module, method in (("weatherapp.base", "invoke"), ("weatherapp.abase", "ainvoke")):
            argv = ["record_key.py", module, method, collector.url, f"{module}:graph", ALPHA]
            done = subprocess.run(
                [sys.executable, *argv],
                cwd=project,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            traces.append(done.stdout.strip().splitlines()[-1])
            collector.client_for(ALPHA).wait_for_trace(traces[-1], min_spans=6)
        yield World(project, collector, traces[0], traces[1])
    finally:
        collector.kill()


def _regressed_copy(world: World, directory: Path) -> Path:
    """The project after a code change: the async graph's system prompt edited."""
    copy = directory / "project-changed"
    shutil.copytree(world.project, copy)
    (copy / "weatherapp" / "abase.py").write_text((copy / "weatherapp" / "aprompt.py").read_text())
    return copy


def test_suite_commands_and_their_errors(world: World) -> None:
    added = world.retrace("suite", "add", "smoke", world.sync, world.async_, "--note", "weather")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "suite smoke: added 2 trace(s); 2 in all"
    again = world.retrace("suite", "add", "smoke", world.sync)
    assert again.stdout.strip() == "suite smoke: added 0 trace(s), 1 already in it; 2 in all"

    listed = world.retrace("suite", "list")
    assert listed.returncode == 0 and "smoke" in listed.stdout and " 2 " in listed.stdout
    shown = world.retrace("suite", "show", "smoke")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.index(world.sync) < shown.stdout.index(world.async_)
    assert "What is the weather in Paris?" in shown.stdout and "cli" in shown.stdout
    body = json.loads(world.retrace("suite", "show", "smoke", "--json").stdout)
    assert [t["trace_id"] for t in body["traces"]] == [world.sync, world.async_]
    assert {t["note"] for t in body["traces"]} == {"weather"}
    listed_json = json.loads(world.retrace("suite", "list", "--json").stdout)
    assert {s["name"]: s["trace_count"] for s in listed_json["suites"]}["smoke"] == 2

    # remove from a scratch suite
    assert world.retrace("suite", "add", "scratch", world.sync).returncode == 0
    removed = world.retrace("suite", "remove", "scratch", world.sync)
    assert removed.returncode == 0 and f"removed {world.sync}" in removed.stdout
    gone = world.retrace("suite", "remove", "scratch", world.sync)
    assert gone.returncode == 2 and "is not in suite 'scratch'" in gone.stderr

    # bad input: exit 2 with one clear line, no traceback
    unknown = "f" * 32
    cases = [
        (("suite", "add", "smoke", unknown), f"unknown trace(s) in this project: {unknown}"),
        (("suite", "add", "bad name", world.sync), "invalid suite name"),
        (("suite", "show", "nope"), "suite 'nope' has no traces"),
        (("suite", "export", "nope", "--to", "out"), "suite 'nope' has no traces"),
        (("ci", "--suite", "nope"), "suite 'nope' has no traces"),
        (("ci",), "give a directory of golden trajectories, a trace query or --suite"),
    ]
    for argv, message in cases:
        result = world.retrace(*argv)
        assert result.returncode == 2, (argv, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    no_endpoint = world.retrace("ci", "--suite", "smoke", endpoint=False)
    assert no_endpoint.returncode == 2
    assert "--suite needs --endpoint" in no_endpoint.stderr
    assert world.retrace("suite", "show", "smoke").returncode == 0  # the unknown add added none

    # project isolation: beta's key sees no suite and cannot use alpha's traces
    beta_list = world.retrace("suite", "list", key=BETA)
    assert beta_list.returncode == 0 and "no suites yet" in beta_list.stdout
    for argv in (("suite", "show", "smoke"), ("ci", "--suite", "smoke")):
        result = world.retrace(*argv, key=BETA)
        assert result.returncode == 2 and "suite 'smoke' has no traces" in result.stderr
    stolen = world.retrace("suite", "add", "smoke", world.sync, key=BETA)
    assert stolen.returncode == 2 and world.sync in stolen.stderr


def test_ci_replays_a_suite_and_fails_on_a_regression(world: World, tmp_path: Path) -> None:
    assert world.retrace("suite", "add", "weather", world.sync, world.async_).returncode == 0
    junit, md = tmp_path / "junit.xml", tmp_path / "summary.md"
    reports = ("--junit", str(junit), "--markdown", str(md), "--quiet")

    ok = world.retrace("ci", "--suite", "weather", *reports)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2/2 trajectories replayed without divergence" in ok.stdout
    assert md.read_text().startswith("## Retrace replay (suite weather): ✅ no divergence")
    (ts,) = list(JUnitXml.fromfile(str(junit)))
    assert ts.tests == 2 and ts.failures == 0

    # the regression: the async graph's prompt changed in the project's code
    changed = _regressed_copy(world, tmp_path)
    bad = world.retrace("ci", "--suite", "weather", *reports, cwd=changed)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "1/2 trajectories replayed without divergence" in bad.stdout
    assert f"✗ what-is-the-weather-in-paris[{world.async_}]" in bad.stdout
    assert world.sync not in bad.stdout.split("✗", 1)[1].split("\n", 1)[0]
    (ts,) = list(JUnitXml.fromfile(str(junit)))
    results = {case.name: case.result for case in ts}
    failure = results[f"what-is-the-weather-in-paris[{world.async_}]"][0]
    assert isinstance(failure, Failure) and failure.type == "other_messages"
    assert results[f"what-is-the-weather-in-paris[{world.sync}]"] == []
    assert "❌ 1 divergence" in md.read_text()

    # the same suite as committed golden files: same outcomes, no collector needed
    golden = tmp_path / "golden"
    exported = world.retrace("suite", "export", "weather", "--to", str(golden))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in golden.iterdir()) == sorted(
        [f"{world.sync}.json", f"{world.async_}.json"]
    )
    assert "suite weather: 2 golden file(s)" in exported.stdout
    same = world.retrace("ci", str(golden), "--quiet", key=None, endpoint=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2/2 trajectories replayed without divergence" in same.stdout
    worse = world.retrace("ci", str(golden), "--quiet", key=None, endpoint=False, cwd=changed)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert f"✗ what-is-the-weather-in-paris[{world.async_}]" in worse.stdout
    assert "1/2 trajectories replayed without divergence" in worse.stdout


def test_ci_suite_of_runner_traces_with_a_changed_agent_config(
    world: World, tmp_path: Path
) -> None:
    """A run of Retrace's runner (the demo data scientist, offline model, bundled data server):
    its suite passes as recorded and fails once ``--agent`` names a config whose prompt
    changed."""
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "name: suite-agent\n"
        "model: offline:data-scientist\n"
        "system_prompt: You are a careful data scientist.\n"
        "mcp_servers:\n"
        "  - name: data\n"
        '    command: "{python}"\n'
        '    args: ["-m", "runner.mcp_servers.data_server"]\n'
        f"policy: {DEMO / 'policy.yaml'}\n"
        "guardrails: {tool_retries: 0}\n"
    )
    changed = tmp_path / "agent-changed.yaml"
    changed.write_text(agent.read_text().replace("data scientist", "data analyst"))
    trace = run_task(world.collector.url, agent, tmp_path / "data", ALPHA)
    world.collector.client_for(ALPHA).wait_for_trace(trace, min_spans=4)
    assert world.retrace("suite", "add", "runner", trace).returncode == 0

    ok = world.retrace("ci", "--suite", "runner", "--quiet", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1/1 trajectories replayed without divergence" in ok.stdout
    bad = world.retrace("ci", "--suite", "runner", "--agent", str(changed), "--quiet", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"✗ which-product-categories-bring-in-the-most[{trace}]" in bad.stdout
    assert "[other_messages] step 0" in bad.stdout and '"scientist" → "analyst"' in bad.stdout

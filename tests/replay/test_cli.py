"""``retrace ci`` / ``retrace replay`` on golden files: exit codes, JUnit XML, markdown, workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml

from replay import dump_trajectory, load_trajectory
from retrace.cli import cli
from schemas.models import TRAJECTORY_FORMAT_VERSION, Trajectory
from tests.replay.agent_fixture import SCRIPT, agent_config, record, write_script


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Trajectory:
    tmp = tmp_path_factory.mktemp("golden-run")
    return record(agent_config(write_script(tmp)), tmp / "ws")


def write_suite(directory: Path, golden: Trajectory, *, diverging: int = 0) -> list[Path]:
    """Two clean golden files, ``diverging`` files whose recorded query result was edited."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(2 + diverging):
        trajectory = golden.model_copy(deep=True)
        trajectory.trace_id = f"{i:032x}"
        if i >= 2:
            trajectory.steps[1].result = json.dumps({"rows": [["north", 99]]})
        path = directory / f"case-{i}.json"
        path.write_text(dump_trajectory(trajectory))
        paths.append(path)
    return paths


def test_golden_files_are_stable(golden: Trajectory, tmp_path: Path) -> None:
    (path,) = write_suite(tmp_path, golden)[:1]
    text = path.read_text()
    assert dump_trajectory(load_trajectory(text)) == text
    assert text.endswith("}\n") and '\n  "format_version": 1,' in text


def test_ci_passes_on_an_unchanged_agent(golden: Trajectory, tmp_path: Path) -> None:
    suite = tmp_path / "golden"
    write_suite(suite, golden)
    junit, md = tmp_path / "out" / "junit.xml", tmp_path / "out" / "summary.md"
    result = CliRunner().invoke(
        cli, ["ci", str(suite), "--junit", str(junit), "--markdown", str(md), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "2/2 trajectories replayed without divergence" in result.output
    xml = JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].tests == 2 and suites[0].failures == 0
    # named after the run's task and its trace id, not only the file or the id
    assert {case.name for case in suites[0]} == {
        f"build-the-sales-report[{0:032x}]",
        f"build-the-sales-report[{1:032x}]",
    }
    assert all(case.is_passed for case in suites[0])
    assert "✅ no divergence" in md.read_text()


def test_ci_fails_on_divergence_and_reports_it(golden: Trajectory, tmp_path: Path) -> None:
    suite = tmp_path / "golden"
    write_suite(suite, golden, diverging=1)
    # and one file from a newer Retrace: an error, not a crash
    future = json.loads((suite / "case-0.json").read_text())
    future["format_version"] = TRAJECTORY_FORMAT_VERSION + 1
    (suite / "case-9.json").write_text(json.dumps(future))
    junit = tmp_path / "junit.xml"
    md = tmp_path / "summary.md"
    result = CliRunner().invoke(
        cli,
        ["ci", str(suite), "--junit", str(junit), "--markdown", str(md), "--workers", "2"],
    )
    assert result.exit_code == 1, result.output
    assert "2/4 trajectories replayed without divergence" in result.output
    (ts,) = list(JUnitXml.fromfile(str(junit)))
    assert (ts.tests, ts.failures, ts.errors) == (4, 1, 1)
    results = {case.name: case.result for case in ts}
    failure = results[f"build-the-sales-report[{2:032x}]"][0]
    assert isinstance(failure, Failure)
    assert failure.type == "other_messages"
    assert "step 2 (chat test-ds)" in failure.message
    assert "/input_messages/3/content" in (failure.text or "")
    error = results["case-9"][0]  # unreadable: no task, no trace id, so the file's name
    assert isinstance(error, Error) and "newer than" in error.message
    summary = md.read_text()
    assert "❌ 1 divergence, 1 error" in summary
    assert "4 trajectories · 2 passed · 1 divergence · 1 error" in summary
    assert f"| build-the-sales-report[{2:032x}] | recorded | divergence |" in summary
    assert "| case-9 | recorded | error | " in summary


def test_ci_usage_errors_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["ci", str(empty)])
    assert result.exit_code == 2 and "no golden trajectories" in result.output
    result = CliRunner().invoke(cli, ["ci", "not-a-dir-or-query"])
    assert result.exit_code == 2 and "neither a directory" in result.output


def test_replay_command_on_a_golden_file(golden: Trajectory, tmp_path: Path) -> None:
    clean, _, diverging = write_suite(tmp_path, golden, diverging=1)
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", str(clean), "--mode", "recorded"])
    assert result.exit_code == 0, result.output
    assert "no divergence" in result.output
    result = runner.invoke(cli, ["replay", str(diverging), "--json"])
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    first = body["report"]["first_divergence"]
    assert (first["kind"], first["recorded_index"]) == ("other_messages", 2)
    result = runner.invoke(cli, ["replay", str(diverging)])
    assert (
        result.exit_code == 1 and "DIVERGED" in result.output and "other_messages" in result.output
    )
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Be terse.")
    result = runner.invoke(cli, ["replay", str(clean), "--prompt-file", str(prompt)])
    assert result.exit_code == 1 and "Be terse." in result.output


def test_replay_command_input_errors_exit_2(golden: Trajectory, tmp_path: Path) -> None:
    broken = golden.model_copy(deep=True)
    broken.steps[5].result = None
    broken.steps[5].error = None
    path = tmp_path / "broken.json"
    path.write_text(dump_trajectory(broken))
    result = CliRunner().invoke(cli, ["replay", str(path)])
    assert result.exit_code == 2
    assert "step 5 (execute_tool read_file): no recorded result" in result.output


def test_pytest_plugin_turns_golden_files_into_tests(golden: Trajectory, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    suite = tmp_path / "golden"
    write_suite(suite, golden, diverging=1)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "replay.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--retrace-golden",
            str(suite),
            str(suite),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 2 passed" in out
    assert "case-2" in out and "other_messages" in out
    assert f"case-2.json::build-the-sales-report[{2:032x}]" in out


def test_replay_command_live_model_with_another_model(golden: Trajectory, tmp_path: Path) -> None:
    clean = write_suite(tmp_path, golden)[0]
    runner = CliRunner()
    result = runner.invoke(
        cli, ["replay", str(clean), "--mode", "live-model", "--model", "offline:data-scientist"]
    )
    # the bundled data-scientist script has no "sales report" task: it answers at once
    assert result.exit_code == 1, result.output
    assert "other_output" in result.output and "step 0 (chat" in result.output
    result = runner.invoke(cli, ["replay", str(clean), "--model", "offline:data-scientist"])
    assert result.exit_code == 2 and "only applies to mode live-model" in result.output


def test_replay_script_flag_and_its_deprecated_names(golden: Trajectory, tmp_path: Path) -> None:
    clean = write_suite(tmp_path, golden)[0]
    shorter = write_script(
        tmp_path,
        SCRIPT.replace("      - call: read_file\n        args: {path: report.csv}\n", ""),
        name="shorter.yaml",
    )
    base = ["replay", str(clean), "--mode", "live-model", "--json"]
    runner = CliRunner()
    new = runner.invoke(cli, [*base, "--script", str(shorter)])
    assert new.exit_code == 1, new.output
    assert new.stderr == ""
    first = json.loads(new.stdout)["report"]["first_divergence"]
    assert (first["kind"], first["recorded_index"]) == ("other_output", 4)
    for flag in ("--policy-file", "--policy"):
        old = runner.invoke(cli, [*base, flag, str(shorter)])
        assert old.exit_code == 1, old.output
        assert old.stderr == f"warning: {flag} is deprecated; use --script {shorter}\n"
        assert json.loads(old.stdout)["report"]["first_divergence"] == first
    page = runner.invoke(cli, ["replay", "--help"]).output
    assert "--script" in page and "--policy" not in page

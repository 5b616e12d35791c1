"""``retrace replay`` and the offline script files it reads, through the real CLI: a local user
names their own script (``--model offline:./mine.yaml``); ``--confine-to DIR`` (what the
collector passes for a client's replay) refuses any other file, without quoting it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from replay import dump_trajectory
from schemas.models import Trajectory
from tests.fixtures.collector import REPO_ROOT
from tests.replay.agent_fixture import SCRIPT, agent_config, record, write_script

SECRET = "hunter2-do-not-show"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Trajectory:
    tmp = tmp_path_factory.mktemp("golden-run")
    return record(agent_config(write_script(tmp)), tmp / "ws")


def _golden_file(directory: Path, golden: Trajectory, **config: str) -> Path:
    trajectory = golden.model_copy(deep=True)
    trajectory.agent_config.update(config)
    path = directory / "golden.json"
    path.write_text(dump_trajectory(trajectory))
    return path


def _retrace(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["RETRACE_DATA_DIR"] = str(cwd / ".retrace")
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", "replay", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.yaml"
    path.write_text(f"token: {SECRET}\n  {SECRET}: [\n")
    return path


def test_a_local_user_replays_with_their_own_script_file(
    golden: Trajectory, tmp_path: Path
) -> None:
    golden_file = _golden_file(tmp_path, golden)
    write_script(tmp_path, SCRIPT, "mine.yaml")
    result = _retrace(
        tmp_path, str(golden_file), "--mode", "live-model", "--model", "offline:./mine.yaml"
    )
    # the same script as recorded: the run takes the same steps
    assert result.returncode in (0, 1), result.stderr
    assert "no offline script named" not in result.stdout + result.stderr
    assert "step 1 (execute_tool" not in result.stdout  # no divergence in the tool calls


def test_a_confined_replay_reads_no_file_outside_its_directory(
    golden: Trajectory, tmp_path: Path, secret: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # the recorded config names a file outside DATA (as any client can write into a trace)
    recorded = _golden_file(tmp_path, golden, offline_script=str(secret))
    cases = [
        (str(recorded), "--mode", "live-model"),
        (str(recorded), "--mode", "live-model", "--model", f"offline:{secret}"),
        (str(recorded), "--mode", "live-model", "--model", f"offline:{secret.with_suffix('')}"),
        (str(recorded), "--mode", "live-model", "--policy-file", str(secret)),
    ]
    for args in cases:
        result = _retrace(tmp_path, *args, "--confine-to", str(data))
        out = result.stdout + result.stderr
        assert result.returncode == 2, (args, out)
        assert "must be an existing file under" in out, (args, out)
        assert SECRET not in out, (args, out)
        assert "Traceback" not in out


def test_a_confined_replay_may_use_a_script_in_its_directory(
    golden: Trajectory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    mine = write_script(data.parent, SCRIPT, "unused.yaml").parent / "data" / "mine.yaml"
    data.mkdir()
    mine.write_text(SCRIPT)
    golden_file = _golden_file(tmp_path, golden)
    result = _retrace(
        tmp_path,
        str(golden_file),
        *("--mode", "live-model", "--model", f"offline:{mine}", "--confine-to", str(data)),
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "must be an existing file under" not in result.stdout + result.stderr

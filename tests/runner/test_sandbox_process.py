"""The process backend: refuses without insecure, says so, still applies limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.sandbox import Limits, get_backend
from schemas.errors import SandboxError


def test_refuses_without_insecure() -> None:
    with pytest.raises(SandboxError, match=r"no isolation.*insecure"):
        get_backend("process")


def test_runs_in_workspace_with_clean_env_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRACE_TEST_SECRET", "s3cret")
    backend = get_backend("process", insecure=True)
    result = backend.run(
        ["python3", "-c", "import os; print(sorted(os.environ)); open('f', 'w').write('x')"],
        workspace=tmp_path,
        limits=Limits(),
    )
    assert result.backend == "process"
    assert result.stdout == b"['HOME', 'LANG', 'PATH']\n"
    assert (tmp_path / "f").read_text() == "x"
    slow = backend.run(
        ["python3", "-c", "import time; time.sleep(30)"],
        workspace=tmp_path,
        limits=Limits(wall_timeout_s=1.0),
    )
    assert slow.timed_out and slow.limit_hit == "wall_timeout"
    big = backend.run(
        ["python3", "-c", "print('x' * 100000)"],
        workspace=tmp_path,
        limits=Limits(max_output_bytes=1000),
    )
    assert big.output_truncated and len(big.stdout) == 1000

"""``retrace doctor``: a line per backend; exit 0 iff the default backend works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.sandbox import probe_backends

pytestmark = pytest.mark.integration


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_doctor_ok_with_gvisor_default() -> None:
    out = _doctor()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["gvisor", "bwrap", "process"]
    assert lines[0].split()[1] == "ok" and "(default)" in lines[0]
    assert "runsc" in lines[0] and "s cold" in lines[0]
    assert "unavailable" in lines[2] and "insecure" in lines[2]


def test_doctor_fails_when_default_backend_does_not_work() -> None:
    import os

    env = {**os.environ, "RETRACE_RUNSC_PATH": "/nonexistent/runsc"}
    out = _doctor(env=env)
    assert out.returncode == 1
    assert out.stdout.splitlines()[0].startswith("gvisor   unavailable: runsc not found")
    env = {**os.environ, "RETRACE_SANDBOX_BACKEND": "process"}
    assert _doctor(env=env).returncode == 1  # refused without --insecure
    assert _doctor("--insecure", env=env).returncode == 0


def test_probe_backends_reports_each() -> None:
    statuses = {s.name: s for s in probe_backends(insecure=True)}
    assert statuses["gvisor"].available and statuses["bwrap"].available
    assert statuses["process"].available and "NO isolation" in statuses["process"].detail


def test_doctor_starts_each_configured_server_sandboxed(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "mcp_servers:\n"
        '  - {name: data, command: "{python}", args: ["-m", "runner.mcp_servers.data_server"]}\n'
        '  - {name: plain, command: "{python}", args: ["-m", "runner.mcp_servers.data_server"],'
        " sandbox: none, insecure: true}\n"
        "  - {name: far, url: 'http://127.0.0.1:9/mcp'}\n"
    )
    out = _doctor("--agent", str(agent))
    assert out.returncode == 1, out.stdout + out.stderr  # one server is not sandboxed
    lines = {line.split()[1]: line for line in out.stdout.splitlines() if line.startswith("server")}
    assert lines["data"].split()[2:5] == ["ok", "gvisor,", "3"], lines
    assert "NOT SANDBOXED" in lines["plain"]
    assert "remote" in lines["far"]
    agent.write_text("mcp_servers:\n  - {name: x, command: y, sandbox: none}\n")
    refused = _doctor("--agent", str(agent))
    assert refused.returncode == 2 and "insecure: true" in refused.stderr

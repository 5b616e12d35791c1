"""gVisor specifics: the OCI bundle, the warm pool (one call per sandbox, no leaks), cleanup."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.sandbox import Limits, get_backend
from runner.sandbox.gvisor import GVisorBackend
from schemas.errors import SandboxError

pytestmark = pytest.mark.integration
LIMITS = Limits(wall_timeout_s=15.0)


def test_warm_pool_serves_each_sandbox_once_without_leaks(tmp_path: Path) -> None:
    ws_a, ws_b = tmp_path / "a", tmp_path / "b"
    ws_a.mkdir()
    ws_b.mkdir()
    backend = get_backend("gvisor", warm_pool_size=2)
    assert isinstance(backend, GVisorBackend)
    try:
        backend.prewarm(ws_a, LIMITS)
        # written on the host after the warm sandboxes booted: still visible inside
        (ws_a / "late.txt").write_text("late")
        first = backend.run(
            ["sh", "-c", "cat late.txt; echo secret > /tmp/leak; echo kept > mine.txt; echo $$"],
            workspace=ws_a,
            limits=LIMITS,
        )
        assert first.exit_code == 0, first
        assert first.stdout.startswith(b"late")
        assert backend.served["warm"] == 1
        backend.prewarm(ws_a, LIMITS)
        second = backend.run(
            ["sh", "-c", "cat /tmp/leak 2>&1; cat mine.txt"], workspace=ws_a, limits=LIMITS
        )
        assert b"No such file" in second.stdout  # /tmp died with the first sandbox
        assert second.stdout.endswith(b"kept\n")  # the workspace is the state that persists
        assert backend.served["warm"] == 2
        # another workspace sees none of a's files
        other = backend.run(["ls", "-A", "/workspace"], workspace=ws_b, limits=LIMITS)
        assert other.stdout == b""
        # a different limit set never reuses a sandbox booted with other limits
        tight = Limits(memory_bytes=64 * 1024 * 1024, wall_timeout_s=15.0)
        result = backend.run(
            ["python3", "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
            workspace=ws_a,
            limits=tight,
        )
        assert result.stdout == f"{64 * 1024 * 1024}\n".encode()
    finally:
        backend.close()
    assert not backend.base_dir.exists()
    with pytest.raises(SandboxError, match="closed"):
        backend.run(["true"], workspace=ws_a, limits=LIMITS)


def test_warm_sandbox_of_a_recreated_workspace_is_not_used(tmp_path: Path) -> None:
    import shutil

    ws = tmp_path / "ws"
    ws.mkdir()
    with GVisorBackend(warm_pool_size=1) as backend:
        backend.prewarm(ws, LIMITS)
        shutil.rmtree(ws)
        ws.mkdir()
        (ws / "new.txt").write_text("new")
        result = backend.run(["cat", "new.txt"], workspace=ws, limits=LIMITS)
        assert result.stdout == b"new"
        assert backend.served == {"warm": 0, "cold": 1}
        (ws / "out.txt").unlink(missing_ok=True)
        backend.prewarm(ws, LIMITS)
        backend.run(["sh", "-c", "echo x > out.txt"], workspace=ws, limits=LIMITS)
        assert (ws / "out.txt").read_text() == "x\n"
        assert backend.served["warm"] == 1


def test_close_leaves_no_sandboxes_behind(tmp_path: Path) -> None:
    backend = GVisorBackend(warm_pool_size=1)
    backend.prewarm(tmp_path, LIMITS)
    state = backend.state_dir
    ids = subprocess.run(
        [backend.runsc, "--root", str(state), "list", "-quiet"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(ids) == 1
    backend.close()
    leftover = subprocess.run(["pgrep", "-f", ids[0]], capture_output=True, text=True)
    assert leftover.stdout == ""
    assert not state.exists()


def test_runsc_missing_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="runsc not found"):
        get_backend("gvisor", runsc_path="/nonexistent/runsc")


def test_state_of_a_killed_owner_is_reaped(tmp_path: Path) -> None:
    """A process killed with its warm pool up (no atexit) leaves nothing behind for long."""
    import signal
    import sys

    base = tmp_path / "base"
    base.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    script = (
        "import sys, pathlib\n"
        "from runner.sandbox import Limits\n"
        "from runner.sandbox.gvisor import GVisorBackend\n"
        f"b = GVisorBackend(warm_pool_size=1, base_dir=pathlib.Path({str(base)!r}))\n"
        f"b.prewarm(pathlib.Path({str(ws)!r}), Limits())\n"
        "print(b.base_dir, flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    stale = Path(owner.stdout.readline().strip())
    sandbox_ids = [p.name for p in (stale / "bundles").iterdir()]
    assert len(sandbox_ids) == 1
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    backend = GVisorBackend(base_dir=base)  # reaps on start
    try:
        assert not stale.exists()
        leftover = subprocess.run(["pgrep", "-f", sandbox_ids[0]], capture_output=True)
        assert leftover.stdout == b""
        assert not list(Path("/sys/fs/cgroup/pids").glob(f"**/{sandbox_ids[0]}"))
    finally:
        backend.close()

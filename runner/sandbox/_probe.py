"""Which backends work on this machine: each one really runs ``python3 -c "print(1)"``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from runner.sandbox._base import BackendStatus, Limits, SandboxBackend
from schemas.errors import RetraceError

PROBE_ARGV = ["python3", "-c", "print(1)"]


def _userns_problem() -> str | None:
    limit = Path("/proc/sys/user/max_user_namespaces")
    try:
        if limit.exists() and int(limit.read_text()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except (OSError, ValueError):
        return None
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    try:
        if os.geteuid() != 0 and clone.exists() and clone.read_text().strip() == "0":
            return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone)"
    except OSError:
        return None
    return None


def tool_version(binary: str) -> str:
    """``BINARY --version``'s first line, or why it cannot be read."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} unusable: {exc}"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else f"{binary} --version said nothing"


def probe_backend(name: str, *, runsc_path: str = "runsc", insecure: bool = False) -> BackendStatus:
    """Start backend ``name`` and run the probe; the status says why when it does not work."""
    from runner.sandbox import get_backend

    if name == "gvisor":
        if shutil.which(runsc_path) is None:
            return BackendStatus(name, False, f"runsc not found ({runsc_path}); install gVisor")
        if os.geteuid() != 0:
            return BackendStatus(name, False, "not root: runsc needs root here")
        version = tool_version(runsc_path)
    elif name == "bwrap":
        if shutil.which("bwrap") is None:
            return BackendStatus(name, False, "bwrap not found; install bubblewrap")
        problem = _userns_problem()
        if problem:
            return BackendStatus(name, False, problem)
        version = tool_version("bwrap")
    elif name == "process":
        version = "bare host process, NO isolation"
        if not insecure:
            return BackendStatus(name, False, "refused without --insecure (no isolation)")
    else:
        return BackendStatus(name, False, "unknown backend")
    backend: SandboxBackend | None = None
    try:
        backend = get_backend(name, runsc_path=runsc_path, insecure=insecure)
        with tempfile.TemporaryDirectory(prefix="retrace-probe-") as ws:
            start = time.monotonic()
            result = backend.run(PROBE_ARGV, workspace=Path(ws), limits=Limits())
            elapsed = time.monotonic() - start
    except RetraceError as exc:
        return BackendStatus(name, False, exc.message)
    except OSError as exc:
        return BackendStatus(name, False, f"cannot run: {exc}")
    finally:
        if backend is not None:
            backend.close()
    if result.exit_code != 0 or result.stdout.strip() != b"1":
        why = result.error or result.stderr.decode("utf-8", "replace").strip()[-300:]
        return BackendStatus(name, False, f"probe failed (exit {result.exit_code}): {why}")
    return BackendStatus(name, True, version, cold_start_s=elapsed)


def probe_backends(*, runsc_path: str = "runsc", insecure: bool = False) -> list[BackendStatus]:
    """The status of every backend (gvisor, bwrap, process), in that order."""
    return [
        probe_backend(name, runsc_path=runsc_path, insecure=insecure)
        for name in ("gvisor", "bwrap", "process")
    ]

"""Bubblewrap backend: Linux namespaces, no gVisor kernel in between.

``bwrap --unshare-all`` (user, pid, net — only a loopback —, ipc, uts, cgroup namespaces),
``--die-with-parent``, ``--clearenv``, all capabilities dropped, a read-only root made of
read-only binds of the host's ``/usr`` (and ``/bin``, ``/lib``... as the host lays them out), the
workspace read-write at ``/workspace`` (the cwd), a private tmpfs ``/tmp``. Limits as in
``_local``: rlimits plus a per-call cgroup. Weaker than gVisor: the tool talks to the host
kernel directly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from runner.sandbox._base import ExecResult, Limits, SandboxBackend, check_call
from runner.sandbox._local import run_local
from schemas.errors import SandboxError

SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/workspace", "LANG": "C.UTF-8"}


def _root_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
    return args


class BwrapBackend(SandboxBackend):
    """Bubblewrap sandboxes; one per call, nothing kept between calls."""

    name: ClassVar[str] = "bwrap"

    def __init__(self, *, bwrap_path: str = "bwrap") -> None:
        found = shutil.which(bwrap_path)
        if found is None:
            raise SandboxError(f"bwrap not found ({bwrap_path!r}); install bubblewrap")
        self.bwrap = found
        self._root = _root_args()

    def command(self, argv: list[str], workspace: Path, limits: Limits) -> list[str]:
        """The full bwrap command line for ``argv`` in ``workspace``."""
        env: list[str] = []
        for key, value in SANDBOX_ENV.items():
            env += ["--setenv", key, value]
        return [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            *env,
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            *self._root,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(limits.memory_bytes // 2),  # /tmp is memory: half the limit at most
            "--tmpfs",
            "/tmp",
            "--bind",
            str(workspace),
            "/workspace",
            "--remount-ro",
            "/",
            "--chdir",
            "/workspace",
            "--",
            *argv,
        ]

    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        limits: Limits,
        stdin: bytes | None = None,
    ) -> ExecResult:
        args, path = check_call(argv, workspace)
        result = run_local(
            self.command(args, path, limits),
            cwd=str(path),
            env={},
            limits=limits,
            stdin=stdin,
            backend=self.name,
            extra_pids=4,  # bwrap's own monitor and init
        )
        if result.exit_code == 1 and result.stderr.startswith(b"bwrap: execvp "):
            # bwrap could not exec the command: report it like a shell would
            result.exit_code, result.stderr = 127, result.stderr[len(b"bwrap: execvp ") :]
        elif result.exit_code == 1 and result.stderr.startswith(b"bwrap:"):
            raise SandboxError(f"bwrap failed: {result.stderr.decode('utf-8', 'replace').strip()}")
        return result

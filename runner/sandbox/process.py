"""The ``process`` backend: a bare child process in the workspace. NO ISOLATION.

The command sees the host's whole filesystem and network; only the environment is cleared and
rlimits (and a cgroup, when we may create one) bound it. It exists for machines where neither
gVisor nor bubblewrap works, and refuses to start unless asked with ``insecure=True``; its
results say ``backend="process"`` so every trace shows it. The cwd is the workspace's real path,
not ``/workspace``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from runner.sandbox._base import ExecResult, Limits, SandboxBackend, check_call
from runner.sandbox._local import run_local
from schemas.errors import SandboxError


class ProcessBackend(SandboxBackend):
    """Runs tools as plain host processes (insecure; explicit opt-in only)."""

    name: ClassVar[str] = "process"

    def __init__(self, *, insecure: bool = False) -> None:
        if not insecure:
            raise SandboxError(
                "the 'process' sandbox backend runs tools as plain host processes with no "
                "isolation (host files, network and environment are reachable); pass "
                "--insecure (insecure=True) to use it anyway, or use gvisor or bwrap"
            )

    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        limits: Limits,
        stdin: bytes | None = None,
    ) -> ExecResult:
        args, path = check_call(argv, workspace)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(path), "LANG": "C.UTF-8"}
        return run_local(
            args, cwd=str(path), env=env, limits=limits, stdin=stdin, backend=self.name
        )

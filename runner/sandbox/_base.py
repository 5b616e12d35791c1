"""The sandbox contract: limits in, an ``ExecResult`` out, one ABC every backend implements.

A tool's own failure (non-zero exit, timeout, out of memory, too much output) is a *result*: the
caller gets an ``ExecResult`` that records it and the next call works. ``SandboxError`` is raised
only when the backend itself cannot work (runsc missing, the sandbox cannot start...).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Self

from schemas.errors import SandboxError

BackendName = Literal["gvisor", "bwrap", "process"]

# Which limit ended a call early; ``None`` when the tool ended on its own.
LimitHit = Literal["wall_timeout", "cpu", "memory", "pids", "output"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one tool call. Defaults suit a small data-science tool."""

    memory_bytes: int = 256 * 1024 * 1024
    cpu_seconds: float = 10.0
    pids: int = 64
    wall_timeout_s: float = 20.0
    max_output_bytes: int = 1024 * 1024  # per stream (stdout, stderr)

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "pids", "wall_timeout_s", "max_output_bytes"):
            if getattr(self, name) <= 0:
                raise SandboxError(f"limit {name} must be positive, got {getattr(self, name)!r}")


@dataclass
class ExecResult:
    """What one command did in the sandbox. ``exit_code`` is negative (-signal) when killed.

    ``cpu_ms`` and ``memory_bytes`` (peak) are measured by the backend (see its docstring for how);
    ``None`` when it could not. ``error`` says what went wrong outside the tool's own code (a limit
    that killed it, the sandbox dying); empty when nothing did. ``limit_hit`` names the limit.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    output_truncated: bool = False
    cpu_ms: float | None = None
    memory_bytes: int | None = None
    duration_ms: float = 0.0
    backend: str = ""
    error: str = ""
    limit_hit: LimitHit | None = None

    @property
    def ok(self) -> bool:
        """Exited 0 with nothing cut short."""
        return self.exit_code == 0 and not self.error and not self.timed_out


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend works here: ``detail`` is its version when it does, why not otherwise."""

    name: str
    available: bool
    detail: str
    cold_start_s: float | None = None


class SandboxBackend(abc.ABC):
    """Runs one command in an isolated workspace. Implementations: gvisor, bwrap, process.

    The workspace is mounted at ``/workspace`` (the cwd) and is the only writable path besides a
    private ``/tmp``; ``python3`` is on ``PATH``. The environment is empty except ``PATH``, ``HOME``
    and ``LANG``.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        limits: Limits,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` in ``workspace`` under ``limits`` and return what happened."""

    async def arun(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        limits: Limits,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """``run`` without blocking the event loop (the work happens in a thread)."""
        return await asyncio.to_thread(
            self.run, argv, workspace=workspace, limits=limits, stdin=stdin
        )

    def prewarm(self, workspace: Path, limits: Limits, *, wait: bool = True) -> None:  # noqa: B027
        """Get sandboxes for ``workspace`` ready ahead of calls (gVisor's warm pool); a no-op
        for backends without start-up cost. ``wait=False`` returns at once."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release pooled sandboxes and temporary state. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_call(argv: Sequence[str], workspace: Path) -> tuple[list[str], Path]:
    """Validate a call's arguments: a non-empty list of strings and an existing directory."""
    args = list(argv)
    if not args or not all(isinstance(a, str) for a in args):
        raise SandboxError(f"argv must be a non-empty list of strings, got {argv!r}")
    if any("\x00" in a for a in args):
        raise SandboxError("argv must not contain NUL bytes")
    path = Path(workspace).resolve()
    if not path.is_dir():
        raise SandboxError(f"workspace {workspace} is not an existing directory")
    return args, path

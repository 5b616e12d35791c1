"""Sandboxed execution of tools: gVisor by default; bubblewrap and a bare process when asked.

``get_backend(name)`` returns a ``SandboxBackend``; ``backend.run(argv, workspace=..., limits=...)``
(or ``await backend.arun(...)``) returns an ``ExecResult``. ``WorkspaceSnapshots`` stores a
workspace's files by content hash so any step's files can be restored later.
"""

from __future__ import annotations

from runner.sandbox._base import BackendStatus, ExecResult, Limits, SandboxBackend
from runner.sandbox._probe import probe_backend, probe_backends
from runner.sandbox.workspace import WorkspaceSnapshots

__all__ = [
    "BackendStatus",
    "ExecResult",
    "Limits",
    "SandboxBackend",
    "WorkspaceSnapshots",
    "get_backend",
    "probe_backend",
    "probe_backends",
]


def get_backend(
    name: str,
    *,
    insecure: bool = False,
    runsc_path: str = "runsc",
    warm_pool_size: int = 0,
) -> SandboxBackend:
    """The backend called ``name`` (``gvisor``, ``bwrap`` or ``process``), ready to run.

    ``process`` has no isolation and refuses without ``insecure=True``. ``warm_pool_size`` keeps
    that many gVisor sandboxes booted per workspace.
    """
    from schemas.errors import SandboxError

    if name == "gvisor":
        from runner.sandbox.gvisor import GVisorBackend

        return GVisorBackend(runsc_path=runsc_path, warm_pool_size=warm_pool_size)
    if name == "bwrap":
        from runner.sandbox.bwrap import BwrapBackend

        return BwrapBackend()
    if name == "process":
        from runner.sandbox.process import ProcessBackend

        return ProcessBackend(insecure=insecure)
    raise SandboxError(f"unknown sandbox backend {name!r}; choose gvisor, bwrap or process")

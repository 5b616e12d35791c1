"""Host cgroup files of one sandbox: CPU used, peak memory, OOM kills (cgroup v1 or v2).

runsc creates the sandbox's cgroup at ``linux.cgroupsPath``; a relative path is placed under the
calling process's own cgroup for each controller, which is what ``SandboxCgroup`` resolves.
These are the kernel's own counters (cpuacct.usage / memory.max_usage_in_bytes / memory.oom_control
in v1, cpu.stat / memory.peak / memory.events in v2), so they include gVisor's own overhead.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _read_int(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path | None, key: str) -> int | None:
    if path is None:
        return None
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def owner_alive(pid: int, start_ticks: str) -> bool:
    """Is process ``pid`` still the one that started at ``start_ticks`` (pid reuse safe)?"""
    return process_start(pid) == start_ticks


def process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot ("" when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def remove_cgroup(relative_path: str) -> None:
    """rmdir the (empty) cgroup ``relative_path`` under our own cgroups, every controller."""
    own = _own_cgroups()
    if (_ROOT / "cgroup.controllers").exists():
        candidates = [_ROOT / own.get("", "/").lstrip("/") / relative_path]
    else:
        candidates = [
            _ROOT / ctrl.name / own.get(ctrl.name, "/").lstrip("/") / relative_path
            for ctrl in _ROOT.iterdir()
            if ctrl.is_dir() and not ctrl.is_symlink()
        ]
    for path in candidates:
        with contextlib.suppress(OSError):
            path.rmdir()


class SandboxCgroup:
    """Counters of a sandbox's cgroup ``relative_path`` (None where unavailable).

    On cgroup v1 we create this cgroup ourselves (``create``), hold the memory limit on it and
    let runsc make its own cgroup *inside* it: runsc removes its cgroup when the sandbox dies,
    ours (hierarchical counters: CPU, peak memory, limit hits, OOM kills) stays readable until
    ``remove`` — so a sandbox killed for memory is still reported as such.
    """

    def __init__(self, relative_path: str) -> None:
        own = _own_cgroups()
        self.v2 = (_ROOT / "cgroup.controllers").exists()
        if self.v2:
            base = _ROOT / own.get("", "/").lstrip("/") / relative_path
            self._cpu, self._mem = base, base
        else:
            self._cpu = _ROOT / "cpuacct" / own.get("cpuacct", "/").lstrip("/") / relative_path
            self._mem = _ROOT / "memory" / own.get("memory", "/").lstrip("/") / relative_path

    def create(self, memory_limit: int) -> bool:
        """Make the cgroup with ``memory_limit`` (v1 only); False when it cannot be made."""
        if self.v2:
            return False
        try:
            self._cpu.mkdir(parents=True, exist_ok=True)
            self._mem.mkdir(parents=True, exist_ok=True)
            (self._mem / "memory.limit_in_bytes").write_text(str(memory_limit))
        except OSError:
            return False
        return True

    def cpu_ns(self) -> int | None:
        """CPU time used by everything in the sandbox so far, in nanoseconds."""
        if self.v2:
            usec = _read_keyed(self._cpu / "cpu.stat", "usage_usec")
            return None if usec is None else usec * 1000
        return _read_int(self._cpu / "cpuacct.usage")

    def memory_peak(self) -> int | None:
        """Peak memory charged to the sandbox (bytes)."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        return _read_int(self._mem / name)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this cgroup."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        return _read_keyed(self._mem / name, "oom_kill") or 0

    def memory_limit_hits(self) -> int:
        """How often usage hit the memory limit (v1 ``memory.failcnt``, v2 ``max`` events)."""
        if self.v2:
            return _read_keyed(self._mem / "memory.events", "max") or 0
        return _read_int(self._mem / "memory.failcnt") or 0


class OwnedCgroup:
    """A cgroup we create for a bwrap/process call: pids and memory limits, CPU and peak memory.

    ``create`` returns None when cgroups are not writable here; callers fall back to rlimits.
    """

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, pids: int) -> OwnedCgroup | None:
        own = _own_cgroups()
        v2 = (_ROOT / "cgroup.controllers").exists()
        if v2:
            wanted = {"": _ROOT / own.get("", "/").lstrip("/") / "retrace-local" / name}
        else:
            wanted = {
                c: _ROOT / c / own.get(c, "/").lstrip("/") / "retrace-local" / name
                for c in ("pids", "memory", "cpuacct")
            }
        for path in wanted.values():
            _reap_dead_siblings(path.parent)
        made: dict[str, Path] = {}
        try:
            for controller, path in wanted.items():
                path.mkdir(parents=True)
                made[controller] = path
            group = cls(made, v2)
            if v2:
                (made[""] / "pids.max").write_text(str(pids))
                (made[""] / "memory.max").write_text(str(memory_bytes))
                (made[""] / "memory.swap.max").write_text("0")
            else:
                (made["pids"] / "pids.max").write_text(str(pids))
                (made["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        except OSError:
            cls(made, v2).remove()
            return None
        return group

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a new process writes its pid into to join."""
        return [str(path / "cgroup.procs") for path in self.dirs.values()]

    def cpu_ns(self) -> int | None:
        if self.v2:
            usec = _read_keyed(self.dirs[""] / "cpu.stat", "usage_usec")
            return None if usec is None else usec * 1000
        return _read_int(self.dirs["cpuacct"] / "cpuacct.usage")

    def memory_peak(self) -> int | None:
        if self.v2:
            return _read_int(self.dirs[""] / "memory.peak")
        return _read_int(self.dirs["memory"] / "memory.max_usage_in_bytes")

    def oom_kills(self) -> int:
        if self.v2:
            return _read_keyed(self.dirs[""] / "memory.events", "oom_kill") or 0
        return _read_keyed(self.dirs["memory"] / "memory.oom_control", "oom_kill") or 0

    def pids_hit(self) -> bool:
        """Did a fork fail because of the pids limit?"""
        path = self.dirs.get("" if self.v2 else "pids")
        return bool(path is not None and _read_keyed(path / "pids.events", "max"))

    def pids(self) -> list[int]:
        out: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                out.update(int(p) for p in Path(procs).read_text().split())
        return sorted(out)

    def remove(self) -> None:
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                path.rmdir()


def _reap_dead_siblings(parent: Path) -> None:
    # "<backend>-<pid>-<token>" cgroups whose creating process is gone (killed mid-call)
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        parts = child.name.split("-")
        if len(parts) == 3 and parts[1].isdigit() and not Path(f"/proc/{parts[1]}").exists():
            with contextlib.suppress(OSError):
                child.rmdir()

"""The default backend: gVisor (``runsc``) with a real OCI bundle per sandbox.

Isolation: the root is a tiny read-only directory whose ``/usr`` (and ``/bin``, ``/lib``... as
the host lays them out) are read-only bind mounts of the host's, plus a minimal ``/etc`` (no
shadow, no users' files); the workspace is the only writable mount, at ``/workspace``; ``/tmp``
is a private tmpfs; ``--network=none`` leaves only loopback; the environment is empty except
``PATH``, ``HOME``, ``LANG``; no capabilities, ``no_new_privs``. Limits: rlimits inside gVisor
(``RLIMIT_AS`` = memory, ``RLIMIT_NPROC`` = pids, ``RLIMIT_CPU``), a host cgroup per sandbox as a
backstop (memory + gVisor's overhead, pids, one CPU), and the host enforces CPU seconds from the
cgroup's counter and the wall-clock timeout by killing the sandbox.

Each sandbox serves ONE call and is destroyed after it. Its init (``_zygote.py``) waits for the
command on stdin, so a warm pool of sandboxes already booted for a workspace makes a call cost
a fork rather than a cold start; the pool refills in the background. Stats: ``cpu_ms`` and
``memory_bytes`` (peak RSS) of the command come from ``wait4`` inside the sandbox; when the
sandbox had to be killed they come from the host cgroup (which includes gVisor's overhead).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from runner.sandbox import _zygote
from runner.sandbox._base import ExecResult, Limits, SandboxBackend, check_call
from runner.sandbox._cgroup import SandboxCgroup, owner_alive, process_start, remove_cgroup
from runner.sandbox._output import CappedStream, drain, pump
from schemas.errors import SandboxError

SANDBOX_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace", "LANG=C.UTF-8")
# What gVisor itself (sentry, gofer) needs on top of the tool's memory and processes.
_MEMORY_OVERHEAD = 256 * 1024 * 1024
_HOST_TASK_OVERHEAD = 256
_BOOT_TIMEOUT_S = 30.0
_MAX_POOLED_WORKSPACES = 4
_PYTHON = "/usr/bin/python3"
_DIR_PREFIX = "retrace-gvisor-"
_CGROUP_PARENT = "retrace-sandbox"
_BOOTSTRAP = f"import sys; exec(compile(sys.argv[1], {_zygote.FILENAME!r}, 'exec'))"


def _mount(dest: str, kind: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": options}


def build_rootfs(rootfs: Path) -> list[dict[str, Any]]:
    """Create the read-only root directory; return the mounts that complete it."""
    for name in ("usr", "workspace", "tmp", "proc", "dev", "etc"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    mounts = [
        _mount("/proc", "proc", "proc", []),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "mode=755"]),
        _mount("/usr", "bind", "/usr", ["rbind", "ro", "nosuid", "nodev"]),
    ]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            (rootfs / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (rootfs / name).mkdir(exist_ok=True)
            mounts.append(_mount(f"/{name}", "bind", str(host), ["rbind", "ro", "nosuid", "nodev"]))
    etc = rootfs / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n")
    (etc / "hostname").write_text("sandbox\n")
    # Library cache and the alternatives symlinks (awk, ...): public, no secrets.
    if Path("/etc/ld.so.cache").is_file():
        shutil.copy2("/etc/ld.so.cache", etc / "ld.so.cache")
    if Path("/etc/alternatives").is_dir():
        shutil.copytree("/etc/alternatives", etc / "alternatives", symlinks=True)
    return mounts


def sandbox_config(
    rootfs: Path,
    base_mounts: list[dict[str, Any]],
    workspace: Path,
    limits: Limits,
    cgroup: str,
    *,
    memory_in_parent: bool = False,
) -> dict[str, Any]:
    """The OCI runtime spec of one sandbox (``memory_in_parent``: the cgroup above ``cgroup``
    already holds the memory limit)."""
    resources: dict[str, Any] = {
        "pids": {"limit": limits.pids * 4 + _HOST_TASK_OVERHEAD},
        "cpu": {"quota": 100_000, "period": 100_000},
    }
    # /tmp lives in the sandbox's memory: half the memory limit at most
    tmp_options = ["nosuid", "nodev", "mode=1777", f"size={limits.memory_bytes // 2}"]
    if not memory_in_parent:
        resources["memory"] = {"limit": limits.memory_bytes + _MEMORY_OVERHEAD}
    rlimits = [
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_NPROC", limits.pids),
        ("RLIMIT_CPU", max(1, int(limits.cpu_seconds + 0.999))),
        ("RLIMIT_NOFILE", 1024),
        ("RLIMIT_CORE", 0),
    ]
    no_caps: list[str] = []
    return {
        "ociVersion": "1.0.0",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": [_PYTHON, "-c", _BOOTSTRAP, Path(_zygote.__file__).read_text()],
            "env": list(SANDBOX_ENV),
            "cwd": "/workspace",
            "capabilities": {k: no_caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": t, "hard": v, "soft": v} for t, v in rlimits],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": [
            *base_mounts,
            _mount("/tmp", "tmpfs", "tmpfs", tmp_options),
            _mount("/workspace", "bind", str(workspace), ["rbind", "rw", "nosuid", "nodev"]),
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": cgroup,
            "resources": resources,
        },
    }


def _identity(directory: Path) -> tuple[int, int]:
    info = os.stat(directory)
    return info.st_dev, info.st_ino


class _Sandbox:
    """One booted sandbox waiting for its single command."""

    def __init__(self, backend: GVisorBackend, workspace: Path, limits: Limits) -> None:
        self.backend = backend
        self.workspace_identity = _identity(workspace)
        self.id = f"retrace-{secrets.token_hex(8)}"
        self.bundle = backend.base_dir / "bundles" / self.id
        self.bundle.mkdir(parents=True)
        self.cgroup = SandboxCgroup(f"{_CGROUP_PARENT}/{self.id}")
        own_memory_cgroup = self.cgroup.create(limits.memory_bytes + _MEMORY_OVERHEAD)
        config = sandbox_config(
            backend.rootfs,
            backend.base_mounts,
            workspace,
            limits,
            f"{_CGROUP_PARENT}/{self.id}/sandbox",
            memory_in_parent=own_memory_cgroup,
        )
        (self.bundle / "config.json").write_text(json.dumps(config))
        in_r, self.stdin_w = os.pipe()
        self.stdout_r, out_w = os.pipe()
        self.stderr_r, err_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [*backend.runsc_argv(), "run", "--bundle", str(self.bundle), self.id],
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except OSError as exc:
            for fd in (self.stdin_w, self.stdout_r, self.stderr_r):
                os.close(fd)
            raise SandboxError(f"cannot start {backend.runsc}: {exc}") from exc
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.stdin_open = True
        self.closed = False

    def wait_ready(self, timeout_s: float = _BOOT_TIMEOUT_S) -> None:
        """Block until the init inside says it is up; SandboxError with runsc's words if not."""
        import select

        ready, _, _ = select.select([self.stdout_r], [], [], timeout_s)
        byte = os.read(self.stdout_r, 1) if ready else b""
        if byte == b"R":
            return
        self.kill()
        err = CappedStream(4096)
        os.set_blocking(self.stderr_r, False)
        drain(self.stderr_r, err)
        why = bytes(err.data).decode("utf-8", "replace").strip() or (
            "timed out" if not ready else f"runsc exited with {self.proc.poll()}"
        )
        self.backend.discard(self)
        raise SandboxError(f"gVisor sandbox {self.id} failed to start: {why}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def execute(self, argv: list[str], stdin: bytes | None, limits: Limits) -> ExecResult:
        marker = f"\x1eRETRACE-{secrets.token_hex(16)}\x1e"
        request = b"\0".join([marker.encode(), *(os.fsencode(arg) for arg in argv)])
        payload = len(request).to_bytes(8, "big") + request + (stdin or b"")
        mark = marker.encode()
        out, err = CappedStream(limits.max_output_bytes), CappedStream(limits.max_output_bytes)
        cpu_limit_ns = int(limits.cpu_seconds * 1e9)
        start = time.monotonic()
        cpu0 = self.cgroup.cpu_ns()

        def done() -> bool:
            at = err.tail.rfind(mark)
            return at >= 0 and b"\n" in err.tail[at:]

        # Without our own parent cgroup (v2) runsc's vanishes with the sandbox: remember the
        # counters while polling.
        memory_seen = {"peak": 0, "limit_hits": 0, "oom_kills": 0}

        def over_cpu() -> str | None:
            memory_seen["peak"] = max(memory_seen["peak"], self.cgroup.memory_peak() or 0)
            hits, ooms = self.cgroup.memory_limit_hits(), self.cgroup.oom_kills()
            memory_seen["limit_hits"] = max(memory_seen["limit_hits"], hits)
            memory_seen["oom_kills"] = max(memory_seen["oom_kills"], ooms)
            used = self.cgroup.cpu_ns()
            if used is not None and cpu0 is not None and used - cpu0 > cpu_limit_ns:
                return "cpu"
            return None

        self.stdin_open = False
        reason = pump(
            stdout_fd=self.stdout_r,
            stderr_fd=self.stderr_r,
            stdout=out,
            stderr=err,
            stdin_fd=self.stdin_w,
            stdin_data=payload,
            deadline=start + limits.wall_timeout_s,
            check=over_cpu,
            done=done,
        )
        result = ExecResult(exit_code=-9, stdout=b"", stderr=b"", backend=GVisorBackend.name)
        if reason == "done":
            drain(self.stdout_r, out)
            at = err.tail.rfind(mark)
            stats = json.loads(bytes(err.tail[at + len(mark) :]).split(b"\n", 1)[0])
            cut = err.data.find(mark)
            if cut >= 0:
                del err.data[cut:]
            result.exit_code = int(stats["exit_code"])
            result.cpu_ms = float(stats["cpu_ms"])
            result.memory_bytes = int(stats["maxrss_kb"]) * 1024
        else:
            used = self.cgroup.cpu_ns()
            if used is not None and cpu0 is not None:
                result.cpu_ms = (used - cpu0) / 1e6
            over_cpu()  # last look at the counters before the cgroup goes
            result.memory_bytes = memory_seen["peak"] or None
            at_limit = memory_seen["peak"] >= limits.memory_bytes + _MEMORY_OVERHEAD
            ooms = memory_seen["oom_kills"] or memory_seen["limit_hits"] or at_limit
            self.kill()
            if reason == "wall_timeout":
                result.timed_out, result.limit_hit = True, "wall_timeout"
                result.error = f"wall-clock timeout: killed after {limits.wall_timeout_s:g} s"
            elif reason == "cpu":
                result.timed_out, result.limit_hit = True, "cpu"
                result.error = f"CPU limit: killed after {limits.cpu_seconds:g} CPU seconds"
            elif ooms:
                result.limit_hit = "memory"
                result.error = (
                    f"out of memory: the sandbox hit its memory limit "
                    f"({limits.memory_bytes} bytes + gVisor's overhead) and was killed"
                )
            else:
                try:
                    code = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
                result.error = f"the sandbox died before the command finished (runsc exit {code})"
        result.duration_ms = (time.monotonic() - start) * 1000.0
        result.stdout, result.stderr = bytes(out.data), bytes(err.data)
        result.output_truncated = out.truncated or err.truncated
        if result.output_truncated and result.limit_hit is None:
            result.limit_hit = "output"
        return result

    def destroy(self) -> None:
        """Stop (if needed) and remove every trace of the sandbox: processes, state, cgroup."""
        if self.closed:
            return
        self.closed = True
        if self.stdin_open:
            os.close(self.stdin_w)
            self.stdin_open = False
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        for fd in (self.stdout_r, self.stderr_r):
            os.close(fd)
        state = self.backend.state_dir
        if state.is_dir() and any(self.id in name for name in os.listdir(state)):
            subprocess.run(
                [*self.backend.runsc_argv(), "delete", "--force", self.id],
                capture_output=True,
                timeout=30,
                check=False,
            )
        shutil.rmtree(self.bundle, ignore_errors=True)
        remove_cgroup(f"{_CGROUP_PARENT}/{self.id}/sandbox")
        remove_cgroup(f"{_CGROUP_PARENT}/{self.id}")


class GVisorBackend(SandboxBackend):
    """gVisor sandboxes, optionally with a warm pool of ``warm_pool_size`` per workspace."""

    name: ClassVar[str] = "gvisor"

    def __init__(
        self,
        *,
        runsc_path: str = "runsc",
        warm_pool_size: int = 0,
        platform: str = "ptrace",
        base_dir: Path | None = None,
    ) -> None:
        found = shutil.which(runsc_path)
        if found is None:
            raise SandboxError(
                f"runsc not found ({runsc_path!r}); install gVisor (Debian package 'runsc')"
            )
        if os.geteuid() != 0:
            raise SandboxError("the gvisor backend needs root (runsc creates namespaces, cgroups)")
        if not Path(_PYTHON).is_file():
            raise SandboxError(f"{_PYTHON} is missing; the sandbox reuses the host's /usr")
        self.runsc = found
        self.platform = platform
        self.warm_pool_size = max(0, warm_pool_size)
        reap_stale(Path(base_dir or tempfile.gettempdir()), found)
        self.base_dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=base_dir))
        pid = os.getpid()
        (self.base_dir / "owner").write_text(f"{pid} {process_start(pid)}\n")
        self.state_dir = self.base_dir / "state"
        self.rootfs = self.base_dir / "rootfs"
        self.base_mounts = build_rootfs(self.rootfs)
        self._lock = threading.Lock()
        self._pool: OrderedDict[tuple[Path, Limits], list[_Sandbox]] = OrderedDict()
        self._live: set[_Sandbox] = set()
        self._refiller = ThreadPoolExecutor(1, thread_name_prefix="retrace-gvisor-refill")
        self._reaper = ThreadPoolExecutor(2, thread_name_prefix="retrace-gvisor-reap")
        self._closed = False
        #: how calls were served: "warm" from the pool, "cold" booted for the call
        self.served = {"warm": 0, "cold": 0}
        atexit.register(self.close)

    def runsc_argv(self) -> list[str]:
        return [
            self.runsc,
            "--root",
            str(self.state_dir),
            "--network=none",
            f"--platform={self.platform}",
            "--overlay2=none",
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
        if self._closed:
            raise SandboxError("this gvisor backend is closed")
        sandbox = self._acquire(path, limits)
        try:
            return sandbox.execute(args, stdin, limits)
        finally:
            self.discard(sandbox)

    def prewarm(self, workspace: Path, limits: Limits, *, wait: bool = True) -> None:
        """Boot the warm pool for ``workspace`` now (``wait``: until it is full)."""
        _, path = check_call(["true"], workspace)
        if not self.warm_pool_size:
            return
        if wait:
            self._refill((path, limits))
        else:
            self._refiller.submit(self._refill, (path, limits))

    def _start(self, workspace: Path, limits: Limits) -> _Sandbox:
        sandbox = _Sandbox(self, workspace, limits)
        with self._lock:
            self._live.add(sandbox)
        sandbox.wait_ready()
        return sandbox

    def _acquire(self, workspace: Path, limits: Limits) -> _Sandbox:
        key = (workspace, limits)
        sandbox = None
        if self.warm_pool_size:
            current = _identity(workspace)
            with self._lock:
                ready = self._pool.get(key, [])
                while ready and sandbox is None:
                    candidate = ready.pop(0)
                    # a workspace deleted and made again is another directory: the sandbox
                    # booted with the old one would see the old (deleted) one
                    if candidate.alive() and candidate.workspace_identity == current:
                        sandbox = candidate
                    else:
                        self._reaper.submit(candidate.destroy)
                if key in self._pool:
                    self._pool.move_to_end(key)
            self._refiller.submit(self._refill, key)
        self.served["warm" if sandbox is not None else "cold"] += 1
        return sandbox if sandbox is not None else self._start(workspace, limits)

    def _refill(self, key: tuple[Path, Limits]) -> None:
        while not self._closed:
            with self._lock:
                have = len(self._pool.setdefault(key, []))
                self._pool.move_to_end(key)
                evicted = []
                while len(self._pool) > _MAX_POOLED_WORKSPACES:
                    _, old = self._pool.popitem(last=False)
                    evicted.extend(old)
            for old_sandbox in evicted:
                self.discard(old_sandbox)
            if have >= self.warm_pool_size or not key[0].is_dir():
                return
            try:
                sandbox = self._start(*key)
            except SandboxError:
                return  # the next call starts cold and reports the error
            with self._lock:
                if self._closed:
                    keep = False
                else:
                    self._pool.setdefault(key, []).append(sandbox)
                    keep = True
            if not keep:
                self.discard(sandbox)

    def wait_idle(self) -> None:
        """Block until background teardowns and pool refills submitted so far are done."""
        for executor in (self._refiller, self._reaper):
            executor.submit(lambda: None).result()

    def discard(self, sandbox: _Sandbox) -> None:
        """Tear a sandbox down in the background (after its one call, or when evicted)."""
        with self._lock:
            self._live.discard(sandbox)
        if self._closed:
            sandbox.kill()
            sandbox.destroy()
        else:
            self._reaper.submit(sandbox.destroy)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._refiller.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            doomed = [sb for pool in self._pool.values() for sb in pool] + list(self._live)
            self._pool.clear()
            self._live.clear()
        for sandbox in doomed:
            sandbox.kill()
        self._reaper.shutdown(wait=True)
        for sandbox in doomed:
            sandbox.destroy()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        atexit.unregister(self.close)


def reap_stale(parent: Path, runsc: str) -> int:
    """Remove what backends of dead processes left in ``parent`` (a killed MCP server cannot
    run its atexit hook): their sandboxes, runsc state, bundles and cgroups. Returns how many."""
    reaped = 0
    for base in parent.glob(f"{_DIR_PREFIX}*"):
        try:
            pid, start = (base / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if owner_alive(int(pid), start):
            continue
        ids = [p.name for p in (base / "bundles").glob("retrace-*")]
        for sandbox_id in ids:
            subprocess.run(
                [runsc, "--root", str(base / "state"), "delete", "--force", sandbox_id],
                capture_output=True,
                timeout=30,
                check=False,
            )
            remove_cgroup(f"{_CGROUP_PARENT}/{sandbox_id}/sandbox")
            remove_cgroup(f"{_CGROUP_PARENT}/{sandbox_id}")
        shutil.rmtree(base, ignore_errors=True)
        reaped += 1
    return reaped

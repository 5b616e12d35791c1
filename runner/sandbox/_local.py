"""Running a command as a host child process (the bwrap and process backends share this).

Limits: rlimits set in the child before exec (``RLIMIT_AS`` = memory per process, ``RLIMIT_CPU``,
``RLIMIT_NPROC`` for non-root), plus, when the host lets us create cgroups (root), a cgroup per
call with ``pids.max`` and a memory limit for the whole tree. Stats: ``cpu_ms`` from ``wait4``'s
rusage (the command and the descendants it waited for), peak memory from the cgroup when there is
one, else ``ru_maxrss``; CPU from the cgroup's cpuacct when there is one. The wall-clock
timeout kills the process group and the cgroup's members.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import subprocess
import time

from runner.sandbox._base import ExecResult, Limits
from runner.sandbox._cgroup import OwnedCgroup
from runner.sandbox._output import CappedStream, pump


def _limit_child(limits: Limits, procs_files: list[str]) -> None:
    # Runs in the child between fork and exec: join the cgroup, then lower the rlimits.
    pid = str(os.getpid())
    for procs in procs_files:
        with open(procs, "w") as fh:
            fh.write(pid)
    cpu = max(1, int(limits.cpu_seconds + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; the cgroup covers it there
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))


def run_local(
    cmd: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    limits: Limits,
    stdin: bytes | None,
    backend: str,
    extra_pids: int = 0,
) -> ExecResult:
    """Run ``cmd`` under ``limits`` and collect an ``ExecResult`` (never raises for the tool)."""
    group = OwnedCgroup.create(
        f"{backend}-{os.getpid()}-{secrets.token_hex(6)}",
        memory_bytes=limits.memory_bytes,
        pids=limits.pids + extra_pids,
    )
    procs = group.procs_files() if group else []
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: _limit_child(limits, procs),
        )
    except OSError as exc:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        if group:
            group.remove()
        return ExecResult(
            exit_code=127,
            stdout=b"",
            stderr=f"{cmd[0]}: {exc.strerror or exc}\n".encode(),
            backend=backend,
            duration_ms=(time.monotonic() - start) * 1000.0,
        )
    finally:
        for fd in (in_r, out_w, err_w):
            with contextlib.suppress(OSError):
                os.close(fd)
    out, err = CappedStream(limits.max_output_bytes), CappedStream(limits.max_output_bytes)
    try:
        reason = pump(
            stdout_fd=out_r,
            stderr_fd=err_r,
            stdout=out,
            stderr=err,
            stdin_fd=in_w,
            stdin_data=stdin or b"",
            deadline=start + limits.wall_timeout_s,
        )
        result = ExecResult(exit_code=-9, stdout=b"", stderr=b"", backend=backend)
        if reason == "wall_timeout":
            _kill_all(proc.pid, group)
            result.timed_out, result.limit_hit = True, "wall_timeout"
            result.error = f"wall-clock timeout: killed after {limits.wall_timeout_s:g} s"
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        result.exit_code = proc.returncode
        result.cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000.0
        result.memory_bytes = usage.ru_maxrss * 1024
        if group is not None:
            result.memory_bytes = group.memory_peak() or result.memory_bytes
            cpu_ns = group.cpu_ns()
            if cpu_ns is not None:
                result.cpu_ms = cpu_ns / 1e6
            if not result.error and group.oom_kills():
                result.limit_hit = "memory"
                result.error = "out of memory: the kernel's OOM killer ended the command"
            elif not result.error and group.pids_hit():
                result.limit_hit = "pids"
                result.error = f"process limit reached ({limits.pids} processes)"
        # bwrap reports a signalled child as 128 + signal, like a shell
        if not result.error and result.exit_code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            result.timed_out, result.limit_hit = True, "cpu"
            result.error = f"CPU limit: killed after {limits.cpu_seconds:g} CPU seconds"
        result.duration_ms = (time.monotonic() - start) * 1000.0
        result.stdout, result.stderr = bytes(out.data), bytes(err.data)
        result.output_truncated = out.truncated or err.truncated
        if result.output_truncated and result.limit_hit is None:
            result.limit_hit = "output"
        return result
    finally:
        _kill_all(proc.pid, group)
        for fd in (out_r, err_r):
            os.close(fd)
        if proc.returncode is None:
            proc.wait()
        if group is not None:
            for _ in range(50):
                if not group.pids():
                    break
                time.sleep(0.01)
            group.remove()


def _kill_all(pgid: int, group: OwnedCgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if group is not None:
        for pid in group.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

"""The sandbox backends for real: gVisor (runsc) and bubblewrap, with the escape suite.

Every escape attempt must come back as an ``ExecResult`` that records the failure, the host must
be untouched, and the next call on the same backend must work.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.sandbox import ExecResult, Limits, SandboxBackend, get_backend
from schemas.errors import SandboxError

pytestmark = pytest.mark.integration

BACKENDS = ["gvisor", "bwrap"]
FAST = Limits(wall_timeout_s=15.0)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[SandboxBackend]:
    with get_backend(request.param) as b:
        yield b


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def py(backend: SandboxBackend, ws: Path, code: str, limits: Limits = FAST) -> ExecResult:
    return backend.run(["python3", "-c", code], workspace=ws, limits=limits)


def sh(backend: SandboxBackend, ws: Path, command: str, limits: Limits = FAST) -> ExecResult:
    return backend.run(["/bin/sh", "-c", command], workspace=ws, limits=limits)


def assert_still_works(backend: SandboxBackend, ws: Path) -> None:
    result = py(backend, ws, "print(6 * 7)")
    assert result.exit_code == 0, result
    assert result.stdout == b"42\n"


# --- basics ------------------------------------------------------------------------------------


def test_runs_python_and_shell_and_reports_stats(backend: SandboxBackend, workspace: Path) -> None:
    result = py(backend, workspace, "import sys; print('out'); print('err', file=sys.stderr)")
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"out\n", b"err\n")
    assert result.backend == backend.name
    assert not result.timed_out and not result.output_truncated and not result.error
    assert result.cpu_ms is not None and result.cpu_ms >= 0
    assert result.memory_bytes is not None and result.memory_bytes > 0
    assert result.duration_ms > 0

    result = sh(backend, workspace, "echo $((6*7)); pwd; exit 3")
    assert result.exit_code == 3
    assert result.stdout == b"42\n/workspace\n"


def test_stdin_script_argv_and_tracebacks(backend: SandboxBackend, workspace: Path) -> None:
    result = backend.run(
        ["python3", "-", "a", "b"],
        workspace=workspace,
        limits=FAST,
        stdin=b"import sys\nprint(sys.argv, __name__)\n",
    )
    assert result.stdout == b"['-', 'a', 'b'] __main__\n", result
    (workspace / "tool.py").write_text("import sys\nprint(sys.argv[1:])\nraise ValueError('bad')\n")
    result = backend.run(["python3", "tool.py", "x"], workspace=workspace, limits=FAST)
    assert result.exit_code == 1
    assert result.stdout == b"['x']\n"
    assert b"ValueError: bad" in result.stderr
    assert b"retrace" not in result.stderr  # no frames of the sandbox's own init
    result = py(backend, workspace, "import sys; sys.exit('boom')")
    assert (result.exit_code, result.stderr) == (1, b"boom\n")
    result = backend.run(["no-such-tool"], workspace=workspace, limits=FAST)
    assert result.exit_code == 127


def test_workspace_files_persist_on_host(backend: SandboxBackend, workspace: Path) -> None:
    (workspace / "in.txt").write_text("from host")
    code = (
        "import csv\n"
        "data = open('in.txt').read()\n"
        "with open('/workspace/out.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows([['a', 'b'], [1, data]])\n"
    )
    assert py(backend, workspace, code).exit_code == 0
    assert (workspace / "out.csv").read_bytes() == b"a,b\r\n1,from host\r\n"
    result = py(backend, workspace, "print(open('out.csv').read().splitlines()[1])")
    assert result.stdout == b"1,from host\n"


def test_environment_is_empty_but_path_home_lang(
    backend: SandboxBackend, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("RETRACE_TEST_SECRET", secret)
    result = py(backend, workspace, "import os; print(sorted(set(os.environ) - {'PWD'}))")
    assert result.stdout == b"['HOME', 'LANG', 'PATH']\n"  # bwrap's --chdir also sets PWD
    # not through /proc either
    result = sh(backend, workspace, "cat /proc/*/environ 2>/dev/null; env")
    assert secret.encode() not in result.stdout


# --- escape suite ------------------------------------------------------------------------------


def test_cannot_read_host_files_outside_workspace(backend: SandboxBackend, workspace: Path) -> None:
    code = (
        "import os\n"
        "paths = ['/etc/shadow', '/root', '/work', '/home', '/old_root']\n"
        "paths.append('/proc/1/root/etc/shadow')\n"
        "for path in paths:\n"
        "    try:\n"
        "        if os.path.isdir(path): print(path, 'listed', os.listdir(path))\n"
        "        else: print(path, 'read', len(open(path, 'rb').read()))\n"
        "    except OSError as e: print(path, 'denied', type(e).__name__)\n"
    )
    result = py(backend, workspace, code)
    assert result.exit_code == 0, result
    for line in result.stdout.decode().splitlines():
        assert "denied" in line or line.endswith("listed []"), line
    assert b"/etc/shadow denied" in result.stdout


def test_symlinks_planted_in_the_workspace_do_not_reach_the_host(
    backend: SandboxBackend, workspace: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    (workspace / "abs").symlink_to(secret)
    (workspace / "rel").symlink_to("../host-secret.txt")
    (workspace / "shadow").symlink_to("/etc/shadow")
    code = (
        "for name in ['abs', 'rel', 'shadow']:\n"
        "    try: print(name, open(name).read())\n"
        "    except OSError as e: print(name, 'denied', type(e).__name__)\n"
    )
    result = py(backend, workspace, code)
    assert result.exit_code == 0, result
    assert b"host secret" not in result.stdout
    assert result.stdout.count(b"denied") == 3


def test_cannot_write_outside_workspace(backend: SandboxBackend, workspace: Path) -> None:
    marker = f"retrace-escape-{uuid.uuid4().hex}"
    code = (
        "import os\n"
        f"for path in ['/usr/{marker}', '/{marker}', '/etc/{marker}', '/bin/{marker}']:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); print(path, 'WROTE')\n"
        "    except OSError as e: print(path, 'denied', type(e).__name__)\n"
        f"open('/tmp/{marker}', 'w').write('private')\n"
        f"print('tmp', open('/tmp/{marker}').read())\n"
    )
    result = py(backend, workspace, code)
    assert result.exit_code == 0, result
    assert b"WROTE" not in result.stdout
    assert b"tmp private" in result.stdout
    for path in (f"/usr/{marker}", f"/{marker}", f"/tmp/{marker}", f"/etc/{marker}"):
        assert not os.path.exists(path)
    # /tmp is private to one call: the next sandbox does not see it
    result = py(backend, workspace, f"import os; print(os.path.exists('/tmp/{marker}'))")
    assert result.stdout == b"False\n"


def test_tmp_is_capped(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(memory_bytes=64 * 1024 * 1024, wall_timeout_s=15.0)
    code = (
        "try:\n"
        "    with open('/tmp/fill', 'wb') as f:\n"
        "        for _ in range(48):\n"
        "            f.write(b'x' * 1024 * 1024)\n"
        "except OSError as e:\n"
        "    print('full', e.errno)\n"
    )
    result = py(backend, workspace, code, limits)
    assert result.stdout == b"full 28\n", result  # ENOSPC


def test_no_network_egress(backend: SandboxBackend, workspace: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(0.2)
        code = (
            "import socket\n"
            "lines = open('/proc/net/dev').read().splitlines()[2:]\n"
            "names = [line.split(':')[0].strip() for line in lines]\n"
            "print('interfaces', sorted(n for n in names if n))\n"
            "for host in ['127.0.0.1', '10.0.2.2', '1.1.1.1']:\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2)\n"
            "        print(host, 'CONNECTED')\n"
            "    except OSError as e: print(host, 'refused', type(e).__name__)\n"
        )
        result = py(backend, workspace, code)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing from the sandbox reached the host's listener
    assert result.exit_code == 0, result
    assert result.stdout.startswith(b"interfaces ['lo']\n"), result.stdout
    assert b"CONNECTED" not in result.stdout


def test_fork_bomb_is_contained(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(pids=32, wall_timeout_s=10.0)
    result = py(backend, workspace, "import os\nwhile True:\n    os.fork()\n", limits)
    assert result.exit_code != 0 or result.timed_out, result
    # shell flavour too
    result = sh(backend, workspace, "b() { b | b & }; b; sleep 2; echo done", limits)
    assert isinstance(result, ExecResult)
    assert_still_works(backend, workspace)
    assert os.fork is not None  # the host can still fork (this test process is alive)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


def test_memory_bomb_is_killed_and_reported(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(memory_bytes=128 * 1024 * 1024, wall_timeout_s=15.0)
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = py(backend, workspace, code, limits)
    assert result.exit_code != 0, result
    assert b"MemoryError" in result.stderr or result.limit_hit == "memory", result
    # many processes, each under the per-process cap, together over the sandbox's limit
    code = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(10):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        held = []\n"
        "        try:\n"
        "            while True:\n"
        "                held.append(bytearray(8 * 1024 * 1024))\n"
        "        except MemoryError:\n"
        "            time.sleep(2)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
    )
    result = py(backend, workspace, code, limits)
    assert result.limit_hit == "memory", result
    assert "memory" in result.error
    assert_still_works(backend, workspace)


def test_cpu_spin_is_killed_and_reported(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(cpu_seconds=1.0, wall_timeout_s=8.0)
    result = py(backend, workspace, "while True:\n    pass\n", limits)
    assert result.exit_code != 0
    assert result.timed_out and result.limit_hit == "cpu", result
    assert "CPU" in result.error
    assert_still_works(backend, workspace)


def test_wall_timeout_kills(backend: SandboxBackend, workspace: Path) -> None:
    result = py(
        backend,
        workspace,
        "import time; print('start', flush=True); time.sleep(60)",
        Limits(wall_timeout_s=1.5),
    )
    assert result.timed_out and result.limit_hit == "wall_timeout", result
    assert result.stdout == b"start\n"
    assert "timeout" in result.error
    assert_still_works(backend, workspace)


def test_huge_output_is_truncated(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(max_output_bytes=64 * 1024, wall_timeout_s=15.0)
    code = "import sys\nsys.stdout.write('x' * (8 * 1024 * 1024))\nprint('end', file=sys.stderr)\n"
    result = py(backend, workspace, code, limits)
    assert result.exit_code == 0, result.error
    assert result.output_truncated and result.limit_hit == "output"
    assert result.stdout == b"x" * (64 * 1024)
    assert result.stderr == b"end\n"


def test_killing_the_parent_is_contained(backend: SandboxBackend, workspace: Path) -> None:
    result = py(backend, workspace, "import os, signal\nos.kill(1, signal.SIGKILL)\nprint('alive')")
    assert isinstance(result, ExecResult)
    result = sh(backend, workspace, "kill -9 $PPID; kill -9 -1; echo still")
    assert isinstance(result, ExecResult)
    assert_still_works(backend, workspace)


def test_bad_arguments_raise_sandbox_error(backend: SandboxBackend, workspace: Path) -> None:
    with pytest.raises(SandboxError, match="argv"):
        backend.run([], workspace=workspace, limits=FAST)
    with pytest.raises(SandboxError, match="workspace"):
        backend.run(["true"], workspace=workspace / "missing", limits=FAST)


def test_arun(backend: SandboxBackend, workspace: Path) -> None:
    coro = backend.arun(["python3", "-c", "print('async')"], workspace=workspace, limits=FAST)
    result = asyncio.run(coro)
    assert result.stdout == b"async\n"


def test_unknown_backend_and_bad_limits() -> None:
    with pytest.raises(SandboxError, match="unknown sandbox backend"):
        get_backend("docker")
    with pytest.raises(SandboxError, match="memory_bytes"):
        Limits(memory_bytes=0)

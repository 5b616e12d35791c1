"""Sandboxes for MCP servers: each stdio server of a run starts inside its own sandbox.

The MCP client spawns the *sandbox* (``runsc run`` of an OCI bundle, or ``bwrap``) instead of the
server; the sandbox's stdin/stdout are the server's, so MCP's stdio transport (and the W3C trace
context mcp puts in each request's ``_meta``) crosses it unchanged. One sandbox per server per
run: it boots once, with the MCP handshake, and serves every call of the run (warm).

What the server sees (gVisor; bwrap lays out the same root with namespaces):

* a read-only root: the host's ``/usr``, ``/bin``, ``/lib*`` read-only, a minimal ``/etc`` (no
  users' files, no shadow), this interpreter's install and venv (``sys.base_prefix``,
  ``sys.prefix``) and Retrace's own packages read-only at their host paths, and the directory of
  the server's command when it lives elsewhere; a private tmpfs ``/tmp`` (also ``HOME``);
* an empty environment plus ``PATH``/``HOME``/``LANG`` and only the variables the config names;
* the run's workspace only at the config's ``workspace`` path, plus the config's ``mounts``;
* no network: ``--network=none`` leaves the sandbox its own loopback only. An ``allow`` list is
  served by a forwarder per destination: the host listens on a unix socket per allowed
  ``host:port`` in a directory mounted into the sandbox (runsc ``--host-uds=open``), and a small
  forwarder inside (started by a wrapper that then ``exec``\\ s the server) listens on
  ``127.0.0.1:PORT`` and relays to that socket. Nothing else leaves the sandbox.
* limits: ``RLIMIT_NPROC`` = pids and ``RLIMIT_AS`` = memory inside (no ``RLIMIT_AS`` for Node,
  whose engine reserves address space up front), plus a host cgroup with the memory (plus
  gVisor's overhead), pids and a CPU quota of ``cpus``; its counters give each call's CPU time
  and the sandbox's peak memory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from runner.sandbox._cgroup import OwnedCgroup, SandboxCgroup, process_start, remove_cgroup
from runner.sandbox.gvisor import _CGROUP_PARENT, _DIR_PREFIX, build_rootfs, reap_stale
from schemas.errors import ConfigError, SandboxError

log = logging.getLogger(__name__)

ServerBackend = Literal["gvisor", "bwrap", "none"]
#: the value of ``retrace.sandbox.backend`` per server backend
RECORDED_BACKEND: Final = {"gvisor": "gvisor", "bwrap": "bwrap", "none": "process"}
#: Retrace's own top-level packages (mounted read-only so bundled servers import them)
_OWN_PACKAGES: Final = ("retrace", "schemas", "collector", "runner", "replay", "ui")
_NET_DIR: Final = "/run/retrace-net"
_MEMORY_OVERHEAD: Final = 256 * 1024 * 1024
_HOST_TASK_OVERHEAD: Final = 256
_NODE_NAMES: Final = ("node", "nodejs", "npx", "npm", "bun", "deno")

# Runs inside the sandbox as PID 1 when the server has an allow list: bind each allowed port on
# 127.0.0.1, fork a forwarder (127.0.0.1:PORT -> the host's unix socket), exec the server.
_NET_WRAPPER: Final = r"""
import json, os, socket, sys, threading
routes = json.loads(sys.argv[1]); argv = sys.argv[2:]
listeners = []
for port, path in routes:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64); listeners.append((s, path))
if os.fork() == 0:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1): os.dup2(null, fd)
    def copy(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data: break
                b.sendall(data)
        except OSError: pass
        for sock in (a, b):
            try: sock.shutdown(socket.SHUT_RDWR)
            except OSError: pass
    def serve(s, path):
        while True:
            conn, _ = s.accept()
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try: up.connect(path)
            except OSError: conn.close(); up.close(); continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=copy, args=(a, b), daemon=True).start()
    for s, path in listeners[1:]:
        threading.Thread(target=serve, args=(s, path), daemon=True).start()
    serve(*listeners[0])
    os._exit(0)
for s, _ in listeners: s.close()
os.execv(argv[0], argv)
"""

# Runs on the host before bwrap: join the server's cgroup, lower rlimits, exec bwrap.
_BWRAP_LAUNCHER: Final = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for procs in spec["procs"]:
    with open(procs, "w") as fh: fh.write(str(os.getpid()))
for name, value in spec["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
os.execv(sys.argv[2], sys.argv[2:])
"""


@dataclass(frozen=True)
class Mount:
    host: str
    container: str
    read_only: bool = True


@dataclass(frozen=True)
class ServerLimits:
    memory_bytes: int = 512 * 1024 * 1024
    pids: int = 128
    cpus: float = 1.0


@dataclass(frozen=True)
class ServerPolicy:
    """Where and how one MCP server runs. ``env`` holds the resolved values (never recorded);
    ``summary()`` is what spans record."""

    backend: ServerBackend = "gvisor"
    insecure: bool = False
    network: Literal["none", "loopback", "allow"] = "none"
    allow: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    workspace: str | None = None
    limits: ServerLimits = ServerLimits()
    #: destinations the runner adds itself (a bundled server's collector), recorded apart
    implicit_allow: tuple[str, ...] = ()
    runsc_path: str = "runsc"

    @property
    def recorded_backend(self) -> str:
        return RECORDED_BACKEND[self.backend]

    def summary(self) -> str:
        """The policy as recorded on spans: JSON, variable names only."""
        data: dict[str, Any] = {"backend": self.recorded_backend}
        if self.backend == "none":
            data["insecure"] = True
        else:
            network: Any = self.network
            if self.network == "allow" or self.implicit_allow:
                network = {"allow": list(self.allow)}
                if self.implicit_allow:
                    network["collector"] = list(self.implicit_allow)
            data["network"] = network
            data["env"] = sorted(self.env)
            data["workspace"] = self.workspace
            data["mounts"] = [
                {"host": m.host, "container": m.container, "read_only": m.read_only}
                for m in self.mounts
            ]
            data["limits"] = {
                "memory_bytes": self.limits.memory_bytes,
                "pids": self.limits.pids,
                "cpus": self.limits.cpus,
            }
        return json.dumps(data, sort_keys=True)

    def routes(self) -> list[tuple[int, str, int]]:
        """``(port inside, host, port on the host)`` per allowed destination."""
        out = []
        for item in (*self.allow, *self.implicit_allow):
            host, _, port = item.rpartition(":")
            out.append((int(port), host.strip("[]"), int(port)))
        return out


def host_port_of(url: str) -> str | None:
    """``host:port`` of an http(s) URL (default ports filled in); None when it has no host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


# --- host-side forwarders ---------------------------------------------------------------------


class _Relay(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    target: tuple[str, int] = ("127.0.0.1", 0)


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Relay)
        try:
            upstream = socket.create_connection(server.target, timeout=10)
        except OSError as exc:
            log.info("allowed destination %s:%s refused: %s", *server.target, exc)
            return
        upstream.settimeout(None)
        pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
        pump.start()
        _copy(self.request, upstream)
        pump.join(timeout=30)
        upstream.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class NetworkForwarders:
    """One unix socket per allowed destination in ``directory``, relaying to host:port."""

    def __init__(self, directory: Path, routes: Sequence[tuple[int, str, int]]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._servers: list[_Relay] = []
        self.socket_names: dict[int, str] = {}
        for inner_port, host, port in routes:
            name = f"{inner_port}.sock"
            relay = _Relay(str(directory / name), _RelayHandler)
            relay.target = (host, port)
            os.chmod(directory / name, 0o666)
            threading.Thread(target=relay.serve_forever, daemon=True).start()
            self._servers.append(relay)
            self.socket_names[inner_port] = name

    def close(self) -> None:
        for relay in self._servers:
            relay.shutdown()
            relay.server_close()
        self._servers.clear()


# --- the sandbox of one server ----------------------------------------------------------------


def python_mounts() -> list[str]:
    """Host directories a Python server needs, read-only at the same path: this interpreter's
    install, its venv, and Retrace's packages (an editable install lives outside the venv)."""
    dirs = [sys.base_prefix, sys.prefix]
    for name in _OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    return _outermost(dirs)


def _outermost(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for path in sorted({str(Path(p).resolve()) for p in paths if Path(p).exists()}):
        if path == "/" or any(_under(path, kept) for kept in out):
            continue
        out.append(path)
    return out


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


_SYSTEM_DIRS: Final = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def resolve_command(command: str, args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The server's argv with an absolute program, and the host directories it needs mounted.

    A script whose ``#!`` names a Python interpreter runs with this interpreter (a copied venv's
    scripts name the venv they were installed in).
    """
    found = shutil.which(command) if "/" not in command else command
    if found is None or not Path(found).is_file():
        raise ConfigError(f"MCP server command {command!r} not found on PATH")
    path = str(Path(found).absolute())
    extra: list[str] = []
    argv = [path, *args]
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        head = fh.readline(256)
        if head.startswith(b"#!"):
            interpreter = head[2:].strip().split()[0].decode("utf-8", "replace")
            if Path(interpreter).name.startswith("python"):
                argv = [sys.executable, path, *args]
    for candidate in (path, str(Path(path).resolve())):
        if not any(_under(candidate, d) for d in (*_SYSTEM_DIRS, *python_mounts())):
            extra.append(str(Path(candidate).parent))
    return argv, _outermost(extra)


def _is_node(argv: Sequence[str]) -> bool:
    """Does ``argv`` run Node (directly, or a script whose ``#!`` names it)?"""
    if any(Path(a).name in _NODE_NAMES for a in argv[:2]):
        return True
    with contextlib.suppress(OSError), open(argv[0], "rb") as fh:
        head = fh.readline(256)
        if head.startswith(b"#!"):
            return any(Path(word).name in _NODE_NAMES for word in head[2:].decode().split())
    return False


class ServerSandbox:
    """The sandbox one MCP server runs in for a run. ``argv``/``env`` are what the MCP client
    spawns; ``close()`` (after the client stopped it) removes every trace of it."""

    def __init__(
        self,
        name: str,
        command: str,
        args: Sequence[str],
        policy: ServerPolicy,
        *,
        workspace: Path | None,
        cwd: str | None = None,
        runsc_path: str = "runsc",
        platform: str | None = None,
    ) -> None:
        if policy.backend == "none":
            raise SandboxError("a 'none' server runs as a host process, not in a ServerSandbox")
        if os.geteuid() != 0:
            raise SandboxError(f"sandboxing MCP server {name!r} needs root (namespaces, cgroups)")
        self.name = name
        self.policy = policy
        self.id = f"retrace-{secrets.token_hex(8)}"
        self._closed = False
        self._forwarders: NetworkForwarders | None = None
        self._cgroup: SandboxCgroup | None = None
        self._owned: OwnedCgroup | None = None
        self._runsc: str | None = None
        self.platform = platform or "ptrace"  # KVM, where it works, is faster
        server_argv, extra_dirs = resolve_command(command, args)
        self.base_dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        pid = os.getpid()
        (self.base_dir / "owner").write_text(f"{pid} {process_start(pid)}\n")
        try:
            mounts = self._mounts(extra_dirs, workspace)
            routes = policy.routes()
            inner_argv = server_argv
            if routes:
                self._forwarders = NetworkForwarders(self.base_dir / "net", routes)
                names = self._forwarders.socket_names
                spec = [[port, f"{_NET_DIR}/{sock}"] for port, sock in names.items()]
                inner_argv = [sys.executable, "-c", _NET_WRAPPER, json.dumps(spec), *server_argv]
                mounts.append(Mount(str(self.base_dir / "net"), _NET_DIR, True))
            env = {
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "HOME": "/tmp",
                "LANG": "C.UTF-8",
                **policy.env,
            }
            work_dir = cwd or policy.workspace or "/tmp"
            if policy.backend == "gvisor":
                self.argv = self._gvisor(runsc_path, inner_argv, env, mounts, work_dir, routes)
            else:
                self.argv = self._bwrap(inner_argv, env, mounts, work_dir, routes)
        except BaseException:
            self.close()
            raise

    # layout -------------------------------------------------------------------------------

    def _mounts(self, extra_dirs: Sequence[str], workspace: Path | None) -> list[Mount]:
        mounts = [Mount(d, d, True) for d in python_mounts()]
        mounts += [Mount(d, d, True) for d in extra_dirs]
        if self.policy.workspace is not None:
            if workspace is None:
                raise ConfigError(
                    f"MCP server {self.name!r} mounts the workspace, but the run has none"
                )
            workspace.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(str(workspace.resolve()), self.policy.workspace, False))
        for mount in self.policy.mounts:
            host = Path(mount.host).expanduser().resolve()
            if not host.exists():
                raise ConfigError(
                    f"MCP server {self.name!r}: mount host path {mount.host!r} does not exist"
                )
            mounts.append(Mount(str(host), mount.container, mount.read_only))
        return mounts

    def _gvisor(
        self,
        runsc_path: str,
        argv: list[str],
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        cwd: str,
        routes: Sequence[tuple[int, str, int]],
    ) -> list[str]:
        runsc = shutil.which(runsc_path)
        if runsc is None:
            raise SandboxError(
                f"runsc not found ({runsc_path!r}); install gVisor (Debian package 'runsc') or "
                f"give MCP server {self.name!r} another 'sandbox'"
            )
        self._runsc = runsc
        reap_stale(self.base_dir.parent, runsc)
        rootfs = self.base_dir / "rootfs"
        oci_mounts = build_rootfs(rootfs)
        etc = rootfs / "etc"
        for name in ("localtime", "timezone"):
            source = Path("/etc") / name
            if source.is_file():
                shutil.copy2(source, etc / name, follow_symlinks=True)
        (etc / "hosts").write_text(_hosts_file(routes))
        for mount in mounts:
            target = rootfs / mount.container.lstrip("/")
            if Path(mount.host).is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch(exist_ok=True)
            options = ["rbind", "ro" if mount.read_only else "rw", "nosuid", "nodev"]
            oci_mounts.append(
                {
                    "destination": mount.container,
                    "type": "bind",
                    "source": mount.host,
                    "options": options,
                }
            )
        limits = self.policy.limits
        oci_mounts.append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", f"size={limits.memory_bytes // 2}"],
            }
        )
        self._cgroup = SandboxCgroup(f"{_CGROUP_PARENT}/{self.id}")
        in_parent = self._cgroup.create(limits.memory_bytes + _MEMORY_OVERHEAD)
        resources: dict[str, Any] = {
            "pids": {"limit": limits.pids * 4 + _HOST_TASK_OVERHEAD},
            "cpu": {"quota": max(1000, int(limits.cpus * 100_000)), "period": 100_000},
        }
        if not in_parent:
            resources["memory"] = {"limit": limits.memory_bytes + _MEMORY_OVERHEAD}
        rlimits = [("RLIMIT_NPROC", limits.pids), ("RLIMIT_NOFILE", 1024), ("RLIMIT_CORE", 0)]
        if not _is_node(argv):
            rlimits.append(("RLIMIT_AS", limits.memory_bytes))
        # binding an allowed port below 1024 on the sandbox's own loopback needs this one
        caps = ["CAP_NET_BIND_SERVICE"] if any(port < 1024 for port, _, _ in routes) else []
        config = {
            "ociVersion": "1.0.0",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": argv,
                "env": [f"{k}={v}" for k, v in env.items()],
                "cwd": cwd,
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                "rlimits": [{"type": t, "hard": v, "soft": v} for t, v in rlimits],
                "noNewPrivileges": True,
            },
            "root": {"path": str(rootfs), "readonly": True},
            "hostname": "sandbox",
            "mounts": oci_mounts,
            "linux": {
                "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                "cgroupsPath": f"{_CGROUP_PARENT}/{self.id}/sandbox",
                "resources": resources,
            },
        }
        bundle = self.base_dir / "bundles" / self.id
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(config))
        flags = [
            runsc,
            "--root",
            str(self.base_dir / "state"),
            "--network=none",
            f"--platform={self.platform}",
            "--overlay2=none",
        ]
        if routes:
            flags.append("--host-uds=open")
        if all(m.read_only for m in mounts):
            # nothing the server can write is shared with the host: let gVisor cache the
            # read-only mounts' files (a shared, writable workspace must stay "shared")
            flags.append("--file-access-mounts=exclusive")
        return [*flags, "run", "--bundle", str(bundle), self.id]

    def _bwrap(
        self,
        argv: list[str],
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        cwd: str,
        routes: Sequence[tuple[int, str, int]],
    ) -> list[str]:
        from runner.sandbox.bwrap import _root_args

        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxError(
                f"bwrap not found; install bubblewrap or give MCP server "
                f"{self.name!r} another 'sandbox'"
            )
        limits = self.policy.limits
        self._owned = OwnedCgroup.create(
            f"bwrap-{os.getpid()}-{secrets.token_hex(6)}",
            memory_bytes=limits.memory_bytes,
            pids=limits.pids + 4,
        )
        # --new-session: no ioctl(TIOCSTI) into a terminal the runner's stderr may be
        cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        cmd += ["--cap-drop", "ALL", "--hostname", "sandbox", *_root_args()]
        if any(m.container == _NET_DIR for m in mounts):  # an allow list: low ports need this
            cmd[cmd.index("ALL") + 1 : cmd.index("ALL") + 1] = [
                "--cap-add",
                "CAP_NET_BIND_SERVICE",
            ]
        hosts = self.base_dir / "hosts"
        hosts.write_text(_hosts_file(routes))
        cmd += ["--ro-bind", str(hosts), "/etc/hosts"]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--size", str(limits.memory_bytes // 2), "--tmpfs", "/tmp"]
        for mount in mounts:
            cmd += ["--ro-bind" if mount.read_only else "--bind", mount.host, mount.container]
        cmd += ["--remount-ro", "/", "--chdir", cwd, "--", *argv]
        rlimits = {"RLIMIT_CORE": 0, "RLIMIT_NOFILE": 1024}
        if not _is_node(argv):
            rlimits["RLIMIT_AS"] = limits.memory_bytes
        spec = {"procs": self._owned.procs_files() if self._owned else [], "rlimits": rlimits}
        return [sys.executable, "-c", _BWRAP_LAUNCHER, json.dumps(spec), *cmd]

    # use ----------------------------------------------------------------------------------

    def cpu_ns(self) -> int | None:
        """CPU used by the whole sandbox so far (the host cgroup's counter)."""
        group = self._cgroup or self._owned
        return group.cpu_ns() if group is not None else None

    def memory_peak(self) -> int | None:
        group = self._cgroup or self._owned
        return group.memory_peak() if group is not None else None

    def close(self) -> None:
        """Remove the sandbox's state, bundle, cgroup and forwarders (the process is gone or
        is killed here). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._runsc is not None:
            subprocess.run(
                [self._runsc, "--root", str(self.base_dir / "state"), "delete", "--force", self.id],
                capture_output=True,
                timeout=30,
                check=False,
            )
            remove_cgroup(f"{_CGROUP_PARENT}/{self.id}/sandbox")
            remove_cgroup(f"{_CGROUP_PARENT}/{self.id}")
        if self._owned is not None:
            for pid in self._owned.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            self._owned.remove()
        if self._forwarders is not None:
            self._forwarders.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _hosts_file(routes: Sequence[tuple[int, str, int]]) -> str:
    """The sandbox's /etc/hosts: localhost, and each allowed host name on its loopback."""
    text = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n"
    names = sorted({host for _, host, _ in routes if not _is_ip(host) and host != "localhost"})
    if names:
        text += f"127.0.0.1\t{' '.join(names)}\n"
    return text


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


__all__ = [
    "RECORDED_BACKEND",
    "Mount",
    "NetworkForwarders",
    "ServerLimits",
    "ServerPolicy",
    "ServerSandbox",
    "host_port_of",
    "python_mounts",
    "resolve_command",
]

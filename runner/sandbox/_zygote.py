"""The init process of a gVisor sandbox (runs INSIDE the sandbox; stdlib only, no imports of ours).

Protocol over the container's stdio (the host holds the other ends):
1. writes ``R`` to stdout once it is up (a warm-pool sandbox waits here),
2. reads an 8-byte big-endian length and that many bytes: the marker and the argv, NUL
   separated; the rest of stdin is the command's stdin (no json import: boot time matters),
3. runs the command (in a child forked in advance) with the sandbox's stdio, waits for it
   with ``wait4``,
4. writes ``marker`` + JSON ``{"exit_code", "cpu_ms", "maxrss_kb"}`` + newline to stderr, exits.

The rusage comes from gVisor's own accounting of the child (``wait4``). A ``python3`` command
(``-c CODE``, ``-`` for a script on stdin, ``SCRIPT``, ``-m MODULE``, no other flags) runs in the
forked, already-initialised interpreter instead of exec-ing a fresh one: the semantics of a fresh
``python3`` (``__main__``, ``sys.argv``, ``sys.path[0]``, exit codes, tracebacks) minus the
interpreter start-up, the larger part of a trivial tool's latency under gVisor. Anything else is
exec'd.
"""

import os
import sys
from types import TracebackType
from typing import NoReturn

FILENAME = "<retrace-init>"
_PYTHONS = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}


def _read_exact(n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(0, n)
        if not chunk:
            os._exit(0)  # the host went away before sending a command
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _python_target(argv: list[str]) -> tuple[str, str, list[str]] | None:
    if os.path.basename(argv[0]) not in _PYTHONS or len(argv) < 2:
        return None
    first, rest = argv[1], argv[2:]
    if first == "-c" and rest:
        return "code", rest[0], ["-c", *rest[1:]]
    if first == "-m" and rest:
        return "module", rest[0], [rest[0], *rest[1:]]
    if first == "-":
        return "stdin", "", ["-", *rest]
    if not first.startswith("-"):
        return "path", first, [first, *rest]
    return None


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    import runpy

    skip = {FILENAME, runpy.__file__}
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return tb


def _run_python(kind: str, target: str, args: list[str]) -> NoReturn:
    import builtins
    import runpy
    import types

    sys.argv = args
    try:
        if kind in ("code", "stdin"):
            if kind == "stdin":
                source, name = sys.stdin.buffer.read(), "<stdin>"
            else:
                source, name = target, "<string>"
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            main.__dict__["__builtins__"] = builtins
            sys.modules["__main__"] = main
            exec(compile(source, name, "exec"), main.__dict__)
        elif kind == "path":
            sys.path[0] = os.path.dirname(os.path.realpath(target))
            runpy.run_path(target, run_name="__main__")
        else:
            sys.path[0] = os.getcwd()
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit:
        raise
    except BaseException as exc:
        exc = exc.with_traceback(_user_traceback(exc.__traceback__))
        sys.excepthook(type(exc), exc, exc.__traceback__)
        raise SystemExit(1) from None
    raise SystemExit(0)


def _child(argv: list[str]) -> NoReturn:
    target = _python_target(argv)
    if target is not None:
        _run_python(*target)
    import signal

    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)


def main() -> None:
    # Fork before the command arrives, so a call does not wait for the fork (costly in gVisor).
    marker_r, marker_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(marker_r)
        os.write(1, b"R")
        size = int.from_bytes(_read_exact(8), "big")
        marker, *argv = _read_exact(size).split(b"\0")
        os.write(marker_w, marker)
        os.close(marker_w)
        _child([os.fsdecode(arg) for arg in argv])  # never returns: execs or raises SystemExit
    os.close(marker_w)
    chunks = []
    while chunk := os.read(marker_r, 4096):
        chunks.append(chunk)
    _, status, usage = os.wait4(pid, 0)
    if not chunks:
        os._exit(0)  # the host went away before sending a command
    code = os.waitstatus_to_exitcode(status)
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000.0
    stats = f'{{"exit_code": {code}, "cpu_ms": {cpu_ms:.3f}, "maxrss_kb": {usage.ru_maxrss}}}'
    os.write(2, b"".join(chunks) + stats.encode() + b"\n")
    os._exit(0)


if __name__ == "__main__":
    main()

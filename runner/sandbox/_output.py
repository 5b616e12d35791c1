"""Reading a sandboxed command's pipes: capped buffers, stdin feeding, deadline, stop checks."""

from __future__ import annotations

import contextlib
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = 65536
_TAIL = 8192


@dataclass
class CappedStream:
    """Keeps the first ``cap`` bytes of a stream (``truncated`` once more arrived) and a tail."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    eof: bool = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True
        self.tail += chunk
        if len(self.tail) > _TAIL:
            del self.tail[: len(self.tail) - _TAIL]


# A check returns a reason to stop early ("cpu", ...) or None to keep going.
StopCheck = Callable[[], str | None]


def pump(
    *,
    stdout_fd: int,
    stderr_fd: int,
    stdout: CappedStream,
    stderr: CappedStream,
    stdin_fd: int | None = None,
    stdin_data: bytes = b"",
    deadline: float,
    check: StopCheck | None = None,
    check_interval_s: float = 0.1,
    done: Callable[[], bool] | None = None,
) -> str:
    """Move bytes until both outputs reach EOF, ``check`` says stop, or ``deadline`` passes.

    Returns ``"eof"``, ``"done"`` (``done()`` became true after stderr output),
    ``"wall_timeout"`` or the check's reason. Output beyond a stream's cap is
    read and dropped, so a chatty command never blocks on a full pipe. ``stdin_fd`` is written
    ``stdin_data`` then closed (a command that never reads its stdin does not block this loop).
    """
    sel = selectors.DefaultSelector()
    streams = {stdout_fd: stdout, stderr_fd: stderr}
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin_data)
    if stdin_fd is not None:
        if pending:
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            os.close(stdin_fd)
            stdin_fd = None
    next_check = time.monotonic() + check_interval_s
    try:
        while not (stdout.eof and stderr.eof):
            now = time.monotonic()
            if now >= deadline:
                return "wall_timeout"
            if check is not None and now >= next_check:
                reason = check()
                if reason:
                    return reason
                next_check = now + check_interval_s
            timeout = min(deadline, next_check) - now if check else deadline - now
            for key, _ in sel.select(max(timeout, 0.0)):
                fd = int(key.fd)
                if fd == stdin_fd:
                    try:
                        written = os.write(fd, pending[:_CHUNK])
                    except (BrokenPipeError, BlockingIOError) as exc:
                        written = 0 if isinstance(exc, BlockingIOError) else len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(fd)
                        os.close(fd)
                        stdin_fd = None
                    continue
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                stream = streams[fd]
                if chunk:
                    stream.feed(chunk)
                    if done is not None and fd == stderr_fd and done():
                        return "done"
                else:
                    stream.eof = True
                    sel.unregister(fd)
        return "eof"
    finally:
        if stdin_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(stdin_fd)
            os.close(stdin_fd)
        sel.close()


def drain(fd: int, stream: CappedStream) -> None:
    """Read whatever is already in a non-blocking pipe, without waiting for more."""
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            stream.eof = True
            return
        stream.feed(chunk)

"""The on-disk write-ahead spool between ingest and the store.

A request is acknowledged only once its record is appended to a segment file AND fsync'ed. Records
are framed ``<u32 length><u32 crc32><bytes>``; a torn or corrupt tail left by a crash is detected
at start-up and truncated. Concurrent appends share one ``fdatasync`` (group commit): a single
flusher thread syncs whatever has been written since its last sync and wakes every waiter covered
by it.

The writer reads durable records in order and, after storing them, persists the position it
reached (``committed.json``, written atomically). Before storing a batch it persists the batch's
range as *in flight*, so a restart replays exactly the same range first (with the same dedup
token) and nothing acknowledged is lost or stored twice.

Segments wholly behind the committed position are deleted; ``pending_bytes`` is what the cap
(``settings.spool_max_bytes``) applies to.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from schemas.errors import ConfigError, OverloadedError

SEGMENT_MAGIC = b"RTSPOOL1"
_FRAME = struct.Struct("<II")
_MAX_RECORD_BYTES = 1 << 30
_COMMITTED_FILE = "committed.json"
_LOCK_FILE = "LOCK"
_SEGMENT_SUFFIX = ".seg"


class Position(NamedTuple):
    """A place in the spool: segment sequence number and byte offset within it."""

    segment: int
    offset: int

    def token(self) -> str:
        return f"{self.segment}:{self.offset}"


@dataclass(frozen=True)
class SpoolEntry:
    """One durable record handed to the reader."""

    start: Position
    end: Position
    data: bytes
    cached: Any = None  # the decoded form kept in memory at append time, when still available


@dataclass(frozen=True)
class InFlight:
    """A batch range the writer was storing when the process last stopped."""

    start: Position
    end: Position


@dataclass
class SpoolStats:
    appends: int = 0
    fsyncs: int = 0
    appended_bytes: int = 0
    truncated_bytes: int = 0  # corrupt tail bytes cut off at start-up


def _segment_name(seq: int) -> str:
    return f"{seq:016d}{_SEGMENT_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scan_segment(path: Path) -> tuple[list[tuple[int, int]], int]:
    """Valid frames of one segment file as (offset, length) and the offset where validity ends.

    Stops at the first frame that is short, oversized or fails its crc32: everything from there
    on is a torn write (or corruption) and is not trusted.
    """
    frames: list[tuple[int, int]] = []
    with open(path, "rb") as f:
        head = f.read(len(SEGMENT_MAGIC))
        if head != SEGMENT_MAGIC:
            return frames, 0
        offset = len(SEGMENT_MAGIC)
        while True:
            header = f.read(_FRAME.size)
            if len(header) < _FRAME.size:
                break
            length, crc = _FRAME.unpack(header)
            if length > _MAX_RECORD_BYTES:
                break
            data = f.read(length)
            if len(data) < length or zlib.crc32(data) != crc:
                break
            frames.append((offset, length))
            offset += _FRAME.size + length
    return frames, offset


class Spool:
    """Segmented, crc-framed, group-committed write-ahead log. Thread-safe.

    ``append`` writes a record and returns its end position; ``wait_durable`` /
    ``wait_durable_async`` return once that position is fsync'ed. ``read`` hands durable records
    to the single reader (the writer thread), ``commit`` records what the store now holds.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = 64 * 1024 * 1024,
        cache_entries: int = 8192,
        cache_max_bytes: int = 256 * 1024 * 1024,
        retry_after_s: float = 1.0,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.retry_after_s = retry_after_s
        self.stats = SpoolStats()
        self._cache_entries = cache_entries
        self._cache_max_bytes = cache_max_bytes
        self._cache: dict[Position, tuple[Any, int]] = {}
        self._cache_bytes = 0
        self._lock = threading.Lock()
        self._written_cond = threading.Condition(self._lock)  # flusher waits for new writes
        self._durable_cond = threading.Condition(self._lock)  # appenders/reader wait for fsync
        self._async_waiters: list[tuple[Position, asyncio.AbstractEventLoop, asyncio.Future[None]]]
        self._async_waiters = []
        self._closed = False
        self._flush_error: OSError | None = None

        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        self._sizes: dict[int, int] = {}  # segment seq -> durable/final size in bytes
        self.committed, self.recovered_inflight = self._load_committed()
        self._recover_segments()

        # Appends always go to a fresh segment: recovered ones are never written again.
        seq = max([*self._sizes, self.committed.segment]) + 1
        self._active_seq = seq
        self._active_fd = self._create_segment(seq)
        self._retired_fds: list[int] = []
        self._written = Position(seq, len(SEGMENT_MAGIC))
        self._durable = self._written
        self._sizes[seq] = len(SEGMENT_MAGIC)
        if self.committed.segment not in self._sizes:
            first = min(s for s in self._sizes if s >= self.committed.segment)
            self.committed = Position(first, len(SEGMENT_MAGIC))
        if self.recovered_inflight is not None and self.recovered_inflight.start != self.committed:
            self.recovered_inflight = None
        self._read_pos = self.committed
        self._read_file: tuple[int, Any] | None = None
        self._flusher = threading.Thread(target=self._flush_loop, name="spool-flusher", daemon=True)
        self._flusher.start()

    # --- start-up ----------------------------------------------------------------------------
    def _take_lock(self) -> int:
        path = self.directory / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"spool directory {self.directory} is in use by pid {owner}; "
                "stop that collector or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _segments_on_disk(self) -> list[int]:
        seqs = []
        for path in self.directory.glob(f"*{_SEGMENT_SUFFIX}"):
            with contextlib.suppress(ValueError):
                seqs.append(int(path.stem))
        return sorted(seqs)

    def _load_committed(self) -> tuple[Position, InFlight | None]:
        path = self.directory / _COMMITTED_FILE
        segs = self._segments_on_disk()
        default = Position(segs[0] if segs else 0, len(SEGMENT_MAGIC))
        if not path.exists():
            return default, None
        try:
            raw = json.loads(path.read_text())
            committed = Position(int(raw["segment"]), int(raw["offset"]))
            inflight = None
            if raw.get("inflight"):
                s, e = raw["inflight"]["start"], raw["inflight"]["end"]
                inflight = InFlight(Position(int(s[0]), int(s[1])), Position(int(e[0]), int(e[1])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"spool commit file {path} is unreadable: {exc}") from exc
        return committed, inflight

    def _recover_segments(self) -> None:
        for seq in self._segments_on_disk():
            path = self.directory / _segment_name(seq)
            if seq < self.committed.segment:
                path.unlink()
                continue
            _, valid_end = scan_segment(path)
            size = path.stat().st_size
            if valid_end < len(SEGMENT_MAGIC):
                # Not even a header survived: the segment was created and the crash came first.
                self.stats.truncated_bytes += size
                path.unlink()
                continue
            if valid_end == len(SEGMENT_MAGIC) and seq != self.committed.segment:
                path.unlink()  # no record in it (a restart with no ingest): nothing to keep
                continue
            if valid_end < size:
                self.stats.truncated_bytes += size - valid_end
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                    os.fsync(f.fileno())
            self._sizes[seq] = valid_end

    def _create_segment(self, seq: int) -> int:
        path = self.directory / _segment_name(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(fd, SEGMENT_MAGIC)
        os.fsync(fd)
        _fsync_dir(self.directory)
        return fd

    # --- writing -----------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet committed to the store (what ``spool_max_bytes`` caps)."""
        with self._lock:
            return self._pending_bytes_locked()

    def _pending_bytes_locked(self) -> int:
        header = len(SEGMENT_MAGIC)
        total = 0
        for seq, size in self._sizes.items():
            if seq < self.committed.segment:
                continue
            total += (self._written.offset if seq == self._active_seq else size) - header
        return max(0, total - max(0, self.committed.offset - header))

    @property
    def over_cap(self) -> bool:
        return self.pending_bytes >= self.max_bytes

    def append(self, data: bytes, cached: Any = None, cached_bytes: int = 0) -> Position:
        """Write one record; return its end position (not yet durable: wait for it).

        ``cached`` (the decoded form, weighing about ``cached_bytes``) is handed to the reader
        with the record while the in-memory budget allows; otherwise the reader gets the bytes.

        Raises ``OverloadedError`` when the spool holds ``max_bytes`` not yet stored.
        """
        if len(data) > _MAX_RECORD_BYTES:
            raise OverloadedError("record too large for the spool", self.retry_after_s)
        frame = _FRAME.pack(len(data), zlib.crc32(data)) + data
        with self._lock:
            if self._closed:
                raise OverloadedError("the collector is shutting down", self.retry_after_s)
            if self._flush_error is not None:
                raise OverloadedError(f"spool disk error: {self._flush_error}", self.retry_after_s)
            if self._pending_bytes_locked() + len(frame) > self.max_bytes:
                raise OverloadedError(
                    f"spool is full ({self._pending_bytes_locked()} bytes waiting for the store, "
                    f"cap {self.max_bytes}); retry later",
                    self.retry_after_s,
                )
            if self._written.offset + len(frame) > self.segment_bytes and (
                self._written.offset > len(SEGMENT_MAGIC)
            ):
                self._roll_locked()
            start = self._written
            os.write(self._active_fd, frame)
            self._written = Position(start.segment, start.offset + len(frame))
            self.stats.appends += 1
            self.stats.appended_bytes += len(frame)
            weight = max(cached_bytes, len(data))
            if (
                cached is not None
                and len(self._cache) < self._cache_entries
                and self._cache_bytes + weight <= self._cache_max_bytes
            ):
                self._cache[start] = (cached, weight)
                self._cache_bytes += weight
            self._written_cond.notify()
            return self._written

    def _roll_locked(self) -> None:
        self._sizes[self._active_seq] = self._written.offset
        self._retired_fds.append(self._active_fd)
        seq = self._active_seq + 1
        self._active_fd = self._create_segment(seq)
        self._active_seq = seq
        self._sizes[seq] = len(SEGMENT_MAGIC)
        self._written = Position(seq, len(SEGMENT_MAGIC))
        # Positions in the new segment are durable only once the flusher syncs the old fds too.

    def _flush_loop(self) -> None:
        while True:
            with self._lock:
                while self._written == self._durable and not self._closed:
                    self._written_cond.wait()
                if self._closed and self._written == self._durable:
                    return
                target = self._written
                fds = [*self._retired_fds, self._active_fd]
                retired = list(self._retired_fds)
            try:
                for fd in fds:
                    os.fdatasync(fd)
            except OSError as exc:
                with self._lock:
                    self._flush_error = exc
                    self._durable_cond.notify_all()
                    self._wake_async_locked(error=exc)
                return
            with self._lock:
                self.stats.fsyncs += 1
                for fd in retired:
                    self._retired_fds.remove(fd)
                    os.close(fd)
                self._durable = target
                if target.segment == self._active_seq:
                    self._sizes[target.segment] = target.offset
                self._durable_cond.notify_all()
                self._wake_async_locked()

    def _wake_async_locked(self, error: OSError | None = None) -> None:
        keep = []
        for pos, loop, fut in self._async_waiters:
            if error is None and pos > self._durable:
                keep.append((pos, loop, fut))
                continue
            if error is None:
                loop.call_soon_threadsafe(_resolve, fut, None)
            else:
                loop.call_soon_threadsafe(_resolve, fut, error)
        self._async_waiters = keep

    def wait_durable(self, pos: Position, timeout: float | None = None) -> None:
        """Block until ``pos`` is fsync'ed. Raises ``OverloadedError`` on a disk error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._durable < pos:
                if self._flush_error is not None:
                    raise OverloadedError(f"spool disk error: {self._flush_error}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise OverloadedError("spool fsync timed out", self.retry_after_s)
                self._durable_cond.wait(remaining)

    async def wait_durable_async(self, pos: Position) -> None:
        """Await until ``pos`` is fsync'ed, without holding a thread."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._flush_error is not None:
                raise OverloadedError(f"spool disk error: {self._flush_error}")
            if self._durable >= pos:
                return
            self._async_waiters.append((pos, loop, fut))
        await fut

    # --- reading (single reader: the writer thread) ------------------------------------------
    def read(
        self, max_entries: int, timeout: float, until: Position | None = None
    ) -> list[SpoolEntry]:
        """Up to ``max_entries`` durable records after the read position, waiting ``timeout``.

        With ``until``, never reads past that position (replaying a recovered in-flight batch).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._read_pos_exhausted_locked() and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._durable_cond.wait(remaining)
            durable = self._durable
            sizes = dict(self._sizes)
        entries: list[SpoolEntry] = []
        while len(entries) < max_entries:
            if until is not None and self._read_pos >= until:
                break
            pos = self._read_pos
            limit = durable.offset if pos.segment == durable.segment else sizes.get(pos.segment)
            if limit is None:
                nxt = [s for s in sizes if s > pos.segment]
                if not nxt:
                    break
                self._read_pos = Position(min(nxt), len(SEGMENT_MAGIC))
                continue
            if pos.offset >= limit:
                if pos.segment >= durable.segment:
                    break
                nxt = [s for s in sizes if s > pos.segment]
                self._read_pos = Position(min(nxt), len(SEGMENT_MAGIC))
                continue
            f = self._reader_file(pos.segment)
            f.seek(pos.offset)
            header = f.read(_FRAME.size)
            length, crc = _FRAME.unpack(header)
            data = f.read(length)
            if len(data) != length or zlib.crc32(data) != crc:
                raise OSError(f"spool segment {pos.segment} corrupt at offset {pos.offset}")
            end = Position(pos.segment, pos.offset + _FRAME.size + length)
            with self._lock:
                hit = self._cache.pop(pos, None)
                if hit is not None:
                    self._cache_bytes -= hit[1]
            entries.append(SpoolEntry(pos, end, data, hit[0] if hit is not None else None))
            self._read_pos = end
        return entries

    def _read_pos_exhausted_locked(self) -> bool:
        return self._read_pos >= self._durable

    def _reader_file(self, seq: int) -> Any:
        if self._read_file is not None and self._read_file[0] == seq:
            return self._read_file[1]
        if self._read_file is not None:
            self._read_file[1].close()
        f = open(self.directory / _segment_name(seq), "rb")  # noqa: SIM115 - kept open across reads
        self._read_file = (seq, f)
        return f

    def rewind(self) -> None:
        """Restart reading from the committed position (after a failed store write)."""
        self._read_pos = self.committed

    # --- committing --------------------------------------------------------------------------
    def mark_inflight(self, start: Position, end: Position) -> None:
        """Persist that the batch ``[start, end)`` is about to be stored."""
        self._write_committed(self.committed, InFlight(start, end))

    def commit(self, pos: Position) -> None:
        """Persist that everything before ``pos`` is in the store; drop consumed segments."""
        self._write_committed(pos, None)
        with self._lock:
            self.committed = pos
            drop = [s for s in self._sizes if s < pos.segment and s != self._active_seq]
            for seq in drop:
                del self._sizes[seq]
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / _segment_name(seq)).unlink()
                for p in [p for p in self._cache if p.segment == seq]:
                    self._cache_bytes -= self._cache.pop(p)[1]
        self.recovered_inflight = None

    def _write_committed(self, pos: Position, inflight: InFlight | None) -> None:
        body: dict[str, Any] = {"segment": pos.segment, "offset": pos.offset, "inflight": None}
        if inflight is not None:
            body["inflight"] = {"start": list(inflight.start), "end": list(inflight.end)}
        tmp = self.directory / (_COMMITTED_FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(body))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / _COMMITTED_FILE)
        _fsync_dir(self.directory)

    # --- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Sync what was written, stop the flusher, release the directory lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._written_cond.notify_all()
            self._durable_cond.notify_all()
        self._flusher.join(timeout=10)
        for fd in [*self._retired_fds, self._active_fd]:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._read_file is not None:
            self._read_file[1].close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)

    def iter_segments(self) -> Iterator[Path]:
        """Segment files currently on disk, oldest first (for inspection and tests)."""
        for seq in self._segments_on_disk():
            yield self.directory / _segment_name(seq)


def _resolve(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(OverloadedError(f"spool disk error: {error}"))


# --- the record format: one OTLP request as received ------------------------------------------
_RECORD_VERSION = 1
_RECORD_HEADER = struct.Struct("<BH")


@dataclass(frozen=True)
class IngestRecord:
    """What the spool keeps per acknowledged request: the body as received plus how to decode it.

    Keeping the (usually gzip'd) body instead of re-serialized spans makes the append cheap; the
    decoded batch is handed to the writer in memory and only re-decoded when replaying after a
    restart (decoding is deterministic).
    """

    project: str
    content_type: str
    content_encoding: str | None
    body: bytes

    def encode(self) -> bytes:
        meta = json.dumps([self.project, self.content_type, self.content_encoding]).encode()
        return _RECORD_HEADER.pack(_RECORD_VERSION, len(meta)) + meta + self.body

    @classmethod
    def decode(cls, data: bytes) -> IngestRecord:
        version, meta_len = _RECORD_HEADER.unpack_from(data)
        if version != _RECORD_VERSION:
            raise ValueError(f"unknown spool record version {version}")
        start = _RECORD_HEADER.size
        project, content_type, encoding = json.loads(data[start : start + meta_len])
        return cls(str(project), str(content_type), encoding, data[start + meta_len :])

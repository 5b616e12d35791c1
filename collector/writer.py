"""The background thread that drains the spool into the store in large batches.

A batch is a contiguous range of spool records (up to ``batch_max_spans`` spans or
``batch_max_wait_s`` seconds of waiting), grouped per project. Its range is persisted as *in
flight* before the store sees it, and each per-project insert carries a dedup token derived from
that range, so replaying it after ``kill -9`` is dropped by the engine instead of duplicated.
When the store fails, the batch stays in the spool and is retried with backoff; ``healthy``
turns false (``/readyz`` answers 503) until an insert succeeds again. A batch the store refuses
for good (see ``collector.dead_letter``) goes to the dead-letter directory instead, so ingest
continues behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from collector._span_batch import SpanBatch
from collector.dead_letter import DeadLetters, caused_by_rows, permanent_reason, transient
from collector.metrics import CollectorMetrics
from collector.spool import InFlight, IngestRecord, Position, Spool, SpoolEntry
from collector.store import TraceStore

log = logging.getLogger(__name__)

# Refused inserts of pieces one batch may cost while its refused rows are looked for (each bad
# row takes ~log2(batch size) of them); past it, the piece at hand is set aside whole.
SPLIT_FAILURES_MAX = 64

# Spool bytes (mostly gzip'd OTLP) per batch at most: decoded, that is a few hundred MB of spans
# and payloads, which is as much as one insert should carry whatever batch_max_spans says.
BATCH_MAX_BYTES = 32 * 1024 * 1024


# decode(records) -> the span batch (or the exception) of each record, in order; the app provides
# it (OTLP decoding lives in collector.otlp; the app runs it in its decode pool).
RecordDecoder = Callable[[list[IngestRecord]], list[SpanBatch | Exception]]


def dedup_token(start: Position, end: Position, project: str) -> str:
    """The insert token of one project's share of the spool range ``[start, end)``."""
    return f"spool:{start.token()}-{end.token()}:{project}"


class SpoolWriter:
    """Drains ``spool`` into ``store``; call ``start()`` once and ``stop()`` at shutdown."""

    def __init__(
        self,
        spool: Spool,
        store: TraceStore,
        metrics: CollectorMetrics,
        decode: RecordDecoder,
        *,
        batch_max_spans: int,
        batch_max_wait_s: float,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        dead_letters: DeadLetters | None = None,
        dead_letter_after: int = 10,
    ) -> None:
        self._spool = spool
        self._store = store
        self._metrics = metrics
        self._decode = decode
        self._max_spans = max(1, batch_max_spans)
        self._max_wait = max(0.0, batch_max_wait_s)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        # None: retry every failure forever (nowhere to set a batch aside)
        self._dead_letters = dead_letters
        self._dead_letter_after = max(1, dead_letter_after)
        self._split_failures_left = SPLIT_FAILURES_MAX
        self._stop = threading.Event()
        # Two stages so unpickling/decoding the next batch overlaps the store insert of this one
        # (chDB releases the GIL for much of an insert). One batch is in hand at most.
        self._ready: queue.Queue[_SpoolRange] = queue.Queue(maxsize=1)
        self._store_idle = threading.Event()  # set while the store stage waits for a batch
        self._store_idle.set()
        self._reader = threading.Thread(target=self._run_reader, name="spool-reader", daemon=True)
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self.healthy = True
        self.last_error = ""
        self.batches = 0
        # wall seconds spent per stage (exported as metrics: where the writer's time goes)
        self.timings: dict[str, float] = {"group": 0.0, "insert": 0.0, "commit": 0.0}

    def start(self) -> None:
        self._reader.start()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (if the store answers) and stop."""
        self._stop.set()
        self._reader.join(timeout)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._reader.is_alive()

    # --- stage 1: read and decode ------------------------------------------------------------
    def _run_reader(self) -> None:
        # A range that may already be in the store is replayed first, exactly, with its tokens.
        inflight = self._spool.recovered_inflight
        while not self._stop.is_set():
            try:
                entries = self._replay_range(inflight) if inflight else self._next_batch()
                inflight = None
                if not entries:
                    continue
                began = time.perf_counter()
                spool_range = _SpoolRange(entries[0].start, entries[-1].end, self._group(entries))
                self.timings["group"] += time.perf_counter() - began
            except Exception as exc:  # the spool itself failed: nothing sane to do but report
                log.exception("spool reader failed; ingest is no longer drained")
                self.healthy = False
                self.last_error = f"spool read failed: {type(exc).__name__}: {exc}"
                return
            while not self._stop.is_set():
                try:
                    self._ready.put(spool_range, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _replay_range(self, inflight: InFlight) -> list[SpoolEntry]:
        entries: list[SpoolEntry] = []
        while not self._stop.is_set():
            got = self._spool.read(100_000, timeout=0.5, until=inflight.end)
            if not got:
                break
            entries.extend(got)
        return entries

    def _next_batch(self) -> list[SpoolEntry]:
        entries = self._spool.read(256, timeout=0.5)
        if not entries:
            return entries
        spans = sum(self._span_count(e) for e in entries)
        size = sum(len(e.data) for e in entries)
        deadline = time.monotonic() + self._max_wait
        while spans < self._max_spans and size < BATCH_MAX_BYTES and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            # Past the wait, the batch closes as soon as the store stage can take it; while an
            # insert is still running it keeps growing instead (up to the limits), so batches
            # size themselves to the store's pace: fewer, larger inserts and fewer parts to merge.
            if remaining <= 0 and self._store_idle.is_set():
                break
            more = self._spool.read(256, timeout=min(remaining, 0.05) if remaining > 0 else 0.05)
            if not more:
                continue
            entries.extend(more)
            spans += sum(self._span_count(e) for e in more)
            size += sum(len(e.data) for e in more)
        return entries

    # --- stage 2: store and commit -----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._store_idle.set()
            try:
                spool_range = self._ready.get(timeout=0.5)
            except queue.Empty:
                continue
            self._store_idle.clear()
            delay = self._backoff_initial
            while True:
                try:
                    self._store_batch(spool_range)
                    break
                except _Stopping:
                    return
                except Exception as exc:  # e.g. the spool's commit file could not be written
                    log.exception("spool writer error (retrying the same batch)")
                    self.healthy = False
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self._backoff_max)

    @staticmethod
    def _span_count(entry: SpoolEntry) -> int:
        if isinstance(entry.cached, SpanBatch):
            return entry.cached.span_count
        return 1  # unknown until decoded; counted as one so a replay backlog still batches

    def _group(self, entries: list[SpoolEntry]) -> list[SpanBatch]:
        """The entries' span batches, merged into one per project (in project order)."""
        # Records not decoded in this process's lifetime (replay after a restart) in one go.
        missing = [i for i, e in enumerate(entries) if e.cached is None]
        decoded: dict[int, SpanBatch | Exception] = {}
        if missing:
            records = [IngestRecord.decode(entries[i].data) for i in missing]
            decoded = dict(zip(missing, self._decode(records), strict=True))
        per_project: dict[str, list[SpanBatch]] = {}
        for i, entry in enumerate(entries):
            batch = entry.cached if entry.cached is not None else decoded[i]
            if isinstance(batch, Exception):
                # Accepted once, so it decoded then; a newer decoder refusing it is set aside.
                log.error("dropping spool record at %s: %s", entry.start.token(), batch)
                if self._dead_letters is not None:
                    self._dead_letter_record(entry, batch)
                continue
            if batch.span_count or batch.payloads:
                per_project.setdefault(batch.project, []).append(batch)
        return [SpanBatch.merge(per_project[project]) for project in sorted(per_project)]

    def _dead_letter_record(self, entry: SpoolEntry, error: Exception) -> None:
        assert self._dead_letters is not None
        try:
            path = self._dead_letters.add_record(
                entry.data,
                reason="the spool record no longer decodes",
                error=f"{type(error).__name__}: {error}",
                spool_position=entry.start.token(),
            )
        except OSError:  # the reader must go on draining the spool whatever happens here
            log.exception("could not dead-letter the spool record at %s", entry.start.token())
            return
        self._metrics.inc("retrace_dead_letter_batches_total")
        log.error("dead-lettered the spool record at %s to %s", entry.start.token(), path)

    def _store_batch(self, spool_range: _SpoolRange) -> None:
        start, end = spool_range.start, spool_range.end
        stored = sum(batch.span_count for batch in spool_range.batches)
        self._spool.mark_inflight(start, end)
        for batch in spool_range.batches:
            self._split_failures_left = SPLIT_FAILURES_MAX
            token = dedup_token(start, end, batch.project)
            stored -= self._insert_with_retry(batch, token)
        began = time.perf_counter()
        self._spool.commit(end)
        self.timings["commit"] += time.perf_counter() - began
        self._metrics.inc("retrace_spans_stored_total", stored)
        self._metrics.inc("retrace_store_batches_total")
        self.batches += 1

    def _insert_with_retry(self, batch: SpanBatch, token: str) -> int:
        """Insert ``batch``, retrying while the store is down; returns how many of its spans
        were dead-lettered instead (0: all stored)."""
        delay = self._backoff_initial
        attempts = 0
        while True:
            began = time.perf_counter()
            try:
                self._store.insert_arrow(
                    batch.project, batch.spans, batch.payloads, dedup_token=token
                )
            except Exception as exc:
                self._metrics.inc("retrace_store_insert_failures_total")
                attempts += 1
                if self._dead_letters is not None:
                    reason = self._refused_for_good(exc, attempts)
                    if reason is not None:
                        return self._set_aside(batch, token, exc, reason, attempts)
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("store insert failed (retrying in %.2fs): %s", delay, exc)
                # Retry even while stopping is requested for a short while; the spool keeps the
                # batch either way, so giving up at shutdown loses nothing.
                if self._stop.wait(delay):
                    raise _Stopping() from exc
                delay = min(delay * 2, self._backoff_max)
                continue
            self.timings["insert"] += time.perf_counter() - began
            self.healthy = True
            self.last_error = ""
            return 0

    def _set_aside(
        self, batch: SpanBatch, token: str, exc: Exception, reason: str, attempts: int
    ) -> int:
        """Dead-letter what of ``batch`` the store refuses; returns how many spans that is.

        A batch merges many requests: when the engine refuses its data, the halves are inserted
        apart (recursively, each with its own dedup token, deterministic for a replay), so only
        the rows it refuses are set aside, not the good spans that shared their batch.
        """
        rows = batch.span_count
        if rows > 1 and caused_by_rows(exc) and self._split_failures_left > 0:
            self._split_failures_left -= 1
            half = rows // 2
            set_aside = 0
            for lo, hi in ((0, half), (half, rows)):
                piece = dataclasses.replace(batch, spans=batch.spans.slice(lo, hi - lo))
                set_aside += self._insert_with_retry(piece, f"{token}/{lo}-{hi}")
            return set_aside
        self._dead_letter(batch, token, exc, reason, attempts)
        return rows

    def _refused_for_good(self, exc: Exception, attempts: int) -> str | None:
        """Why the batch will never be stored, or None while a retry may still get it in."""
        reason = permanent_reason(exc)
        if reason is not None or attempts < self._dead_letter_after or transient(exc):
            return reason
        try:
            self._store.ping()  # the store answers, yet this batch keeps failing
        except Exception:
            return None  # the store is down: keep the batch and keep retrying
        return f"the insert failed {attempts} times while the store answered"

    def _dead_letter(
        self, batch: SpanBatch, token: str, exc: Exception, reason: str, attempts: int
    ) -> None:
        assert self._dead_letters is not None
        path = self._dead_letters.add_batch(
            project=batch.project,
            spans=batch.spans,
            payloads=batch.payloads,
            reason=reason,
            error=f"{type(exc).__name__}: {exc}",
            attempts=attempts,
            spool_range=token,
        )
        self._metrics.inc("retrace_dead_letter_batches_total")
        self._metrics.inc("retrace_dead_letter_spans_total", batch.span_count)
        log.error(
            "dead-lettered %d spans of project %r to %s: %s (%s)",
            batch.span_count,
            batch.project,
            path,
            reason,
            exc,
        )
        self.healthy = True  # the store answered; the next batch is not blocked
        self.last_error = ""


@dataclass(frozen=True)
class _SpoolRange:
    """A contiguous spool range, decoded, its spans merged into one batch per project."""

    start: Position
    end: Position
    batches: list[SpanBatch]


class _Stopping(Exception):
    """Raised inside the loop to abandon a batch at shutdown (it stays in the spool)."""

"""OTLP decoding off the server process: a small process pool, with an in-process fallback.

Decoding (protobuf parse, redaction, convention mapping) is pure-Python CPU work; in the server
process it competes for the GIL with HTTP handling and the store insert. Worker processes decode
straight into the store's columnar form (a ``SpanBatch``: an Arrow table in the ``otel_traces``
layout and the payloads), which travels back as Arrow buffers: the server process does no
per-span Python work at all, it only frames, spools and hands whole tables to the store. Until
the pool is up, or if it breaks, the same runs in the server's thread pool: same result, only
slower.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from starlette.concurrency import run_in_threadpool

from collector._span_batch import SpanBatch

log = logging.getLogger(__name__)


def decode_body(
    body: bytes,
    content_type: str,
    content_encoding: str | None,
    project: str,
    max_body_bytes: int,
) -> SpanBatch:
    """Decode one OTLP request into its span batch (raises the decoder's 400/413/415 errors).

    Positional, and at module level, so a worker process can run it.
    """
    from collector.otlp import decode_export_request

    return decode_export_request(
        body,
        content_type=content_type,
        content_encoding=content_encoding,
        project=project,
        max_body_bytes=max_body_bytes,
    )


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: leave when the server process is gone (even after kill -9)."""
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm_up() -> int:
    # import (and pyarrow's first-use) cost paid before the first request
    decode_body(b"", "application/x-protobuf", None, "warm-up", 1)
    return os.getpid()


class DecodePool:
    """``workers`` decode processes (-1: one per CPU; 0: none, decode in-process)."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            workers = os.cpu_count() or 1
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start the processes in the background; requests decode in-process meanwhile."""
        if self.workers > 0:
            threading.Thread(target=self._spawn, name="decode-pool-start", daemon=True).start()

    def _spawn(self) -> None:
        try:
            pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
            for future in [pool.submit(_warm_up) for _ in range(self.workers)]:
                future.result(timeout=120)
        except Exception as exc:
            log.warning("decode pool unavailable, decoding in-process: %s", exc)
            return
        with self._lock:
            if self._closed:
                pool.shutdown(wait=False, cancel_futures=True)
                return
            self._pool = pool

    @property
    def ready(self) -> bool:
        return self._pool is not None

    async def decode(
        self, body: bytes, content_type: str, encoding: str | None, project: str, limit: int
    ) -> SpanBatch:
        """Decode in a worker if the pool is up, else in the server's thread pool."""
        pool = self._pool
        if pool is not None:
            try:
                future = pool.submit(decode_body, body, content_type, encoding, project, limit)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                log.warning("decode pool broke; restarting it and decoding in-process")
                with self._lock:
                    if self._pool is pool:
                        self._pool = None
                        pool.shutdown(wait=False, cancel_futures=True)
                        if not self._closed:
                            self.start()
        return await run_in_threadpool(decode_body, body, content_type, encoding, project, limit)

    def decode_many(
        self, requests: list[tuple[bytes, str, str | None, str, int]]
    ) -> list[SpanBatch | Exception]:
        """Decode spooled requests (replay after a restart), in parallel when the pool is up.

        Blocking: for the writer's thread. Each item is ``(body, content_type, encoding,
        project, max_body_bytes)``; a request that fails to decode yields its exception.
        """
        pool = self._pool
        results: list[SpanBatch | Exception] = []
        if pool is not None:
            try:
                futures = [pool.submit(decode_body, *request) for request in requests]
                for future in futures:
                    try:
                        results.append(future.result())
                    except BrokenProcessPool:
                        raise
                    except Exception as exc:
                        results.append(exc)
                return results
            except BrokenProcessPool:
                log.warning("decode pool broke during replay; decoding in-process")
                results = []
        for body, content_type, encoding, project, limit in requests:
            try:
                results.append(decode_body(body, content_type, encoding, project, limit))
            except Exception as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        """Stop the workers (waiting for them, so their semaphores are released cleanly)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

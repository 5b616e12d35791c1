"""The demo's process supervisor: a collector and a UI as child ``retrace`` processes.

Each child runs the product CLI (``python -m retrace SUBCOMMAND``; the argv prefix is
injectable), logs to a file, and counts as started once its health URL answers 200. On the way
out it gets SIGTERM (its shutdown flushes), then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from collector.jobs import RETRACE_CLI
from schemas.errors import StoreError

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0  # SIGTERM, then this long before SIGKILL


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def child_service(
    what: str,
    argv: Sequence[str],
    health_url: str,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 90,
    cli: Sequence[str] = RETRACE_CLI,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``CLI ARGV`` until the block ends; yield once ``health_url`` answers 200.

    A child that exits or stays silent is a one-line ``StoreError`` naming its log; on the way
    out it gets SIGTERM, then SIGKILL after ``STOP_GRACE_S``.
    """
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*cli, *argv],
            env=None if env is None else dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(what, process, health_url, log_path, timeout_s)
            yield process
        finally:
            stop(process)


def _wait_healthy(
    what: str, process: subprocess.Popen[bytes], health_url: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise StoreError(f"the {what} exited ({process.returncode}); see {log_path}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise StoreError(f"the {what} did not start in {timeout_s:.0f}s; see {log_path}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM a running child, then SIGKILL it if it has not exited after ``grace_s``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", process.pid, grace_s)
        process.kill()
        process.wait()


@contextlib.contextmanager
def collector_service(
    data_dir: Path, port: int | None, *, cli: Sequence[str] = RETRACE_CLI
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``retrace serve`` child on the embedded store in ``data_dir``; yields its URL."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with child_service(
        "collector",
        ["serve", "--port", str(port), "--data-dir", str(data_dir)],
        f"{url}/healthz",
        data_dir / "collector.log",
        env=dict(os.environ, RETRACE_DATA_DIR=str(data_dir)),
        cli=cli,
    ) as process:
        yield url, process


@contextlib.contextmanager
def ui_service(
    api_url: str, port: int, data_dir: Path, *, cli: Sequence[str] = RETRACE_CLI
) -> Iterator[str]:
    """A ``retrace ui`` child against ``api_url``; yields its URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    with child_service(
        "UI",
        ["ui", "--api", api_url, "--port", str(port)],
        f"{url}/_stcore/health",
        data_dir / "ui.log",
        timeout_s=60,
        cli=cli,
    ):
        yield url

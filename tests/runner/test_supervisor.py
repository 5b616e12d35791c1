"""The demo's process supervisor: a child counts as started once healthy, a child that dies or
stays silent is a one-line error naming its log, and it is stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from collector.jobs import RETRACE_CLI
from runner.supervisor import child_service, collector_service, free_port, stop
from schemas.errors import StoreError

PYTHON = (sys.executable,)


def test_children_run_the_product_cli_by_default() -> None:
    for service in (child_service, collector_service):
        assert inspect.signature(service).parameters["cli"].default == RETRACE_CLI


def test_a_child_is_yielded_once_healthy_and_stopped_afterwards(tmp_path: Path) -> None:
    port = free_port()
    argv = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), str(port)]
    url = f"http://127.0.0.1:{port}/"
    with child_service("web", argv, url, tmp_path / "web.log", cli=PYTHON) as process:
        assert process.poll() is None
        assert httpx.get(url, timeout=5).status_code == 200
    assert process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_a_child_that_exits_is_an_error_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "dead.log"
    argv = ["-c", "print('cannot start'); raise SystemExit(3)"]
    with (
        pytest.raises(StoreError, match=rf"the dead exited \(3\); see {log}"),
        child_service("dead", argv, f"http://127.0.0.1:{free_port()}/", log, cli=PYTHON),
    ):
        pass
    assert "cannot start" in log.read_text()


def test_a_silent_child_times_out_and_is_stopped(tmp_path: Path) -> None:
    argv = ["-c", "import time; time.sleep(60)"]
    url = f"http://127.0.0.1:{free_port()}/"
    with (
        pytest.raises(StoreError, match="did not start in 1s"),
        child_service("mute", argv, url, tmp_path / "mute.log", timeout_s=1, cli=PYTHON),
    ):
        pass


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop(process, grace_s=0.5)
    assert process.returncode == -9 and time.monotonic() - started < 10
    process.stdout.close()


@pytest.mark.integration
def test_the_demo_collector_is_a_retrace_serve_child(tmp_path: Path) -> None:
    with collector_service(tmp_path / "data", None) as (url, process):
        assert process.args[:3] == list(RETRACE_CLI)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert process.returncode != -9  # ended by SIGTERM, not killed

"""``BackgroundJobs``: the collector's children run the command they are given (the product CLI,
``python -m retrace``), with the requester's key, and report how they ended."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from collector.app import _background_jobs
from collector.jobs import RETRACE_CLI, BackgroundJobs
from schemas.errors import TooManyJobsError
from schemas.models import Job
from schemas.settings import Settings

# A stand-in CLI: prints its argv and key, exits with the code its second argument names.
ECHO_CLI = (
    sys.executable,
    "-c",
    "import os, sys; print('argv', sys.argv[1:], 'key', os.environ.get('RETRACE_API_KEY'));"
    " sys.exit(int(sys.argv[2]))",
)


def _finished(jobs: BackgroundJobs, job: Job, timeout_s: float = 30) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = jobs.get("p1", job.job_id)
        assert current is not None
        if current.status != "running":
            return current
        time.sleep(0.05)
    raise AssertionError(f"job {job.job_id} still running")


def test_the_collector_runs_the_product_cli() -> None:
    assert (sys.executable, "-m", "retrace") == RETRACE_CLI
    jobs = _background_jobs(Settings(data_dir=Path("unused"), max_jobs=1))
    assert jobs.cli == RETRACE_CLI


def test_a_job_runs_the_injected_cli_with_the_requesters_key(tmp_path: Path) -> None:
    jobs = BackgroundJobs(
        max_jobs=1, logs_dir=tmp_path, env={"RETRACE_API_KEY": "collector's"}, cli=ECHO_CLI
    )
    failures: list[str] = []
    with jobs.reserve("p1", "replay", "r1") as slot:
        job = jobs.start(slot, ["replay", "0"], "requester's", failures.append)
    done = _finished(jobs, job)
    assert (done.status, done.exit_code) == ("succeeded", 0)
    log = (tmp_path / "replay-r1.log").read_text()
    assert "argv ['replay', '0'] key requester's" in log
    assert failures == []
    assert jobs.of_project("p2") == []


def test_a_failed_job_reports_its_subcommand_and_log(tmp_path: Path) -> None:
    jobs = BackgroundJobs(max_jobs=1, logs_dir=tmp_path, env={}, cli=ECHO_CLI)
    failures: list[str] = []
    with jobs.reserve("p1", "resume", "run1") as slot:
        job = jobs.start(slot, ["resume", "3"], None, failures.append)
    done = _finished(jobs, job)
    assert (done.status, done.exit_code) == ("failed", 3)
    deadline = time.monotonic() + 10
    while not failures and time.monotonic() < deadline:
        time.sleep(0.05)
    (message,) = failures
    assert message.startswith("`retrace resume` exited with 3: argv ['resume', '3'] key None")


def test_slots_are_bounded(tmp_path: Path) -> None:
    jobs = BackgroundJobs(max_jobs=1, logs_dir=tmp_path, env={}, cli=ECHO_CLI)
    with (
        jobs.reserve("p1", "replay", "a"),
        pytest.raises(TooManyJobsError),
        jobs.reserve("p1", "replay", "b"),
    ):
        pass
    with jobs.reserve("p1", "replay", "c"):  # released: not started
        pass

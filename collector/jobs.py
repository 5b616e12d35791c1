"""Background jobs: the replay and resume processes the collector starts for API requests.

A job is the product CLI (``cli``, normally ``RETRACE_CLI``: ``python -m retrace``) run with
ARGV in its own session, owned by the project whose key asked for it and run with that key
(handed to the child in its environment, never stored). At most ``max_jobs`` run at once per
collector: a request reserves a slot *before* it records anything (a replay record, a decision),
so a refused request (``TooManyJobsError``: 429, Retry-After) leaves nothing behind. The registry
is in memory: each collector lists the jobs it started (running ones and the latest finished
ones), to the project that owns them only.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.errors import RetraceError, TooManyJobsError
from schemas.ids import check_id
from schemas.models import Job, JobKind

log = logging.getLogger(__name__)

RETRACE_CLI: tuple[str, ...] = (sys.executable, "-m", "retrace")
"""The product CLI (``retrace/cli.py``) in a child process of this interpreter: argv prefix."""

RETRY_AFTER_S = 5.0  # a replay or resume takes seconds to minutes
KEEP_FINISHED = 200  # finished jobs remembered for GET /api/v1/jobs


@dataclass
class JobSlot:
    """A reserved slot; ``BackgroundJobs.start`` turns it into a running job."""

    job_id: str
    project: str
    kind: JobKind
    subject: str
    started: bool = False


@dataclass
class _Entry:
    project: str
    job: Job


class BackgroundJobs:
    """The collector's bounded set of child processes (see the module docstring).

    ``cli`` is the argv prefix of every job (``RETRACE_CLI``; a test may run something else).
    """

    def __init__(
        self,
        *,
        max_jobs: int,
        logs_dir: Path,
        env: Mapping[str, str],
        cli: Sequence[str],
    ) -> None:
        self.max_jobs = max_jobs
        self.logs_dir = logs_dir
        self._env = dict(env)
        self._env.pop("RETRACE_API_KEY", None)  # a child acts only with its requester's key
        self.cli = tuple(cli)
        self._lock = threading.Lock()
        self._busy = 0  # slots reserved or running
        self._jobs: dict[str, _Entry] = {}

    @contextlib.contextmanager
    def reserve(self, project: str, kind: JobKind, subject: str) -> Iterator[JobSlot]:
        """Hold a slot for the block; released at its end unless ``start`` used it.

        Raises ``TooManyJobsError`` when all ``max_jobs`` slots are busy, and
        ``InvalidInputError`` when ``subject`` could not safely name a log file or an argument.
        """
        check_id(subject, "replay id" if kind == "replay" else "run id")
        with self._lock:
            if self._busy >= self.max_jobs:
                raise TooManyJobsError(
                    f"this collector already runs {self._busy} replay/resume jobs "
                    f"(RETRACE_MAX_JOBS={self.max_jobs}); retry later",
                    RETRY_AFTER_S,
                )
            self._busy += 1
        slot = JobSlot(uuid.uuid4().hex, project, kind, subject)
        try:
            yield slot
        finally:
            if not slot.started:
                with self._lock:
                    self._busy -= 1

    def start(
        self,
        slot: JobSlot,
        argv: list[str],
        api_key: str | None,
        on_failure: Callable[[str], None] | None = None,
    ) -> Job:
        """Start ``CLI ARGV`` (the product CLI) in ``slot``; log to ``LOGS/KIND-SUBJECT.log``.

        ``on_failure(message)`` runs (in a reaper thread) when the child exits non-zero.
        """
        env = dict(self._env)
        if api_key:
            env["RETRACE_API_KEY"] = api_key
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{slot.kind}-{check_id(slot.subject, 'job subject')}.log"
        try:
            with open(log_path, "ab") as out:
                process = subprocess.Popen(
                    [*self.cli, *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            log.error("could not start %s job for %s: %s", slot.kind, slot.subject, exc)
            raise RetraceError(f"could not start the {slot.kind} job: {exc.strerror}") from None
        slot.started = True
        job = Job(
            job_id=slot.job_id, kind=slot.kind, subject=slot.subject, started_at=datetime.now(UTC)
        )
        with self._lock:
            self._jobs[job.job_id] = _Entry(slot.project, job)
        threading.Thread(
            target=self._reap,
            args=(job.job_id, process, log_path, argv[0], on_failure),
            name=f"reap-{slot.kind}-{job.job_id}",
            daemon=True,
        ).start()
        return job.model_copy()

    def _reap(
        self,
        job_id: str,
        process: subprocess.Popen[bytes],
        log_path: Path,
        subcommand: str,
        on_failure: Callable[[str], None] | None,
    ) -> None:
        code = process.wait()
        with self._lock:
            self._busy -= 1
            job = self._jobs[job_id].job
            job.exit_code = code
            job.status = "succeeded" if code == 0 else "failed"
            job.finished_at = datetime.now(UTC)
            finished = [i for i, e in self._jobs.items() if e.job.status != "running"]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old]
        if code != 0 and on_failure is not None:
            tail = log_path.read_bytes()[-2000:].decode(errors="replace").strip()
            try:
                on_failure(f"`retrace {subcommand}` exited with {code}: {tail[-500:]}")
            except RetraceError as exc:
                log.warning("could not record the failure of job %s: %s", job_id, exc.message)

    def of_project(
        self, project: str, kind: JobKind | None = None, subject: str | None = None
    ) -> list[Job]:
        """The project's jobs on this collector, oldest first."""
        with self._lock:
            jobs = [
                e.job.model_copy()
                for e in self._jobs.values()
                if e.project == project
                and (kind is None or e.job.kind == kind)
                and (subject is None or e.job.subject == subject)
            ]
        return sorted(jobs, key=lambda j: (j.started_at, j.job_id))

    def get(self, project: str, job_id: str) -> Job | None:
        """One of the project's jobs; None when unknown here or another project's."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None or entry.project != project:
                return None
            return entry.job.model_copy()

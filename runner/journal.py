"""Run journal: a run killed with SIGKILL (or by the OOM killer) still gets its root span.

When a run's ``invoke_agent`` root starts, a small record (trace id, root span id, start time,
the root's attributes, pid + process start time, endpoint, project, a hash of the API key — never
the key) is written and fsynced to ``DATA_DIR/runner/journal/<run_id>.json``. It is deleted once
the root has been ended and flushed (normal end, pause, SIGTERM/SIGINT/exit paths). Each ended
child span touches the file, so its mtime is the run's last heartbeat.

The next runner on the same data dir (``run_agent`` / ``resume_agent`` with an endpoint, i.e.
``retrace run``, ``retrace demo``, ``retrace resume``) recovers entries whose process is dead
(pid gone, or reused by a process with another start time): it exports the root span with the
*original* trace and span ids, status ERROR, ``retrace.run.status=incomplete`` and an event
saying which process died, then deletes the entry. Like a WAL replayed on restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from runner.otel_resource import SCOPE_NAME, runner_resource
from schemas import attributes as A
from schemas.models import RunStatus

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "runner" / "journal"


def key_ref(api_key: str | None) -> str:
    """A reference to the API key (a short hash), so the key itself is never on disk."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if not Path("/proc/self/stat").exists():  # no procfs: fall back to "pid exists"
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return 0
            return 0
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_alive(pid: int, start: int | None) -> bool:
    """Whether the process that wrote an entry still runs (same pid *and* start time)."""
    now_start = process_start(pid)
    if now_start is None:
        return False
    return start is None or now_start == 0 or now_start == start


def write_entry(
    data_dir: Path,
    *,
    run_id: str,
    trace_id: str,
    span_id: str,
    start_ns: int,
    name: str,
    attributes: dict[str, Any],
    links: list[tuple[str, str]],
    endpoint: str,
    project: str,
    api_key: str | None,
) -> Path:
    """Write and fsync the journal entry of a starting run; returns its path."""
    directory = journal_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    entry = {
        "version": JOURNAL_VERSION,
        "run_id": run_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "start_ns": start_ns,
        "name": name,
        "attributes": attributes,
        "links": [list(link) for link in links],
        "pid": pid,
        "process_start": process_start(pid),
        "endpoint": endpoint,
        "project": project,
        "api_key_ref": key_ref(api_key),
    }
    path = directory / f"{run_id}.{span_id}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(entry, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def heartbeat(path: Path | None) -> None:
    """Touch the entry: its mtime is when the run was last seen alive."""
    if path is not None:
        with contextlib.suppress(OSError):
            os.utime(path)


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def recovered_span(entry: dict[str, Any], *, end_ns: int, recovered_by: int) -> ReadableSpan:
    """The root span the dead process never ended, with its original ids."""
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(
        int(entry["trace_id"], 16), int(entry["span_id"], 16), is_remote=False, trace_flags=flags
    )
    attributes: dict[str, Any] = dict(entry.get("attributes") or {})
    attributes[A.RETRACE_RUN_STATUS] = RunStatus.INCOMPLETE.value
    message = (
        f"process {entry['pid']} died without ending the run (recovered by pid {recovered_by})"
    )
    links = [
        Link(SpanContext(int(t, 16), int(s, 16), is_remote=True, trace_flags=flags))
        for t, s in entry.get("links") or []
    ]
    return ReadableSpan(
        name=entry["name"],
        context=context,
        parent=None,
        resource=runner_resource(entry.get("project") or "default"),
        attributes=attributes,
        events=[
            Event(
                A.EVENT_EXCEPTION,
                {A.EXCEPTION_TYPE: "ProcessDied", A.EXCEPTION_MESSAGE: message},
                timestamp=end_ns,
            )
        ],
        links=links,
        kind=SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR, message),
        start_time=int(entry["start_ns"]),
        end_time=end_ns,
        instrumentation_scope=InstrumentationScope(SCOPE_NAME),
    )


_RECOVERED: set[tuple[str, str]] = set()
_RECOVER_LOCK = threading.Lock()


def recover(
    data_dir: Path,
    endpoint: str,
    api_key: str | None,
    *,
    exporter: SpanExporter | None = None,
) -> list[str]:
    """Export the root span of every journaled run whose process died; returns their trace
    ids. Entries for another endpoint or API key are left for a runner pointed there; once
    per (data dir, endpoint) per process."""
    directory = journal_dir(data_dir)
    with _RECOVER_LOCK:
        marker = (str(directory), endpoint)
        if marker in _RECOVERED or not directory.is_dir():
            _RECOVERED.add(marker)
            return []
        _RECOVERED.add(marker)
    me = os.getpid()
    recovered: list[str] = []
    for path in sorted(directory.glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written or foreign: left alone
        if pid == me or is_alive(pid, entry.get("process_start")):
            continue
        if entry.get("endpoint") != endpoint or entry.get("api_key_ref", "") != key_ref(api_key):
            continue
        claimed = path.with_name(f"{path.name}.recovering-{me}")
        try:
            os.replace(path, claimed)  # a concurrent recoverer loses the race cleanly
        except OSError:
            continue
        try:
            end_ns = max(int(entry["start_ns"]), claimed.stat().st_mtime_ns)
            span = recovered_span(entry, end_ns=end_ns, recovered_by=me)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("dropping unusable run journal entry %s: %r", path.name, exc)
            remove(claimed)
            continue
        sink = exporter or OTLPSpanExporter(
            endpoint=f"{endpoint.rstrip('/')}/v1/traces",
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            timeout=10,
        )
        try:
            result = sink.export([span])
        finally:
            if exporter is None:
                sink.shutdown()
        if result == SpanExportResult.SUCCESS:
            remove(claimed)
            recovered.append(entry["trace_id"])
        else:  # put it back for the next runner
            log.warning("could not export the recovered root of %s; kept for later", path.name)
            with contextlib.suppress(OSError):
                os.replace(claimed, path)
    return recovered

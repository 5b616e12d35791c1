"""Sessions, users, feedback and text search: read times over a filled store.

    .venv/bin/python bench/bench_sessions.py --traces 20000        # chDB in a temp dir
    .venv/bin/python bench/bench_sessions.py --clickhouse-url http://127.0.0.1:8123

Prints figures; asserts nothing. Fills the store with ``--traces`` realistic runs
(``bench_store.realistic_trace``: 10 spans, JSON payloads) spread over 4 days, in sessions of 1–8
runs of ``--users`` end users, one run in 20 with feedback; then times (p50/p99 over ``--reads``
reads each): the sessions list (all, one user's), one session's traces, trace lists filtered by
session, user and feedback, and text search for ASCII and for Cyrillic (the RE2 path that also
finds JSON-escaped text).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import PROJECT, _fmt, _load, realistic_trace

from collector.store import open_store
from schemas.models import Feedback, SessionQuery, SpanRecord, TraceQuery
from schemas.settings import Settings


def _time(reads: int, call: Callable[[], object]) -> str:
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(reads):
        t = time.perf_counter()
        c = time.process_time()
        call()
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return _fmt(walls, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--clickhouse-url", default=None)
    args = parser.parse_args()
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), clickhouse_url=args.clickhouse_url)
        store = open_store(settings)
        start = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1e9)
        step = 4 * 86_400 * 10**9 // args.traces
        batch: list[SpanRecord] = []
        payloads: dict[str, bytes] = {}
        session = ""
        left = 0
        feedback: list[Feedback] = []
        t = time.perf_counter()
        for n in range(args.traces):
            if left == 0:
                session, left = f"s-{n}", rng.randint(1, 8)
                user = f"u-{rng.randrange(args.users)}"
            left -= 1
            spans, blobs = realistic_trace(rng, start + n * step)
            for span in spans:
                span.session_id, span.user_id = session, user
            batch += spans
            payloads.update(blobs)
            if n % 20 == 0:
                feedback.append(
                    Feedback(
                        feedback_id=f"f{n}",
                        trace_id=spans[0].trace_id,
                        name="complaint",
                        value="refund not sent",
                        created_at=datetime.now(UTC),
                    )
                )
            if len(batch) >= 20_000:
                store.insert_spans(PROJECT, batch, payloads)
                batch, payloads = [], {}
        if batch:
            store.insert_spans(PROJECT, batch, payloads)
        for f in feedback:
            store.save_feedback(PROJECT, f)
        print(f"filled {args.traces:,} traces in {time.perf_counter() - t:.1f} s ({_load()})")
        some_user = "u-7"
        some_session = store.list_sessions(PROJECT, SessionQuery(limit=1)).sessions[0].session_id
        reads = args.reads
        cases: list[tuple[str, Callable[[], object]]] = [
            ("sessions, newest 50", lambda: store.list_sessions(PROJECT, SessionQuery())),
            (
                "sessions of one user",
                lambda: store.list_sessions(PROJECT, SessionQuery(user_id=some_user)),
            ),
            ("one session's traces", lambda: store.get_session(PROJECT, some_session)),
            (
                "traces ?session_id",
                lambda: store.list_traces(PROJECT, TraceQuery(session_id=some_session)),
            ),
            ("traces ?user_id", lambda: store.list_traces(PROJECT, TraceQuery(user_id=some_user))),
            (
                "traces ?feedback",
                lambda: store.list_traces(PROJECT, TraceQuery(feedback="complaint")),
            ),
            ("traces, no filter", lambda: store.list_traces(PROJECT, TraceQuery())),
            ("traces ?text ascii", lambda: store.list_traces(PROJECT, TraceQuery(text="zq"))),
            ("traces ?text cyrillic", lambda: store.list_traces(PROJECT, TraceQuery(text="жщ"))),
        ]
        for name, call in cases:
            print(f"{name:24} {_time(reads, call)}")
        print(_load())
        store.close()


if __name__ == "__main__":
    main()

"""The overview's figures over a real collector: replays are no runs, and a run's duration leaves
out the hour it waited for a human's approval (reported apart)."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.collector import RunningCollector
from tests.ui.seed import seed_overview_runs

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000.0


def test_stats_leave_out_replays_and_waits_for_approval(
    collector_server: RunningCollector,
) -> None:
    client = collector_server.client
    seeded = seed_overview_runs(collector_server.url, client)
    assert seeded.wait_ms == HOUR_MS
    # The stored trace of the run that waited spans the hour: that is the wall time.
    waited = client.get_trace(seeded.waited).trace
    assert waited.duration_ms > HOUR_MS

    stats = client.stats()
    # Four quick runs, the one that waited, the one still waiting; not the replay.
    assert stats.runs == 6
    # Active durations: 1, 1, 2, 3, 4 s and 2 + 3 s for the run that waited (each segment ends
    # 3 ms short of its whole seconds). Its hour of waiting and the half-hour replay count nowhere.
    assert stats.p90_ms == pytest.approx(5000 - 6, abs=1)
    assert stats.p99_ms == pytest.approx(5000 - 6, abs=1)
    assert stats.p50_ms < 5000
    assert stats.approval_waits == 1
    assert stats.approval_wait_ms == pytest.approx(HOUR_MS)
    assert stats.approval_wait_p50_ms == pytest.approx(HOUR_MS)
    assert stats.waiting_for_approval == 1
    # One bucket (the day): the same active durations.
    [bucket] = client.stats(bucket_seconds=86_400).buckets
    assert bucket.runs == 6 and bucket.p95_ms == pytest.approx(5000 - 6, abs=1)


def test_lists_leave_out_replays_unless_asked(collector_server: RunningCollector) -> None:
    client = collector_server.client
    seeded = seed_overview_runs(collector_server.url, client)
    runs = {*seeded.quick, seeded.waited, seeded.paused}

    # The API's default, as any HTTP client sees it.
    raw = httpx.get(f"{collector_server.url}/api/v1/traces", params={"limit": 50}).json()
    assert {t["trace_id"]: t["replay_of"] for t in raw["traces"]} == dict.fromkeys(runs, ""), seeded
    assert {t.trace_id for t in client.list_traces().traces} == runs

    listed = client.list_traces(include_replays=True).traces
    assert {t.trace_id for t in listed} == runs | {seeded.replay}
    [replay] = [t for t in listed if t.replay_of]
    assert (replay.trace_id, replay.replay_of) == (seeded.replay, seeded.waited)
    # Asking for the replays of a trace lists them whatever include_replays says.
    assert [t.trace_id for t in client.list_traces(replay_of=seeded.waited).traces] == [
        seeded.replay
    ]

    bad = httpx.get(f"{collector_server.url}/api/v1/traces", params={"include_replays": "maybe"})
    assert bad.status_code == 400 or bad.status_code == 422
    assert "include_replays" in bad.text

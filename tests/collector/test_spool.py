"""The write-ahead spool: framing, group commit, torn tails, committed positions, the cap."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.spool import SEGMENT_MAGIC, IngestRecord, Position, Spool, scan_segment
from schemas.errors import ConfigError, OverloadedError


def _drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        entries = spool.read(1000, timeout=0.05)
        if not entries:
            return out
        out.extend(e.data for e in entries)


def test_append_read_commit_and_restart_replays_only_uncommitted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    positions = [spool.append(f"rec-{i}".encode()) for i in range(10)]
    spool.wait_durable(positions[-1], timeout=5)
    entries = spool.read(4, timeout=1)
    assert [e.data for e in entries] == [f"rec-{i}".encode() for i in range(4)]
    spool.commit(entries[-1].end)
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(reopened) == [f"rec-{i}".encode() for i in range(4, 10)]
    reopened.close()


def test_torn_tail_is_truncated_and_startup_survives(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    end = spool.append(b"good-1")
    end = spool.append(b"good-2")
    spool.wait_durable(end, timeout=5)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    with open(segment, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02\x03\x04partial")  # header says 64 bytes, 7 follow
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.stats.truncated_bytes == 15
    assert _drain(reopened) == [b"good-1", b"good-2"]
    frames, valid_end = scan_segment(segment)
    assert len(frames) == 2 and valid_end == segment.stat().st_size
    reopened.close()


def test_corrupt_crc_stops_the_scan_there(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.wait_durable(spool.append(b"a" * 10), timeout=5)
    spool.wait_durable(spool.append(b"b" * 10), timeout=5)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last record's body
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(reopened) == [b"a" * 10]
    reopened.close()


def test_garbage_segment_file_is_dropped(tmp_path: Path) -> None:
    (tmp_path / f"{3:016d}.seg").write_bytes(b"not a spool")
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(spool) == []
    spool.close()


def test_concurrent_appends_share_fsyncs(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 24)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(25):
            spool.wait_durable(spool.append(b"x" * 100), timeout=10)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spool.stats.appends == 200
    assert 1 <= spool.stats.fsyncs <= 200
    assert len(_drain(spool)) == 200
    spool.close()


def test_async_waiters_are_woken(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)

    async def main() -> None:
        ends = [spool.append(b"r%d" % i) for i in range(20)]
        await asyncio.gather(*(spool.wait_durable_async(e) for e in ends))

    asyncio.run(main())
    spool.close()


def test_segments_roll_and_consumed_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for i in range(20):
        end = spool.append(b"%02d" % i + b"y" * 40)
    spool.wait_durable(end, timeout=5)
    assert len(list(spool.iter_segments())) > 3
    got = []
    last = None
    while len(got) < 20:
        entries = spool.read(100, timeout=1)
        got.extend(e.data[:2] for e in entries)
        last = entries[-1].end if entries else last
    assert got == [b"%02d" % i for i in range(20)]
    assert last is not None
    spool.commit(last)
    assert spool.pending_bytes == 0
    assert len(list(spool.iter_segments())) <= 2
    spool.close()


def test_cap_raises_overloaded_and_commit_frees_space(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=300, retry_after_s=2.0)
    end = spool.append(b"z" * 100)
    end = spool.append(b"z" * 100)
    spool.wait_durable(end, timeout=5)
    with pytest.raises(OverloadedError) as info:
        spool.append(b"z" * 100)
    assert info.value.retry_after == 2.0
    assert spool.pending_bytes == 216
    entries = spool.read(10, timeout=1)
    spool.commit(entries[-1].end)
    assert spool.pending_bytes == 0
    spool.append(b"z" * 100)
    spool.close()


def test_inflight_batch_is_reported_after_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        end = spool.append(b"%d" % i)
    spool.wait_durable(end, timeout=5)
    entries = spool.read(3, timeout=1)
    spool.mark_inflight(entries[0].start, entries[-1].end)
    spool.close()  # "crash" between marking and committing

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    inflight = reopened.recovered_inflight
    assert inflight is not None
    assert inflight.start == entries[0].start and inflight.end == entries[-1].end
    replay = reopened.read(100, timeout=1, until=inflight.end)
    assert [e.data for e in replay] == [b"0", b"1", b"2"]
    reopened.commit(replay[-1].end)
    assert _drain(reopened) == [b"3", b"4"]
    reopened.close()


def test_second_owner_of_the_directory_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(ConfigError, match=str(os.getpid())):
        Spool(tmp_path, max_bytes=1 << 20)
    spool.close()


def test_ingest_record_roundtrip() -> None:
    record = IngestRecord("proj", "application/x-protobuf", "gzip", b"\x00\x01body")
    assert IngestRecord.decode(record.encode()) == record
    assert Position(1, 2) < Position(2, 0)
    assert SEGMENT_MAGIC.startswith(b"RT")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=12),
    cut=st.integers(min_value=0, max_value=4000),
    flip=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)),
)
def test_any_torn_or_corrupt_tail_recovers_a_clean_prefix(
    tmp_path_factory: pytest.TempPathFactory, records: list[bytes], cut: int, flip: int | None
) -> None:
    """Whatever a crash leaves (a cut anywhere, a flipped byte), start-up works and yields a
    prefix of what was written, never garbage."""
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, max_bytes=1 << 20)
    for data in records:
        end = spool.append(data)
    spool.wait_durable(end, timeout=5)
    spool.close()
    segment = sorted(directory.glob("*.seg"))[-1]
    raw = bytearray(segment.read_bytes())
    if flip is not None and flip < len(raw):
        raw[flip] ^= 0x5A
    segment.write_bytes(bytes(raw[: min(cut, len(raw))] if cut < len(raw) else raw))

    reopened = Spool(directory, max_bytes=1 << 20)
    got = _drain(reopened)
    assert got == records[: len(got)]
    reopened.wait_durable(reopened.append(b"after"), timeout=5)
    reopened.close()
    again = Spool(directory, max_bytes=1 << 20)
    assert _drain(again) == [*got, b"after"]
    again.close()


def test_restarts_without_ingest_do_not_pile_up_segments(tmp_path: Path) -> None:
    for _ in range(5):
        Spool(tmp_path, max_bytes=1 << 20).close()
    assert len(list(tmp_path.glob("*.seg"))) <= 2  # bounded, not one per restart
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.wait_durable(spool.append(b"kept"), timeout=5)
    spool.close()
    for _ in range(3):
        Spool(tmp_path, max_bytes=1 << 20).close()
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(reopened) == [b"kept"]
    reopened.close()

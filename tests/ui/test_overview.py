"""Overview frames computed with polars from Stats, card values and time charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.models import Stats, StatsBucket, ToolFailures
from ui._overview import (
    buckets_frame,
    compact_cost,
    compact_count,
    compact_duration,
    duration_unit,
    failing_tools_frame,
    time_axis_range,
    time_chart,
    total_cost,
)
from ui._pricing import Price


def _stats() -> Stats:
    return Stats(
        runs=3,
        errors=1,
        error_rate=1 / 3,
        p50_ms=10,
        p90_ms=20,
        p99_ms=30,
        input_tokens=3_000_000,
        output_tokens=1_000_000,
        buckets=[
            StatsBucket(
                time=datetime(2026, 1, 1, 1, tzinfo=UTC),
                runs=1,
                errors=1,
                p50_ms=5,
                p95_ms=6,
                input_tokens=1_000_000,
                output_tokens=0,
            ),
            StatsBucket(
                time=datetime(2026, 1, 1, 0, tzinfo=UTC),
                runs=2,
                errors=0,
                p50_ms=5,
                p95_ms=6,
                input_tokens=2_000_000,
                output_tokens=1_000_000,
            ),
        ],
        top_failing_tools=[
            ToolFailures(tool="a", calls=4, errors=1),
            ToolFailures(tool="b", calls=2, errors=2),
        ],
    )


def test_buckets_sorted_with_rate_and_cost() -> None:
    frame = buckets_frame(_stats(), Price(1.0, 2.0))
    assert frame["runs"].to_list() == [2, 1]
    assert frame["error_rate"].to_list() == [0.0, 1.0]
    assert frame["cost_usd"].to_list() == pytest.approx([4.0, 1.0])
    assert total_cost(_stats(), Price(1.0, 2.0)) == pytest.approx(5.0)


def test_failing_tools_by_errors() -> None:
    frame = failing_tools_frame(_stats())
    assert frame["tool"].to_list() == ["b", "a"]
    assert frame["failure_rate"].to_list() == [1.0, 0.25]


def test_empty_stats() -> None:
    empty = Stats(
        runs=0,
        errors=0,
        error_rate=0,
        p50_ms=0,
        p90_ms=0,
        p99_ms=0,
        input_tokens=0,
        output_tokens=0,
        buckets=[],
        top_failing_tools=[],
    )
    assert buckets_frame(empty, None).is_empty()
    assert total_cost(empty, None) is None


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0, "0 ms"),
        (12.34, "12.3 ms"),
        (850, "850 ms"),
        (999.6, "1 s"),
        (3_400, "3.4 s"),
        (720_000, "12 min"),
        (3_368_000, "56.1 min"),
        (4_320_000, "1.2 h"),
        (3 * 86_400_000, "3.0 d"),
    ],
)
def test_compact_duration(ms: float, shown: str) -> None:
    assert compact_duration(ms) == shown


def test_compact_count_and_cost_stay_short() -> None:
    assert [compact_count(n) for n in (7, 999, 12_345, 999_999, 4_500_000, 1.2e9)] == [
        "7",
        "999",
        "12.3k",
        "1M",
        "4.5M",
        "1.2B",
    ]
    assert [compact_cost(c) for c in (None, 0, 0.01234, 0.5, 12.345, 12_345.6)] == [
        "—",
        "$0.00",
        "$0.0123",
        "$0.50",
        "$12.35",
        "$12.3k",
    ]
    # Whatever the magnitude, a card's value stays within 8 characters.
    for exponent in range(-3, 16):
        assert len(compact_duration(1.7 * 10**exponent)) <= 8
        assert len(compact_count(1.7 * 10**exponent)) <= 6
        assert len(compact_cost(1.7 * 10**exponent)) <= 8
    with pytest.raises(ValueError, match="not a non-negative number"):
        compact_duration(-1)


def _one_bucket() -> Stats:
    stats = _stats()
    return stats.model_copy(update={"buckets": stats.buckets[:1]})


def test_one_bucket_draws_as_a_bar_on_an_axis_of_hours() -> None:
    frame = buckets_frame(_one_bucket(), None)
    low, high = time_axis_range(frame, 3600)
    bucket = datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert (low, high) == (bucket - timedelta(hours=1), bucket + timedelta(hours=2))

    figure = time_chart(
        frame, {"runs": "runs", "errors": "errors"}, title="t", bucket_seconds=3600, kind="bar"
    )
    axis = figure.layout.xaxis
    assert axis.type == "date" and list(axis.range) == [low, high]
    runs, errors = figure.data
    # Two bars side by side inside the bucket: 80% of its hour between them, 10% margins.
    assert (runs.width, errors.width) == (1_440_000, 1_440_000)
    assert (runs.offset, errors.offset) == (360_000, 1_800_000)
    assert list(runs.y) == [1] and list(errors.y) == [1]

    line = time_chart(frame, {"p50_ms": "p50"}, title="t", bucket_seconds=3600, scale=1000)
    [series] = line.data
    assert list(series.x) == [bucket + timedelta(minutes=30)] and list(series.y) == [0.005]
    assert list(line.layout.xaxis.range) == [low, high]


def test_many_buckets_span_their_range() -> None:
    frame = buckets_frame(_stats(), None)
    low, high = time_axis_range(frame, 3600)
    first = datetime(2026, 1, 1, 0, tzinfo=UTC)
    # Two buckets (two hours) widened to three, centred.
    assert (low, high) == (first - timedelta(minutes=30), first + timedelta(hours=2, minutes=30))
    assert duration_unit(900) == ("ms", 1.0) and duration_unit(5_000) == ("s", 1_000.0)
    assert duration_unit(3 * 3_600_000) == ("h", 3_600_000.0)

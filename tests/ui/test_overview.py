"""Overview frames computed with polars from Stats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.models import Stats, StatsBucket, ToolFailures
from ui._overview import buckets_frame, failing_tools_frame, total_cost
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

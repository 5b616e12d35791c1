"""Overview numbers computed with polars from the aggregate ``Stats`` the API returns."""

from __future__ import annotations

import polars as pl

from schemas.models import Stats
from ui._pricing import Price

BUCKET_CHOICES: dict[str, int] = {"1 min": 60, "5 min": 300, "1 hour": 3600, "1 day": 86400}


def buckets_frame(stats: Stats, price: Price | None) -> pl.DataFrame:
    """One row per time bucket: runs, errors, error rate, latency, tokens and estimated cost."""
    frame = pl.DataFrame(
        [bucket.model_dump() for bucket in stats.buckets],
        schema={
            "time": pl.Datetime(time_zone="UTC"),
            "runs": pl.Int64,
            "errors": pl.Int64,
            "p50_ms": pl.Float64,
            "p95_ms": pl.Float64,
            "input_tokens": pl.Int64,
            "output_tokens": pl.Int64,
        },
    )
    input_price = price.input_per_mtok if price else 0.0
    output_price = price.output_per_mtok if price else 0.0
    return frame.sort("time").with_columns(
        error_rate=pl.when(pl.col("runs") > 0)
        .then(pl.col("errors") / pl.col("runs"))
        .otherwise(0.0),
        tokens=pl.col("input_tokens") + pl.col("output_tokens"),
        cost_usd=(pl.col("input_tokens") * input_price + pl.col("output_tokens") * output_price)
        / 1_000_000,
    )


def failing_tools_frame(stats: Stats) -> pl.DataFrame:
    """Tools by error count, with their failure rate."""
    frame = pl.DataFrame(
        [tool.model_dump() for tool in stats.top_failing_tools],
        schema={"tool": pl.String, "calls": pl.Int64, "errors": pl.Int64},
    )
    return frame.with_columns(
        failure_rate=pl.when(pl.col("calls") > 0)
        .then(pl.col("errors") / pl.col("calls"))
        .otherwise(0.0)
    ).sort(["errors", "tool"], descending=[True, False])


def total_cost(stats: Stats, price: Price | None) -> float | None:
    if price is None:
        return None
    return (
        stats.input_tokens * price.input_per_mtok + stats.output_tokens * price.output_per_mtok
    ) / 1_000_000

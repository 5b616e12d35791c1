"""Overview numbers computed with polars from the aggregate ``Stats`` the API returns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, cast

import plotly.graph_objects as go
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


# --- figures as cards show them -----------------------------------------------------------------
# A card is narrow: every value fits in a few characters (the card cuts longer ones with "…").
_DURATION_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86_400_000.0),
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1_000.0),
)


def compact_duration(ms: float) -> str:
    """A duration in the largest unit it reaches, 3 significant figures at most: 850 ms, 3.4 s,
    12 min, 1.2 h, 3.0 d."""
    if ms < 0 or ms != ms:
        raise ValueError(f"duration {ms!r} ms is not a non-negative number")
    for unit, size in _DURATION_UNITS:
        if ms >= size * 0.9995:  # what rounds to 1 of this unit is shown in it
            return f"{_three_figures(ms / size)} {unit}"
    return f"{_three_figures(ms)} ms" if ms else "0 ms"


def compact_count(n: float) -> str:
    """A count in at most 4 digits and a suffix: 999, 12.3k, 4.5M, 1.2B."""
    for suffix, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size * 0.9995:
            return f"{_three_figures(n / size)}{suffix}"
    return f"{n:,.0f}" if float(n).is_integer() else _three_figures(n)


def compact_cost(usd: float | None) -> str:
    """Dollars to the cent, or to 3 significant figures below a dollar; large sums as 12.3k."""
    if usd is None:
        return "—"
    if usd >= 1000:
        return f"${compact_count(usd)}"
    if usd >= 0.1 or usd == 0:
        return f"${usd:,.2f}"
    return f"${usd:.3g}"


def _three_figures(value: float) -> str:
    """At most 3 significant figures, no exponent, no trailing '.0' past 10."""
    if value >= 99.95:
        return f"{value:,.0f}"
    if value >= 9.995:
        return f"{value:.0f}" if round(value, 1).is_integer() else f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.1f}"


def duration_unit(max_ms: float) -> tuple[str, float]:
    """The unit a chart of durations up to ``max_ms`` reads best in, and its size in ms."""
    if max_ms >= 2 * 3_600_000:
        return "h", 3_600_000.0
    if max_ms >= 2 * 60_000:
        return "min", 60_000.0
    if max_ms >= 2_000:
        return "s", 1_000.0
    return "ms", 1.0


def time_axis_range(frame: pl.DataFrame, bucket_seconds: int) -> tuple[datetime, datetime]:
    """The x range a time chart shows: from the first bucket's start to the last one's end, and
    at least three buckets wide (centred), so a lone bucket is a bar or point with hour or day
    ticks around it, not a point on an axis labelled in fractions of a millisecond."""
    if frame.is_empty():
        raise ValueError("no buckets to draw")
    bucket = timedelta(seconds=bucket_seconds)
    low = cast(datetime, frame["time"].min())
    high = cast(datetime, frame["time"].max()) + bucket
    if high - low < 3 * bucket:
        pad = (3 * bucket - (high - low)) / 2
        low, high = low - pad, high + pad
    return low, high


# --- time charts ----------------------------------------------------------------------------------
def time_chart(
    frame: pl.DataFrame,
    columns: dict[str, str],
    *,
    title: str,
    bucket_seconds: int,
    kind: Literal["bar", "line"] = "line",
    stacked: bool = False,
    scale: float = 1.0,
) -> go.Figure:
    """One series per ``columns`` (frame column -> legend name) over the buckets of ``frame``.

    Bars span their bucket (grouped side by side, or ``stacked``), points sit in its middle, and
    the time axis is :func:`time_axis_range` wide, so one bucket draws as readably as many.
    Values are divided by ``scale`` (a duration unit, say).
    """
    bucket_ms = bucket_seconds * 1000
    times = frame["time"].to_list()
    figure = go.Figure()
    series = list(columns.items())
    width = bucket_ms * 0.8 / (1 if stacked or kind == "line" else len(series))
    for index, (column, name) in enumerate(series):
        values = [v / scale if v is not None else None for v in frame[column].to_list()]
        if kind == "bar":
            figure.add_trace(
                go.Bar(
                    x=times,
                    y=values,
                    name=name,
                    width=width,
                    offset=bucket_ms * 0.1 + (0 if stacked else index * width),
                )
            )
        else:
            middles = [t + timedelta(milliseconds=bucket_ms / 2) for t in times]
            figure.add_trace(
                go.Scatter(x=middles, y=values, name=name, mode="lines+markers", marker={"size": 9})
            )
    low, high = time_axis_range(frame, bucket_seconds)
    figure.update_layout(
        title={"text": title},
        barmode="stack" if stacked else "overlay",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "b": 40},
    )
    figure.update_xaxes(type="date", range=[low, high], title=None)
    figure.update_yaxes(rangemode="tozero")
    return figure

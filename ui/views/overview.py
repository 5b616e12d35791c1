"""Overview: runs, error rate, latency percentiles, tokens and cost over time, failing tools."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import plotly.express as px
import polars as pl
import streamlit as st

from schemas.models import StatsQuery
from ui._connection import client, price_table, settings, shown_errors
from ui._escape import html_text, md_text
from ui._filters import TIME_RANGES
from ui._overview import (
    BUCKET_CHOICES,
    buckets_frame,
    compact_cost,
    compact_count,
    compact_duration,
    duration_unit,
    failing_tools_frame,
    time_chart,
    total_cost,
)

st.title("Overview")
controls = st.columns([1, 1, 1, 2])
ranges = [name for name in TIME_RANGES if name != "15m"]
time_range = controls[0].selectbox("Time range", ranges, index=ranges.index("24h"), key="ov-range")
bucket_label = controls[1].selectbox(
    "Bucket", list(BUCKET_CHOICES), index=list(BUCKET_CHOICES).index("1 hour"), key="ov-bucket"
)
prices = price_table()
price_model = controls[2].selectbox(
    "Price as", prices.models, index=prices.models.index("gpt-4o-mini"), key="ov-price"
)
prices_file = settings().ui_prices_file
controls[3].caption(
    "Cost is an estimate from token counts at the chosen model's price (override the table with "
    + (
        f"RETRACE_UI_PRICES_FILE; loaded {md_text(prices_file)})."
        if prices_file
        else "RETRACE_UI_PRICES_FILE)."
    )
)

delta = TIME_RANGES[time_range]
start = datetime.now(UTC) - delta if delta is not None else None
with shown_errors("load statistics"):
    stats = client().stats(StatsQuery(start=start, bucket_seconds=BUCKET_CHOICES[bucket_label]))

price = prices.price_for(price_model)
cost = total_cost(stats, price)
# Two rows of four: each card is wide enough for its compact value (a card cuts what overflows).
top = st.columns(4)
top[0].metric("Runs", compact_count(stats.runs), help=f"{stats.runs:,} runs (replays are not runs)")
top[1].metric("Error rate", f"{stats.error_rate:.1%}", help=f"{stats.errors:,} runs failed")
tokens = stats.input_tokens + stats.output_tokens
top[2].metric(
    "Tokens",
    compact_count(tokens),
    help=f"{tokens:,} tokens: {stats.input_tokens:,} in, {stats.output_tokens:,} out",
)
top[3].metric(
    "Est. cost", compact_cost(cost), help=None if cost is None else f"${cost:,.6f} (estimate)"
)
durations = st.columns(4)
for column, name, value in (
    (durations[0], "p50 duration", stats.p50_ms),
    (durations[1], "p90 duration", stats.p90_ms),
    (durations[2], "p99 duration", stats.p99_ms),
):
    column.metric(
        name,
        compact_duration(value),
        help=f"{value:,.1f} ms of active time (time waiting for approval left out)",
    )
durations[3].metric(
    "Waiting for approval",
    compact_duration(stats.approval_wait_ms),
    help="Time runs spent paused for a human's approval, from the pause to the resume; "
    "not part of their durations.",
)
waits = [f"{stats.approval_waits:,} run{'s' if stats.approval_waits != 1 else ''} waited"]
if stats.approval_waits:
    waits.append(f"median wait {compact_duration(stats.approval_wait_p50_ms)}")
waits.append(f"{stats.waiting_for_approval:,} waiting now")
durations[3].caption(" · ".join(waits))
st.caption(
    "Durations are active time: a run's wall time less the time it waited for approval. "
    "Replays are not counted as runs."
)

if stats.runs == 0:
    st.info("No runs in this time range.")
    st.stop()

frame = buckets_frame(stats, price)
bucket_seconds = BUCKET_CHOICES[bucket_label]
unit, unit_ms = duration_unit(float(cast(float, frame["p95_ms"].max()) or 0.0))
left, right = st.columns(2)
with left:
    st.plotly_chart(
        time_chart(
            frame,
            {"runs": "runs", "errors": "errors"},
            title="Runs and errors",
            bucket_seconds=bucket_seconds,
            kind="bar",
        ),
        key="ov-runs",
    )
    st.plotly_chart(
        time_chart(
            frame,
            {"p50_ms": "p50", "p95_ms": "p95"},
            title=f"Active duration ({unit})",
            bucket_seconds=bucket_seconds,
            scale=unit_ms,
        ),
        key="ov-latency",
    )
with right:
    error_chart = time_chart(
        frame, {"error_rate": "error rate"}, title="Error rate", bucket_seconds=bucket_seconds
    )
    error_chart.update_yaxes(range=[0, 1.05], tickformat=".0%")
    st.plotly_chart(error_chart, key="ov-errrate")
    st.plotly_chart(
        time_chart(
            frame,
            {"input_tokens": "input", "output_tokens": "output"},
            title="Tokens",
            bucket_seconds=bucket_seconds,
            kind="bar",
            stacked=True,
        ),
        key="ov-tokens",
    )
st.plotly_chart(
    time_chart(
        frame,
        {"cost_usd": "cost"},
        title=f"Est. cost (USD, {html_text(price_model)})",
        bucket_seconds=bucket_seconds,
    ),
    key="ov-cost",
)
tools = failing_tools_frame(stats)
st.subheader("Top failing tools")
if tools.is_empty():
    st.caption("No tool failures in this range.")
else:
    # Tool names come from spans, and plotly reads tags (links among them) in axis labels.
    chart = tools.with_columns(pl.col("tool").map_elements(html_text, return_dtype=pl.String))
    st.plotly_chart(px.bar(chart, x="tool", y=["errors", "calls"], barmode="group"), key="ov-tools")
    st.dataframe(tools, hide_index=True)

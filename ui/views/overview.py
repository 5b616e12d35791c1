"""Overview: runs, error rate, latency percentiles, tokens and cost over time, failing tools."""

from __future__ import annotations

from datetime import UTC, datetime

import plotly.express as px
import polars as pl
import streamlit as st

from schemas.models import StatsQuery
from ui._connection import client, price_table, settings, shown_errors
from ui._escape import html_text, md_text
from ui._filters import TIME_RANGES
from ui._overview import BUCKET_CHOICES, buckets_frame, failing_tools_frame, total_cost

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
cols = st.columns(7)
cols[0].metric("Runs", f"{stats.runs:,}")
cols[1].metric("Error rate", f"{stats.error_rate:.1%}")
cols[2].metric("p50", f"{stats.p50_ms:,.0f} ms")
cols[3].metric("p90", f"{stats.p90_ms:,.0f} ms")
cols[4].metric("p99", f"{stats.p99_ms:,.0f} ms")
cols[5].metric("Tokens", f"{stats.input_tokens + stats.output_tokens:,}")
cols[6].metric("Est. cost", "—" if cost is None else f"${cost:,.4f}")

if stats.runs == 0:
    st.info("No runs in this time range.")
    st.stop()

frame = buckets_frame(stats, price)
pdf = frame
left, right = st.columns(2)
with left:
    st.plotly_chart(
        px.bar(pdf, x="time", y=["runs", "errors"], barmode="group", title="Runs and errors"),
        key="ov-runs",
    )
    st.plotly_chart(
        px.line(pdf, x="time", y=["p50_ms", "p95_ms"], markers=True, title="Latency (ms)"),
        key="ov-latency",
    )
with right:
    error_chart = px.line(pdf, x="time", y="error_rate", markers=True, title="Error rate")
    error_chart.update_yaxes(range=[0, 1.05], tickformat=".0%")
    st.plotly_chart(error_chart, key="ov-errrate")
    st.plotly_chart(
        px.bar(pdf, x="time", y=["input_tokens", "output_tokens"], title="Tokens"), key="ov-tokens"
    )
st.plotly_chart(
    px.line(
        pdf,
        x="time",
        y="cost_usd",
        markers=True,
        title=f"Est. cost (USD, {html_text(price_model)})",
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

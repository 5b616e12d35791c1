import re

from schemas.migrations import SCHEMA_VERSION, load_migrations


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_initial_migration_keeps_the_otel_exporter_columns() -> None:
    ddl = "\n".join(load_migrations()[0].statements)
    for column in (
        "Timestamp DateTime64(9)",
        "TraceId String",
        "SpanId String",
        "ParentSpanId String",
        "SpanName LowCardinality(String)",
        "SpanKind LowCardinality(String)",
        "ServiceName LowCardinality(String)",
        "SpanAttributes Map(LowCardinality(String), String)",
        "Duration UInt64",
        "StatusCode LowCardinality(String)",
    ):
        assert column in ddl


# What the summary backfill counts over distinct span ids (an older store may hold a span more
# than once) where the view, fed spans the store has deduplicated, counts rows.
_PER_SPAN_ID = {
    "count() AS SpanCount": "uniqExact(SpanId) AS SpanCount",
    "countIf(StatusCode = 'Error') AS ErrorCount": (
        "uniqExactIf(SpanId, StatusCode = 'Error') AS ErrorCount"
    ),
    "sum(src.InputTokens) AS InputTokens": (
        "arraySum(mapValues(maxMap(map(SpanId, src.InputTokens)))) AS InputTokens"
    ),
    "sum(src.OutputTokens) AS OutputTokens": (
        "arraySum(mapValues(maxMap(map(SpanId, src.OutputTokens)))) AS OutputTokens"
    ),
    "countIf(Operation = 'chat') AS LlmCalls": (
        "uniqExactIf(SpanId, Operation = 'chat') AS LlmCalls"
    ),
    "countIf(Operation = 'execute_tool' AND SpanKind != 'Server') AS ToolCalls": (
        "uniqExactIf(SpanId, Operation = 'execute_tool' AND SpanKind != 'Server') AS ToolCalls"
    ),
}


def test_rebuilt_tables_are_backfilled_by_their_views_rules() -> None:
    """Migration 0005 rebuilds the views' target tables from otel_traces: each backfill must
    compute what its view computes for new spans (the summary's counts over distinct span ids)."""
    statements = next(m for m in load_migrations() if m.version == 5).statements
    views: dict[str, str] = {}
    backfills: dict[str, str] = {}
    for statement in statements:
        view = re.fullmatch(
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS \w+ TO (\w+) AS\n(.*)", statement, re.S
        )
        if view:
            views[view.group(1)] = view.group(2)
        backfill = re.fullmatch(
            r"INSERT INTO (\w+)(?: \([^)]*\))?\n(.*)\nSETTINGS optimize_aggregation_in_order = 1",
            statement,
            re.S,
        )
        if backfill:
            backfills[backfill.group(1)] = backfill.group(2)
    assert set(views) == {"otel_traces_trace_id_ts", "retrace_trace_summaries"}
    summary_view = views["retrace_trace_summaries"]
    for per_row, per_span in _PER_SPAN_ID.items():
        assert per_row in summary_view
        summary_view = summary_view.replace(per_row, per_span)
    assert backfills == {**views, "retrace_trace_summaries": summary_view}

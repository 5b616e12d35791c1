-- Retrace schema v5: every time a span may carry can be read back.
-- The trace-id lookup table kept Start/End as 32-bit DateTime, which ends 2106-02-07: later
-- spans were stored and listed, then not found (reads bound by the lookup times). Start/End are
-- now DateTime64(9), exact to the nanosecond like Timestamp. (otel_traces partitions by
-- toDate(Timestamp) and Date ends 2149-06-06: ingest rejects later spans, see
-- schemas.models.MAX_SPAN_TIME_UNIX_NANO.)
-- The table is rebuilt from otel_traces, which is the record: the view stops, an empty table of
-- the new shape is swapped in, the view restarts, then a backfill reads what is stored (min/max:
-- spans counted by both are harmless). A rerun after an interruption starts over the same way.
-- The backfill aggregates in sort-key order (ProjectId, TraceId lead otel_traces' key), so its
-- memory does not grow with the store.

DROP VIEW IF EXISTS otel_traces_trace_id_ts_mv;

DROP TABLE IF EXISTS otel_traces_trace_id_ts_v5;

CREATE TABLE otel_traces_trace_id_ts_v5
(
    ProjectId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9) CODEC(Delta, ZSTD(1)),
    End DateTime64(9) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (ProjectId, TraceId, Start)
SETTINGS non_replicated_deduplication_window = 100000;

EXCHANGE TABLES otel_traces_trace_id_ts AND otel_traces_trace_id_ts_v5;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv TO otel_traces_trace_id_ts AS
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY ProjectId, TraceId;

INSERT INTO otel_traces_trace_id_ts (ProjectId, TraceId, Start, End)
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY ProjectId, TraceId
SETTINGS optimize_aggregation_in_order = 1;

DROP TABLE otel_traces_trace_id_ts_v5;

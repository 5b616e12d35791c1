-- Retrace schema v11: an inverted index of span attributes for trace lists filtered by one.
-- A list filtered by an attribute (customer.id=c-7 over a day) selected its traces' ids from
-- otel_traces through the bloom-filter indexes on the attribute maps: ≈30 ms of a ≈55 ms list
-- over a day of 2 M spans (bench/bench_store.py), little of it in the index (14 granules kept of
-- 247); the read of the day's parts costs it. retrace_span_attributes holds one row per span
-- attribute whose value is short (1 to 128 bytes; longer values, and '', which also matches a
-- span without the key, are filtered on otel_traces as before: collector/store/_sql.py), sorted
-- by (project, key, value, time), so the same filter reads a granule or two (≈8 ms).
-- A span's row keeps its Timestamp, so a time-bounded filter bounds the same spans. The view
-- writes rows as spans are stored (Retrace's inserts and a stock OTel Collector's alike; insert
-- deduplication drops a replayed batch here too). Rows are never collapsed: a row written twice
-- (a span stored twice before schema 5, or in the moment between the view's creation and the
-- backfill below) only repeats a trace id, which the filter's IN set absorbs. A deleted trace's
-- rows are deleted with it (DELETE_SQL). Existing stores: the table is rebuilt from otel_traces
-- (≈12 s for 5 M spans); a rerun after an interruption starts over. (arrayJoin, not ARRAY JOIN:
-- the cluster form's rewrite reads a JOIN's operand as a table, schemas/cluster.py.) LZ4, not
-- ZSTD: the view runs on every insert (its cost: BENCHMARKS.md, "Issue 14: trace lists").

DROP VIEW IF EXISTS retrace_span_attributes_mv;

DROP TABLE IF EXISTS retrace_span_attributes;

CREATE TABLE retrace_span_attributes
(
    ProjectId LowCardinality(String),
    Key LowCardinality(String),
    Value String,
    Timestamp DateTime64(9) CODEC(Delta, LZ4),
    TraceId String
)
ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ProjectId, Key, Value, Timestamp, TraceId)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 100000;

CREATE MATERIALIZED VIEW IF NOT EXISTS retrace_span_attributes_mv TO retrace_span_attributes AS
SELECT
    ProjectId,
    tupleElement(arrayJoin(arrayFilter(
        a -> length(tupleElement(a, 2)) BETWEEN 1 AND 128,
        arrayZip(mapKeys(SpanAttributes), mapValues(SpanAttributes))
    )) AS kv, 1) AS Key,
    tupleElement(kv, 2) AS Value,
    Timestamp,
    TraceId
FROM otel_traces;

INSERT INTO retrace_span_attributes (ProjectId, Key, Value, Timestamp, TraceId)
SELECT
    ProjectId,
    tupleElement(arrayJoin(arrayFilter(
        a -> length(tupleElement(a, 2)) BETWEEN 1 AND 128,
        arrayZip(mapKeys(SpanAttributes), mapValues(SpanAttributes))
    )) AS kv, 1) AS Key,
    tupleElement(kv, 2) AS Value,
    Timestamp,
    TraceId
FROM otel_traces;

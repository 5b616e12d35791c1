-- Retrace schema v2.
-- 1. Exactly-once through the materialized views: a non-replicated MergeTree only deduplicates
--    inserts (insert_deduplication_token) when it has a deduplication window, and the views'
--    target tables had none, so a replayed spool batch was deduplicated in otel_traces but
--    counted twice in the summaries and the trace-id lookup table.
-- 2. Root-span fields of the summary were anyLast: a later insert block without the root span
--    (value '') could replace the root's value when parts merge. max() keeps the non-empty one.

ALTER TABLE otel_traces_trace_id_ts MODIFY SETTING non_replicated_deduplication_window = 100000;

ALTER TABLE retrace_trace_summaries MODIFY SETTING non_replicated_deduplication_window = 100000;

ALTER TABLE retrace_trace_summaries
    MODIFY COLUMN ServiceName SimpleAggregateFunction(max, LowCardinality(String)),
    MODIFY COLUMN RootSpanName SimpleAggregateFunction(max, String),
    MODIFY COLUMN AgentName SimpleAggregateFunction(max, String),
    MODIFY COLUMN RootStatusCode SimpleAggregateFunction(max, String),
    MODIFY COLUMN RunStatus SimpleAggregateFunction(max, String),
    MODIFY COLUMN InputPreview SimpleAggregateFunction(max, String),
    MODIFY COLUMN OutputPreview SimpleAggregateFunction(max, String),
    MODIFY COLUMN ReplayOf SimpleAggregateFunction(max, String);

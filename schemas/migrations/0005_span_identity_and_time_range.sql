-- Retrace schema v5: a span counts once, and every time a span may carry can be read back.
-- 1. Summaries count each span once. An OTLP client that retries sends the same span again in a
--    new request (a new spool batch, so insert deduplication rightly keeps it), and the summing
--    summary counted it again (span count, tokens, LLM and tool calls). From this version the
--    store drops spans already stored before inserting (collector/store/_engine.py), so the view
--    keeps its cheap sums; the summaries of existing stores are recounted here from the spans,
--    each (trace, span id) once. (Sets of span ids in the summary would absorb copies by
--    themselves, but reading them doubled the cost of the trace list and of stats: measured with
--    bench/bench_store.py.)
-- 2. A tool call is counted once: the MCP server's own span of the call (mcp's OpenTelemetry
--    middleware: SpanKind Server, gen_ai.operation.name execute_tool, nested in the runner's
--    execute_tool span) is the server side of the same call. ToolCalls leaves Server spans out.
-- 3. The trace-id lookup table kept Start/End as 32-bit DateTime, which ends 2106-02-07: later
--    spans were stored and listed, then not found (reads bound by the lookup times). Start/End
--    are now DateTime64(9), exact to the nanosecond like Timestamp. (otel_traces partitions by
--    toDate(Timestamp) and Date ends 2149-06-06: ingest rejects later spans, see
--    schemas.models.MAX_SPAN_TIME_UNIX_NANO.)
-- Both derived tables are rebuilt from otel_traces, which is the record: existing stores keep
-- every span. Each rebuild stops its view, swaps an empty table of the new shape in, restarts
-- the view, then backfills from what is stored; the backfill reads the parts that exist when it
-- starts, so spans stored afterwards are counted by the view alone (only a span stored in the
-- moment between the two statements, while another collector ingests, could be counted twice).
-- A rerun after an interruption starts over the same way. The backfills aggregate in sort-key
-- order (ProjectId, TraceId lead otel_traces' key), so their memory does not grow with the
-- store. The summary backfill is the view's SELECT with its counts and sums taken over distinct
-- span ids (tests/schemas/test_migrations.py checks the rest is the same text). The summary
-- drops the columns 0003 superseded (RunStatus, RootStatusCode, RootDuration): every row now
-- has LatestRoot and FirstInputPreview.

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

DROP VIEW IF EXISTS retrace_trace_summaries_mv;

DROP TABLE IF EXISTS retrace_trace_summaries_v5;

-- Read with GROUP BY (ProjectId, TraceId) and each column's function. Root-span fields follow the
-- run's latest root segment (LatestRoot, see 0003) and its first input (FirstInputPreview);
-- InputPreview/OutputPreview are what text search looks at.
CREATE TABLE retrace_trace_summaries_v5
(
    ProjectId LowCardinality(String),
    TraceId String,
    Start SimpleAggregateFunction(min, DateTime64(9)),
    End SimpleAggregateFunction(max, DateTime64(9)),
    SpanCount SimpleAggregateFunction(sum, UInt64),
    ErrorCount SimpleAggregateFunction(sum, UInt64),
    InputTokens SimpleAggregateFunction(sum, UInt64),
    OutputTokens SimpleAggregateFunction(sum, UInt64),
    LlmCalls SimpleAggregateFunction(sum, UInt64),
    ToolCalls SimpleAggregateFunction(sum, UInt64),
    ServiceName SimpleAggregateFunction(max, LowCardinality(String)),
    RootSpanName SimpleAggregateFunction(max, String),
    AgentName SimpleAggregateFunction(max, String),
    InputPreview SimpleAggregateFunction(max, String),
    OutputPreview SimpleAggregateFunction(max, String),
    ReplayOf SimpleAggregateFunction(max, String),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Tools SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    LatestRoot SimpleAggregateFunction(max, Tuple(DateTime64(9), String, String, String)),
    FirstInputPreview AggregateFunction(argMin, String, DateTime64(9)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = AggregatingMergeTree
ORDER BY (ProjectId, TraceId)
SETTINGS non_replicated_deduplication_window = 100000;

EXCHANGE TABLES retrace_trace_summaries AND retrace_trace_summaries_v5;

CREATE MATERIALIZED VIEW IF NOT EXISTS retrace_trace_summaries_mv TO retrace_trace_summaries AS
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)) AS End,
    count() AS SpanCount,
    countIf(StatusCode = 'Error') AS ErrorCount,
    sum(src.InputTokens) AS InputTokens,
    sum(src.OutputTokens) AS OutputTokens,
    countIf(Operation = 'chat') AS LlmCalls,
    countIf(Operation = 'execute_tool' AND SpanKind != 'Server') AS ToolCalls,
    max(ServiceName) AS ServiceName,
    maxIf(SpanName, ParentSpanId = '') AS RootSpanName,
    maxIf(AgentName, AgentName != '') AS AgentName,
    maxIf(src.InputPreview, ParentSpanId = '' AND src.InputPreview != '') AS InputPreview,
    maxIf(src.OutputPreview, ParentSpanId = '' AND src.OutputPreview != '') AS OutputPreview,
    maxIf(SpanAttributes['retrace.replay_of'], SpanAttributes['retrace.replay_of'] != '') AS ReplayOf,
    groupUniqArrayIf(toString(Model), Model != '') AS Models,
    groupUniqArrayIf(toString(ToolName), ToolName != '') AS Tools,
    maxIf(
        tuple(
            fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration),
            SpanAttributes['retrace.run.status'],
            toString(StatusCode),
            src.OutputPreview
        ),
        ParentSpanId = ''
    ) AS LatestRoot,
    argMinIfState(
        src.InputPreview, Timestamp, ParentSpanId = '' AND src.InputPreview != ''
    ) AS FirstInputPreview
FROM otel_traces AS src
GROUP BY ProjectId, TraceId;

INSERT INTO retrace_trace_summaries
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)) AS End,
    uniqExact(SpanId) AS SpanCount,
    uniqExactIf(SpanId, StatusCode = 'Error') AS ErrorCount,
    arraySum(mapValues(maxMap(map(SpanId, src.InputTokens)))) AS InputTokens,
    arraySum(mapValues(maxMap(map(SpanId, src.OutputTokens)))) AS OutputTokens,
    uniqExactIf(SpanId, Operation = 'chat') AS LlmCalls,
    uniqExactIf(SpanId, Operation = 'execute_tool' AND SpanKind != 'Server') AS ToolCalls,
    max(ServiceName) AS ServiceName,
    maxIf(SpanName, ParentSpanId = '') AS RootSpanName,
    maxIf(AgentName, AgentName != '') AS AgentName,
    maxIf(src.InputPreview, ParentSpanId = '' AND src.InputPreview != '') AS InputPreview,
    maxIf(src.OutputPreview, ParentSpanId = '' AND src.OutputPreview != '') AS OutputPreview,
    maxIf(SpanAttributes['retrace.replay_of'], SpanAttributes['retrace.replay_of'] != '') AS ReplayOf,
    groupUniqArrayIf(toString(Model), Model != '') AS Models,
    groupUniqArrayIf(toString(ToolName), ToolName != '') AS Tools,
    maxIf(
        tuple(
            fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration),
            SpanAttributes['retrace.run.status'],
            toString(StatusCode),
            src.OutputPreview
        ),
        ParentSpanId = ''
    ) AS LatestRoot,
    argMinIfState(
        src.InputPreview, Timestamp, ParentSpanId = '' AND src.InputPreview != ''
    ) AS FirstInputPreview
FROM otel_traces AS src
GROUP BY ProjectId, TraceId
SETTINGS optimize_aggregation_in_order = 1;

DROP TABLE retrace_trace_summaries_v5;

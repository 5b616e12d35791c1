-- Retrace schema v1.
-- otel_traces keeps the column names and types of the OpenTelemetry Collector ClickHouse exporter,
-- so Grafana's ClickHouse datasource and a stock collector can read and write it. Retrace's own
-- columns come after the exporter's, with defaults, so an exporter's INSERT (which names its
-- columns) still works. The sort key leads with project and trace id: fetching one trace is the
-- hot path, and the trace-id lookup table below narrows it to its partitions.
-- Table names are unqualified: the store selects its database before running migrations.

CREATE TABLE IF NOT EXISTS otel_traces
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested
    (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested
    (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    -- Retrace columns
    ProjectId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(1)),
    Operation LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)),
    AgentName LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)),
    Model LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)),
    ToolName LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)),
    InputTokens UInt64 DEFAULT 0 CODEC(ZSTD(1)),
    OutputTokens UInt64 DEFAULT 0 CODEC(ZSTD(1)),
    StepIndex Int32 DEFAULT -1 CODEC(ZSTD(1)),
    PayloadRefs Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    InputPreview String DEFAULT '' CODEC(ZSTD(3)),
    OutputPreview String DEFAULT '' CODEC(ZSTD(3)),
    IngestedAt DateTime64(3) DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ProjectId, TraceId, SpanId)
-- Spool batches are inserted with an insert_deduplication_token: a batch replayed after a crash
-- is dropped by the engine (and by the views below), so nothing is counted twice.
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 100000;

-- Same shape and name as the exporter's lookup table, plus the project.
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts
(
    ProjectId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (ProjectId, TraceId, Start);

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv TO otel_traces_trace_id_ts AS
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY ProjectId, TraceId;

-- Payloads (messages, tool arguments and results, workspace files and manifests) stored once by
-- content hash (sha256 hex of the bytes).
CREATE TABLE IF NOT EXISTS retrace_payloads
(
    ProjectId LowCardinality(String) CODEC(ZSTD(1)),
    Hash FixedString(64),
    Size UInt64,
    Content String CODEC(ZSTD(3)),
    FirstSeen DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(FirstSeen)
ORDER BY (ProjectId, Hash);

-- Per-trace summary, kept up to date on insert by the view below, so trace lists never scan
-- spans. Read it with GROUP BY (ProjectId, TraceId) and the -Merge/any/sum combinators.
CREATE TABLE IF NOT EXISTS retrace_trace_summaries
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
    ServiceName SimpleAggregateFunction(anyLast, LowCardinality(String)),
    -- Root-span fields: the root span is the one without a parent.
    RootSpanName SimpleAggregateFunction(anyLast, String),
    AgentName SimpleAggregateFunction(anyLast, String),
    RootStatusCode SimpleAggregateFunction(anyLast, String),
    RunStatus SimpleAggregateFunction(anyLast, String),
    RootDuration SimpleAggregateFunction(max, UInt64),
    InputPreview SimpleAggregateFunction(anyLast, String),
    OutputPreview SimpleAggregateFunction(anyLast, String),
    ReplayOf SimpleAggregateFunction(anyLast, String),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Tools SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = AggregatingMergeTree
ORDER BY (ProjectId, TraceId);

CREATE MATERIALIZED VIEW IF NOT EXISTS retrace_trace_summaries_mv TO retrace_trace_summaries AS
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)) AS End,
    count() AS SpanCount,
    countIf(StatusCode = 'Error') AS ErrorCount,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    countIf(Operation = 'chat') AS LlmCalls,
    countIf(Operation = 'execute_tool') AS ToolCalls,
    anyLast(ServiceName) AS ServiceName,
    anyLastIf(SpanName, ParentSpanId = '') AS RootSpanName,
    anyLastIf(AgentName, AgentName != '') AS AgentName,
    anyLastIf(StatusCode, ParentSpanId = '') AS RootStatusCode,
    anyLastIf(SpanAttributes['retrace.run.status'], ParentSpanId = '') AS RunStatus,
    maxIf(Duration, ParentSpanId = '') AS RootDuration,
    anyLastIf(InputPreview, ParentSpanId = '' AND InputPreview != '') AS InputPreview,
    anyLastIf(OutputPreview, ParentSpanId = '' AND OutputPreview != '') AS OutputPreview,
    anyLastIf(SpanAttributes['retrace.replay_of'], SpanAttributes['retrace.replay_of'] != '') AS ReplayOf,
    groupUniqArrayIf(toString(Model), Model != '') AS Models,
    groupUniqArrayIf(toString(ToolName), ToolName != '') AS Tools
FROM otel_traces
GROUP BY ProjectId, TraceId;

CREATE TABLE IF NOT EXISTS retrace_replays
(
    ProjectId LowCardinality(String),
    ReplayId String,
    OriginalTraceId String,
    ReplayTraceId String,
    Mode LowCardinality(String),
    Status LowCardinality(String),
    CodeVersion String,
    CreatedAt DateTime64(3),
    UpdatedAt DateTime64(3),
    Diverged UInt8,
    FirstDivergenceStep Int32,
    FirstDivergenceKind LowCardinality(String),
    Report String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (ProjectId, OriginalTraceId, ReplayId);

CREATE TABLE IF NOT EXISTS retrace_approvals
(
    ProjectId LowCardinality(String),
    ApprovalId String,
    RunId String,
    TraceId String,
    SpanId String,
    ToolName String,
    Arguments String CODEC(ZSTD(3)),
    Reason String,
    Rule String,
    Status LowCardinality(String),
    RequestedAt DateTime64(3),
    ExpiresAt Nullable(DateTime64(3)),
    DecidedAt Nullable(DateTime64(3)),
    DecidedBy String,
    Comment String,
    Version UInt64
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY (ProjectId, ApprovalId);

CREATE TABLE IF NOT EXISTS retrace_api_keys
(
    KeyId String,
    ProjectId LowCardinality(String),
    KeyHash FixedString(64),
    Name String,
    CreatedAt DateTime64(3),
    Revoked UInt8 DEFAULT 0,
    Version UInt64
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY (KeyHash, KeyId);

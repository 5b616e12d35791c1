-- Retrace schema v6: sessions (conversations), end users and feedback.
-- 1. Spans get SessionId and UserId, derived at ingest (collector/conventions.py) from the span's
--    attributes, else its resource's: OpenTelemetry/OpenInference session.id and user.id (and the
--    older enduser.id), GenAI gen_ai.conversation.id, OpenLLMetry association properties
--    (traceloop.association.properties.session_id/user_id), Langfuse langfuse.session.id/user.id.
--    A gen_ai.conversation.id equal to the span's retrace.run.id is no session: Retrace's runner
--    before this version stamped each run's id there.
-- 2. Trace summaries get the trace's SessionId and UserId (max over its spans), so trace lists
--    and the sessions list filter and group by them without reading spans. The view is
--    recreated with the two columns (a view's SELECT cannot be altered in place).
-- 3. Existing stores: spans stored before this version keep SessionId/UserId '' (rewriting every
--    span would be a mutation of the whole table), so span search by session or user finds
--    spans stored from this version on. Their traces' summaries are given a session and user
--    here, from the same keys in the stored attributes: one row per trace that has them, with
--    the trace's own Start/End (min/max keep their values) and nothing else counted (sums of
--    zero; empty aggregate states). Rerunning adds the same values again, which max absorbs.
-- 4. retrace_feedback: feedback and annotations on a trace (or one of its spans), one row each,
--    never updated. Value is the JSON of a number, string or bool.

ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS SessionId String DEFAULT '' CODEC(ZSTD(1)) AFTER StepIndex;

ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS UserId String DEFAULT '' CODEC(ZSTD(1)) AFTER SessionId;

ALTER TABLE otel_traces ADD INDEX IF NOT EXISTS idx_session_id SessionId TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE otel_traces ADD INDEX IF NOT EXISTS idx_user_id UserId TYPE bloom_filter(0.01) GRANULARITY 1;

DROP VIEW IF EXISTS retrace_trace_summaries_mv;

ALTER TABLE retrace_trace_summaries ADD COLUMN IF NOT EXISTS SessionId SimpleAggregateFunction(max, String);

ALTER TABLE retrace_trace_summaries ADD COLUMN IF NOT EXISTS UserId SimpleAggregateFunction(max, String);

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
    ) AS FirstInputPreview,
    maxIf(SessionId, SessionId != '') AS SessionId,
    maxIf(UserId, UserId != '') AS UserId
FROM otel_traces AS src
GROUP BY ProjectId, TraceId;

INSERT INTO retrace_trace_summaries (ProjectId, TraceId, Start, End, SessionId, UserId)
SELECT ProjectId, TraceId, T0, T1, S, U
FROM (
    SELECT
        ProjectId,
        TraceId,
        min(Timestamp) AS T0,
        max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)) AS T1,
        max(ifNull(coalesce(
            nullIf(SpanAttributes['session.id'], ''),
            if(SpanAttributes['gen_ai.conversation.id'] IN ('', SpanAttributes['retrace.run.id']), NULL,
                SpanAttributes['gen_ai.conversation.id']),
            nullIf(SpanAttributes['traceloop.association.properties.session_id'], ''),
            nullIf(SpanAttributes['langfuse.session.id'], ''),
            nullIf(ResourceAttributes['session.id'], ''),
            if(ResourceAttributes['gen_ai.conversation.id'] IN ('', SpanAttributes['retrace.run.id']), NULL,
                ResourceAttributes['gen_ai.conversation.id']),
            nullIf(ResourceAttributes['traceloop.association.properties.session_id'], ''),
            nullIf(ResourceAttributes['langfuse.session.id'], '')
        ), '')) AS S,
        max(ifNull(coalesce(
            nullIf(SpanAttributes['user.id'], ''),
            nullIf(SpanAttributes['enduser.id'], ''),
            nullIf(SpanAttributes['traceloop.association.properties.user_id'], ''),
            nullIf(SpanAttributes['langfuse.user.id'], ''),
            nullIf(ResourceAttributes['user.id'], ''),
            nullIf(ResourceAttributes['enduser.id'], ''),
            nullIf(ResourceAttributes['traceloop.association.properties.user_id'], ''),
            nullIf(ResourceAttributes['langfuse.user.id'], '')
        ), '')) AS U
    FROM otel_traces
    WHERE SessionId = '' AND UserId = ''
    GROUP BY ProjectId, TraceId
    SETTINGS optimize_aggregation_in_order = 1
)
WHERE S != '' OR U != '';

CREATE TABLE IF NOT EXISTS retrace_feedback
(
    ProjectId LowCardinality(String),
    TraceId String,
    FeedbackId String,
    SpanId String,
    Name LowCardinality(String),
    Value String,
    Comment String CODEC(ZSTD(3)),
    Source LowCardinality(String),
    CreatedAt DateTime64(3)
)
ENGINE = MergeTree
ORDER BY (ProjectId, TraceId, CreatedAt, FeedbackId);

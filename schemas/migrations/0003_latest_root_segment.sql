-- Retrace schema v3: the summary follows the run's LATEST root segment.
-- A run paused for human approval and resumed later is one trace with several root spans
-- (invoke_agent, no parent): the first ends "pending_approval", the resumed one "completed" (or
-- "rejected", ...). The root-span columns are max() since 0002 (merge-safe, but alphabetical), so
-- "pending_approval" > "completed" won for ever. Two merge-safe columns replace them for reads:
--   LatestRoot: max over (root span end time, run status, root status code, output preview).
--     max() of a tuple compares the end time first, so the latest segment wins in any insert
--     order and across merges; a block without a root span gives the empty tuple (time 0),
--     which never wins against a real root.
--   FirstInputPreview: argMin state of the non-empty root input preview by root start time, the
--     run's input (a resumed segment may carry none, or a repeat of it).
-- Rows written before this migration have the empty tuple / empty state: readers fall back to
-- the old columns then, which this view keeps filling. The view is recreated with the old
-- columns' aggregates as max() too, matching the column functions 0002 gave them; the target
-- table keeps its deduplication window (0002), and span inserts keep their dependent-view
-- deduplication setting, so replayed batches stay exactly-once. The new aggregates name their
-- columns src.X: a bare InputPreview / OutputPreview would be the alias of the old aggregate.

ALTER TABLE retrace_trace_summaries
    ADD COLUMN IF NOT EXISTS LatestRoot
        SimpleAggregateFunction(max, Tuple(DateTime64(9), String, String, String)),
    ADD COLUMN IF NOT EXISTS FirstInputPreview AggregateFunction(argMin, String, DateTime64(9));

DROP VIEW IF EXISTS retrace_trace_summaries_mv;

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
    max(ServiceName) AS ServiceName,
    maxIf(SpanName, ParentSpanId = '') AS RootSpanName,
    maxIf(AgentName, AgentName != '') AS AgentName,
    maxIf(StatusCode, ParentSpanId = '') AS RootStatusCode,
    maxIf(SpanAttributes['retrace.run.status'], ParentSpanId = '') AS RunStatus,
    maxIf(Duration, ParentSpanId = '') AS RootDuration,
    maxIf(InputPreview, ParentSpanId = '' AND InputPreview != '') AS InputPreview,
    maxIf(OutputPreview, ParentSpanId = '' AND OutputPreview != '') AS OutputPreview,
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

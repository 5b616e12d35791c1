-- Retrace schema v9: trace lists filter on a run's status without the tuple max.
-- A list by status (status=error, run_status=...) needs the run status and root status code of
-- the run's latest root segment (LatestRoot, see 0003) for every trace of the project, and the
-- max of that tuple, which also carries the output preview, is a generic, slow aggregate: it
-- cost a status list ≈25 ms of its ≈60 over 34,500 traces (bench/bench_store.py). RootKey holds
-- the same three keys as one string, compared like the tuple:
--   16 hex digits of the root span's end time (unix ns, sign bit flipped: byte order = time
--   order), the run status, a NUL byte, the root status code (Retrace's spelling).
-- max(RootKey) is the key of max(LatestRoot): the same end time, run status and status code (a
-- run status holds no NUL byte). A block without a root span gives '' (below every root).
-- Readers split it: collector/store/_sql.py. Rows stored before this version get it from their
-- LatestRoot: the column's DEFAULT computes it when a part has no RootKey (read and merge), and
-- MATERIALIZE COLUMN writes it into those parts. The view is recreated with the column (a
-- view's SELECT cannot be altered in place); it is 0007's with RootKey added.

ALTER TABLE retrace_trace_summaries ADD COLUMN IF NOT EXISTS RootKey SimpleAggregateFunction(max, String) DEFAULT concat(leftPad(hex(bitXor(reinterpretAsUInt64(toUnixTimestamp64Nano(tupleElement(LatestRoot, 1))), 9223372036854775808)), 16, '0'), tupleElement(LatestRoot, 2), '\0', tupleElement(LatestRoot, 3)) AFTER LatestRoot;

ALTER TABLE retrace_trace_summaries MATERIALIZE COLUMN RootKey;

DROP VIEW IF EXISTS retrace_trace_summaries_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS retrace_trace_summaries_mv TO retrace_trace_summaries AS
SELECT
    ProjectId,
    TraceId,
    min(Timestamp) AS Start,
    max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)) AS End,
    count() AS SpanCount,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCount,
    sum(src.InputTokens) AS InputTokens,
    sum(src.OutputTokens) AS OutputTokens,
    countIf(Operation = 'chat') AS LlmCalls,
    countIf(Operation = 'execute_tool' AND SpanKind NOT IN ('Server', 'SPAN_KIND_SERVER')) AS ToolCalls,
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
            multiIf(
                StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'Error',
                StatusCode = 'STATUS_CODE_OK', 'Ok',
                StatusCode = 'STATUS_CODE_UNSET', 'Unset',
                toString(StatusCode)
            ),
            src.OutputPreview
        ),
        ParentSpanId = ''
    ) AS LatestRoot,
    maxIf(
        concat(
            leftPad(hex(bitXor(reinterpretAsUInt64(toUnixTimestamp64Nano(
                fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration)
            )), 9223372036854775808)), 16, '0'),
            SpanAttributes['retrace.run.status'],
            '\0',
            multiIf(
                StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'Error',
                StatusCode = 'STATUS_CODE_OK', 'Ok',
                StatusCode = 'STATUS_CODE_UNSET', 'Unset',
                toString(StatusCode)
            )
        ),
        ParentSpanId = ''
    ) AS RootKey,
    argMinIfState(
        src.InputPreview, Timestamp, ParentSpanId = '' AND src.InputPreview != ''
    ) AS FirstInputPreview,
    maxIf(SessionId, SessionId != '') AS SessionId,
    maxIf(UserId, UserId != '') AS UserId
FROM otel_traces AS src
GROUP BY ProjectId, TraceId;

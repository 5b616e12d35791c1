"""The SQL both backends run: statements and the parameters they bind.

Everything here is pure: statements are strings with server-side ``{name:Type}`` placeholders,
parameters are plain values rendered by :func:`render_params`, query builders return a
:class:`Built` (statement and parameters). What a statement's rows become is
``collector.store._rows``; what the store inserts is ``collector.store._batches``. Table names
come from their declaration (``schemas.tables``). The backends only move statements and bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import attributes as attr
from schemas import tables
from schemas.errors import InvalidInputError
from schemas.migrations import MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL
from schemas.models import (
    ApprovalStatus,
    RunStatus,
    SessionQuery,
    SpanKind,
    SpanQuery,
    StatsQuery,
    StatusCode,
    TraceQuery,
)

# --- tables ------------------------------------------------------------------------------------
SPANS_TABLE = tables.SPANS.name
TRACE_ID_TS_TABLE = tables.TRACE_ID_TS.name
SPAN_ATTRIBUTES_TABLE = tables.SPAN_ATTRIBUTES.name
PAYLOADS_TABLE = tables.PAYLOADS.name
SUMMARIES_TABLE = tables.SUMMARIES.name
REPLAYS_TABLE = tables.REPLAYS.name
APPROVALS_TABLE = tables.APPROVALS.name
API_KEYS_TABLE = tables.API_KEYS.name
FEEDBACK_TABLE = tables.FEEDBACK.name
SUITES_TABLE = tables.SUITES.name

# Run statuses that make a trace count as failed even when no span carries an error status.
FAILED_RUN_STATUSES: tuple[str, ...] = (
    RunStatus.FAILED.value,
    RunStatus.INCOMPLETE.value,
    RunStatus.REJECTED.value,
    RunStatus.GUARDRAIL.value,
)

Params = dict[str, Any]


# --- parameters --------------------------------------------------------------------------------
def render_literal(value: Any) -> str:
    """A value as a ClickHouse literal inside an array or tuple parameter."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(render_literal(v) for v in value) + "]"
    raise TypeError(f"cannot bind {type(value).__name__} as a query parameter")


def render_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter as the text ClickHouse parses for its ``{name:Type}`` placeholder.

    The result is unescaped text. Scalar strings travel in the escaped text format (see
    :func:`escape_param`); arrays are parsed as literals and travel as rendered here.
    """
    out: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        elif isinstance(value, int | float):
            out[name] = repr(value)
        else:
            out[name] = render_literal(value)
    return out


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "'": "\\'"}


def escape_param(text: str) -> str:
    """Escape a rendered parameter the way the ClickHouse HTTP interface expects it."""
    return "".join(_ESCAPES.get(c, c) for c in text)


# --- time --------------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(value: datetime) -> int:
    """Unix nanoseconds of a datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# --- migrations --------------------------------------------------------------------------------
def create_database_sql(database: str) -> str:
    """``CREATE DATABASE`` for a validated identifier (identifiers cannot be bound)."""
    return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}"


def quote_identifier(name: str) -> str:
    """A backquoted identifier; rejects names that could not be a database."""
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise InvalidInputError(f"invalid database name {name!r}: use letters, digits and _")
    return f"`{name}`"


MIGRATIONS_DDL = MIGRATIONS_TABLE_DDL
APPLIED_VERSIONS_SQL = f"SELECT Version FROM {MIGRATIONS_TABLE} ORDER BY Version"
RECORD_MIGRATION_SQL = (
    f"INSERT INTO {MIGRATIONS_TABLE} (Version, Description) "
    "VALUES ({version:UInt32}, {description:String})"
)


# --- spans ---------------------------------------------------------------------------------------
# The span columns a read selects (collector.store._rows.span_from_row reads them).
SPAN_SELECT = """
    TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
    toUnixTimestamp64Nano(Timestamp) AS StartNs, Duration, StatusCode, StatusMessage,
    SpanAttributes, ResourceAttributes, PayloadRefs,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS EventTs,
    `Events.Name` AS EventName, `Events.Attributes` AS EventAttrs,
    `Links.TraceId` AS LinkTraceId, `Links.SpanId` AS LinkSpanId,
    `Links.TraceState` AS LinkTraceState, `Links.Attributes` AS LinkAttrs,
    Operation, AgentName, Model, ToolName, InputTokens, OutputTokens, StepIndex,
    SessionId, UserId
"""


# --- spans already stored ----------------------------------------------------------------------
# Which of a batch's traces the store has seen, and the time range of what it holds of them: a
# span delivered again (an OTLP client's retry, in a new request) has the same start time, so its
# stored copy lies in that range, in the partitions it names.
KNOWN_TRACES_SQL = f"""
SELECT TraceId, toUnixTimestamp64Nano(min(Start)) AS StartNs,
       toUnixTimestamp64Nano(max(End)) AS EndNs
FROM {TRACE_ID_TS_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId IN {{trace_ids:Array(String)}}
GROUP BY TraceId
"""

# The (trace, span) ids among the given ones that are stored.
STORED_SPANS_SQL = f"""
SELECT DISTINCT TraceId, SpanId
FROM {SPANS_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId IN {{trace_ids:Array(String)}}
  AND SpanId IN {{span_ids:Array(String)}}
  AND Timestamp >= fromUnixTimestamp64Nano({{start_ns:Int64}})
  AND Timestamp <= fromUnixTimestamp64Nano({{end_ns:Int64}})
"""


# --- single trace ------------------------------------------------------------------------------
TRACE_RANGE_SQL = f"""
SELECT count() AS N
FROM {TRACE_ID_TS_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
"""


# One trace's spans in one round trip: the lookup table's time range (a scalar subquery,
# evaluated first and folded into constants; exact since migration 0005) prunes partitions and
# parts; the sort key finds the trace inside them. A read costs about half a millisecond per
# column it selects (each reads its streams for a whole granule, 8,192 rows, to keep the trace's
# few hundred), so each statement selects only what its caller uses.
def _trace_bounded(columns: str) -> str:
    return f"""
WITH (
    SELECT (min(Start), max(End))
    FROM {TRACE_ID_TS_TABLE}
    WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
) AS bounds
SELECT {columns}
FROM {SPANS_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
  AND Timestamp >= bounds.1 AND Timestamp <= bounds.2
"""


# The trace's feedback, in FEEDBACK_OF_TRACE_SQL's columns, as one constant column of a trace
# read: a scalar subquery costs less than a statement of its own. Elements are tuples in
# FEEDBACK_COLUMNS order; ``collector.store._rows.feedback_from_column`` orders them.
FEEDBACK_COLUMNS = ("FeedbackId", "TraceId", "SpanId", "Name", "Value", "Comment", "Source")
_FEEDBACK_OF_TRACE = f"""(
    SELECT groupArray(({", ".join(FEEDBACK_COLUMNS)}, toUnixTimestamp64Milli(CreatedAt)))
    FROM {FEEDBACK_TABLE}
    WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
) AS Feedback"""

# The whole trace (get_trace): rows come unordered and may repeat a span (stored twice, see
# search_spans); :func:`ordered_unique_spans` orders and deduplicates them, cheaper in Python for
# one trace than a sort and LIMIT BY stage. The previews are for the trace's summary.
TRACE_SPANS_SQL = _trace_bounded(
    f"{SPAN_SELECT}, InputPreview, OutputPreview, {_FEEDBACK_OF_TRACE}"
)

# --- one trace, lazily -------------------------------------------------------------------------
# A page of a trace's spans in (start, span id) order after a keyset cursor, each span once (its
# copies share the start time, see search_spans). Payloads are not read: a tree of a 10,000-span
# trace stays small; TRACE_SPAN_SQL reads one span whose payloads the caller resolves. A tree
# leaves out the resource attributes (``collector.store._rows.span_from_row``).

_SPAN_TREE_SELECT = SPAN_SELECT.replace(" ResourceAttributes,", "")
assert "ResourceAttributes" not in _SPAN_TREE_SELECT

TRACE_TREE_SQL = (
    _trace_bounded(f"{_SPAN_TREE_SELECT}, InputPreview, OutputPreview, {_FEEDBACK_OF_TRACE}")
    + """  AND (toUnixTimestamp64Nano(Timestamp), SpanId) > ({c_ts:Int64}, {c_span:String})
ORDER BY Timestamp, SpanId
LIMIT 1 BY Timestamp, SpanId
LIMIT {limit:UInt32}
"""
)

# A tree page of only some span fields (GET /traces/{id}/spans?fields=...): each field's columns,
# so a read selects only those (a column costs its streams per granule, Map columns the most).
# ``attributes.KEY`` fields read SpanAttributes filtered to their keys. The trace's summary
# comes from the summary table (TRACE_SUMMARY_SQL), so no summary columns are read here.
TREE_FIELD_COLUMNS: dict[str, str] = {
    "trace_id": "TraceId",
    "span_id": "SpanId",
    "parent_span_id": "ParentSpanId",
    "name": "SpanName",
    "kind": "SpanKind",
    "service_name": "ServiceName",
    "start_time": "",
    "end_time": "Duration",
    "start_time_unix_nano": "",
    "duration_ns": "Duration",
    "status": "StatusCode",
    "status_message": "StatusMessage",
    "attributes": "SpanAttributes",
    "events": "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS EventTs, "
    "`Events.Name` AS EventName, `Events.Attributes` AS EventAttrs",
    "links": "`Links.TraceId` AS LinkTraceId, `Links.SpanId` AS LinkSpanId, "
    "`Links.TraceState` AS LinkTraceState, `Links.Attributes` AS LinkAttrs",
    "operation": "Operation",
    "agent_name": "AgentName",
    "model": "Model",
    "tool_name": "ToolName",
    "input_tokens": "InputTokens",
    "output_tokens": "OutputTokens",
    "step_index": "StepIndex",
    "session_id": "SessionId",
    "user_id": "UserId",
    "payload_keys": "mapKeys(PayloadRefs) AS PayloadKeys",
}
_ATTRIBUTES_OF_KEYS = (
    "mapFilter((k, v) -> has({attr_keys:Array(String)}, k), SpanAttributes) AS SpanAttributes"
)


def split_tree_fields(fields: Iterable[str]) -> tuple[list[str], list[str]]:
    """``fields`` of a tree page as (span fields, attribute keys of ``attributes.KEY`` entries);
    ``InvalidInputError`` naming the first one that is neither."""
    plain: list[str] = []
    keys: list[str] = []
    for field_name in fields:
        if field_name.startswith("attributes.") and len(field_name) > len("attributes."):
            keys.append(field_name[len("attributes.") :])
        elif field_name in TREE_FIELD_COLUMNS:
            if field_name not in plain:
                plain.append(field_name)
        else:
            raise InvalidInputError(
                f"unknown span field {field_name!r} in fields: expected some of "
                f"{', '.join(TREE_FIELD_COLUMNS)} or attributes.KEY"
            )
    if not plain and not keys:
        raise InvalidInputError("fields names no span field")
    return plain, keys


def trace_tree_fields_sql(fields: Iterable[str], attribute_keys: Sequence[str]) -> Built:
    """TRACE_TREE_SQL selecting only ``fields`` (keys of TREE_FIELD_COLUMNS, checked by the
    caller; the start time and span id are always read: the page's order and cursor), and the
    attributes named by ``attribute_keys`` (unless ``attributes`` asks for them all), with the
    ``attr_keys`` parameter those bind. The caller adds the page's parameters (project, trace,
    cursor, limit)."""
    columns = ["SpanId", "toUnixTimestamp64Nano(Timestamp) AS StartNs"]
    for name in fields:
        column = TREE_FIELD_COLUMNS[name]
        if column and column not in columns:
            columns.append(column)
    params: Params = {}
    if attribute_keys and "SpanAttributes" not in columns:
        columns.append(_ATTRIBUTES_OF_KEYS)
        params["attr_keys"] = list(attribute_keys)
    sql = (
        _trace_bounded(f"{', '.join(columns)}, {_FEEDBACK_OF_TRACE}")
        + """  AND (toUnixTimestamp64Nano(Timestamp), SpanId) > ({c_ts:Int64}, {c_span:String})
ORDER BY Timestamp, SpanId
LIMIT 1 BY Timestamp, SpanId
LIMIT {limit:UInt32}
"""
    )
    return Built(sql, params)


TRACE_SPAN_SQL = (
    _trace_bounded(SPAN_SELECT)
    + """  AND SpanId = {span_id:String}
ORDER BY Timestamp
LIMIT 1
"""
)

# The hex hash is aliased HashHex: an alias named Hash would replace the column in WHERE, and
# toString(Hash) IN (...) cannot use the primary key (every granule was read).
PAYLOADS_SQL = f"""
SELECT toString(Hash) AS HashHex, any(Content) AS Content
FROM {PAYLOADS_TABLE}
WHERE ProjectId = {{project:String}} AND Hash IN {{hashes:Array(FixedString(64))}}
GROUP BY Hash
SETTINGS output_format_arrow_string_as_string = 0
"""

DELETE_SQL = [
    f"DELETE FROM {table} WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}"
    for table in (
        SPANS_TABLE,
        TRACE_ID_TS_TABLE,
        SPAN_ATTRIBUTES_TABLE,
        SUMMARIES_TABLE,
        FEEDBACK_TABLE,
        SUITES_TABLE,
    )
]


# --- trace summaries ---------------------------------------------------------------------------
# Counts are sums over the spans stored, each stored once (the engine drops re-delivered spans
# before inserting; migration 0005 recounted older stores). Root-span fields come from the run's
# latest root segment (a run paused for approval and resumed has several root spans):
# ``LatestRoot`` is max((end time, run status, root status code, output preview)) over root
# spans; every summary row has it since migration 0005 rebuilt the table.
_LATEST_ROOT = "max(LatestRoot)"
_RUN_STATUS_EXPR = f"tupleElement({_LATEST_ROOT}, 2)"
_ROOT_STATUS_EXPR = f"tupleElement({_LATEST_ROOT}, 3)"
_OUTPUT_PREVIEW_EXPR = f"tupleElement({_LATEST_ROOT}, 4)"
# The run's input: the earliest root segment's non-empty input preview.
_INPUT_PREVIEW_EXPR = "argMinMerge(FirstInputPreview)"
_INPUT_TOKENS_EXPR = "sum(InputTokens)"
_OUTPUT_TOKENS_EXPR = "sum(OutputTokens)"

_STATUS_EXPR = (
    f"if(sum(ErrorCount) > 0 OR {_ROOT_STATUS_EXPR} = 'Error' "
    f"OR {_RUN_STATUS_EXPR} IN {{failed_statuses:Array(String)}}, 'error', 'ok')"
)

SUMMARY_COLUMNS = f"""
    TraceId,
    toUnixTimestamp64Nano(min(Start)) AS StartNs,
    toUnixTimestamp64Nano(max(End)) AS EndNs,
    toInt64(EndNs - StartNs) AS DurationNs,
    sum(SpanCount) AS SpanCount_,
    sum(ErrorCount) AS ErrorCount_,
    {_STATUS_EXPR} AS Status_,
    {_RUN_STATUS_EXPR} AS RunStatus_,
    max(ServiceName) AS ServiceName_,
    max(AgentName) AS AgentName_,
    max(RootSpanName) AS RootSpanName_,
    {_INPUT_PREVIEW_EXPR} AS InputPreview_,
    {_OUTPUT_PREVIEW_EXPR} AS OutputPreview_,
    {_INPUT_TOKENS_EXPR} AS InputTokens_,
    {_OUTPUT_TOKENS_EXPR} AS OutputTokens_,
    toInt64(InputTokens_ + OutputTokens_) AS Tokens_,
    sum(LlmCalls) AS LlmCalls_,
    sum(ToolCalls) AS ToolCalls_,
    groupUniqArrayArray(Models) AS Models_,
    groupUniqArrayArray(Tools) AS Tools_,
    max(ReplayOf) AS ReplayOf_,
    max(SessionId) AS SessionId_,
    max(UserId) AS UserId_
"""

# One trace's summary from the summaries view (the rules summary_from_spans follows).
TRACE_SUMMARY_SQL = f"""
SELECT {SUMMARY_COLUMNS}
FROM {SUMMARIES_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
GROUP BY TraceId
"""

SORT_COLUMNS: dict[str, str] = {
    "start_time": "StartNs",
    "duration": "DurationNs",
    "tokens": "Tokens_",
    "errors": "ErrorCount_",
    "spans": "SpanCount_",
}


@dataclass
class Built:
    """A statement and the parameters it binds."""

    sql: str
    params: Params = field(default_factory=dict)


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for keyset pagination."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`; InvalidInputError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"invalid cursor {cursor!r}: not one this API returned") from exc
    if not isinstance(values, list) or len(values) != size:
        raise InvalidInputError(f"invalid cursor {cursor!r}: not one this API returned")
    # Cursor numbers are bound as Int64: a forged larger one must not reach the store.
    if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in values):
        raise InvalidInputError(f"invalid cursor {cursor!r}: not one this API returned")
    return values


def _span_time_filter(start: datetime | int | None, end: datetime | None, params: Params) -> str:
    clauses = []
    if start is not None:
        params["t_start"] = start if isinstance(start, int) else to_ns(start)
        clauses.append("Timestamp >= fromUnixTimestamp64Nano({t_start:Int64})")
    if end is not None:
        params["t_end"] = to_ns(end)
        clauses.append("Timestamp < fromUnixTimestamp64Nano({t_end:Int64})")
    return "".join(f" AND {c}" for c in clauses)


# The attribute index (retrace_span_attributes, migration 0011) holds the span attributes whose
# value is 1 to this many bytes long (the view's WHERE); a filter on a longer value, or on ''
# (which also matches spans without the key), reads otel_traces instead.
ATTRIBUTE_INDEX_MAX_VALUE_BYTES = 128


def _indexed(value: str) -> bool:
    return 1 <= len(value.encode("utf-8")) <= ATTRIBUTE_INDEX_MAX_VALUE_BYTES


def _trace_attribute_filters(attrs: Mapping[str, str], span_time: str, params: Params) -> list[str]:
    """One trace-id condition per attribute filter of a trace list (any span of the trace).

    A short value is looked up in the attribute index, sorted by (project, key, value, time):
    a granule or two instead of the bounded read of otel_traces (see
    ATTRIBUTE_INDEX_MAX_VALUE_BYTES for the other values). Each attribute may sit on a
    different span of the trace: the per-filter trace sets are intersected.
    """
    clauses = []
    for i, (key, value) in enumerate(sorted(attrs.items())):
        params[f"ak{i}"] = key
        params[f"av{i}"] = value
        if _indexed(value):
            clauses.append(
                f"TraceId IN (SELECT TraceId FROM {SPAN_ATTRIBUTES_TABLE}"
                f" WHERE ProjectId = {{project:String}} AND Key = {{ak{i}:String}}"
                f" AND Value = {{av{i}:String}}{span_time})"
            )
        else:
            clauses.append(
                f"TraceId IN (SELECT TraceId FROM {SPANS_TABLE}"
                f" WHERE ProjectId = {{project:String}}{span_time}"
                f" AND SpanAttributes[{{ak{i}:String}}] = {{av{i}:String}})"
            )
    return clauses


def _attribute_filter(attrs: Mapping[str, str], params: Params) -> list[str]:
    clauses = []
    for i, (key, value) in enumerate(sorted(attrs.items())):
        params[f"ak{i}"] = key
        params[f"av{i}"] = value
        # Span attributes only: an OR over resource attributes would defeat the bloom filter
        # index on map values (measured: 20 ms -> 1 s over a day of 5 M spans).
        clauses.append(f"SpanAttributes[{{ak{i}:String}}] = {{av{i}:String}}")
    return clauses


# Newest-first lists look at the most recent traces first: windows (seconds) tried in turn
# before the whole project, each a superset test on the time-partitioned trace-id lookup table.
NEWEST_WINDOWS_S: tuple[int, ...] = (3600, 86_400, 7 * 86_400)


# A start bound whose lookup rows are at most this many prunes the summaries read through the
# lookup table (the traces' ids select their granules of the summaries table); a wider one reads
# the project's summaries and bounds their merged start instead: a set of that many ids selects
# every granule anyway, and building and probing it costs more than the rows it would leave out
# (measured: 17,000 ids of one day cost ≈10 ms over 34,500 traces, bench/bench_store.py).
PRUNE_MAX_LOOKUP_ROWS = 2048


def window_count_sql(project: str, lows_ns: Sequence[int]) -> Built:
    """The number of lookup rows starting at or after each bound (columns ``n0``, ``n1``, ...).

    Each trace starting at or after a bound has a lookup row at or after it, so a count of at
    most a page means the window cannot fill the page: its list statement need not run.
    """
    params: Params = {"project": project}
    counts = []
    for i, low in enumerate(lows_ns):
        params[f"lo{i}"] = low
        counts.append(f"countIf(Start >= fromUnixTimestamp64Nano({{lo{i}:Int64}})) AS n{i}")
    params["lo"] = min(lows_ns)
    return Built(
        f"SELECT {', '.join(counts)} FROM {TRACE_ID_TS_TABLE}"
        " WHERE ProjectId = {project:String} AND Start >= fromUnixTimestamp64Nano({lo:Int64})",
        params,
    )


def list_traces_sql(
    project: str, q: TraceQuery, *, window_start_ns: int | None = None, prune: bool = False
) -> tuple[Built, str]:
    """The trace-list statement and the name of its sort column.

    Reads ``retrace_trace_summaries``, except for text and attribute filters, which select trace
    ids from spans (and payload contents) bounded by the query's time range. With
    ``window_start_ns`` only traces starting at or after it are considered. With ``prune`` the
    lookup table (partitioned by day) narrows the summaries read to the traces of the start
    bound (see PRUNE_MAX_LOOKUP_ROWS); the result is the same either way.
    """
    params: Params = {"project": project, "failed_statuses": list(FAILED_RUN_STATUSES)}
    where = ["ProjectId = {project:String}"]
    having: list[str] = []
    start_ns = to_ns(q.start) if q.start is not None else None
    if window_start_ns is not None:
        start_ns = max(window_start_ns, start_ns or window_start_ns)
    span_time = _span_time_filter(start_ns, q.end, params)
    if start_ns is not None:
        having.append("StartNs >= {t_start:Int64}")
    if start_ns is not None and prune:
        # Lookup rows keep each insert block's first span time: every block of a trace that
        # starts at or after the bound is at or after it. The lookup table is partitioned by
        # day, so a recent bound reads little.
        where.append(
            f"TraceId IN (SELECT TraceId FROM {TRACE_ID_TS_TABLE}"
            " WHERE ProjectId = {project:String}"
            " AND Start >= fromUnixTimestamp64Nano({t_start:Int64}))"
        )
    if q.end is not None:
        having.append("StartNs < {t_end:Int64}")
    if q.status is not None:
        params["status"] = q.status
        having.append("Status_ = {status:String}")
    for name, value, column in (
        ("run_status", q.run_status, "RunStatus_"),
        ("service", q.service, "ServiceName_"),
        ("agent", q.agent, "AgentName_"),
        ("replay_of", q.replay_of, "ReplayOf_"),
        ("session_id", q.session_id, "SessionId_"),
        ("user_id", q.user_id, "UserId_"),
    ):
        if value is not None:
            params[name] = value
            having.append(f"{column} = {{{name}:String}}")
    if not q.include_replays and q.replay_of is None:
        having.append("ReplayOf_ = ''")
    if q.model is not None:
        params["model"] = q.model
        having.append("has(Models_, {model:String})")
    if q.tool is not None:
        params["tool"] = q.tool
        having.append("has(Tools_, {tool:String})")
    if q.min_duration_ms is not None:
        params["min_duration_ns"] = int(q.min_duration_ms * 1_000_000)
        having.append("DurationNs >= {min_duration_ns:Int64}")
    if q.feedback is not None:
        params["feedback"] = q.feedback
        where.append(
            f"TraceId IN (SELECT TraceId FROM {FEEDBACK_TABLE}"
            " WHERE ProjectId = {project:String} AND Name = {feedback:String})"
        )
    where.extend(_trace_attribute_filters(q.attributes, span_time, params))
    if q.text:
        contains = _text_matcher(q.text, params)
        # Any summary row of the trace with the text (a key-level condition: see below).
        where.append(
            f"(TraceId IN (SELECT TraceId FROM {SUMMARIES_TABLE}"
            " WHERE ProjectId = {project:String}"
            f" AND ({contains('InputPreview')} OR {contains('OutputPreview')}))"
            f" OR TraceId IN (SELECT TraceId FROM {SPANS_TABLE}"
            f" WHERE ProjectId = {{project:String}}{span_time} AND ("
            f"{contains('InputPreview')} OR {contains('OutputPreview')}"
            f" OR arrayExists(v -> {contains('v')}, mapValues(SpanAttributes))"
            " OR hasAny(mapValues(PayloadRefs), (SELECT groupArray(toString(Hash))"
            f" FROM {PAYLOADS_TABLE} WHERE ProjectId = {{project:String}}"
            f" AND {contains('Content')})))))"
        )
    sort_col = SORT_COLUMNS[q.sort]
    direction = "DESC" if q.order == "desc" else "ASC"
    if q.cursor:
        value, trace_id = decode_cursor(q.cursor, 2)
        if not isinstance(value, int) or not isinstance(trace_id, str):
            raise InvalidInputError(f"invalid cursor {q.cursor!r}: not one this API returned")
        params["c_value"] = value
        params["c_trace"] = trace_id
        op = "<" if q.order == "desc" else ">"
        having.append(f"({sort_col}, TraceId) {op} ({{c_value:Int64}}, {{c_trace:String}})")
    params["limit"] = q.limit + 1
    # Two phases in one statement: the inner query reads only what the filters and the sort
    # need, one merged row per trace (FINAL: the engine merges a trace's rows by the table's
    # functions as it reads, in key order, cheaper than a GROUP BY over every trace); the full
    # summary is built for the page only. The conditions in ``where`` hold for all of a trace's
    # rows or none (project, trace-id sets), so they may prune before the merge; the others
    # (``having``) are on merged values and are applied to the subquery's output, after it.
    having_sql = " AND ".join(having)
    light = [
        f"{expr} AS {alias}"
        for alias, expr in _LIGHT_COLUMNS.items()
        if alias == sort_col or alias in having_sql
    ]
    sql = f"""
SELECT {SUMMARY_COLUMNS}
FROM {SUMMARIES_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId IN (
    SELECT TraceId FROM (
        SELECT TraceId, {", ".join(light)}
        FROM {SUMMARIES_TABLE} FINAL
        WHERE {" AND ".join(where)}
    )
    {"WHERE " + having_sql if having else ""}
    ORDER BY {sort_col} {direction}, TraceId {direction}
    LIMIT {{limit:UInt32}}
)
GROUP BY TraceId
ORDER BY {sort_col} {direction}, TraceId {direction}
"""
    return Built(sql, params), sort_col


def text_pattern(text: str) -> str:
    """A case-insensitive RE2 pattern finding ``text`` as written or JSON-escaped.

    Payloads and attributes are often JSON written with ``\\uXXXX`` escapes for every non-ASCII
    character (Python's ``json.dumps`` default), so a Cyrillic or Japanese word is not in their
    bytes as typed. Each non-ASCII character matches itself, its other case, or the escapes of
    either (UTF-16, surrogate pairs past the BMP, hex digits in either case); ``"``, ``\\`` and
    ``/`` match with or without JSON's backslash. Every character is written ``\\x{hex}``, so
    nothing in ``text`` is read as regular-expression syntax.
    """
    parts: list[str] = []
    for ch in text:
        if ch.isascii():
            literal = f"\\x{{{ord(ch):x}}}"
            parts.append(f"(?:\\x{{5c}})?{literal}" if ch in '"\\/' else literal)
            continue
        alternatives: list[str] = []
        for variant in dict.fromkeys((ch, ch.lower(), ch.upper())):
            if len(variant) != 1:
                continue  # "ß".upper() == "SS": the character itself stands for it
            alternatives.append(f"\\x{{{ord(variant):x}}}")
            units = variant.encode("utf-16-be")
            escaped = "".join(
                f"\\x{{5c}}u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)
            )
            alternatives.append(escaped)
        parts.append("(?:" + "|".join(alternatives) + ")")
    return "(?is)" + "".join(parts)


def _text_matcher(text: str, params: Params) -> Any:
    """``column -> SQL condition`` finding ``text`` in the column, case-insensitively.

    ASCII text is looked for with ``positionCaseInsensitiveUTF8`` (JSON keeps ASCII letters as
    they are); text with other characters, or with a quote or backslash (which JSON escapes),
    with :func:`text_pattern` (``match``, RE2).
    """
    if text.isascii() and '"' not in text and "\\" not in text:
        params["text"] = text
        return lambda column: f"positionCaseInsensitiveUTF8({column}, {{text:String}}) > 0"
    params["text_re"] = text_pattern(text)
    return lambda column: f"match({column}, {{text_re:String}})"


_ROOT_KEY_RUN_STATUS = "substringIndex(substring(RootKey, 17), '\\0', 1)"

# The summary columns a list filter or sort may use, from one merged row of a trace (FINAL):
# each is the same value as its aggregate in SUMMARY_COLUMNS.
_LIGHT_COLUMNS: dict[str, str] = {
    "StartNs": "toUnixTimestamp64Nano(Start)",
    "DurationNs": "toInt64(toUnixTimestamp64Nano(End) - toUnixTimestamp64Nano(Start))",
    "SpanCount_": "SpanCount",
    "ErrorCount_": "ErrorCount",
    "Tokens_": "toInt64(InputTokens + OutputTokens)",
    # RootKey (migration 0009) is LatestRoot's (end time, run status, status code) as one
    # string, 16 hex digits of time, the run status, NUL, the status code: its max is the key of
    # max(LatestRoot), read as a plain string instead of a tuple.
    "Status_": (
        "if(ErrorCount > 0 OR endsWith(RootKey, '\\0Error') OR "
        f"{_ROOT_KEY_RUN_STATUS} IN {{failed_statuses:Array(String)}}, 'error', 'ok')"
    ),
    "RunStatus_": _ROOT_KEY_RUN_STATUS,
    "ServiceName_": "ServiceName",
    "AgentName_": "AgentName",
    "ReplayOf_": "ReplayOf",
    "SessionId_": "SessionId",
    "UserId_": "UserId",
    "Models_": "Models",
    "Tools_": "Tools",
}


# --- span search -------------------------------------------------------------------------------
def search_spans_sql(
    project: str,
    q: SpanQuery,
    *,
    after: tuple[int, str, str] | None = None,
    rows: int | None = None,
) -> Built:
    """Spans matching the filters, newest first, keyset-paginated by (time, trace, span).

    ``after`` (start ns, trace id, span id) overrides the query's cursor and ``rows`` its page
    size (default ``limit + 1``): a reader skipping a span stored twice reads on from there.
    Copies of a span share the sort key, so they come together.
    """
    params: Params = {"project": project}
    where = ["ProjectId = {project:String}"]
    time_filter = _span_time_filter(q.start, q.end, params)
    for name, value, column in (
        ("trace_id", q.trace_id, "TraceId"),
        ("name", q.name, "SpanName"),
        ("operation", q.operation, "Operation"),
        ("service", q.service, "ServiceName"),
        ("model", q.model, "Model"),
        ("tool", q.tool, "ToolName"),
        ("session_id", q.session_id, "SessionId"),
        ("user_id", q.user_id, "UserId"),
    ):
        if value is not None:
            params[name] = value
            where.append(f"{column} = {{{name}:String}}")
    if q.status is not None:
        params["status"] = {"ok": StatusCode.OK, "error": StatusCode.ERROR}.get(
            q.status, StatusCode.UNSET
        ).value
        where.append("StatusCode = {status:String}")
    if q.min_duration_ms is not None:
        params["min_duration_ns"] = int(q.min_duration_ms * 1_000_000)
        where.append("Duration >= {min_duration_ns:UInt64}")
    where.extend(_attribute_filter(q.attributes, params))
    if after is None and q.cursor:
        ts, trace_id, span_id = decode_cursor(q.cursor, 3)
        if not (isinstance(ts, int) and isinstance(trace_id, str) and isinstance(span_id, str)):
            raise InvalidInputError(f"invalid cursor {q.cursor!r}: not one this API returned")
        after = (ts, trace_id, span_id)
    if after is not None:
        params.update(c_ts=after[0], c_trace=after[1], c_span=after[2])
        where.append(
            "(toUnixTimestamp64Nano(Timestamp), TraceId, SpanId)"
            " < ({c_ts:Int64}, {c_trace:String}, {c_span:String})"
        )
    params["limit"] = q.limit + 1 if rows is None else rows
    sql = f"""
SELECT {SPAN_SELECT}
FROM {SPANS_TABLE}
WHERE {" AND ".join(where)}{time_filter}
ORDER BY Timestamp DESC, TraceId DESC, SpanId DESC
LIMIT {{limit:UInt32}}
"""
    return Built(sql, params)


# --- stats -------------------------------------------------------------------------------------
# What stats read of each trace (not the page columns: previews, models, tools...).
_STATS_COLUMNS = f"""
    TraceId,
    toUnixTimestamp64Nano(min(Start)) AS StartNs,
    toInt64(toUnixTimestamp64Nano(max(End)) - StartNs) AS DurationNs,
    {_STATUS_EXPR} AS Status_,
    {_RUN_STATUS_EXPR} AS RunStatus_,
    max(ServiceName) AS ServiceName_,
    max(AgentName) AS AgentName_,
    max(ReplayOf) AS ReplayOf_,
    {_INPUT_TOKENS_EXPR} AS InputTokens_,
    {_OUTPUT_TOKENS_EXPR} AS OutputTokens_
"""


def _stats_traces_subquery(project: str, q: StatsQuery, params: Params) -> str:
    """The runs the stats count: traces started in the range, replays left out."""
    params.update(project=project, failed_statuses=list(FAILED_RUN_STATUSES))
    having = ["ReplayOf_ = ''"]
    if q.start is not None:
        params["t_start"] = to_ns(q.start)
        having.append("StartNs >= {t_start:Int64}")
    if q.end is not None:
        params["t_end"] = to_ns(q.end)
        having.append("StartNs < {t_end:Int64}")
    if q.service is not None:
        params["service"] = q.service
        having.append("ServiceName_ = {service:String}")
    if q.agent is not None:
        params["agent"] = q.agent
        having.append("AgentName_ = {agent:String}")
    return f"""
SELECT {_STATS_COLUMNS}
FROM {SUMMARIES_TABLE}
WHERE ProjectId = {{project:String}}
GROUP BY TraceId
HAVING {" AND ".join(having)}
"""


def _approval_waits_subquery(q: StatsQuery, params: Params) -> str:
    """Per trace, the time it waited for a human's approval (``WaitNs``).

    A run paused for approval ends its root segment with run status ``pending_approval``; once
    the approval is decided and the run resumed, a new root segment of the same trace starts.
    The wait is the gap from each paused segment's end to the start of the segment after it (a
    run still paused has no later segment: its trace ends at the pause, nothing to take out).
    Read from the root spans of the traces started in the range (a trace's segments start at or
    after its start) that have a paused segment: those are found through the bloom filter index
    on attribute values (``pending_approval`` is no other span's value), then their segments by
    the primary key, so a store without pauses reads next to nothing.
    """
    params.update(run_status_key=attr.RETRACE_RUN_STATUS, paused=RunStatus.PENDING_APPROVAL.value)
    time_filter = ""
    if q.start is not None:
        params["t_start"] = to_ns(q.start)
        time_filter = " AND Timestamp >= fromUnixTimestamp64Nano({t_start:Int64})"
    return f"""
SELECT TraceId, arraySum(arrayMap(
           i -> if(tupleElement(Segs[i], 3) AND i < length(Segs),
                   greatest(tupleElement(Segs[i + 1], 1) - tupleElement(Segs[i], 2), 0), 0),
           arrayEnumerate(Segs))) AS WaitNs
FROM (
    SELECT TraceId, arraySort(groupUniqArray(tuple(
               toInt64(toUnixTimestamp64Nano(Timestamp)),
               toInt64(toUnixTimestamp64Nano(Timestamp) + Duration),
               SpanAttributes[{{run_status_key:String}}] = {{paused:String}}))) AS Segs
    FROM {SPANS_TABLE}
    WHERE ProjectId = {{project:String}} AND ParentSpanId = ''{time_filter}
      AND TraceId IN (
          SELECT TraceId FROM {SPANS_TABLE}
          WHERE ProjectId = {{project:String}}{time_filter}
            AND SpanAttributes[{{run_status_key:String}}] = {{paused:String}}
      )
    GROUP BY TraceId
    HAVING length(Segs) > 1
)
"""


def _stats_runs_subquery(project: str, q: StatsQuery, params: Params) -> str:
    """The runs the stats count, each with ``ActiveNs`` (its duration less its ``WaitNs``)."""
    runs = _stats_traces_subquery(project, q, params)
    waits = _approval_waits_subquery(q, params)
    return f"""
SELECT r.*, w.WaitNs AS WaitNs, r.DurationNs - least(w.WaitNs, r.DurationNs) AS ActiveNs
FROM ({runs}) AS r
LEFT JOIN ({waits}) AS w ON r.TraceId = w.TraceId
"""


def stats_totals_sql(project: str, q: StatsQuery) -> Built:
    """Runs, errors, active-duration quantiles, tokens and the waits for approval."""
    params: Params = {"paused": RunStatus.PENDING_APPROVAL.value}
    sub = _stats_runs_subquery(project, q, params)
    sql = f"""
SELECT count() AS Runs, countIf(Status_ = 'error') AS Errors,
       quantilesExact(0.5, 0.9, 0.99)(ActiveNs / 1e6) AS Q,
       sum(InputTokens_) AS InTok, sum(OutputTokens_) AS OutTok,
       countIf(WaitNs > 0) AS Waits, sum(WaitNs) / 1e6 AS WaitMs,
       quantileExactIf(0.5)(WaitNs / 1e6, WaitNs > 0) AS WaitP50,
       countIf(RunStatus_ = {{paused:String}}) AS Paused
FROM ({sub})
"""
    return Built(sql, params)


def stats_buckets_sql(project: str, q: StatsQuery) -> Built:
    """Per time bucket: runs, errors, p50/p95 active duration, tokens."""
    params: Params = {"bucket": q.bucket_seconds}
    sub = _stats_runs_subquery(project, q, params)
    sql = f"""
SELECT intDiv(StartNs, {{bucket:Int64}} * 1000000000) * {{bucket:Int64}} AS BucketS,
       count() AS Runs, countIf(Status_ = 'error') AS Errors,
       quantilesExact(0.5, 0.95)(ActiveNs / 1e6) AS Q,
       sum(InputTokens_) AS InTok, sum(OutputTokens_) AS OutTok
FROM ({sub})
GROUP BY BucketS
ORDER BY BucketS
"""
    return Built(sql, params)


def stats_tools_sql(project: str, q: StatsQuery) -> Built:
    """The tools with the most failed calls in the range (top 10).

    A call is one (trace, span id) however often it was stored (a store upgraded from before
    schema 5, or two collectors storing a span at once), and only the caller's span of it (see
    :func:`is_tool_call`). The ids are counted by a 64-bit hash: exact short of a collision
    (odds ~n²/2^65), and cheaper than a set of (trace id, span id) strings. Replays' calls are
    left out (the runs they replay are counted), and the status and kind spellings of older
    OpenTelemetry Collector exporters (``STATUS_CODE_ERROR``, ``SPAN_KIND_SERVER``) count."""
    params: Params = {
        "project": project,
        "op_tool": attr.OP_EXECUTE_TOOL,
        "server_kinds": [SpanKind.SERVER.value, "SPAN_KIND_SERVER"],
        "error_statuses": ["Error", "STATUS_CODE_ERROR"],
        "tool_error_key": attr.RETRACE_TOOL_ERROR,
    }
    where = [
        "ProjectId = {project:String}",
        "Operation = {op_tool:String}",
        "SpanKind NOT IN {server_kinds:Array(String)}",
        f"TraceId NOT IN (SELECT TraceId FROM {SUMMARIES_TABLE}"
        " WHERE ProjectId = {project:String} AND ReplayOf != '')",
    ]
    time_filter = _span_time_filter(q.start, q.end, params)
    if q.service is not None:
        params["service"] = q.service
        where.append("ServiceName = {service:String}")
    if q.agent is not None:
        params["agent"] = q.agent
        where.append(
            "TraceId IN (SELECT TraceId FROM "
            f"{SUMMARIES_TABLE} WHERE ProjectId = {{project:String}}"
            " GROUP BY TraceId HAVING max(AgentName) = {agent:String})"
        )
    sql = f"""
SELECT ToolName AS Tool, uniqExact(cityHash64(TraceId, SpanId)) AS Calls,
       uniqExactIf(
           cityHash64(TraceId, SpanId),
           StatusCode IN {{error_statuses:Array(String)}}
               OR SpanAttributes[{{tool_error_key:String}}] = 'true'
       ) AS Errs
FROM {SPANS_TABLE}
WHERE {" AND ".join(where)}{time_filter}
GROUP BY ToolName
HAVING Errs > 0
ORDER BY Errs DESC, Tool
LIMIT 10
"""
    return Built(sql, params)


# --- sessions ----------------------------------------------------------------------------------
def list_sessions_sql(project: str, q: SessionQuery) -> Built:
    """Sessions (traces sharing a session id, replays left out), the most recently active first,
    keyset-paginated by (last start time, session id).

    Each trace's session, user, start, end and status come from the summaries (one group per
    trace), then traces are grouped by session. A time range keeps the traces starting in it.
    """
    params: Params = {"project": project, "failed_statuses": list(FAILED_RUN_STATUSES)}
    having = ["SessionId_ != ''", "ReplayOf_ = ''"]
    if q.start is not None:
        params["t_start"] = to_ns(q.start)
        having.append("StartNs >= {t_start:Int64}")
    if q.end is not None:
        params["t_end"] = to_ns(q.end)
        having.append("StartNs < {t_end:Int64}")
    outer = []
    if q.user_id is not None:
        params["user_id"] = q.user_id
        having.append("UserId_ = {user_id:String}")
    if q.cursor:
        last_ns, session = decode_cursor(q.cursor, 2)
        if not isinstance(last_ns, int) or not isinstance(session, str):
            raise InvalidInputError(f"invalid cursor {q.cursor!r}: not one this API returned")
        params.update(c_value=last_ns, c_session=session)
        outer.append("(LastNs, SessionId) < ({c_value:Int64}, {c_session:String})")
    params["limit"] = q.limit + 1
    sql = f"""
SELECT SessionId_ AS SessionId, max(UserId_) AS UserId, count() AS Traces,
       countIf(Status_ = 'error') AS Errors, min(StartNs) AS FirstNs, max(StartNs) AS LastNs,
       max(EndNs) AS EndNs_,
       sum(Feedback_) AS FeedbackCount
FROM (
    SELECT TraceId,
           toUnixTimestamp64Nano(min(Start)) AS StartNs,
           toUnixTimestamp64Nano(max(End)) AS EndNs,
           {_STATUS_EXPR} AS Status_,
           max(SessionId) AS SessionId_,
           max(UserId) AS UserId_,
           max(ReplayOf) AS ReplayOf_
    FROM {SUMMARIES_TABLE}
    WHERE ProjectId = {{project:String}}
    GROUP BY TraceId
    HAVING {" AND ".join(having)}
) AS traces
LEFT JOIN (
    SELECT TraceId, toUInt64(count()) AS Feedback_
    FROM {FEEDBACK_TABLE}
    WHERE ProjectId = {{project:String}}
    GROUP BY TraceId
) AS fb ON fb.TraceId = traces.TraceId
GROUP BY SessionId_
{"HAVING " + " AND ".join(outer) if outer else ""}
ORDER BY LastNs DESC, SessionId DESC
LIMIT {{limit:UInt32}}
"""
    return Built(sql, params)


# --- suites ------------------------------------------------------------------------------------
SUITE_TRACES_SQL = f"""
SELECT TraceId, toUnixTimestamp64Milli(AddedAt) AS AddedMs, Source, Note
FROM {SUITES_TABLE} FINAL
WHERE ProjectId = {{project:String}} AND Suite = {{suite:String}}
ORDER BY Version, TraceId
"""

SUITES_SQL = f"""
SELECT Suite, count() AS N, toUnixTimestamp64Milli(max(AddedAt)) AS UpdatedMs
FROM {SUITES_TABLE} FINAL
WHERE ProjectId = {{project:String}}
GROUP BY Suite
ORDER BY Suite
"""

# The suites holding one trace.
SUITES_OF_TRACE_SQL = f"""
SELECT Suite, count() AS N, toUnixTimestamp64Milli(max(AddedAt)) AS UpdatedMs
FROM {SUITES_TABLE} FINAL
WHERE ProjectId = {{project:String}} AND Suite IN (
    SELECT Suite FROM {SUITES_TABLE} FINAL
    WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
)
GROUP BY Suite
ORDER BY Suite
"""

SUITE_REMOVE_SQL = f"""
DELETE FROM {SUITES_TABLE}
WHERE ProjectId = {{project:String}} AND Suite = {{suite:String}} AND TraceId = {{trace_id:String}}
"""


# --- feedback ----------------------------------------------------------------------------------
FEEDBACK_OF_TRACE_SQL = f"""
SELECT FeedbackId, TraceId, SpanId, Name, Value, Comment, Source,
       toUnixTimestamp64Milli(CreatedAt) AS CreatedMs
FROM {FEEDBACK_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId = {{trace_id:String}}
ORDER BY CreatedAt, FeedbackId
"""


FEEDBACK_COUNT_SQL = f"""
SELECT count() AS N FROM {FEEDBACK_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId IN {{trace_ids:Array(String)}}
"""


def stats_feedback_sql(project: str, q: StatsQuery) -> Built:
    """Feedback on the traces the stats count, by name (the top 20)."""
    params: Params = {}
    sub = _stats_traces_subquery(project, q, params)
    sql = f"""
SELECT Name, count() AS N, uniqExact(TraceId) AS Traces
FROM {FEEDBACK_TABLE}
WHERE ProjectId = {{project:String}} AND TraceId IN (SELECT TraceId FROM ({sub}))
GROUP BY Name
ORDER BY N DESC, Name
LIMIT 20
"""
    return Built(sql, params)


# --- replays -----------------------------------------------------------------------------------
REPLAY_SQL = f"""
SELECT Report FROM {REPLAYS_TABLE} FINAL
WHERE ProjectId = {{project:String}} AND ReplayId = {{replay_id:String}}
ORDER BY UpdatedAt DESC
LIMIT 1
"""

REPLAYS_OF_TRACE_SQL = f"""
SELECT Report FROM {REPLAYS_TABLE} FINAL
WHERE ProjectId = {{project:String}} AND OriginalTraceId = {{trace_id:String}}
ORDER BY CreatedAt DESC, ReplayId DESC
"""


# --- approvals ---------------------------------------------------------------------------------
_APPROVAL_SELECT = f"""
SELECT ApprovalId, RunId, TraceId, SpanId, ToolName, Arguments, Reason, Rule, Status,
       toUnixTimestamp64Milli(RequestedAt) AS RequestedMs,
       toUnixTimestamp64Milli(ExpiresAt) AS ExpiresMs,
       toUnixTimestamp64Milli(DecidedAt) AS DecidedMs,
       DecidedBy, Comment
FROM {APPROVALS_TABLE} FINAL
WHERE ProjectId = {{project:String}}
"""

APPROVAL_SQL = _APPROVAL_SELECT + " AND ApprovalId = {approval_id:String}"


def list_approvals_sql(project: str, status: ApprovalStatus | None, run_id: str | None) -> Built:
    """Approvals of a project, optionally by status and run, oldest request first."""
    params: Params = {"project": project}
    sql = _APPROVAL_SELECT
    if status is not None:
        params["status"] = ApprovalStatus(status).value
        sql += " AND Status = {status:String}"
    if run_id is not None:
        params["run_id"] = run_id
        sql += " AND RunId = {run_id:String}"
    return Built(sql + " ORDER BY RequestedAt, ApprovalId", params)


# --- API keys ----------------------------------------------------------------------------------
API_KEY_BY_ID_SQL = f"""
SELECT KeyId, ProjectId, toString(KeyHash) AS KeyHash, Name,
       toUnixTimestamp64Milli(CreatedAt) AS CreatedMs, Revoked
FROM {API_KEYS_TABLE} FINAL
WHERE KeyId = {{key_id:String}}
"""

PROJECT_FOR_KEY_SQL = f"""
SELECT ProjectId FROM {API_KEYS_TABLE} FINAL
WHERE KeyHash = {{key_hash:FixedString(64)}} AND Revoked = 0
LIMIT 1
"""

LIST_API_KEYS_SQL = f"""
SELECT KeyId, ProjectId, Name, toUnixTimestamp64Milli(CreatedAt) AS CreatedMs, Revoked
FROM {API_KEYS_TABLE} FINAL
ORDER BY CreatedAt, KeyId
"""

HAS_API_KEYS_SQL = f"SELECT count() AS N FROM {API_KEYS_TABLE} FINAL WHERE Revoked = 0"

"""Result rows to models: what the rows of ``collector.store._sql``'s statements become.

Rows are dicts (as ``pyarrow.Table.to_pylist`` or ``polars.DataFrame.to_dicts`` give them) keyed
by the statements' column names and aliases (``SPAN_SELECT``, ``SUMMARY_COLUMNS``...). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from collector.store._sql import FAILED_RUN_STATUSES, FEEDBACK_COLUMNS, TREE_FIELD_COLUMNS
from schemas import attributes as attr
from schemas.models import (
    Approval,
    ApprovalStatus,
    Feedback,
    FeedbackSource,
    ReplayRecord,
    SessionSummary,
    SpanEvent,
    SpanKind,
    SpanLink,
    SpanView,
    StatusCode,
    SuiteSource,
    SuiteSummary,
    SuiteTrace,
    TraceSummary,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(ns: int) -> datetime:
    """A UTC datetime from unix nanoseconds (microsecond precision, as datetime has)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


# --- spans ---------------------------------------------------------------------------------------
def as_map(value: Any) -> dict[str, str]:
    """A map column value as a dict, whatever shape the Arrow/polars reader gave it."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list) and (not value or type(value[0]) is tuple):
        return dict(value)  # an Arrow Map(String, String): (key, value) string pairs
    out: dict[str, str] = {}
    for item in value:
        if isinstance(item, dict):
            out[str(item["key"])] = str(item["value"])
        else:
            out[str(item[0])] = str(item[1])
    return out


def payload_hashes(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every payload hash the span rows reference."""
    found: set[str] = set()
    for row in rows:
        found.update(as_map(row["PayloadRefs"]).values())
    return found


_M = TypeVar("_M", bound=BaseModel)


def _plain_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of a model :func:`_construct` can build: no aliases, post-init hook, private
    attributes or extra fields, so ``model_construct`` would only set what it is given."""
    assert not model.__pydantic_post_init__ and not model.__pydantic_root_model__
    assert not model.__private_attributes__ and model.model_config.get("extra") != "allow"
    for name, field in model.model_fields.items():
        assert field.alias in (None, name) and field.validation_alias in (None, name)
    return frozenset(model.model_fields)


_SPAN_VIEW_FIELDS = _plain_fields(SpanView)


def _construct(model: type[_M], values: dict[str, Any]) -> _M:
    """``model.model_construct(**values)`` for values naming every field of a plain model (see
    :func:`_plain_fields`), without its per-field alias lookups: a fifth of the time, which is
    most of converting a 200-span trace."""
    built = model.__new__(model)
    object.__setattr__(built, "__dict__", values)
    object.__setattr__(built, "__pydantic_fields_set__", set(values))
    object.__setattr__(built, "__pydantic_extra__", None)
    object.__setattr__(built, "__pydantic_private__", None)
    return built


def _events(row: Mapping[str, Any]) -> list[SpanEvent]:
    event_ts = row["EventTs"]
    if not event_ts:
        return []
    return [
        SpanEvent.model_construct(
            timestamp_unix_nano=int(ts), name=str(name), attributes=as_map(attrs)
        )
        for ts, name, attrs in zip(
            event_ts, row["EventName"] or [], row["EventAttrs"] or [], strict=False
        )
    ]


def _links(row: Mapping[str, Any]) -> list[SpanLink]:
    link_ids = row["LinkTraceId"]
    if not link_ids:
        return []
    return [
        SpanLink.model_construct(
            trace_id=str(t), span_id=str(s), trace_state=str(st), attributes=as_map(a)
        )
        for t, s, st, a in zip(
            link_ids,
            row["LinkSpanId"] or [],
            row["LinkTraceState"] or [],
            row["LinkAttrs"] or [],
            strict=False,
        )
    ]


def span_from_row(
    row: Mapping[str, Any], payloads: Mapping[str, bytes], *, tree: bool = False
) -> SpanView:
    """A span row as the API view, with payload references resolved into attributes.

    With ``tree`` the payloads and resource attributes are left out and ``payload_keys`` names
    the payload attributes.

    The row comes from the store's own typed columns, so the models are built without
    re-validation (``model_construct``): every value is converted to its field's type here.
    """
    attributes = as_map(row["SpanAttributes"])
    refs = as_map(row["PayloadRefs"])
    for key, digest in refs.items():
        blob = payloads.get(digest)
        if blob is not None:
            attributes[key] = blob.decode("utf-8", errors="replace")
    start_ns = int(row["StartNs"])
    duration = int(row["Duration"])
    events = _events(row)
    links = _links(row)
    values = dict(
        trace_id=str(row["TraceId"]),
        span_id=str(row["SpanId"]),
        parent_span_id=str(row["ParentSpanId"]),
        name=str(row["SpanName"]),
        kind=_spelled(str(row["SpanKind"])),
        service_name=str(row["ServiceName"]),
        start_time=from_ns(start_ns),
        end_time=from_ns(start_ns + duration),
        start_time_unix_nano=start_ns,
        duration_ns=duration,
        status=_spelled(str(row["StatusCode"])),
        status_message=str(row["StatusMessage"]),
        attributes=attributes,
        # A tree leaves the resource out too: the same few keys repeated on every span.
        resource_attributes={} if tree else as_map(row["ResourceAttributes"]),
        events=events,
        links=links,
        operation=str(row["Operation"]),
        agent_name=str(row["AgentName"]),
        model=str(row["Model"]),
        tool_name=str(row["ToolName"]),
        input_tokens=int(row["InputTokens"]),
        output_tokens=int(row["OutputTokens"]),
        step_index=int(row["StepIndex"]),
        session_id=str(row["SessionId"]),
        user_id=str(row["UserId"]),
        payload_keys=sorted(refs) if tree else [],
    )
    return _construct(SpanView, values)


def partial_span_from_row(
    row: Mapping[str, Any], fields: Sequence[str], attribute_keys: bool
) -> SpanView:
    """A span of a tree page with only ``fields`` set (a row of ``trace_tree_fields_sql``), plus
    ``attributes`` when ``attribute_keys`` (the row's attributes already filtered to them). The
    model holds no other field: serialize it with the fields asked for only."""
    values = {field: _FIELD_READERS[field](row) for field in fields}
    if attribute_keys and "attributes" not in values:
        values["attributes"] = as_map(row["SpanAttributes"])
    return _construct(SpanView, values)


def _plain(column: str, kind: Any) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: kind(row[column])


# How each field of a tree page is read from its row: one reader per key of TREE_FIELD_COLUMNS
# (the SQL side). Fields read straight from one column come from the column that map names.
_FIELD_READERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "kind": lambda row: _spelled(str(row["SpanKind"])),
    "start_time": lambda row: from_ns(int(row["StartNs"])),
    "end_time": lambda row: from_ns(int(row["StartNs"]) + int(row["Duration"])),
    "start_time_unix_nano": _plain("StartNs", int),  # every tree statement reads it
    "status": lambda row: _spelled(str(row["StatusCode"])),
    "payload_keys": lambda row: sorted(str(k) for k in row["PayloadKeys"] or []),
    "events": _events,
    "links": _links,
    "attributes": lambda row: as_map(row["SpanAttributes"]),
    **{
        name: _plain(TREE_FIELD_COLUMNS[name], kind)
        for name, kind in {
            "trace_id": str,
            "span_id": str,
            "parent_span_id": str,
            "name": str,
            "service_name": str,
            "duration_ns": int,
            "status_message": str,
            "operation": str,
            "agent_name": str,
            "model": str,
            "tool_name": str,
            "input_tokens": int,
            "output_tokens": int,
            "step_index": int,
            "session_id": str,
            "user_id": str,
        }.items()
    },
}
assert _FIELD_READERS.keys() == TREE_FIELD_COLUMNS.keys()


# How OTel Collector ClickHouse exporters before pdata's short names spelled status codes and
# span kinds (rows they wrote straight into otel_traces): read in Retrace's spelling.
_OLD_SPELLINGS: dict[str, str] = {
    "STATUS_CODE_UNSET": "Unset",
    "STATUS_CODE_OK": "Ok",
    "STATUS_CODE_ERROR": "Error",
    "SPAN_KIND_UNSPECIFIED": "Unspecified",
    "SPAN_KIND_INTERNAL": "Internal",
    "SPAN_KIND_SERVER": "Server",
    "SPAN_KIND_CLIENT": "Client",
    "SPAN_KIND_PRODUCER": "Producer",
    "SPAN_KIND_CONSUMER": "Consumer",
}


def _spelled(value: str) -> str:
    return _OLD_SPELLINGS.get(value, value)


def ordered_unique_spans(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Span rows by (start, span id), the earliest row of each span id only (as
    ``ORDER BY Timestamp, SpanId LIMIT 1 BY SpanId`` would give them)."""
    rows.sort(key=lambda r: (r["StartNs"], r["SpanId"]))
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["SpanId"] not in seen:
            seen.add(row["SpanId"])
            out.append(row)
    return out


def is_tool_call(row: Mapping[str, Any]) -> bool:
    """Whether a span row is one tool call: an ``execute_tool`` span that is not the server side
    of a call (an MCP server's own ``tools/call`` span is SpanKind Server, nested in the caller's
    ``execute_tool`` span). The summary view (migration 0005) counts by the same rule."""
    return bool(
        row["Operation"] == attr.OP_EXECUTE_TOOL and row["SpanKind"] != SpanKind.SERVER.value
    )


def summary_from_spans(rows: Sequence[Mapping[str, Any]]) -> TraceSummary:
    """The summary of a whole trace from its span rows (one per span id), by the rules of the
    summary view."""
    roots = [r for r in rows if not r["ParentSpanId"]]
    starts = [int(r["StartNs"]) for r in rows]
    start_ns = min(starts)
    end_ns = max(s + int(r["Duration"]) for s, r in zip(starts, rows, strict=True))
    errors = sum(1 for r in rows if r["StatusCode"] == StatusCode.ERROR.value)
    # A paused and resumed run has several root segments: status and output come from the
    # latest one (the view's LatestRoot tuple order), the input from the earliest with one.
    _, run_status, root_status, output_preview = max(
        (_root_segment(r) for r in roots), default=(0, "", "", "")
    )
    inputs = [(int(r["StartNs"]), str(r["InputPreview"])) for r in roots if r["InputPreview"]]
    input_preview = min(inputs)[1] if inputs else ""
    failed = errors > 0 or root_status == StatusCode.ERROR.value
    replay_of = max(
        (as_map(r["SpanAttributes"]).get(attr.RETRACE_REPLAY_OF, "") for r in rows), default=""
    )
    return TraceSummary(
        trace_id=rows[0]["TraceId"],
        start_time=from_ns(start_ns),
        end_time=from_ns(end_ns),
        duration_ms=(end_ns - start_ns) / 1e6,
        span_count=len(rows),
        error_count=errors,
        status="error" if failed or run_status in FAILED_RUN_STATUSES else "ok",
        run_status=run_status,
        service_name=max(str(r["ServiceName"]) for r in rows),
        agent_name=max(str(r["AgentName"]) for r in rows),
        root_span_name=max((str(r["SpanName"]) for r in roots), default=""),
        input_preview=input_preview,
        output_preview=output_preview,
        input_tokens=sum(int(r["InputTokens"]) for r in rows),
        output_tokens=sum(int(r["OutputTokens"]) for r in rows),
        llm_calls=sum(1 for r in rows if r["Operation"] == attr.OP_CHAT),
        tool_calls=sum(1 for r in rows if is_tool_call(r)),
        models=sorted({str(r["Model"]) for r in rows if r["Model"]}),
        tools=sorted({str(r["ToolName"]) for r in rows if r["ToolName"]}),
        replay_of=replay_of,
        session_id=max((str(r["SessionId"]) for r in rows), default=""),
        user_id=max((str(r["UserId"]) for r in rows), default=""),
    )


def _root_segment(row: Mapping[str, Any]) -> tuple[int, str, str, str]:
    """(end ns, run status, status code, output preview) of a root span, as the view keeps it."""
    return (
        int(row["StartNs"]) + int(row["Duration"]),
        as_map(row["SpanAttributes"]).get(attr.RETRACE_RUN_STATUS, ""),
        str(row["StatusCode"]),
        str(row["OutputPreview"]),
    )


# --- trace summaries ---------------------------------------------------------------------------
def summary_from_row(row: Mapping[str, Any]) -> TraceSummary:
    """A summary row (see SUMMARY_COLUMNS) as the API model."""
    start_ns = int(row["StartNs"])
    end_ns = int(row["EndNs"])
    return TraceSummary(
        trace_id=row["TraceId"],
        start_time=from_ns(start_ns),
        end_time=from_ns(end_ns),
        duration_ms=(end_ns - start_ns) / 1e6,
        span_count=int(row["SpanCount_"]),
        error_count=int(row["ErrorCount_"]),
        status=row["Status_"],
        run_status=row["RunStatus_"],
        service_name=row["ServiceName_"],
        agent_name=row["AgentName_"],
        root_span_name=row["RootSpanName_"],
        input_preview=row["InputPreview_"],
        output_preview=row["OutputPreview_"],
        input_tokens=int(row["InputTokens_"]),
        output_tokens=int(row["OutputTokens_"]),
        llm_calls=int(row["LlmCalls_"]),
        tool_calls=int(row["ToolCalls_"]),
        models=sorted(row["Models_"] or []),
        tools=sorted(row["Tools_"] or []),
        replay_of=row["ReplayOf_"],
        session_id=row["SessionId_"],
        user_id=row["UserId_"],
    )


# --- sessions and feedback -----------------------------------------------------------------------
def session_from_row(row: Mapping[str, Any]) -> SessionSummary:
    """A row of ``list_sessions_sql`` as the API model."""
    return SessionSummary(
        session_id=str(row["SessionId"]),
        user_id=str(row["UserId"]),
        trace_count=int(row["Traces"]),
        error_count=int(row["Errors"]),
        feedback_count=int(row["FeedbackCount"] or 0),
        first_time=from_ns(int(row["FirstNs"])),
        last_time=from_ns(max(int(row["LastNs"]), int(row["EndNs_"]))),
    )


def feedback_from_column(items: Sequence[Any] | None) -> list[Feedback]:
    """The ``Feedback`` column of a trace read (tuples of ``FEEDBACK_COLUMNS`` and the creation
    time in ms) as API models, in ``FEEDBACK_OF_TRACE_SQL``'s order."""
    rows = []
    for item in items or []:
        values = list(item.values()) if isinstance(item, Mapping) else list(item)
        row = dict(zip(FEEDBACK_COLUMNS, values, strict=False))
        row["CreatedMs"] = values[len(FEEDBACK_COLUMNS)]
        rows.append(row)
    rows.sort(key=lambda r: (int(r["CreatedMs"]), str(r["FeedbackId"])))
    return [feedback_from_row(r) for r in rows]


def feedback_from_row(row: Mapping[str, Any]) -> Feedback:
    """A row of ``FEEDBACK_OF_TRACE_SQL`` as the API model."""
    created = _ms_dt(row["CreatedMs"])
    assert created is not None
    return Feedback(
        feedback_id=str(row["FeedbackId"]),
        trace_id=str(row["TraceId"]),
        span_id=str(row["SpanId"]),
        name=str(row["Name"]),
        value=json.loads(row["Value"]),
        comment=str(row["Comment"]),
        source=FeedbackSource(row["Source"]),
        created_at=created,
    )


# --- suites ------------------------------------------------------------------------------------
def suite_trace_from_row(row: Mapping[str, Any]) -> SuiteTrace:
    """A row of ``SUITE_TRACES_SQL`` as the API model."""
    added = _ms_dt(row["AddedMs"])
    assert added is not None
    return SuiteTrace(
        trace_id=str(row["TraceId"]),
        added_at=added,
        source=SuiteSource(row["Source"]),
        note=str(row["Note"]),
    )


def suite_summary_from_row(row: Mapping[str, Any]) -> SuiteSummary:
    """A row of ``SUITES_SQL`` as the API model."""
    updated = _ms_dt(row["UpdatedMs"])
    assert updated is not None
    return SuiteSummary(name=str(row["Suite"]), trace_count=int(row["N"]), updated_at=updated)


# --- replays -----------------------------------------------------------------------------------
def replay_from_row(row: Mapping[str, Any]) -> ReplayRecord:
    return ReplayRecord.model_validate_json(row["Report"])


# --- approvals ---------------------------------------------------------------------------------
def _ms_dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def approval_from_row(row: Mapping[str, Any]) -> Approval:
    requested = _ms_dt(row["RequestedMs"])
    assert requested is not None
    return Approval(
        approval_id=row["ApprovalId"],
        run_id=row["RunId"],
        trace_id=row["TraceId"],
        span_id=row["SpanId"],
        tool_name=row["ToolName"],
        arguments=json.loads(row["Arguments"] or "{}"),
        reason=row["Reason"],
        rule=row["Rule"],
        status=ApprovalStatus(row["Status"]),
        requested_at=requested,
        expires_at=_ms_dt(row["ExpiresMs"]),
        decided_at=_ms_dt(row["DecidedMs"]),
        decided_by=row["DecidedBy"],
        comment=row["Comment"],
    )

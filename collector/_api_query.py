"""The query API under ``/api/v1``: traces, diffs, spans, stats, payloads, replays, approvals.

Handlers are plain ``def`` (FastAPI runs them in its thread pool, so store calls never block the
event loop). Each one gets the caller's project from the ``project`` dependency and passes it to
the store: there is no unscoped read or write.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError

from collector.store._sql import TREE_FIELD_COLUMNS
from schemas.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RetraceError,
)
from schemas.ids import check_id, is_safe_id
from schemas.models import (
    MAX_ATTRIBUTE_FILTERS,
    MAX_BUCKET_SECONDS,
    MAX_DURATION_MS,
    MAX_QUERY_TIME,
    MIN_QUERY_TIME,
    Approval,
    ApprovalDecision,
    ApprovalList,
    ApprovalStatus,
    Caller,
    ErrorBody,
    Feedback,
    FeedbackList,
    Job,
    JobKind,
    JobList,
    NewApproval,
    NewFeedback,
    NewSuiteTraces,
    ReplayList,
    ReplayRecord,
    ReplayRequest,
    SessionDetail,
    SessionPage,
    SessionQuery,
    SpanPage,
    SpanQuery,
    SpanView,
    Stats,
    StatsQuery,
    Suite,
    SuiteList,
    SuiteTrace,
    TraceDetail,
    TraceDiff,
    TracePage,
    TraceQuery,
    TraceTreePage,
    Trajectory,
)
from schemas.paths import file_under, is_script_path

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")


def _state(request: Request) -> Any:
    return request.app.state.collector


def project(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The project the caller's API key belongs to (``default`` in open mode)."""
    result: str = _state(request).project_for(authorization)
    return result


Project = Annotated[str, Depends(project)]


def _api_key(request: Request) -> str | None:
    """The caller's own key, handed to the jobs it starts (never stored)."""
    authorization = request.headers.get("authorization") or ""
    scheme, _, key = authorization.partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


@router.get(
    "/whoami",
    response_model=Caller,
    tags=["auth"],
    summary="The project the caller's API key acts for",
)
def whoami(project: Project) -> Caller:
    return Caller(project=project)


def _storable_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # naive is UTC
    if not MIN_QUERY_TIME <= aware <= MAX_QUERY_TIME:
        raise ValueError(
            "must be between 1970-01-01T00:00:00Z and 2262-04-11T23:47:16Z "
            "(what the store's nanosecond timestamps can hold)"
        )
    return value


# Query parameters bounded to what the store can represent: outside, a 400 naming the parameter
# (not an overflow in the statement, a wrong answer or the engine's error).
QueryTime = Annotated[datetime | None, AfterValidator(_storable_time)]
MinDurationMs = Annotated[
    float | None,
    Query(
        ge=0,
        le=MAX_DURATION_MS,
        allow_inf_nan=False,
        description="Only runs/spans lasting at least this long (milliseconds)",
    ),
]
_ATTR_HELP = f"key=value, repeatable (at most {MAX_ATTRIBUTE_FILTERS})"


def _parse_attrs(attr: list[str]) -> dict[str, str]:
    if len(attr) > MAX_ATTRIBUTE_FILTERS:
        raise InvalidInputError(
            f"attr: at most {MAX_ATTRIBUTE_FILTERS} attribute filters per query, got {len(attr)}"
        )
    out: dict[str, str] = {}
    for item in attr:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"attr: filter {item!r} must be key=value")
        out[key] = value
    return out


def _build(schema: type[Any], /, **fields: Any) -> Any:
    try:
        return schema.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise InvalidInputError("invalid query: " + "; ".join(parts)) from None


def _json(model: BaseModel) -> Response:
    """Serialize with pydantic-core directly: the model is already validated by the store, and
    FastAPI's re-validation of a 200-span trace costs more than the query."""
    return Response(model.model_dump_json(), media_type="application/json")


def _trace_or_404(request: Request, project: str, trace_id: str) -> TraceDetail:
    detail: TraceDetail | None = _state(request).store.get_trace(project, trace_id)
    if detail is None:
        raise NotFoundError(f"trace {trace_id} not found")
    return detail


# --- traces -----------------------------------------------------------------------------------


@router.get("/traces", response_model=TracePage, tags=["traces"], summary="List/search traces")
def list_traces(
    request: Request,
    project: Project,
    start: QueryTime = None,
    end: QueryTime = None,
    status: Literal["ok", "error"] | None = None,
    run_status: str | None = None,
    service: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    tool: str | None = None,
    min_duration_ms: MinDurationMs = None,
    text: str | None = None,
    attr: Annotated[list[str], Query(description=_ATTR_HELP)] = [],  # noqa: B006
    replay_of: Annotated[
        str | None, Query(description="Only replays of this trace (whatever include_replays says)")
    ] = None,
    include_replays: Annotated[
        bool,
        Query(description="List replays too (left out by default); each names its replay_of"),
    ] = False,
    session_id: str | None = None,
    user_id: str | None = None,
    feedback: Annotated[
        str | None, Query(description="Only traces with feedback of this name")
    ] = None,
    sort: Literal["start_time", "duration", "tokens", "errors", "spans"] = "start_time",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Response:
    query = _build(
        TraceQuery,
        start=start,
        end=end,
        status=status,
        run_status=run_status,
        service=service,
        agent=agent,
        model=model,
        tool=tool,
        min_duration_ms=min_duration_ms,
        text=text,
        attributes=_parse_attrs(attr),
        replay_of=replay_of,
        include_replays=include_replays,
        session_id=session_id,
        user_id=user_id,
        feedback=feedback,
        sort=sort,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    page: TracePage = _state(request).store.list_traces(project, query)
    return _json(page)


@router.get(
    "/traces/{trace_id}",
    response_model=TraceDetail,
    tags=["traces"],
    summary="One trace with all spans, payloads resolved (404 if unknown)",
)
def get_trace(request: Request, project: Project, trace_id: str) -> Response:
    return _json(_trace_or_404(request, project, trace_id))


_SPAN_LIST = TypeAdapter(list[SpanView])

# Spans per page of a trace tree: a page of 2,000 bench spans is ~2 MB of JSON, under a second.
MAX_TREE_PAGE = 5000


@router.get(
    "/traces/{trace_id}/spans",
    response_model=TraceTreePage,
    tags=["traces"],
    summary="One trace's span tree without payloads, paged (404 if unknown)",
)
def get_trace_tree(
    request: Request,
    project: Project,
    trace_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_TREE_PAGE)] = 1000,
    cursor: str | None = None,
    fields: Annotated[
        str | None,
        Query(
            description="Comma-separated span fields to return (each span holds only these): "
            + ", ".join(TREE_FIELD_COLUMNS)
            + ", or attributes.KEY for one attribute (into attributes). Unknown name: 400",
            max_length=4096,
        ),
    ] = None,
) -> Response:
    """Spans ordered by (start time, span id) with their attributes, events and links but not
    their payloads (``payload_keys`` names them; ``/spans/{span_id}`` resolves them) nor their
    resource attributes; fields at their default value are left out of the JSON;
    ``next_cursor`` reads the next page. Each page carries the summary and feedback. With
    ``fields`` the store reads and returns only those span fields (a tree view needs a few)."""
    names = None if fields is None else [f.strip() for f in fields.split(",") if f.strip()]
    page: TraceTreePage | None = _state(request).store.get_trace_tree(
        project, trace_id, limit=limit, cursor=cursor, fields=names
    )
    if page is None:
        raise NotFoundError(f"trace {trace_id} not found")
    # Span fields at their defaults (empty events, links, zero tokens...) are left out: a third
    # smaller. The page's own fields are all there (next_cursor is null on the last page). A
    # page of some fields holds spans with only those set (serialized from what they hold).
    head = page.model_dump_json(exclude={"spans"})
    spans = _SPAN_LIST.dump_json(page.spans, exclude_defaults=True).decode()
    return Response(head[:-1] + ',"spans":' + spans + "}", media_type="application/json")


@router.get(
    "/traces/{trace_id}/spans/{span_id}",
    response_model=SpanView,
    tags=["traces"],
    summary="One span of a trace, payloads resolved (404 if unknown)",
)
def get_span(request: Request, project: Project, trace_id: str, span_id: str) -> Response:
    span: SpanView | None = _state(request).store.get_span(project, trace_id, span_id)
    if span is None:
        raise NotFoundError(f"span {span_id} of trace {trace_id} not found")
    return _json(span)


@router.delete("/traces/{trace_id}", tags=["traces"], summary="Delete a trace")
def delete_trace(request: Request, project: Project, trace_id: str) -> dict[str, bool]:
    if not _state(request).store.delete_trace(project, trace_id):
        raise NotFoundError(f"trace {trace_id} not found")
    return {"deleted": True}


@router.get(
    "/traces/{trace_id}/trajectory",
    response_model=Trajectory,
    tags=["traces"],
    summary="The trace as an ordered list of steps",
)
def get_trajectory(request: Request, project: Project, trace_id: str) -> Trajectory:
    from replay import trajectory_from_detail

    return trajectory_from_detail(_trace_or_404(request, project, trace_id))


@router.get(
    "/diff",
    response_model=TraceDiff,
    tags=["traces"],
    summary="Two traces compared step by step: alignment and first divergence (A vs B)",
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def diff_traces(
    request: Request,
    project: Project,
    a: Annotated[str, Query(description="Trace id of run A (in the recording's place)")],
    b: Annotated[str, Query(description="Trace id of run B (in the replay's place)")],
) -> Response:
    # The same conversion and analysis as a replay's report, imported on first use: replay's pure
    # modules only (see tests/test_import_structure.py).
    from replay import diff_trajectories, trajectory_from_detail

    check_id(a, "trace id a")
    check_id(b, "trace id b")
    first = trajectory_from_detail(_trace_or_404(request, project, a))
    second = first if b == a else trajectory_from_detail(_trace_or_404(request, project, b))
    return _json(TraceDiff(a=a, b=b, report=diff_trajectories(first, second)))


@router.get(
    "/traces/{trace_id}/export",
    tags=["traces"],
    summary="Download a trace as JSON, Parquet or Arrow IPC",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/octet-stream": {}}}},
)
def export_trace(
    request: Request,
    project: Project,
    trace_id: str,
    format: Literal["json", "parquet", "arrow"] = "json",
) -> Response:
    detail = _trace_or_404(request, project, trace_id)
    if format == "json":
        return Response(
            detail.model_dump_json(),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{trace_id}.json"'},
        )
    data, media = spans_table_bytes(detail, format)
    ext = "parquet" if format == "parquet" else "arrow"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{trace_id}.{ext}"'},
    )


def spans_table_bytes(detail: TraceDetail, format: str) -> tuple[bytes, str]:
    """A trace's spans as one flat table (maps/lists as JSON text) in Parquet or Arrow IPC."""
    import polars as pl

    rows = []
    for span in detail.spans:
        row = span.model_dump(mode="json")
        for key in ("attributes", "resource_attributes", "events", "links"):
            row[key] = json.dumps(row[key], sort_keys=True)
        rows.append(row)
    frame = pl.DataFrame(rows) if rows else pl.DataFrame()
    buf = io.BytesIO()
    if format == "parquet":
        frame.write_parquet(buf)
        return buf.getvalue(), "application/vnd.apache.parquet"
    frame.write_ipc(buf)
    return buf.getvalue(), "application/vnd.apache.arrow.file"


@router.post(
    "/traces/{trace_id}/feedback",
    response_model=Feedback,
    status_code=201,
    tags=["feedback"],
    summary="Add feedback or an annotation to a trace (or one of its spans)",
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def add_feedback(
    request: Request, project: Project, trace_id: str, feedback: NewFeedback
) -> Response:
    """``value`` is a number, string or bool; ``source`` is user, reviewer or ci. The trace must
    exist in the caller's project (404 otherwise), and ``span_id``, if given, be one of its
    spans."""
    state = _state(request)
    if feedback.span_id:
        detail = _trace_or_404(request, project, trace_id)
        if all(s.span_id != feedback.span_id for s in detail.spans):
            raise InvalidInputError(f"span_id: trace {trace_id} has no span {feedback.span_id!r}")
    elif not state.store.has_trace(project, trace_id):
        raise NotFoundError(f"trace {trace_id} not found")
    stored = Feedback(
        **feedback.model_dump(),
        feedback_id=uuid.uuid4().hex,
        trace_id=trace_id,
        created_at=_now_ms(),
    )
    state.store.save_feedback(project, stored)
    return Response(stored.model_dump_json(), status_code=201, media_type="application/json")


@router.get(
    "/traces/{trace_id}/feedback",
    response_model=FeedbackList,
    tags=["feedback"],
    summary="A trace's feedback, oldest first",
)
def list_feedback(request: Request, project: Project, trace_id: str) -> FeedbackList:
    state = _state(request)
    if not state.store.has_trace(project, trace_id):
        raise NotFoundError(f"trace {trace_id} not found")
    return FeedbackList(feedback=state.store.list_feedback(project, trace_id))


# --- suites -----------------------------------------------------------------------------------


def _suite_name(name: str) -> str:
    return check_id(name, "suite name")


@router.post(
    "/suites/{name}/traces",
    response_model=Suite,
    status_code=201,
    tags=["suites"],
    summary="Add traces to a suite (created by its first trace)",
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def add_to_suite(request: Request, project: Project, name: str, body: NewSuiteTraces) -> Response:
    """``{"trace_ids": [...]}`` or ``{"trace_id": "..."}``, with an optional ``note`` and
    ``source`` (api, cli or ui). Every trace must exist in the caller's project: if one does not,
    the answer is a 404 naming each unknown id and nothing is added. A trace already in the
    suite stays as it was (adding is idempotent); ``added`` lists the ids newly added."""
    suite = _suite_name(name)
    ids = body.all_ids()
    if not ids:
        raise InvalidInputError("trace_ids: give at least one trace id (or trace_id)")
    store = _state(request).store
    known = store.known_traces(project, ids)
    unknown = [t for t in ids if t not in known]
    if unknown:
        raise NotFoundError(f"unknown trace(s) in this project: {', '.join(unknown)}")
    now = _now_ms()
    added = store.add_to_suite(
        project,
        suite,
        [SuiteTrace(trace_id=t, added_at=now, source=body.source, note=body.note) for t in ids],
    )
    stored = store.get_suite(project, suite)
    assert stored is not None
    stored.added = added
    return Response(stored.model_dump_json(), status_code=201, media_type="application/json")


@router.get("/suites", response_model=SuiteList, tags=["suites"], summary="The project's suites")
def list_suites(
    request: Request,
    project: Project,
    trace_id: Annotated[str | None, Query(description="Only the suites holding this trace")] = None,
) -> SuiteList:
    return SuiteList(suites=_state(request).store.list_suites(project, trace_id))


@router.get(
    "/suites/{name}",
    response_model=Suite,
    tags=["suites"],
    summary="A suite and its traces, oldest added first (404 if it has none)",
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def get_suite(request: Request, project: Project, name: str) -> Response:
    suite: Suite | None = _state(request).store.get_suite(project, _suite_name(name))
    if suite is None:
        raise NotFoundError(f"suite {name} not found")
    return _json(suite)


@router.delete(
    "/suites/{name}/traces/{trace_id}",
    status_code=204,
    tags=["suites"],
    summary="Remove a trace from a suite (404 if it is not in it)",
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def remove_from_suite(request: Request, project: Project, name: str, trace_id: str) -> Response:
    suite = _suite_name(name)
    if not _state(request).store.remove_from_suite(project, suite, trace_id):
        raise NotFoundError(f"trace {trace_id} is not in suite {suite}")
    return Response(status_code=204)


# --- sessions ---------------------------------------------------------------------------------


@router.get(
    "/sessions",
    response_model=SessionPage,
    tags=["sessions"],
    summary="Sessions (conversations), most recently active first",
)
def list_sessions(
    request: Request,
    project: Project,
    user_id: str | None = None,
    start: QueryTime = None,
    end: QueryTime = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Response:
    query = _build(SessionQuery, user_id=user_id, start=start, end=end, limit=limit, cursor=cursor)
    page: SessionPage = _state(request).store.list_sessions(project, query)
    return _json(page)


@router.get(
    "/sessions/{session_id:path}",
    response_model=SessionDetail,
    tags=["sessions"],
    summary="One session and its traces, oldest first (replays left out; 404 if unknown)",
)
def get_session(request: Request, project: Project, session_id: str) -> Response:
    detail: SessionDetail | None = _state(request).store.get_session(project, session_id)
    if detail is None:
        raise NotFoundError(f"session {session_id} not found")
    return _json(detail)


# --- spans and stats --------------------------------------------------------------------------


@router.get("/spans", response_model=SpanPage, tags=["spans"], summary="Search spans")
def search_spans(
    request: Request,
    project: Project,
    start: QueryTime = None,
    end: QueryTime = None,
    trace_id: str | None = None,
    name: str | None = None,
    operation: str | None = None,
    service: str | None = None,
    model: str | None = None,
    tool: str | None = None,
    status: Literal["ok", "error", "unset"] | None = None,
    min_duration_ms: MinDurationMs = None,
    attr: Annotated[list[str], Query(description=_ATTR_HELP)] = [],  # noqa: B006
    session_id: str | None = None,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    cursor: str | None = None,
) -> Response:
    query = _build(
        SpanQuery,
        start=start,
        end=end,
        trace_id=trace_id,
        name=name,
        operation=operation,
        service=service,
        model=model,
        tool=tool,
        status=status,
        min_duration_ms=min_duration_ms,
        attributes=_parse_attrs(attr),
        session_id=session_id,
        user_id=user_id,
        limit=limit,
        cursor=cursor,
    )
    page: SpanPage = _state(request).store.search_spans(project, query)
    return _json(page)


@router.get("/stats", response_model=Stats, tags=["stats"], summary="Aggregate run statistics")
def stats(
    request: Request,
    project: Project,
    start: QueryTime = None,
    end: QueryTime = None,
    bucket_seconds: Annotated[int, Query(ge=1, le=MAX_BUCKET_SECONDS)] = 3600,
    service: str | None = None,
    agent: str | None = None,
) -> Stats:
    query = _build(
        StatsQuery,
        start=start,
        end=end,
        bucket_seconds=bucket_seconds,
        service=service,
        agent=agent,
    )
    result: Stats = _state(request).store.stats(project, query)
    return result


# --- payloads ---------------------------------------------------------------------------------


def _check_hash(sha256: str) -> str:
    value = sha256.lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInputError(f"payload id {sha256!r} is not a sha256 hex digest")
    return value


@router.put(
    "/payloads/{sha256}",
    tags=["payloads"],
    summary="Store a blob by its sha256 (raw body; the hash is verified)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_payload(request: Request, sha256: str) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    state = _state(request)
    proj = await run_in_threadpool(state.project_for, request.headers.get("authorization"))
    digest = _check_hash(sha256)
    limit = state.settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"payload is over the {limit} byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    actual = hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise InvalidInputError(
            f"payload hash mismatch: URL says {digest}, body hashes to {actual}"
        )
    await run_in_threadpool(state.store.put_payloads, proj, {digest: body})
    return {"sha256": digest, "size": size}


@router.get(
    "/payloads/{sha256}",
    tags=["payloads"],
    summary="Fetch a blob by sha256",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_payload(request: Request, project: Project, sha256: str) -> Response:
    digest = _check_hash(sha256)
    found = _state(request).store.get_payloads(project, [digest])
    if digest not in found:
        raise NotFoundError(f"payload {digest} not found")
    return Response(found[digest], media_type="application/octet-stream")


# --- replays ----------------------------------------------------------------------------------


@router.post("/replays", response_model=ReplayRecord, tags=["replays"], summary="Save a replay")
def save_replay(request: Request, project: Project, replay: ReplayRecord) -> ReplayRecord:
    _state(request).store.save_replay(project, replay)
    return replay


@router.get("/replays/{replay_id}", response_model=ReplayRecord, tags=["replays"])
def get_replay(request: Request, project: Project, replay_id: str) -> ReplayRecord:
    found: ReplayRecord | None = _state(request).store.get_replay(project, replay_id)
    if found is None:
        raise NotFoundError(f"replay {replay_id} not found")
    return found


@router.get("/traces/{trace_id}/replays", response_model=ReplayList, tags=["replays"])
def list_replays(request: Request, project: Project, trace_id: str) -> ReplayList:
    return ReplayList(replays=_state(request).store.list_replays(project, trace_id))


def _client_file_roots(state: Any) -> tuple[list[Path], str]:
    """Where files a client names may be read from: the data dir and the bundled demo scripts."""
    data_dir = Path(state.settings.data_dir).resolve()
    roots = [data_dir]
    runner_spec = importlib.util.find_spec("runner")  # located, not imported (no LangGraph here)
    if runner_spec is not None and runner_spec.submodule_search_locations:
        roots.append(Path(next(iter(runner_spec.submodule_search_locations))).resolve() / "demo")
    return roots, f"{data_dir} (the collector's data dir) or the bundled demo scripts"


def _replay_script(state: Any, name: str) -> Path:
    """Resolve an offline-script path a client asked a replay to use.

    An API key must not turn the collector into a reader of arbitrary files on its host: only
    files under the collector's data dir or the bundled demo scripts are accepted.
    """
    roots, where = _client_file_roots(state)
    return file_under(name, roots, what=f"offline script {name!r}", where=where)


def _replay_model(state: Any, model: str) -> str:
    """Check a replay's ``provider:model`` before anything is launched.

    ``offline:NAME`` must be a bundled script; ``offline:PATH`` a script under the data dir or
    the bundled demo scripts, the rule ``script`` follows.
    """
    provider, sep, name = model.partition(":")
    if not sep or not provider or not name:
        raise InvalidInputError(f"model {model!r} must look like 'provider:model'")
    if provider != "offline":
        return model
    roots, where = _client_file_roots(state)
    if is_script_path(name):
        file_under(name, roots, what=f"model {model!r}", where=where)
        return model
    bundled = roots[-1] / "offline"
    if len(roots) < 2 or not (bundled / f"{name}.yaml").is_file():
        known = sorted(p.stem for p in bundled.glob("*.yaml")) if len(roots) > 1 else []
        raise InvalidInputError(
            f"model {model!r}: no bundled offline script named {name!r} "
            f"(bundled: {', '.join(known) or 'none'}; or name a script file under {where})"
        )
    return model


def _check_from_step(detail: TraceDetail, from_step: int) -> None:
    """A replay from a step needs the trace to have that step (422 naming the range)."""
    from replay import trajectory_from_detail

    count = len(trajectory_from_detail(detail).steps)
    if from_step >= count:
        valid = f"0..{count - 1}" if count else "none: the trace has no steps"
        raise InvalidInputError(
            f"from_step {from_step} is out of range: trace {detail.trace.trace_id} has "
            f"{count} step(s) (valid: {valid})"
        )


@router.post(
    "/traces/{trace_id}/replay",
    response_model=ReplayRecord,
    tags=["replays"],
    summary="Start a replay of this trace in the background (429 when all job slots are busy)",
    responses={429: {"model": ErrorBody, "description": "Every job slot is busy (Retry-After)"}},
)
def start_replay(
    request: Request, project: Project, trace_id: str, body: ReplayRequest
) -> ReplayRecord:
    state = _state(request)
    detail = _trace_or_404(request, project, trace_id)
    if body.from_step is not None:
        _check_from_step(detail, body.from_step)
    script = _replay_script(state, body.script) if body.script else None
    model = _replay_model(state, body.model) if body.model else None
    now = datetime.now(UTC)
    record = ReplayRecord(
        replay_id=uuid.uuid4().hex,
        original_trace_id=trace_id,
        mode=body.mode,
        status="running",
        created_at=now,
        updated_at=now,
        from_step=body.from_step,
    )
    with state.jobs.reserve(project, "replay", record.replay_id) as slot:
        state.store.save_replay(project, record)
        # --confine-to: the recorded agent config is client data; the replay process checks the
        # files it names as the request's are here, and starts only bundled MCP servers
        # (runner/confinement.py).
        data_dir = str(Path(state.settings.data_dir).resolve())
        argv = [
            *("replay", "--mode", body.mode.value),
            *("--endpoint", state.self_url, "--replay-id", record.replay_id),
            f"--confine-to={data_dir}",
        ]
        if body.from_step is not None:
            argv.append(f"--from-step={body.from_step}")
        if model:
            argv.append(f"--model={model}")
        if script is not None:
            argv.append(f"--script={script}")
        if body.prompt:
            prompts = Path(state.settings.data_dir) / "replays"
            prompts.mkdir(parents=True, exist_ok=True)
            prompt_file = prompts / f"{record.replay_id}.prompt.txt"
            prompt_file.write_text(body.prompt, encoding="utf-8")
            argv.append(f"--prompt-file={prompt_file}")
        argv += ["--", trace_id]

        def on_failure(message: str) -> None:
            current = state.store.get_replay(project, record.replay_id)
            if current is not None and current.status == "running":
                current.status = "failed"
                current.error = message
                current.updated_at = datetime.now(UTC)
                state.store.save_replay(project, current)

        try:
            state.jobs.start(slot, argv, _api_key(request), on_failure)
        except RetraceError as exc:
            on_failure(exc.message)
            raise
    return record


# --- approvals --------------------------------------------------------------------------------


def _now_ms() -> datetime:
    """Now, to the millisecond the store keeps (so a decision compares equal once read back)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _decided_as(stored: Approval | None, decision: Approval) -> bool:
    return stored is not None and (
        stored.status,
        stored.decided_at,
        stored.decided_by,
        stored.comment,
    ) == (decision.status, decision.decided_at, decision.decided_by, decision.comment)


def _already_decided(approval: Approval) -> ConflictError:
    return ConflictError(
        f"approval {approval.approval_id} is already {approval.status.value}; decisions are final"
    )


@router.post(
    "/approvals",
    response_model=Approval,
    tags=["approvals"],
    summary="Create a pending approval, or record that a pending one expired",
    responses={409: {"model": ErrorBody, "description": "The approval exists or is decided"}},
)
def save_approval(request: Request, project: Project, approval: NewApproval) -> Approval:
    """A new id creates a pending approval. Posting an existing pending approval again with
    status ``expired`` records its expiry (once its ``expires_at`` has passed; the runner does
    this). Anything else about an existing id is a 409: decisions go through ``/decision``."""
    state = _state(request)
    given = Approval.model_validate(approval.model_dump())
    with state.decision_lock:
        current: Approval | None = state.store.get_approval(project, given.approval_id)
        if given.status == ApprovalStatus.EXPIRED and current is not None:
            return _record_expiry(state, project, current, given)
        if current is not None:
            raise ConflictError(
                f"approval {given.approval_id} already exists ({current.status.value}); "
                "decide it with POST /api/v1/approvals/{approval_id}/decision"
            )
        if given.status != ApprovalStatus.PENDING or given.decided_at is not None:
            raise InvalidInputError(
                f"a new approval must be pending, not {given.status.value}: create "
                f"{given.approval_id} pending, then decide it with .../decision"
            )
        state.store.save_approval(project, given)
    return given


def _record_expiry(state: Any, project: str, current: Approval, given: Approval) -> Approval:
    if current.status != ApprovalStatus.PENDING:
        raise _already_decided(current)
    now = _now_ms()
    if current.expires_at is None or current.expires_at > now:
        deadline = current.expires_at.isoformat() if current.expires_at else "no deadline"
        raise InvalidInputError(
            f"approval {current.approval_id} cannot expire: it is pending until {deadline}"
        )
    decision = current.model_copy(
        update={
            "status": ApprovalStatus.EXPIRED,
            "decided_at": now,
            "decided_by": given.decided_by or "timeout",
            "comment": given.comment or "approval expired",
        }
    )
    stored: Approval | None = state.store.decide_approval(project, decision)
    if stored is None or not _decided_as(stored, decision):
        raise _already_decided(stored or current)
    return stored


@router.get("/approvals", response_model=ApprovalList, tags=["approvals"])
def list_approvals(
    request: Request,
    project: Project,
    status: ApprovalStatus | None = None,
    run_id: str | None = None,
) -> ApprovalList:
    return ApprovalList(approvals=_state(request).store.list_approvals(project, status, run_id))


@router.get("/approvals/{approval_id}", response_model=Approval, tags=["approvals"])
def get_approval(request: Request, project: Project, approval_id: str) -> Approval:
    found: Approval | None = _state(request).store.get_approval(project, approval_id)
    if found is None:
        raise NotFoundError(f"approval {approval_id} not found")
    return found


@router.post(
    "/approvals/{approval_id}/decision",
    response_model=Approval,
    tags=["approvals"],
    summary="Approve or reject, once; the paused run is resumed in the background",
    responses={
        409: {"model": ErrorBody, "description": "Already decided (decisions are final)"},
        429: {"model": ErrorBody, "description": "Every job slot is busy; nothing was recorded"},
    },
)
def decide_approval(
    request: Request, project: Project, approval_id: str, body: ApprovalDecision
) -> Approval:
    """Exactly one decision per approval wins (200); any other, concurrent or later, is a 409.
    With ``resume_on_decision`` a job slot is reserved first: when none is free the answer is
    429 and no decision is recorded."""
    state = _state(request)
    resume = state.settings.resume_on_decision
    with state.decision_lock:
        approval = get_approval(request, project, approval_id)
        if approval.status != ApprovalStatus.PENDING:
            raise _already_decided(approval)
        if resume and not is_safe_id(approval.run_id):  # saved before ids were checked
            raise InvalidInputError(
                f"approval {approval_id} names run {approval.run_id[:80]!r}, which is not a "
                "valid run id; it cannot be resumed"
            )
        decision = approval.model_copy(
            update={
                "status": ApprovalStatus.APPROVED
                if body.decision == "approve"
                else ApprovalStatus.REJECTED,
                "decided_at": _now_ms(),
                "decided_by": body.decided_by,
                "comment": body.comment,
            }
        )
        with contextlib.ExitStack() as stack:
            slot = (
                stack.enter_context(state.jobs.reserve(project, "resume", approval.run_id))
                if resume
                else None
            )
            stored: Approval | None = state.store.decide_approval(project, decision)
            if stored is None or not _decided_as(stored, decision):
                raise _already_decided(stored or approval)
            if slot is not None:
                argv = ["resume", "--endpoint", state.self_url, "--", approval.run_id]
                state.jobs.start(slot, argv, _api_key(request))
    return stored


# --- background jobs --------------------------------------------------------------------------


@router.get("/jobs", response_model=JobList, tags=["jobs"], summary="This project's jobs here")
def list_jobs(
    request: Request,
    project: Project,
    kind: JobKind | None = None,
    subject: str | None = None,
) -> JobList:
    """Replays and resumes this collector started for the caller's project (running, and the
    latest finished ones), oldest first."""
    return JobList(jobs=_state(request).jobs.of_project(project, kind, subject))


@router.get("/jobs/{job_id}", response_model=Job, tags=["jobs"])
def get_job(request: Request, project: Project, job_id: str) -> Job:
    found: Job | None = _state(request).jobs.get(project, job_id)
    if found is None:
        raise NotFoundError(f"job {job_id} not found")
    return found

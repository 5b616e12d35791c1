"""``CollectorClient``: a typed, synchronous client of the collector's query API.

Used by the runner, the replay engine, the UI and the CLI; they never open the store themselves.
Every method returns ``schemas.models`` objects and raises the ``RetraceError`` subclass the
server's ``{"error": {"code", "message"}}`` body names (any class of ``schemas.errors``, found by
its code; ``retry_after`` from the ``Retry-After`` header on 429/503). A collector that cannot be
reached (refused, timed out, reset, not speaking HTTP) is a ``CollectorUnreachableError`` naming its
URL: callers see Retrace's errors only, never httpx's.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.errors import (
    AuthError,
    CollectorUnreachableError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    RetraceError,
    StoreError,
    TooManyRequestsError,
    UnsupportedMediaTypeError,
    error_class,
)
from schemas.models import (
    Approval,
    ApprovalDecision,
    ApprovalList,
    ApprovalStatus,
    Caller,
    Feedback,
    FeedbackList,
    FeedbackSource,
    Job,
    JobKind,
    JobList,
    NewFeedback,
    NewSuiteTraces,
    ReplayList,
    ReplayMode,
    ReplayRecord,
    ReplayRequest,
    SessionDetail,
    SessionPage,
    SessionQuery,
    SpanEvent,
    SpanLink,
    SpanPage,
    SpanQuery,
    SpanView,
    Stats,
    StatsQuery,
    Suite,
    SuiteList,
    SuiteSource,
    SuiteSummary,
    TraceDetail,
    TraceDiff,
    TracePage,
    TraceQuery,
    TraceTreePage,
    Trajectory,
)

_M = TypeVar("_M", bound=BaseModel)

# For error bodies without a Retrace code (a proxy's page, a framework's 405): by status.
_ERRORS_BY_STATUS: dict[int, type[RetraceError]] = {
    400: InvalidInputError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    429: TooManyRequestsError,
    503: StoreError,
}


def _query_params(query: BaseModel) -> list[tuple[str, str]]:
    """A query model as URL params; ``attributes`` becomes repeated ``attr=key=value``."""
    params: list[tuple[str, str]] = []
    for name, value in query.model_dump(exclude_none=True).items():
        if name == "attributes":
            params += [("attr", f"{k}={v}") for k, v in value.items()]
        elif isinstance(value, datetime):
            params.append((name, value.isoformat()))
        elif isinstance(value, bool):
            params.append((name, "true" if value else "false"))
        else:
            params.append((name, str(value)))
    return params


_EVENTS = TypeAdapter(list[SpanEvent])
_LINKS = TypeAdapter(list[SpanLink])


def partial_tree_page(content: bytes) -> TraceTreePage:
    """A ``fields=`` tree page from its JSON: the page's own fields validated, its spans built
    by :func:`_partial_span`."""
    body = json.loads(content)
    spans = body.pop("spans", [])
    page = TraceTreePage.model_validate({**body, "spans": []})
    return page.model_copy(update={"spans": [_partial_span(span) for span in spans]})


def _partial_span(values: dict[str, Any]) -> SpanView:
    """A span of a ``fields=`` tree page: JSON types are the fields' own but for the times and
    the events and links, converted here; nothing else is validated (the collector built it)."""
    for name in ("start_time", "end_time"):
        if name in values:
            values[name] = datetime.fromisoformat(values[name])
    if "events" in values:
        values["events"] = _EVENTS.validate_python(values["events"])
    if "links" in values:
        values["links"] = _LINKS.validate_python(values["links"])
    # Built as ``model_construct`` would, without it: it inspects each default factory's
    # signature on every call (0.6 ms a span, over a second for a 2,000-span tree).
    given = set(values)
    for name, default, factory in _SPAN_DEFAULTS:
        if name not in given:
            values[name] = factory() if factory is not None else default
    span = SpanView.__new__(SpanView)
    object.__setattr__(span, "__dict__", values)
    object.__setattr__(span, "__pydantic_fields_set__", given)
    object.__setattr__(span, "__pydantic_extra__", None)
    object.__setattr__(span, "__pydantic_private__", None)
    return span


# SpanView's fields with a default: (name, default, default factory or None).
_SPAN_DEFAULTS: list[tuple[str, Any, Callable[[], Any] | None]] = [
    (name, field.default, field.default_factory)  # type: ignore[misc]
    for name, field in SpanView.model_fields.items()
    if not field.is_required()
]
assert not SpanView.__private_attributes__ and not SpanView.__pydantic_post_init__


class CollectorClient:
    """Sync client of one collector. Use as a context manager or call ``close()``.

    ``transport`` replaces the network (e.g. ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.endpoint, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CollectorUnreachableError(
                f"collector at {self.endpoint} is unreachable: no answer to {method} {path} "
                f"within {self._timeout:g}s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise CollectorUnreachableError(
                f"collector at {self.endpoint} is unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> RetraceError:
        code, message = "", response.text[:500]
        try:
            body = response.json()
            code = str(body["error"]["code"])
            message = str(body["error"]["message"])
        except (ValueError, KeyError, TypeError):
            pass
        cls = error_class(code) or _ERRORS_BY_STATUS.get(response.status_code)
        if cls is None:
            cls = StoreError if response.status_code >= 500 else InvalidInputError
        if issubclass(cls, OverloadedError):
            retry = response.headers.get("retry-after", "1")
            return cls(message, float(retry) if retry.isdigit() else 1.0)
        return cls(message)

    def _get_model(self, path: str, model: type[_M], **kwargs: Any) -> _M:
        return model.model_validate_json(self._request("GET", path, **kwargs).content)

    def _post_model(self, path: str, model: type[_M], body: BaseModel) -> _M:
        response = self._request(
            "POST",
            path,
            content=body.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        return model.model_validate_json(response.content)

    # --- health ------------------------------------------------------------------------------
    def healthz(self) -> bool:
        """True when the collector answers /healthz."""
        return self._request("GET", "/healthz").status_code == 200

    def ready(self) -> bool:
        """True when /readyz says the store answers and the spool is under its cap."""
        try:
            self._request("GET", "/readyz")
        except StoreError:
            return False
        return True

    def metrics(self) -> dict[str, float]:
        """Unlabelled samples of /metrics by name (e.g. ``retrace_spans_stored_total``)."""
        from collector.metrics import parse_metrics

        return parse_metrics(self._request("GET", "/metrics").text)

    def whoami(self) -> str:
        """The project this client's API key acts for (``default`` in open mode)."""
        return self._get_model("/api/v1/whoami", Caller).project

    # --- traces ------------------------------------------------------------------------------
    def list_traces(self, query: TraceQuery | None = None, **filters: Any) -> TracePage:
        """Trace summaries; pass a ``TraceQuery`` or its fields as keywords."""
        q = query if query is not None else TraceQuery(**filters)
        return self._get_model("/api/v1/traces", TracePage, params=_query_params(q))

    def get_trace(self, trace_id: str) -> TraceDetail:
        """One trace with all spans; ``NotFoundError`` if unknown in this project."""
        return self._get_model(f"/api/v1/traces/{trace_id}", TraceDetail)

    def get_trace_tree(
        self,
        trace_id: str,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> TraceTreePage:
        """One page of a trace's spans without payloads (``payload_keys`` names them);
        ``NotFoundError`` if the trace is unknown in this project.

        With ``fields`` (SpanView field names, ``attributes.KEY`` for one attribute) the
        collector reads and sends only those: each span has those fields set, the other
        fields with a default at it, and the others (``trace_id``, ``kind``... when not asked
        for) unset. Such a page is parsed without validating each span (a fraction of the
        time for a big trace)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        path = f"/api/v1/traces/{trace_id}/spans"
        if fields is None:
            return self._get_model(path, TraceTreePage, params=params)
        params["fields"] = ",".join(fields)
        return partial_tree_page(self._request("GET", path, params=params).content)

    def get_trace_tree_all(
        self, trace_id: str, *, page_size: int = 5000, fields: Sequence[str] | None = None
    ) -> TraceTreePage:
        """Every span of a trace without payloads: the pages of :meth:`get_trace_tree` joined."""
        page = self.get_trace_tree(trace_id, limit=page_size, fields=fields)
        spans = list(page.spans)
        while page.next_cursor:
            page = self.get_trace_tree(
                trace_id, limit=page_size, cursor=page.next_cursor, fields=fields
            )
            spans.extend(page.spans)
        return page.model_copy(update={"spans": spans, "next_cursor": None})

    def get_span(self, trace_id: str, span_id: str) -> SpanView:
        """One span with its payloads resolved; ``NotFoundError`` if unknown in this project."""
        return self._get_model(f"/api/v1/traces/{trace_id}/spans/{span_id}", SpanView)

    def add_feedback(
        self,
        trace_id: str,
        name: str,
        value: bool | int | float | str,
        *,
        comment: str = "",
        span_id: str = "",
        source: FeedbackSource | str = FeedbackSource.USER,
    ) -> Feedback:
        """Record feedback on a trace (``NotFoundError`` if the trace is unknown here)."""
        try:
            body = NewFeedback(
                name=name, value=value, comment=comment, span_id=span_id, source=source
            )
        except ValidationError as exc:
            parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise InvalidInputError("invalid feedback: " + "; ".join(parts)) from None
        return self._post_model(
            f"/api/v1/traces/{quote(trace_id, safe='')}/feedback", Feedback, body
        )

    def list_feedback(self, trace_id: str) -> list[Feedback]:
        path = f"/api/v1/traces/{quote(trace_id, safe='')}/feedback"
        return self._get_model(path, FeedbackList).feedback

    # --- suites ------------------------------------------------------------------------------
    def add_to_suite(
        self,
        name: str,
        trace_ids: Sequence[str],
        *,
        note: str = "",
        source: SuiteSource | str = SuiteSource.API,
    ) -> Suite:
        """Add traces to suite ``name`` (created by its first trace); ``NotFoundError`` naming
        the unknown ones if any trace is not in this project (then nothing is added)."""
        try:
            body = NewSuiteTraces(trace_ids=list(trace_ids), note=note, source=source)
        except ValidationError as exc:
            parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise InvalidInputError("invalid suite traces: " + "; ".join(parts)) from None
        return self._post_model(f"/api/v1/suites/{quote(name, safe='')}/traces", Suite, body)

    def list_suites(self, trace_id: str | None = None) -> list[SuiteSummary]:
        """The project's suites by name (only those holding ``trace_id`` if given)."""
        params = {"trace_id": trace_id} if trace_id is not None else {}
        return self._get_model("/api/v1/suites", SuiteList, params=params).suites

    def get_suite(self, name: str) -> Suite:
        """A suite with its traces, oldest added first; ``NotFoundError`` if it has none."""
        return self._get_model(f"/api/v1/suites/{quote(name, safe='')}", Suite)

    def remove_from_suite(self, name: str, trace_id: str) -> None:
        """``NotFoundError`` if the trace is not in the suite."""
        path = f"/api/v1/suites/{quote(name, safe='')}/traces/{quote(trace_id, safe='')}"
        self._request("DELETE", path)

    # --- sessions ----------------------------------------------------------------------------
    def list_sessions(self, query: SessionQuery | None = None, **filters: Any) -> SessionPage:
        """Sessions, most recently active first; pass a ``SessionQuery`` or its fields."""
        q = query if query is not None else SessionQuery(**filters)
        return self._get_model("/api/v1/sessions", SessionPage, params=_query_params(q))

    def get_session(self, session_id: str) -> SessionDetail:
        """One session and its traces oldest first; ``NotFoundError`` if unknown."""
        return self._get_model(f"/api/v1/sessions/{quote(session_id, safe='')}", SessionDetail)

    def delete_trace(self, trace_id: str) -> None:
        self._request("DELETE", f"/api/v1/traces/{trace_id}")

    def get_trajectory(self, trace_id: str) -> Trajectory:
        return self._get_model(f"/api/v1/traces/{trace_id}/trajectory", Trajectory)

    def diff_traces(self, a: str, b: str) -> TraceDiff:
        """Trace A compared with trace B (alignment, first divergence); ``NotFoundError`` if
        either is unknown in this project, ``InvalidInputError`` for a malformed id."""
        return self._get_model("/api/v1/diff", TraceDiff, params={"a": a, "b": b})

    def export_trace(
        self, trace_id: str, format: Literal["json", "parquet", "arrow"] = "json"
    ) -> bytes:
        """The trace as a JSON, Parquet or Arrow IPC file's bytes."""
        path = f"/api/v1/traces/{trace_id}/export"
        return self._request("GET", path, params={"format": format}).content

    def search_spans(self, query: SpanQuery | None = None, **filters: Any) -> SpanPage:
        q = query if query is not None else SpanQuery(**filters)
        return self._get_model("/api/v1/spans", SpanPage, params=_query_params(q))

    def stats(self, query: StatsQuery | None = None, **filters: Any) -> Stats:
        q = query if query is not None else StatsQuery(**filters)
        return self._get_model("/api/v1/stats", Stats, params=_query_params(q))

    def wait_for_trace(
        self, trace_id: str, *, min_spans: int = 1, timeout: float = 30.0
    ) -> TraceDetail:
        """Poll until the trace has ``min_spans`` spans (ingest is asynchronous to the store)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                detail = self.get_trace(trace_id)
                if len(detail.spans) >= min_spans:
                    return detail
            except NotFoundError:
                if time.monotonic() >= deadline:
                    raise
            if time.monotonic() >= deadline:
                raise NotFoundError(
                    f"trace {trace_id} has fewer than {min_spans} spans after {timeout}s"
                )
            time.sleep(0.1)

    # --- payloads ----------------------------------------------------------------------------
    def put_payload(self, sha256: str, data: bytes) -> None:
        """Store a blob under its sha256 hex (the server verifies the hash)."""
        self._request(
            "PUT",
            f"/api/v1/payloads/{sha256}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def put_payloads(self, payloads: Mapping[str, bytes]) -> None:
        for sha256, data in payloads.items():
            self.put_payload(sha256, data)

    def get_payload(self, sha256: str) -> bytes:
        """A blob by sha256; ``NotFoundError`` if absent from this project."""
        return self._request("GET", f"/api/v1/payloads/{sha256}").content

    # --- replays -----------------------------------------------------------------------------
    def save_replay(self, replay: ReplayRecord) -> ReplayRecord:
        return self._post_model("/api/v1/replays", ReplayRecord, replay)

    def get_replay(self, replay_id: str) -> ReplayRecord:
        return self._get_model(f"/api/v1/replays/{replay_id}", ReplayRecord)

    def list_replays(self, trace_id: str) -> list[ReplayRecord]:
        return self._get_model(f"/api/v1/traces/{trace_id}/replays", ReplayList).replays

    def start_replay(
        self,
        trace_id: str,
        mode: ReplayMode | str = ReplayMode.RECORDED,
        *,
        model: str | None = None,
        script: str | None = None,
        prompt: str | None = None,
        policy: str | None = None,
        from_step: int | None = None,
    ) -> ReplayRecord:
        """Ask the collector to run a replay in the background; returns the running record.

        ``script``: an offline model script for live-model (``policy`` is its deprecated name).
        ``prompt`` replaces the recorded system prompt (any mode; typically live-model).
        ``from_step``: serve the steps before it from the recording, run from it on.
        """
        if policy is not None:
            warnings.warn(
                "start_replay(policy=...) is deprecated; use script=...",
                DeprecationWarning,
                stacklevel=2,
            )
            script = script or policy
        body = ReplayRequest(
            mode=ReplayMode(mode), model=model, script=script, prompt=prompt, from_step=from_step
        )
        return self._post_model(f"/api/v1/traces/{trace_id}/replay", ReplayRecord, body)

    # --- approvals ---------------------------------------------------------------------------
    def save_approval(self, approval: Approval) -> Approval:
        return self._post_model("/api/v1/approvals", Approval, approval)

    def get_approval(self, approval_id: str) -> Approval:
        return self._get_model(f"/api/v1/approvals/{approval_id}", Approval)

    def list_approvals(
        self, status: ApprovalStatus | str | None = None, run_id: str | None = None
    ) -> list[Approval]:
        params = {}
        if status is not None:
            params["status"] = ApprovalStatus(status).value
        if run_id is not None:
            params["run_id"] = run_id
        return self._get_model("/api/v1/approvals", ApprovalList, params=params).approvals

    def decide_approval(
        self,
        approval_id: str,
        decision: Literal["approve", "reject"],
        decided_by: str = "",
        comment: str = "",
    ) -> Approval:
        """Approve or reject; the collector resumes the paused run in the background."""
        body = ApprovalDecision(decision=decision, decided_by=decided_by, comment=comment)
        return self._post_model(f"/api/v1/approvals/{approval_id}/decision", Approval, body)

    # --- background jobs ---------------------------------------------------------------------
    def list_jobs(self, kind: JobKind | None = None, subject: str | None = None) -> list[Job]:
        """Replay/resume jobs the collector started for this project (running and recent)."""
        params: dict[str, str] = {}
        if kind is not None:
            params["kind"] = kind
        if subject is not None:
            params["subject"] = subject
        return self._get_model("/api/v1/jobs", JobList, params=params).jobs

    def get_job(self, job_id: str) -> Job:
        """One job; ``NotFoundError`` if unknown here or another project's."""
        return self._get_model(f"/api/v1/jobs/{job_id}", Job)

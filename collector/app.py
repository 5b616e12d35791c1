"""The collector's FastAPI application: OTLP/HTTP ingest, the query API, health and metrics.

``create_app(settings, store=None)`` builds the app; the store is opened (and migrated) when not
given. The app owns the spool and the writer thread for its lifetime. Handlers stay thin: they
resolve the caller's project (collector.auth), then call the spool or the store off the event loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector import otlp
from collector._api_query import router as query_router
from collector._decode_pool import DecodePool
from collector._span_batch import SpanBatch
from collector.auth import Authenticator, parse_key_specs
from collector.dead_letter import DeadLetters
from collector.grpc_ingest import OtlpGrpcServer
from collector.jobs import RETRACE_CLI, BackgroundJobs
from collector.metrics import PROMETHEUS_CONTENT_TYPE, CollectorMetrics
from collector.spool import IngestRecord, Spool
from collector.store import TraceStore, open_store
from collector.writer import RecordDecoder, SpoolWriter
from schemas.errors import (
    STORE_UNAVAILABLE,
    ConfigError,
    InvalidInputError,
    OverloadedError,
    PayloadTooLargeError,
    RetraceError,
    StoreError,
    TooManyRequestsError,
)
from schemas.models import ErrorBody
from schemas.settings import Settings

log = logging.getLogger(__name__)

# Above this many bytes of OTLP bodies in flight, new requests get 429 (memory back-pressure).
INGEST_INFLIGHT_MAX_BYTES = 256 * 1024 * 1024
OTLP_PROTOBUF = "application/x-protobuf"
OTLP_JSON = "application/json"
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Invalid input (the message names what was wrong)",
        401: "Missing or invalid API key",
        404: "Not found in this project",
        409: "Conflicts with what is recorded (e.g. a decision already made)",
        503: "Store unavailable or back-pressure (see Retry-After)",
    }.items()
}


@dataclass
class CollectorState:
    """Everything the handlers share, hung on ``app.state.collector``."""

    settings: Settings
    store: TraceStore
    spool: Spool
    writer: SpoolWriter
    metrics: CollectorMetrics
    auth: Authenticator
    self_url: str
    decoder: DecodePool
    jobs: BackgroundJobs
    inflight_bytes: int = 0  # OTLP bodies read and not yet answered (event-loop thread only)
    # Serializes approval creation and decisions in this collector (read-check-write).
    decision_lock: threading.Lock = field(default_factory=threading.Lock)

    def project_for(self, authorization: str | None) -> str:
        return self.auth.project_for(authorization)


def state_of(request: Request) -> CollectorState:
    """The collector state of the app serving ``request``."""
    state: CollectorState = request.app.state.collector
    return state


def _decode_records(settings: Settings, decoder: DecodePool) -> RecordDecoder:
    def decode(records: list[IngestRecord]) -> list[SpanBatch | Exception]:
        return decoder.decode_many(
            [
                (
                    r.body,
                    r.content_type,
                    r.content_encoding,
                    r.project,
                    # accepted once: only the decompressed-size guard matters, keep it generous
                    max(settings.max_body_bytes, len(r.body)) * 64,
                )
                for r in records
            ]
        )

    return decode


def self_url(settings: Settings) -> str:
    """How local subprocesses (replay, resume) reach this collector."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _background_jobs(settings: Settings) -> BackgroundJobs:
    """Replay/resume children: the product CLI (``python -m retrace``) with this process's
    environment, pointed at this collector."""
    env = dict(os.environ)
    env["RETRACE_ENDPOINT"] = self_url(settings)
    # Paused runs' checkpoints and workspaces live under the runner's data dir: the one named in
    # the environment if any, else the collector's own (`serve --data-dir`), never the child's
    # cwd default.
    env.setdefault("RETRACE_DATA_DIR", str(Path(settings.data_dir).resolve()))
    return BackgroundJobs(
        max_jobs=settings.max_jobs,
        logs_dir=Path(settings.data_dir) / "logs",
        env=env,
        cli=RETRACE_CLI,
    )


def create_app(settings: Settings, store: TraceStore | None = None) -> FastAPI:
    """The collector app. Opens (and migrates) the store unless one is given; the app closes it."""
    owned_store = store is None
    the_store = store if store is not None else open_store(settings)
    try:
        return _build_app(settings, the_store, owned_store)
    except BaseException:
        if owned_store:
            the_store.close()
        raise


def _build_app(settings: Settings, the_store: TraceStore, owned_store: bool) -> FastAPI:
    metrics = CollectorMetrics()
    auth = Authenticator(the_store, host=settings.host)
    for project, key in parse_key_specs([settings.api_keys] if settings.api_keys else []):
        auth.register(project, key, name="startup")
    if settings.api_keys_file is not None:
        lines = settings.api_keys_file.read_text().splitlines()
        specs = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        for project, key in parse_key_specs(specs):
            auth.register(project, key, name="keys-file")
    auth.check_startup()
    spool = Spool(settings.effective_spool_dir, max_bytes=settings.spool_max_bytes)
    decoder = DecodePool(settings.decode_workers)
    writer = SpoolWriter(
        spool,
        the_store,
        metrics,
        _decode_records(settings, decoder),
        batch_max_spans=settings.batch_max_spans,
        batch_max_wait_s=settings.batch_max_wait_s,
        dead_letters=DeadLetters(Path(settings.data_dir) / "dead-letter"),
        dead_letter_after=settings.dead_letter_after,
    )
    state = CollectorState(
        settings,
        the_store,
        spool,
        writer,
        metrics,
        auth,
        self_url(settings),
        decoder,
        _background_jobs(settings),
    )
    metrics.gauge(
        "retrace_spool_bytes", "Spool bytes not yet in the store.", lambda: spool.pending_bytes
    )
    metrics.gauge("retrace_spool_max_bytes", "Spool cap.", lambda: spool.max_bytes)
    metrics.gauge("retrace_spool_appends_total", "Records appended.", lambda: spool.stats.appends)
    metrics.gauge(
        "retrace_spool_fsyncs_total", "fdatasync calls (group commit).", lambda: spool.stats.fsyncs
    )
    metrics.gauge(
        "retrace_spool_appended_bytes_total",
        "Bytes appended to the spool (framed records).",
        lambda: spool.stats.appended_bytes,
    )
    metrics.gauge("retrace_store_healthy", "1 when the last insert worked.", lambda: writer.healthy)
    for stage in ("group", "insert", "commit"):
        metrics.gauge(
            f"retrace_writer_{stage}_seconds_total",
            f"Wall seconds the spool writer spent in {stage}.",
            lambda stage=stage: writer.timings[stage],  # type: ignore[misc]
        )

    grpc_server = OtlpGrpcServer(state, spool_export, check_ingest_capacity)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        decoder.start()
        try:
            await _start_grpc(settings, grpc_server)
            yield
        finally:
            await grpc_server.stop()
            decoder.close()
            await run_in_threadpool(writer.stop)
            spool.close()
            if owned_store:
                the_store.close()

    app = FastAPI(
        title="Retrace collector",
        version="1",
        description="OTLP/HTTP trace ingest and the Retrace query API.",
        lifespan=lifespan,
    )
    app.state.collector = state
    app.state.grpc = grpc_server
    _install_error_handlers(app)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    _add_ingest_routes(app)
    _add_health_routes(app)
    app.include_router(query_router, responses=_ERROR_RESPONSES)
    _document_400_not_422(app)
    return app


async def _start_grpc(settings: Settings, server: OtlpGrpcServer) -> None:
    """Serve OTLP/gRPC unless ``grpc_port`` is 0. The default port being busy (another
    collector on this host) is a warning; a port asked for explicitly must be free."""
    if settings.grpc_port == 0:
        return
    try:
        await server.start(settings.host, settings.grpc_port)
    except ConfigError as exc:
        if "grpc_port" in settings.model_fields_set:
            raise
        log.warning("%s; serving OTLP/HTTP only", exc.message)


def _document_400_not_422(app: FastAPI) -> None:
    """Validation errors answer 400 with ErrorBody (see ``on_validation``): say so in OpenAPI."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- errors -----------------------------------------------------------------------------------


def error_response(exc: RetraceError) -> JSONResponse:
    """The JSON response for a RetraceError (Retry-After on back-pressure).

    A ``StoreError``'s message is replaced by a generic one: the caller logs the detail.
    """
    headers = {}
    body = exc.to_body()
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, StoreError):
        headers["Retry-After"] = "5"
        body = {"error": {"code": exc.code, "message": STORE_UNAVAILABLE}}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_retrace(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RetraceError)
        if exc.http_status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(InvalidInputError("invalid request: " + "; ".join(parts)))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": f"{exc.detail}: {request.url.path}"}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "internal error (details are in the collector log)"
        return JSONResponse({"error": {"code": "internal", "message": message}}, status_code=500)

    app.add_exception_handler(RetraceError, on_retrace)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


# --- ingest -----------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _add_ingest_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/traces",
        tags=["ingest"],
        summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
        response_class=Response,
        responses={
            200: {
                "description": "ExportTraceServiceResponse (partial_success when spans rejected)",
                "content": {OTLP_PROTOBUF: {}, OTLP_JSON: {}},
            },
            413: {"model": ErrorBody, "description": "Body over max_body_bytes"},
            415: {"model": ErrorBody, "description": "Not protobuf or JSON"},
            **_ERROR_RESPONSES,
        },
    )
    async def export_traces(
        request: Request,
        content_type: str | None = Header(None),
        content_encoding: str | None = Header(None),
        authorization: str | None = Header(None),
    ) -> Response:
        state = state_of(request)
        metrics = state.metrics
        try:
            project = await run_in_threadpool(state.auth.project_for, authorization)
            return await _ingest(state, request, project, content_type, content_encoding)
        except RetraceError:
            metrics.inc("retrace_ingest_requests_rejected_total")
            raise


def check_ingest_capacity(state: CollectorState) -> None:
    """Back-pressure shared by every transport: raise ``OverloadedError`` (spool over its cap)
    or ``TooManyRequestsError`` (too many request bytes being decoded)."""
    if state.spool.over_cap:
        raise OverloadedError(
            "the spool is full (the store is behind or down); retry later",
            state.spool.retry_after_s,
        )
    if state.inflight_bytes >= INGEST_INFLIGHT_MAX_BYTES:
        raise TooManyRequestsError(
            f"{state.inflight_bytes} bytes of OTLP requests are being decoded; retry shortly"
        )


async def spool_export(
    state: CollectorState, body: bytes, media: str, encoding: str | None, project: str
) -> SpanBatch:
    """Decode one OTLP request and append it to the spool; returns once it is fsync'ed.

    The one ingest path of OTLP/HTTP and OTLP/gRPC: a caller acknowledges the request only after
    this returns. Raises the decoder's 400/413/415 errors and the spool's back-pressure.
    """
    limit = state.settings.max_body_bytes
    batch = await state.decoder.decode(body, media, encoding, project, limit)
    if batch.span_count or batch.payloads:
        record = IngestRecord(project, media, encoding, body)
        end = state.spool.append(record.encode(), cached=batch, cached_bytes=batch.nbytes)
        await state.spool.wait_durable_async(end)
    state.metrics.inc("retrace_spans_accepted_total", batch.span_count)
    if batch.rejected:
        state.metrics.inc("retrace_spans_rejected_total", batch.rejected)
    return batch


async def _ingest(
    state: CollectorState,
    request: Request,
    project: str,
    content_type: str | None,
    content_encoding: str | None,
) -> Response:
    limit = state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the {limit} limit")
    check_ingest_capacity(state)
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            state.inflight_bytes += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"request body is over the {limit} byte limit")
            chunks.append(chunk)
        body = b"".join(chunks)
        media = _media_type(content_type)
        encoding = content_encoding.strip().lower() if content_encoding else None
        batch = await spool_export(state, body, media, encoding, project)
    finally:
        state.inflight_bytes -= size
    reply_type = OTLP_JSON if media == OTLP_JSON else OTLP_PROTOBUF
    body_out = otlp.encode_export_response(batch.rejected, batch.message, reply_type)
    return Response(body_out, media_type=reply_type)


# --- health and metrics -----------------------------------------------------------------------


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], summary="200 while the process serves")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="200 only when the store answers and the spool is under its cap",
        responses={503: {"model": ErrorBody}},
    )
    def readyz(request: Request) -> Response:
        state = state_of(request)
        problems = []
        # What failed is named; why (the store's own error text) goes to the log only.
        try:
            state.store.ping()
        except RetraceError as exc:
            log.warning("readyz: store unreachable: %s", exc.message)
            problems.append("store unreachable")
        except Exception as exc:
            log.warning("readyz: store unreachable: %s", exc)
            problems.append("store unreachable")
        if not state.writer.healthy:
            log.warning("readyz: store writes failing: %s", state.writer.last_error)
            problems.append("store writes failing")
        if state.spool.over_cap:
            problems.append(
                f"spool over cap ({state.spool.pending_bytes} >= {state.spool.max_bytes} bytes)"
            )
        if problems:
            body = {"error": {"code": "not_ready", "message": "; ".join(problems)}}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse(
            {
                "status": "ready",
                "store": state.store.backend_name,
                "open_mode": state.auth.open_mode,
            }
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus text", response_class=Response)
    async def metrics_endpoint(request: Request) -> Response:
        text = state_of(request).metrics.render()
        return Response(text, media_type=PROMETHEUS_CONTENT_TYPE)


# --- request metrics (pure ASGI: no per-request task overhead) ---------------------------------

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _MetricsMiddleware:
    def __init__(
        self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]], metrics: CollectorMetrics
    ) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            try:
                self.metrics.observe_request(
                    scope.get("method", ""), path, status, time.perf_counter() - started
                )
            except Exception:  # a metrics bug must not fail the request; it is logged
                log.exception("recording request metrics for %s failed", path)

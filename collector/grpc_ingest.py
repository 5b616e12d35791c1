"""OTLP/gRPC trace ingest (``TraceService/Export``, port 4317 by default).

A ``grpc.aio`` server on the collector's own event loop, started and stopped with the app's
lifespan. The request message is kept as raw bytes (no protobuf parse in the server process) and
goes through the very path OTLP/HTTP uses (``collector.app.spool_export``): same decoder, same
spool, acknowledged only once fsync'ed. The HTTP statuses map onto gRPC ones:

- missing or invalid ``authorization: Bearer <key>`` metadata: ``UNAUTHENTICATED``;
- an undecodable or oversized message: ``INVALID_ARGUMENT``;
- spool over its cap or too much being decoded (HTTP 503/429): ``RESOURCE_EXHAUSTED`` with a
  ``google.rpc.RetryInfo`` both in ``grpc-status-details-bin`` (what Go clients such as the OTel
  Collector read) and in ``google.rpc.retryinfo-bin`` (what the Python SDK's exporter reads);
- the store failing: ``UNAVAILABLE`` with the same retry hint.

Partial success is the ``ExportTraceServiceResponse.partial_success`` the HTTP endpoint returns.
gzip (``grpc-encoding: gzip``) is handled by gRPC itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from collector import otlp
from collector._span_batch import SpanBatch
from schemas.errors import (
    STORE_UNAVAILABLE,
    AuthError,
    ConfigError,
    ForbiddenError,
    InvalidInputError,
    OverloadedError,
    PayloadTooLargeError,
    RetraceError,
    StoreError,
)

if TYPE_CHECKING:
    from collector.app import CollectorState

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_PROTOBUF = "application/x-protobuf"
# The store failing: how long a client is asked to wait (as HTTP's Retry-After: 5).
_STORE_RETRY_S = 5.0

# spool_export(state, body, media, encoding, project) -> the accepted batch (after fsync)
SpoolExport = Callable[["CollectorState", bytes, str, "str | None", str], Awaitable[SpanBatch]]
CapacityCheck = Callable[["CollectorState"], None]


def retry_metadata(code: grpc.StatusCode, message: str, delay_s: float) -> list[tuple[str, bytes]]:
    """Trailing metadata telling a client to retry after ``delay_s`` seconds."""
    seconds = int(delay_s)
    delay = Duration(seconds=seconds, nanos=int((delay_s - seconds) * 1e9))
    retry = RetryInfo(retry_delay=delay)
    detail = AnyProto()
    detail.Pack(retry)
    status = Status(code=code.value[0], message=message, details=[detail])
    return [
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", retry.SerializeToString()),
    ]


def _status_for(exc: RetraceError) -> tuple[grpc.StatusCode, str, float | None]:
    """The gRPC status, message and retry delay (None: do not retry) of an ingest error."""
    if isinstance(exc, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED, exc.message, None
    if isinstance(exc, ForbiddenError):
        return grpc.StatusCode.PERMISSION_DENIED, exc.message, None
    if isinstance(exc, InvalidInputError):
        return grpc.StatusCode.INVALID_ARGUMENT, exc.message, None
    if isinstance(exc, OverloadedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, max(0.1, exc.retry_after)
    if isinstance(exc, StoreError):
        return grpc.StatusCode.UNAVAILABLE, STORE_UNAVAILABLE, _STORE_RETRY_S
    return grpc.StatusCode.INTERNAL, exc.message, None


class OtlpGrpcServer:
    """The OTLP/gRPC endpoint of one collector; ``await start()`` in the app's event loop."""

    def __init__(
        self,
        state: CollectorState,
        spool_export: SpoolExport,
        check_capacity: CapacityCheck,
    ) -> None:
        self._state = state
        self._spool_export = spool_export
        self._check_capacity = check_capacity
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (raises ``ConfigError`` if it cannot); returns the port."""
        settings = self._state.settings
        server = grpc.aio.server(
            options=[
                # a second collector on the same port must fail, not share the traffic
                ("grpc.so_reuseport", 0),
                # Up to twice the limit reaches the handler, which answers INVALID_ARGUMENT (as
                # HTTP's 413: not worth retrying); beyond, gRPC itself answers
                # RESOURCE_EXHAUSTED (without RetryInfo, which OTLP says not to retry).
                ("grpc.max_receive_message_length", 2 * settings.max_body_bytes),
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),)
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from None
        if not bound:
            raise ConfigError(f"cannot listen for OTLP/gRPC on {address}")
        await server.start()
        self._server = server
        self.port = int(bound)
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        """Finish the calls in progress (up to ``grace_s``) and stop listening."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        state = self._state
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            authorization = None
            for key, value in context.invocation_metadata() or ():
                if key == "authorization" and isinstance(value, str):
                    authorization = value
            try:
                project = await asyncio.to_thread(state.auth.project_for, authorization)
                limit = state.settings.max_body_bytes
                if len(request) > limit:
                    raise PayloadTooLargeError(
                        f"message of {len(request)} bytes is over the {limit} byte limit"
                    )
                self._check_capacity(state)
                state.inflight_bytes += len(request)
                try:
                    batch = await self._spool_export(state, request, _PROTOBUF, None, project)
                finally:
                    state.inflight_bytes -= len(request)
            except RetraceError as exc:
                state.metrics.inc("retrace_ingest_requests_rejected_total")
                code, message, retry_s = _status_for(exc)
                if code == grpc.StatusCode.UNAVAILABLE:
                    log.warning("OTLP/gRPC export: %s", exc.message)
                trailing = retry_metadata(code, message, retry_s) if retry_s is not None else ()
                await context.abort(code, message, trailing_metadata=tuple(trailing))
            return otlp.encode_export_response(batch.rejected, batch.message, _PROTOBUF)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in OTLP/gRPC export")
            await context.abort(code, "internal error (details are in the collector log)")
            raise  # unreachable: abort raises
        finally:
            self._observe(code, time.perf_counter() - started)

    def _observe(self, code: grpc.StatusCode, seconds: float) -> None:
        try:
            self._state.metrics.observe_request("GRPC", EXPORT_METHOD, code.value[0], seconds)
        except Exception:  # a metrics bug must not fail the request; it is logged
            log.exception("recording gRPC request metrics failed")

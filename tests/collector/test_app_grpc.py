"""OTLP/gRPC ingest over a real socket: the OTel SDK's gRPC exporter (plain and gzip), API keys in
``authorization`` metadata, partial success, INVALID_ARGUMENT for garbage, back-pressure as
RESOURCE_EXHAUSTED with RetryInfo (and the exporter's retry getting through once the store is
back), and kill -9 after the acknowledgement losing nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from collector.grpc_ingest import EXPORT_METHOD
from collector.spool import IngestRecord, Spool
from tests.collector.test_app_durability import ChdbHttpServer
from tests.collector.test_app_ingest import make_agent_spans
from tests.fixtures.collector import REPO_ROOT, RunningCollector, free_port, launch_collector

pytestmark = pytest.mark.integration

KEY = "rt_grpc_test_key_0123456789abcdef"
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    """One collector with a project key and OTLP/gRPC on a free port."""
    data = tmp_path_factory.mktemp("grpc") / "retrace"
    running = launch_collector(
        data,
        grpc_port=free_port(),
        api_keys=[f"proj:{KEY}"],
        env={"RETRACE_MAX_BODY_BYTES": str(MAX_BODY)},
    )
    yield running
    running.kill()


def _exporter(
    server: RunningCollector, key: str | None = KEY, **kwargs: object
) -> OTLPSpanExporter:
    headers = (("authorization", f"Bearer {key}"),) if key else None
    return OTLPSpanExporter(
        endpoint=f"127.0.0.1:{server.grpc_port}",
        insecure=True,
        headers=headers,
        **kwargs,  # type: ignore[arg-type]
    )


def _raw_export(
    server: RunningCollector, body: bytes, key: str | None = KEY
) -> ExportTraceServiceResponse:
    """One Export call with a raw channel (the request and reply as bytes)."""
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary(EXPORT_METHOD)
        reply = export(body, metadata=metadata, timeout=30)
    return ExportTraceServiceResponse.FromString(reply)


def _trace_id(spans: list[ReadableSpan]) -> str:
    assert spans[0].context is not None
    return format(spans[0].context.trace_id, "032x")


def _metrics(server: RunningCollector) -> dict[str, float]:
    return server.client.metrics()


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_otel_sdk_grpc_exporter_spans_become_queryable(
    server: RunningCollector, compression: grpc.Compression
) -> None:
    spans = make_agent_spans()
    exporter = _exporter(server, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    detail = server.client.wait_for_trace(_trace_id(spans), min_spans=len(spans))
    assert {s.name for s in detail.spans} == {s.name for s in spans}
    chat = next(s for s in detail.spans if s.name == "chat gpt-test")
    assert chat.model == "gpt-test"
    assert detail.trace.service_name == "ingest-test"
    # the spans are in the key's project: a read without the key is refused
    assert httpx.get(f"{server.url}/api/v1/traces/{_trace_id(spans)}").status_code == 401


def test_wrong_or_missing_key_is_unauthenticated_and_stores_nothing(
    server: RunningCollector,
) -> None:
    before = _metrics(server)
    spans = make_agent_spans(1)
    exporter = _exporter(server, key="rt_not_a_key")
    assert exporter.export(spans) == SpanExportResult.FAILURE
    exporter.shutdown()
    body = encode_spans(spans).SerializeToString()
    for key in ("rt_not_a_key", None):
        with pytest.raises(grpc.RpcError) as caught:
            _raw_export(server, body, key=key)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "API key" in (caught.value.details() or "")
    after = _metrics(server)
    assert after["retrace_spans_accepted_total"] == before["retrace_spans_accepted_total"]
    assert after["retrace_ingest_requests_rejected_total"] >= (
        before["retrace_ingest_requests_rejected_total"] + 3
    )


def test_partial_success_for_a_bad_span_among_good_ones(server: RunningCollector) -> None:
    spans = make_agent_spans(2)
    request = encode_spans(spans)
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    bad.trace_id = b"\x01\x02\x03"  # not 16 bytes: this span alone is refused
    reply = _raw_export(server, request.SerializeToString())
    assert reply.partial_success.rejected_spans == 1
    assert reply.partial_success.error_message
    detail = server.client.wait_for_trace(_trace_id(spans), min_spans=len(spans))
    assert len(detail.spans) == len(spans)


def test_undecodable_message_is_invalid_argument(server: RunningCollector) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(server, b"\xff\x00garbage")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "protobuf" in (caught.value.details() or "")
    # over the body limit: refused before decoding, not worth retrying (HTTP's 413)
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(server, b"\x0a" * (MAX_BODY + 1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in (caught.value.details() or "")
    # an empty request is valid OTLP: nothing to store, full success
    reply = _raw_export(server, ExportTraceServiceRequest().SerializeToString())
    assert not reply.HasField("partial_success")


def test_full_spool_is_resource_exhausted_with_retry_info_and_the_retry_lands(
    tmp_path: Path, chdb_http: ChdbHttpServer, start_collector: Callable[..., RunningCollector]
) -> None:
    cap = 64 * 1024
    server = start_collector(
        clickhouse_url=chdb_http.url, spool_max_bytes=cap, grpc_port=free_port()
    )
    chdb_http.stop()  # the store is down: acknowledged requests pile up in the spool
    acked: list[str] = []
    refused: grpc.RpcError | None = None
    for _ in range(40):
        spans = make_agent_spans(8)
        try:
            _raw_export(server, encode_spans(spans).SerializeToString(), key=None)
        except grpc.RpcError as exc:
            refused = exc
            break
        acked.append(_trace_id(spans))
    assert refused is not None, "the spool cap was never reached"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "spool" in (refused.details() or "")
    trailing = dict(refused.trailing_metadata() or ())
    retry = RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9 > 0
    status = Status.FromString(trailing["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.details[0].Is(RetryInfo.DESCRIPTOR)
    assert acked

    # The SDK exporter honours RetryInfo: it keeps retrying until the store is back and the
    # spool drains, then its export lands.
    late = make_agent_spans(1)
    exporter = _exporter(server, key=None, timeout=60)
    result: list[SpanExportResult] = []
    sender = threading.Thread(target=lambda: result.append(exporter.export(late)))
    sender.start()
    time.sleep(2)  # let the exporter meet RESOURCE_EXHAUSTED at least once
    chdb_http.start()
    sender.join(timeout=90)
    exporter.shutdown()
    assert result == [SpanExportResult.SUCCESS]
    for trace_id in [*acked, _trace_id(late)]:
        server.client.wait_for_trace(trace_id, min_spans=1, timeout=60)
    assert _metrics(server)["retrace_ingest_requests_rejected_total"] >= 2


def test_kill_9_after_ack_keeps_the_spans(
    tmp_path: Path, start_collector: Callable[..., RunningCollector]
) -> None:
    data_dir = tmp_path / "retrace"
    # The writer holds batches back for a minute: when the ack comes, the spans are in the
    # spool only, and kill -9 leaves them nowhere else.
    server = start_collector(
        data_dir=data_dir, grpc_port=free_port(), env={"RETRACE_BATCH_MAX_WAIT_S": "60"}
    )
    spans = make_agent_spans(3)
    exporter = _exporter(server, key=None)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    server.kill()

    # gRPC hands the server the decompressed message and the spool keeps it as is: deflating it
    # again was measured to cost more CPU per span than the ~4x fewer spooled bytes save
    # (BENCHMARKS.md, Issue 14 item 2).
    spool = Spool(data_dir / "spool", max_bytes=1 << 24)
    try:
        entries = spool.read(10, timeout=1)
    finally:
        spool.close()
    assert len(entries) == 1
    record = IngestRecord.decode(entries[0].data)
    assert (record.content_type, record.content_encoding) == ("application/x-protobuf", None)
    spooled = ExportTraceServiceRequest.FromString(record.body)
    spooled_names = sorted(
        span.name
        for resource in spooled.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    )
    assert spooled_names == sorted(span.name for span in spans)

    restarted = start_collector(data_dir=data_dir)
    detail = restarted.client.wait_for_trace(_trace_id(spans), min_spans=len(spans), timeout=60)
    assert len(detail.spans) == len(spans)
    assert sorted(span.name for span in detail.spans) == spooled_names


def test_an_explicit_grpc_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        argv = ["serve", "--port", "0", "--grpc-port", str(port), "--data-dir", str(tmp_path)]
        result = subprocess.run(
            [sys.executable, "-m", "retrace", *argv],
            cwd=REPO_ROOT,
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: OTLP/gRPC: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(--grpc-port 0 turns gRPC off)"
    ]

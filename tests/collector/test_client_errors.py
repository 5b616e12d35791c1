"""``CollectorClient`` raises the server's error class for every code, and Retrace's errors only."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from collector.client import CollectorClient
from schemas.errors import (
    AuthError,
    CollectorUnreachableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    RetraceError,
    StoreError,
    registered_errors,
)
from schemas.models import Approval
from tests.fixtures.collector import RunningCollector, free_port


def _answering(status: int, body: object, headers: dict[str, str] | None = None) -> CollectorClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return CollectorClient("http://collector.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("code", sorted(registered_errors()))
def test_every_error_code_comes_back_as_its_class(code: str) -> None:
    cls = registered_errors()[code]
    body = cls(f"what went wrong with {code}").to_body()
    client = _answering(cls.http_status, body, {"Retry-After": "7"})
    with client, pytest.raises(RetraceError) as info:
        client.get_trace("ab" * 16)
    assert type(info.value) is cls
    assert info.value.message == f"what went wrong with {code}"
    if isinstance(info.value, OverloadedError):
        assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthError), (404, NotFoundError), (405, InvalidInputError), (502, StoreError)],
)
def test_a_body_without_a_known_code_maps_by_status(
    status: int, expected: type[RetraceError]
) -> None:
    client = _answering(status, {"detail": "from a proxy"})
    with client, pytest.raises(RetraceError) as info:
        client.list_traces()
    assert type(info.value) is expected


def test_a_closed_port_is_collector_unreachable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with CollectorClient(url, timeout=2) as client:
        with pytest.raises(CollectorUnreachableError) as info:
            client.list_traces()
        assert not client.ready()  # readiness is a yes/no, never an exception
    assert f"collector at {url} is unreachable" in info.value.message
    assert "ConnectError" in info.value.message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_collector_that_never_answers_is_unreachable_after_the_timeout(
    silent_server: str,
) -> None:
    client = CollectorClient(silent_server, timeout=0.3)
    with client, pytest.raises(CollectorUnreachableError) as info:
        client.get_trace("ab" * 16)
    message = info.value.message
    assert f"collector at {silent_server} is unreachable" in message
    assert "within 0.3s" in message and "ReadTimeout" in message


def test_something_that_is_not_http_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("illegal status line", request=request)

    transport = httpx.MockTransport(handler)
    client = CollectorClient("http://collector.test", transport=transport)
    with client, pytest.raises(CollectorUnreachableError, match="RemoteProtocolError"):
        client.healthz()


@pytest.mark.integration
def test_a_real_collector_error_arrives_as_its_class(
    start_collector: Callable[..., RunningCollector],
) -> None:
    key = "k" * 32
    server = start_collector(api_keys=[f"alpha:{key}"], env={"RETRACE_RESUME_ON_DECISION": "false"})
    client = server.client_for(key)
    with pytest.raises(AuthError):
        server.client_for(None).list_traces()
    with pytest.raises(NotFoundError, match="not found"):
        client.get_trace("ab" * 16)
    with pytest.raises(InvalidInputError):
        client.get_payload("not-a-hash")
    now = datetime.now(UTC)
    client.save_approval(
        Approval(approval_id="ap-1", run_id="run-1", tool_name="rm", requested_at=now)
    )
    client.decide_approval("ap-1", "approve")
    with pytest.raises(ConflictError, match="already approved"):
        client.decide_approval("ap-1", "reject")

"""The query API over a real socket: errors are JSON with the right status, never a 500."""

from __future__ import annotations

import httpx
import pytest

from schemas.errors import InvalidInputError, NotFoundError
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration


def test_health_ready_and_openapi(collector_server: RunningCollector) -> None:
    assert collector_server.client.healthz()
    assert collector_server.client.ready()
    assert collector_server.api_key is None
    spec = httpx.get(collector_server.url + "/openapi.json").json()
    for path in ("/v1/traces", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/spans"):
        assert path in spec["paths"]


def test_unknown_trace_is_404_and_bad_params_400(collector_server: RunningCollector) -> None:
    client = collector_server.client
    with pytest.raises(NotFoundError, match="trace 0123 not found"):
        client.get_trace("0123")
    page = client.list_traces(limit=5)
    assert page.traces == [] and page.next_cursor is None
    url = collector_server.url
    for query in ("limit=0", "start=yesterday", "attr=novalue", "sort=sideways"):
        r = httpx.get(f"{url}/api/v1/traces?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] == "invalid_input"
    r = httpx.get(f"{url}/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with pytest.raises(InvalidInputError):
        client.get_payload("not-a-hash")

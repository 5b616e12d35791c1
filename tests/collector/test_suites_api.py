"""Suites over a real socket: add (idempotent, all-or-nothing on unknown traces), list, show,
remove, the 400s of bad input, project isolation between two API keys, and a deleted trace
leaving its suites."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from schemas.errors import InvalidInputError, NotFoundError
from schemas.models import SuiteSource
from tests.collector.test_app_ingest import make_agent_spans
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


def _send(url: str, key: str) -> str:
    spans = make_agent_spans(1)
    exporter = OTLPSpanExporter(
        endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {key}"}
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert spans[0].context is not None
    return format(spans[0].context.trace_id, "032x")


def test_suites_round_trip_validation_and_isolation(
    start_collector: Callable[..., RunningCollector],
) -> None:
    server = start_collector(api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"])
    alpha, beta = server.client_for(ALPHA), server.client_for(BETA)
    a1, a2, a3 = (_send(server.url, ALPHA) for _ in range(3))
    b1 = _send(server.url, BETA)
    for t in (a1, a2, a3):
        alpha.wait_for_trace(t, min_spans=1)
    beta.wait_for_trace(b1, min_spans=1)

    # add two, then one again with a third: the repeated one keeps its row
    suite = alpha.add_to_suite("checkout", [a1, a2], note="refund bug", source="cli")
    assert [t.trace_id for t in suite.traces] == [a1, a2]
    assert suite.added == [a1, a2] and suite.trace_count == 2
    assert suite.traces[0].source == SuiteSource.CLI and suite.traces[0].note == "refund bug"
    first_added = suite.traces[0].added_at
    again = alpha.add_to_suite("checkout", [a1, a3])
    assert again.added == [a3]
    assert [t.trace_id for t in again.traces] == [a1, a2, a3]
    assert again.traces[0].added_at == first_added and again.traces[0].source == SuiteSource.CLI
    # a single trace_id over raw HTTP: 201 with the suite
    r = httpx.post(
        server.url + "/api/v1/suites/smoke/traces",
        json={"trace_id": a2},
        headers={"Authorization": f"Bearer {ALPHA}"},
    )
    assert r.status_code == 201, r.text
    assert [t["trace_id"] for t in r.json()["traces"]] == [a2]

    listed = {s.name: s.trace_count for s in alpha.list_suites()}
    assert listed == {"checkout": 3, "smoke": 1}
    assert [t.trace_id for t in alpha.get_suite("checkout").traces] == [a1, a2, a3]
    assert [(s.name, s.trace_count) for s in alpha.list_suites(trace_id=a2)] == [
        ("checkout", 3),
        ("smoke", 1),
    ]
    assert [s.name for s in alpha.list_suites(trace_id=a3)] == ["checkout"]

    # unknown trace: 404 naming it, and nothing added (not even the known one)
    missing = "f" * 32
    with pytest.raises(NotFoundError, match=missing):
        alpha.add_to_suite("checkout", [missing, b1])
    assert alpha.get_suite("checkout").trace_count == 3
    with pytest.raises(NotFoundError, match="suite nope not found"):
        alpha.get_suite("nope")

    # bad input: a clear 400, never a 500
    headers = {"Authorization": f"Bearer {ALPHA}"}
    for name, body, needle in (
        ("bad%20name", {"trace_ids": [a1]}, "invalid suite name"),
        ("-x", {"trace_ids": [a1]}, "invalid suite name"),
        ("x" * 129, {"trace_ids": [a1]}, "invalid suite name"),
        ("ok", {"trace_ids": []}, "at least one trace id"),
        ("ok", {"trace_ids": ["../etc"]}, "trace_ids.0"),
        ("ok", {"trace_ids": [a1], "source": "robot"}, "source"),
        ("ok", {"trace_ids": [a1], "extra": 1}, "extra"),
    ):
        r = httpx.post(f"{server.url}/api/v1/suites/{name}/traces", json=body, headers=headers)
        assert r.status_code == 400, (name, body, r.text)
        assert needle in r.json()["error"]["message"], r.text
    r = httpx.post(f"{server.url}/api/v1/suites/ok/traces", content=b"{", headers=headers)
    assert r.status_code == 400, r.text
    with pytest.raises(InvalidInputError, match="suite name"):
        alpha.get_suite("a b")

    # project isolation: beta sees no suite of alpha's, cannot add alpha's traces or remove them
    assert beta.list_suites() == [] and beta.list_suites(trace_id=a1) == []
    with pytest.raises(NotFoundError):
        beta.get_suite("checkout")
    with pytest.raises(NotFoundError, match=a1):
        beta.add_to_suite("checkout", [a1])
    with pytest.raises(NotFoundError):
        beta.remove_from_suite("checkout", a1)
    beta_suite = beta.add_to_suite("checkout", [b1])  # same name, beta's own suite
    assert [t.trace_id for t in beta_suite.traces] == [b1]
    assert [t.trace_id for t in alpha.get_suite("checkout").traces] == [a1, a2, a3]
    with pytest.raises(NotFoundError, match=b1):
        alpha.add_to_suite("checkout", [b1])

    # remove, and remove again -> 404; a suite without traces is gone
    alpha.remove_from_suite("checkout", a2)
    assert [t.trace_id for t in alpha.get_suite("checkout").traces] == [a1, a3]
    with pytest.raises(NotFoundError, match="not in suite checkout"):
        alpha.remove_from_suite("checkout", a2)
    alpha.remove_from_suite("smoke", a2)
    assert {s.name for s in alpha.list_suites()} == {"checkout"}

    # deleting a trace takes it out of its suites
    alpha.delete_trace(a3)
    assert [t.trace_id for t in alpha.get_suite("checkout").traces] == [a1]

"""The lazy trace endpoints over a real socket: a span tree without payloads, paged, and one span
with its payloads (GET /api/v1/traces/{id}/spans[/{span_id}])."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from collector.store._sql import TREE_FIELD_COLUMNS
from schemas import attributes as A
from schemas.errors import InvalidInputError, NotFoundError
from tests.collector.test_app_ingest import json_request
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


def _str_attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _ingest(server: RunningCollector, key: str, n: int) -> str:
    """A trace of ``n`` spans: a root and chat spans whose messages are payloads."""
    trace_id = secrets.token_hex(16)
    root = secrets.token_hex(8)
    t0 = time.time_ns()
    spans = [
        {
            "traceId": trace_id,
            "spanId": root,
            "name": "invoke_agent analyst",
            "kind": 1,
            "startTimeUnixNano": str(t0),
            "endTimeUnixNano": str(t0 + 10_000_000_000),
            "attributes": [_str_attr(A.GEN_AI_OPERATION_NAME, "invoke_agent")],
            "events": [
                {
                    "timeUnixNano": str(t0 + 5),
                    "name": "started",
                    "attributes": [_str_attr("phase", "one")],
                }
            ],
            "links": [
                {
                    "traceId": secrets.token_hex(16),
                    "spanId": secrets.token_hex(8),
                    "attributes": [_str_attr("why", "follows")],
                }
            ],
            "status": {"code": 1},
        }
    ]
    for i in range(n - 1):
        # Some spans share a start time: the cursor orders by (start, span id).
        start = t0 + 1000 + (i // 3) * 1_000_000
        messages = json.dumps([{"role": "user", "content": f"question {i} " + "x" * 300}])
        spans.append(
            {
                "traceId": trace_id,
                "spanId": secrets.token_hex(8),
                "parentSpanId": root,
                "name": f"chat {i}",
                "kind": 3,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 5_000_000),
                "attributes": [
                    _str_attr(A.GEN_AI_OPERATION_NAME, "chat"),
                    _str_attr(A.GEN_AI_INPUT_MESSAGES, messages),
                    _str_attr(A.GEN_AI_OUTPUT_MESSAGES, json.dumps([{"content": f"a{i}"}])),
                    _str_attr("customer.id", f"c-{i}"),
                ],
                "status": {"code": 1},
            }
        )
    r = httpx.post(
        server.url + "/v1/traces",
        content=json_request(spans),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    server.client_for(key).wait_for_trace(trace_id, min_spans=n)
    return trace_id


@pytest.fixture
def server(start_collector: Callable[..., RunningCollector]) -> RunningCollector:
    return start_collector(api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"])


def test_tree_is_the_full_trace_without_payloads_and_pages_cover_it(
    server: RunningCollector,
) -> None:
    client = server.client_for(ALPHA)
    trace_id = _ingest(server, ALPHA, 23)
    full = client.get_trace(trace_id)
    assert len(full.spans) == 23

    # One page: the same spans in the same order, payload attributes left out and named, the
    # resource left out.
    tree = client.get_trace_tree(trace_id, limit=1000)
    assert tree.next_cursor is None
    assert tree.trace == full.trace
    assert tree.feedback == full.feedback
    assert [s.span_id for s in tree.spans] == [s.span_id for s in full.spans]
    for stub, span in zip(tree.spans, full.spans, strict=True):
        payload_keys = sorted(set(span.attributes) & A.PAYLOAD_KEYS)
        assert stub.payload_keys == payload_keys
        expected = span.model_copy(
            update={
                "attributes": {k: v for k, v in span.attributes.items() if k not in A.PAYLOAD_KEYS},
                "resource_attributes": {},
            }
        )
        assert stub.model_copy(update={"payload_keys": []}) == expected
    chats = [s for s in tree.spans if s.name.startswith("chat")]
    assert chats and all(
        s.payload_keys == sorted([A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES]) for s in chats
    )
    assert all(A.GEN_AI_INPUT_MESSAGES not in s.attributes for s in tree.spans)
    assert all(s.attributes["customer.id"].startswith("c-") for s in chats)

    # Pages of 5: every span exactly once, in order, the last page without a cursor.
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = client.get_trace_tree(trace_id, limit=5, cursor=cursor)
        pages += 1
        assert len(page.spans) <= 5
        assert page.trace == full.trace
        seen.extend(s.span_id for s in page.spans)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [s.span_id for s in full.spans]
    assert pages == 5

    # One span on demand: exactly the full trace's span, payloads resolved.
    for span in full.spans:
        assert client.get_span(trace_id, span.span_id) == span
    assert json.loads(
        client.get_span(trace_id, chats[4].span_id).attributes[A.GEN_AI_INPUT_MESSAGES]
    )[0]["content"].startswith("question ")


def test_tree_and_span_are_scoped_to_the_project(server: RunningCollector) -> None:
    trace_id = _ingest(server, ALPHA, 3)
    alpha, beta = server.client_for(ALPHA), server.client_for(BETA)
    span_id = alpha.get_trace_tree(trace_id).spans[1].span_id
    with pytest.raises(NotFoundError):
        beta.get_trace_tree(trace_id)
    with pytest.raises(NotFoundError):
        beta.get_span(trace_id, span_id)
    r = httpx.get(
        f"{server.url}/api/v1/traces/{trace_id}/spans/{span_id}",
        headers={"Authorization": f"Bearer {BETA}"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # The raw page: every page field present (a null cursor on the last page), span fields at
    # their default left out.
    raw = httpx.get(
        f"{server.url}/api/v1/traces/{trace_id}/spans",
        headers={"Authorization": f"Bearer {ALPHA}"},
    ).json()
    assert raw["next_cursor"] is None and raw["feedback"] == [] and len(raw["spans"]) == 3
    assert raw["trace"]["trace_id"] == trace_id
    assert "events" in raw["spans"][0]  # the root has one; a chat span none (left out)
    assert "events" not in raw["spans"][1] and "resource_attributes" not in raw["spans"][0]
    with pytest.raises(NotFoundError, match="span 0000000000000000"):
        alpha.get_span(trace_id, "0" * 16)
    with pytest.raises(NotFoundError):
        alpha.get_trace_tree("f" * 32)
    # bad paging parameters are 400s naming the problem
    with pytest.raises(InvalidInputError, match="invalid cursor"):
        alpha.get_trace_tree(trace_id, cursor="not-a-cursor")
    for query in ("limit=0", "limit=100000", "limit=many"):
        r = httpx.get(
            f"{server.url}/api/v1/traces/{trace_id}/spans?{query}",
            headers={"Authorization": f"Bearer {ALPHA}"},
        )
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] == "invalid_input"


def test_tree_fields_reads_only_the_fields_asked_for(server: RunningCollector) -> None:
    client = server.client_for(ALPHA)
    trace_id = _ingest(server, ALPHA, 12)
    tree = client.get_trace_tree(trace_id)
    assert tree.spans[0].events and tree.spans[0].links

    # Every field of the allow-list: the same spans as the default tree, field for field, and
    # the same summary and feedback (read from the summary table, not from the spans).
    every = client.get_trace_tree(trace_id, fields=list(TREE_FIELD_COLUMNS))
    assert every.trace == tree.trace and every.feedback == tree.feedback
    assert [s.model_dump() for s in every.spans] == [s.model_dump() for s in tree.spans]
    # ...paged the same way.
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = client.get_trace_tree(trace_id, limit=5, cursor=cursor, fields=["span_id"])
        assert page.trace == tree.trace
        seen.extend(s.span_id for s in page.spans)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [s.span_id for s in tree.spans]

    # A few fields and one attribute: the JSON holds only those, the attribute map only that key.
    headers = {"Authorization": f"Bearer {ALPHA}"}
    url = f"{server.url}/api/v1/traces/{trace_id}/spans"
    raw = httpx.get(url, params={"fields": "span_id, name,attributes.customer.id"}, headers=headers)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["trace"]["trace_id"] == trace_id and body["next_cursor"] is None
    spans = body["spans"]
    assert [s["span_id"] for s in spans] == [s.span_id for s in tree.spans]
    for got, full in zip(spans, tree.spans, strict=True):
        assert set(got) <= {"span_id", "name", "attributes"} and got["name"] == full.name
        wanted = {k: v for k, v in full.attributes.items() if k == "customer.id"}
        assert got.get("attributes", {}) == wanted
    assert sum("attributes" in s for s in spans) == 11
    assert len(raw.content) < len(httpx.get(url, headers=headers).content) / 3
    # The client sets the fields asked for; an attribute asked for is in attributes.
    slim = client.get_trace_tree_all(trace_id, fields=["span_id", "start_time", "attributes.x"])
    assert [(s.span_id, s.start_time) for s in slim.spans] == [
        (s.span_id, s.start_time) for s in tree.spans
    ]
    assert all(s.attributes == {} for s in slim.spans)

    # Unknown or empty field names are 400s naming them; another project's trace is a 404.
    for fields, named in (
        ("span_id,bogus", "'bogus'"),
        ("resource_attributes", "'resource_attributes'"),
        ("attributes.", "'attributes.'"),
        (",", "no span field"),
    ):
        r = httpx.get(url, params={"fields": fields}, headers=headers)
        assert r.status_code == 400, fields
        assert r.json()["error"]["code"] == "invalid_input"
        assert named in r.json()["error"]["message"], r.text
    with pytest.raises(InvalidInputError, match="'spanid'"):
        client.get_trace_tree(trace_id, fields=["spanid"])
    with pytest.raises(NotFoundError):
        server.client_for(BETA).get_trace_tree(trace_id, fields=["span_id"])
    with pytest.raises(NotFoundError):
        client.get_trace_tree("f" * 32, fields=["span_id"])

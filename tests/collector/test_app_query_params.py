"""Query parameters of /api/v1/traces, /spans and /stats over a real socket: out-of-range values
are a 400 naming the parameter (never a 500, never the store's error text), in-range values at
the edges give right answers, and a store failure reaches the client as a generic 503."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.models import (
    MAX_ATTRIBUTE_FILTERS,
    MAX_BUCKET_SECONDS,
    MAX_DURATION_MS,
    MAX_QUERY_TIME,
    MIN_QUERY_TIME,
)
from tests.collector.test_app_durability import ChdbHttpServer
from tests.fixtures.collector import RunningCollector, launch_collector

pytestmark = pytest.mark.integration

ENDPOINTS = ("/api/v1/traces", "/api/v1/spans", "/api/v1/stats")
DB_TEXT = ("DB::Exception", "chDB", "ClickHouse", "Code: ", "Traceback")
SPAN_MS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    running = launch_collector(tmp_path_factory.mktemp("query-params") / "retrace")
    yield running
    running.kill()


@pytest.fixture(scope="module")
def trace_id(server: RunningCollector) -> str:
    """One stored trace: a root span of SPAN_MS and a child, with attribute k=v on the child."""
    trace = secrets.token_hex(16)
    root = secrets.token_hex(8)
    now = time.time_ns()

    def span(span_id: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "traceId": trace,
            "spanId": span_id,
            "name": name,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + SPAN_MS * 1_000_000),
            **extra,
        }

    child = span(
        secrets.token_hex(8),
        "chat m",
        parentSpanId=root,
        attributes=[{"key": "k", "value": {"stringValue": "v"}}],
    )
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span(root, "invoke_agent a"), child]}]}]}
    r = httpx.post(
        server.url + "/v1/traces",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    server.client.wait_for_trace(trace, min_spans=2)
    return trace


def get(server: RunningCollector, path: str, params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=60)


def assert_bad(response: httpx.Response, parameter: str) -> None:
    """A 400 invalid_input whose message names ``parameter`` and carries no store text."""
    assert response.status_code == 400, (parameter, response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert parameter in error["message"], error["message"]
    assert not any(text in error["message"] for text in DB_TEXT), error["message"]


@pytest.mark.parametrize("path", ENDPOINTS[:2])
@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "-5", "-0.001", "1e300", str(MAX_DURATION_MS + 1)]
)
def test_min_duration_out_of_range_is_400(server: RunningCollector, path: str, value: str) -> None:
    assert_bad(get(server, path, {"min_duration_ms": value}), "min_duration_ms")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize(
    "value",
    [
        "2262-04-11T23:47:17Z",  # just past the last nanosecond an Int64 can hold
        "2300-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "1900-01-01T00:00:00+05:00",
    ],
)
def test_times_the_store_cannot_hold_are_400(
    server: RunningCollector, path: str, name: str, value: str
) -> None:
    assert_bad(get(server, path, {name: value}), name)


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_BUCKET_SECONDS + 1), str(2**70)])
def test_bucket_seconds_out_of_range_is_400(server: RunningCollector, value: str) -> None:
    assert_bad(get(server, "/api/v1/stats", {"bucket_seconds": value}), "bucket_seconds")


@pytest.mark.parametrize("path", ENDPOINTS[:2])
@pytest.mark.parametrize("count", [MAX_ATTRIBUTE_FILTERS + 1, 2000])
def test_too_many_attr_filters_is_400(server: RunningCollector, path: str, count: int) -> None:
    response = get(server, path, [("attr", f"k{i}=v") for i in range(count)])
    assert_bad(response, "attr")
    assert str(MAX_ATTRIBUTE_FILTERS) in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ENDPOINTS[:2])
def test_the_most_attr_filters_allowed_still_answer(
    server: RunningCollector, trace_id: str, path: str
) -> None:
    filters = [("attr", "k=v")] + [("attr", f"k{i}=v") for i in range(MAX_ATTRIBUTE_FILTERS - 1)]
    response = get(server, path, filters)
    assert response.status_code == 200, response.text
    assert get(server, path, [("attr", "k=v"), ("trace_id", trace_id)]).status_code == 200


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("/api/v1/traces", [2**63, "x"]),
        ("/api/v1/traces", [-(2**63) - 1, "x"]),
        ("/api/v1/spans", [10**30, "x", "y"]),
    ],
)
def test_cursor_values_out_of_range_are_400(
    server: RunningCollector, path: str, values: list[Any]
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    assert_bad(get(server, path, {"cursor": cursor}), "cursor")


def test_values_at_the_edges_give_right_answers(server: RunningCollector, trace_id: str) -> None:
    last = MAX_QUERY_TIME.isoformat().replace("+00:00", "Z")
    first = MIN_QUERY_TIME.isoformat().replace("+00:00", "Z")
    traces = get(server, "/api/v1/traces", {"start": first, "end": last, "min_duration_ms": "0"})
    assert traces.status_code == 200, traces.text
    assert trace_id in [t["trace_id"] for t in traces.json()["traces"]]
    long_enough = get(server, "/api/v1/traces", {"min_duration_ms": str(SPAN_MS - 0.5)})
    assert trace_id in [t["trace_id"] for t in long_enough.json()["traces"]]
    too_long = get(server, "/api/v1/traces", {"min_duration_ms": str(MAX_DURATION_MS)})
    assert too_long.status_code == 200 and too_long.json()["traces"] == []

    spans = get(server, "/api/v1/spans", {"trace_id": trace_id, "end": last, "start": first})
    assert spans.status_code == 200 and len(spans.json()["spans"]) == 2
    assert get(server, "/api/v1/spans", {"trace_id": trace_id, "min_duration_ms": "0"}).json()[
        "spans"
    ]
    none = get(server, "/api/v1/spans", {"trace_id": trace_id, "min_duration_ms": MAX_DURATION_MS})
    assert none.status_code == 200 and none.json()["spans"] == []

    # One bucket as wide as the store's range holds every run, at the epoch.
    stats = get(server, "/api/v1/stats", {"bucket_seconds": MAX_BUCKET_SECONDS, "end": last})
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["runs"] >= 1
    assert len(body["buckets"]) == 1
    assert body["buckets"][0]["runs"] == body["runs"]
    assert body["buckets"][0]["time"].startswith("1970-01-01T00:00:00")


# --- property: any value either answers 200 or is a 400 naming its parameter ------------------


def _in_store_range(value: datetime) -> bool:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return MIN_QUERY_TIME <= aware <= MAX_QUERY_TIME


TIMES = st.datetimes(
    min_value=datetime(1800, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from(
        [None, UTC, timezone(timedelta(hours=5)), timezone(-timedelta(hours=8))]
    ),
) | st.sampled_from([MIN_QUERY_TIME, MAX_QUERY_TIME, MAX_QUERY_TIME + timedelta(microseconds=1)])
DURATIONS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, float(MAX_DURATION_MS), MAX_DURATION_MS + 1.0, -1e-9]
)
BUCKETS = st.integers(min_value=-10, max_value=2**70) | st.sampled_from(
    [1, MAX_BUCKET_SECONDS, MAX_BUCKET_SECONDS + 1]
)
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _check(response: httpx.Response, bad: list[str]) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if bad:
        assert response.status_code == 400, (bad, response.text)
        message = response.json()["error"]["message"]
        assert any(name in message for name in bad), (bad, message)
        assert not any(text in message for text in DB_TEXT), message
    else:
        assert response.status_code == 200, response.text


@PROPERTY
@given(
    path=st.sampled_from(ENDPOINTS[:2]),
    start=st.none() | TIMES,
    end=st.none() | TIMES,
    duration=st.none() | DURATIONS,
    n_attrs=st.integers(min_value=0, max_value=MAX_ATTRIBUTE_FILTERS + 5),
)
def test_any_trace_or_span_query_is_answered_or_names_the_bad_parameter(
    server: RunningCollector,
    path: str,
    start: datetime | None,
    end: datetime | None,
    duration: float | None,
    n_attrs: int,
) -> None:
    params: list[tuple[str, str]] = [("attr", f"k{i}=v") for i in range(n_attrs)]
    bad = []
    if n_attrs > MAX_ATTRIBUTE_FILTERS:
        bad.append("attr")
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            params.append((name, _iso(value)))
            if not _in_store_range(value):
                bad.append(name)
    if duration is not None:
        params.append(("min_duration_ms", repr(duration)))
        if not (0 <= duration <= MAX_DURATION_MS):  # False for NaN too
            bad.append("min_duration_ms")
    _check(get(server, path, params), bad)


@PROPERTY
@given(start=st.none() | TIMES, end=st.none() | TIMES, bucket=st.none() | BUCKETS)
def test_any_stats_query_is_answered_or_names_the_bad_parameter(
    server: RunningCollector, start: datetime | None, end: datetime | None, bucket: int | None
) -> None:
    params: dict[str, str] = {}
    bad = []
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            params[name] = _iso(value)
            if not _in_store_range(value):
                bad.append(name)
    if bucket is not None:
        params["bucket_seconds"] = str(bucket)
        if not 1 <= bucket <= MAX_BUCKET_SECONDS:
            bad.append("bucket_seconds")
    _check(get(server, "/api/v1/stats", params), bad)


# --- store failures ----------------------------------------------------------------------------


def test_a_failing_store_is_a_generic_503_with_the_detail_only_in_the_log(
    chdb_http: ChdbHttpServer, start_collector: Callable[..., RunningCollector]
) -> None:
    collector = start_collector(clickhouse_url=chdb_http.url)
    assert get(collector, "/api/v1/traces", {}).status_code == 200
    chdb_http.stop()
    port = chdb_http.url.rsplit(":", 1)[1]
    for path in (*ENDPOINTS, "/api/v1/traces/" + "ab" * 16, "/readyz"):
        response = get(collector, path, {})
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Retry-After"]
        message = response.json()["error"]["message"]
        assert message
        leaked = [t for t in (*DB_TEXT, port, "127.0.0.1", "refused", "Errno") if t in message]
        assert not leaked, (path, message)
    # the operator still sees what went wrong
    assert port in collector.log()

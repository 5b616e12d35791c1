"""Trace-list filters round-trip through URL query params and reject bad values clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidInputError
from ui._filters import TraceFilters, filters_from_params, parse_attribute_filters


def test_defaults_make_an_empty_link_and_a_default_query() -> None:
    filters = filters_from_params({})
    assert filters == TraceFilters()
    assert filters.to_params() == {}
    query = filters.to_query()
    assert query.start is None and query.status is None and query.limit == 50
    assert query.include_replays is False  # replays are no runs: listed only when asked for


def test_round_trip_of_every_filter() -> None:
    filters = TraceFilters(
        time_range="24h",
        status="error",
        agent="data-scientist",
        model="gpt-4o",
        tool="run_python",
        min_duration_ms=250.0,
        text="revenue by region",
        attributes=(("retrace.run.id", "r-1"), ("env", "prod=eu")),
        sort="duration",
        order="asc",
        limit=100,
        cursor="abc",
        session="conv-42",
        user="cust-17",
        feedback="complaint",
        replays=True,
    )
    assert filters.to_params()["replays"] == "1"
    assert filters_from_params(filters.to_params()) == filters
    query = filters.to_query()
    assert (query.session_id, query.user_id, query.feedback) == ("conv-42", "cust-17", "complaint")
    assert query.include_replays is True


def test_relative_range_resolves_against_now() -> None:
    now = datetime(2026, 1, 2, 12, tzinfo=UTC)
    query = TraceFilters(time_range="1h", status="ok").to_query(now)
    assert query.start == now - timedelta(hours=1)
    assert query.status == "ok"


def test_explicit_times_are_parsed_as_utc() -> None:
    filters = filters_from_params({"start": "2026-01-02T03:04:05Z", "end": "2026-01-03T00:00:00"})
    assert filters.start == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert filters.end is not None and filters.end.tzinfo is not None


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"range": "2y"}, "range='2y'"),
        ({"status": "weird"}, "status='weird'"),
        ({"sort": "name"}, "sort='name'"),
        ({"order": "up"}, "order='up'"),
        ({"min_ms": "fast"}, "min_ms='fast'"),
        ({"min_ms": "-3"}, "negative"),
        ({"limit": "0"}, "between 1 and 1000"),
        ({"start": "yesterday"}, "start='yesterday'"),
        ({"attr": ["novalue"]}, "'novalue'"),
        ({"replays": "yes"}, "replays='yes' is not 0 or 1"),
    ],
)
def test_bad_values_name_what_was_wrong(params: dict[str, str | list[str]], needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle.replace("(", r"\(")):
        filters_from_params(params)


def test_attribute_filters_split_on_first_equals_and_skip_blanks() -> None:
    assert parse_attribute_filters(["a=b=c", " ", "k = v "]) == (("a", "b=c"), ("k", "v"))


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "range",
                "status",
                "sort",
                "order",
                "min_ms",
                "limit",
                "start",
                "end",
                "attr",
                "q",
                "agent",
                "cursor",
                "replays",
            ]
        ),
        st.one_of(st.text(max_size=20), st.lists(st.text(max_size=10), max_size=3)),
    )
)
def test_any_url_gives_filters_or_a_clear_error(params: dict[str, str | list[str]]) -> None:
    try:
        filters = filters_from_params(params)
    except InvalidInputError as exc:
        assert exc.message
        return
    filters.to_query(datetime(2026, 1, 1, tzinfo=UTC))

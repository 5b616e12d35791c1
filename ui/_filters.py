"""Trace-list filters as they live in the URL: parse query params, build a ``TraceQuery``.

Pure: no Streamlit here, so the mapping URL <-> query is tested without a browser. The URL is the
source of truth so that a filtered list can be shared as a link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, cast, get_args

from schemas.errors import InvalidInputError
from schemas.models import SortField, TraceQuery

# Relative time ranges offered in the UI; "all" means no time bound.
TIME_RANGES: dict[str, timedelta | None] = {
    "all": None,
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
SORT_FIELDS: tuple[str, ...] = get_args(SortField)
STATUSES: tuple[str, ...] = ("any", "ok", "error")
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)

# Query-parameter names (the URL vocabulary of the Traces page).
P_RANGE = "range"
P_START = "start"
P_END = "end"
P_STATUS = "status"
P_AGENT = "agent"
P_MODEL = "model"
P_TOOL = "tool"
P_MIN_MS = "min_ms"
P_TEXT = "q"
P_ATTR = "attr"
P_SORT = "sort"
P_ORDER = "order"
P_LIMIT = "limit"
P_CURSOR = "cursor"
P_SESSION = "session"
P_USER = "user"
P_FEEDBACK = "feedback"
P_TRACE = "trace"
P_SPAN = "span"
P_REPLAY = "replay"
P_REPLAYS = "replays"  # "1": list replays too, each marked with its original


@dataclass(frozen=True)
class TraceFilters:
    """What the user filters the trace list by; round-trips through URL query params."""

    time_range: str = "all"
    start: datetime | None = None
    end: datetime | None = None
    status: str = "any"
    agent: str = ""
    model: str = ""
    tool: str = ""
    min_duration_ms: float | None = None
    text: str = ""
    attributes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    sort: str = "start_time"
    order: str = "desc"
    limit: int = 50
    cursor: str = ""
    session: str = ""
    user: str = ""
    feedback: str = ""
    replays: bool = False

    def to_params(self) -> dict[str, str | list[str]]:
        """Query params for this filter set, omitting defaults so links stay short."""
        params: dict[str, str | list[str]] = {}
        if self.time_range != "all":
            params[P_RANGE] = self.time_range
        if self.start is not None:
            params[P_START] = self.start.isoformat()
        if self.end is not None:
            params[P_END] = self.end.isoformat()
        if self.status != "any":
            params[P_STATUS] = self.status
        for key, value in (
            (P_AGENT, self.agent),
            (P_MODEL, self.model),
            (P_TOOL, self.tool),
            (P_SESSION, self.session),
            (P_USER, self.user),
            (P_FEEDBACK, self.feedback),
        ):
            if value:
                params[key] = value
        if self.min_duration_ms is not None:
            params[P_MIN_MS] = f"{self.min_duration_ms:g}"
        if self.text:
            params[P_TEXT] = self.text
        if self.attributes:
            params[P_ATTR] = [f"{k}={v}" for k, v in self.attributes]
        if self.sort != "start_time":
            params[P_SORT] = self.sort
        if self.order != "desc":
            params[P_ORDER] = self.order
        if self.limit != 50:
            params[P_LIMIT] = str(self.limit)
        if self.cursor:
            params[P_CURSOR] = self.cursor
        if self.replays:
            params[P_REPLAYS] = "1"
        return params

    def with_cursor(self, cursor: str) -> TraceFilters:
        return replace(self, cursor=cursor)

    def to_query(self, now: datetime | None = None) -> TraceQuery:
        """The API query for these filters; relative ranges are resolved against ``now``."""
        start = self.start
        delta = TIME_RANGES.get(self.time_range)
        if start is None and delta is not None:
            start = (now or datetime.now(UTC)) - delta
        return TraceQuery(
            start=start,
            end=self.end,
            status=cast(Literal["ok", "error"], self.status) if self.status != "any" else None,
            agent=self.agent or None,
            model=self.model or None,
            tool=self.tool or None,
            min_duration_ms=self.min_duration_ms,
            text=self.text or None,
            attributes=dict(self.attributes),
            sort=cast(SortField, self.sort),
            order=cast(Literal["asc", "desc"], self.order),
            limit=self.limit,
            cursor=self.cursor or None,
            session_id=self.session or None,
            user_id=self.user or None,
            feedback=self.feedback or None,
            include_replays=self.replays,
        )


def parse_attribute_filters(lines: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Parse ``key=value`` strings; raises ``InvalidInputError`` naming a malformed one."""
    pairs: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"attribute filter {line!r} is not of the form key=value")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(f"{name}={value!r} is not an ISO-8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters_from_params(params: Mapping[str, str | list[str]]) -> TraceFilters:
    """Read filters from URL query params; raises ``InvalidInputError`` naming a bad value."""

    def one(key: str) -> str:
        value = params.get(key, "")
        if isinstance(value, list):
            return value[-1] if value else ""
        return value

    def many(key: str) -> list[str]:
        value = params.get(key, [])
        return [value] if isinstance(value, str) else list(value)

    time_range = one(P_RANGE) or "all"
    if time_range not in TIME_RANGES:
        raise InvalidInputError(f"range={time_range!r} is not one of {', '.join(TIME_RANGES)}")
    status = one(P_STATUS) or "any"
    if status not in STATUSES:
        raise InvalidInputError(f"status={status!r} is not one of {', '.join(STATUSES)}")
    sort = one(P_SORT) or "start_time"
    if sort not in SORT_FIELDS:
        raise InvalidInputError(f"sort={sort!r} is not one of {', '.join(SORT_FIELDS)}")
    order = one(P_ORDER) or "desc"
    if order not in ("asc", "desc"):
        raise InvalidInputError(f"order={order!r} is not asc or desc")
    min_ms: float | None = None
    if raw_min := one(P_MIN_MS):
        try:
            min_ms = float(raw_min)
        except ValueError as exc:
            raise InvalidInputError(f"min_ms={raw_min!r} is not a number") from exc
        if min_ms < 0:
            raise InvalidInputError(f"min_ms={raw_min!r} is negative")
    replays = one(P_REPLAYS) or "0"
    if replays not in ("0", "1"):
        raise InvalidInputError(f"replays={replays!r} is not 0 or 1")
    limit = 50
    if raw_limit := one(P_LIMIT):
        try:
            limit = int(raw_limit)
        except ValueError as exc:
            raise InvalidInputError(f"limit={raw_limit!r} is not an integer") from exc
        if not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit={raw_limit!r} is not between 1 and 1000")
    return TraceFilters(
        time_range=time_range,
        start=_parse_time(P_START, one(P_START)) if one(P_START) else None,
        end=_parse_time(P_END, one(P_END)) if one(P_END) else None,
        status=status,
        agent=one(P_AGENT).strip(),
        model=one(P_MODEL).strip(),
        tool=one(P_TOOL).strip(),
        min_duration_ms=min_ms,
        text=one(P_TEXT).strip(),
        attributes=parse_attribute_filters(many(P_ATTR)),
        sort=sort,
        order=order,
        limit=limit,
        cursor=one(P_CURSOR),
        session=one(P_SESSION).strip(),
        user=one(P_USER).strip(),
        feedback=one(P_FEEDBACK).strip(),
        replays=replays == "1",
    )

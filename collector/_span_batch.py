"""``SpanBatch``, the one shape ingested spans have from decode to insert, and its Arrow schema.

The OTLP builder (``collector.otlp``) emits a ``SpanBatch`` in a decode worker; it crosses the
process boundary as Arrow buffers, waits in the spool's memory cache, is merged per project by
the writer and handed to ``TraceStore.insert_arrow`` as it is. ``SPAN_SCHEMA`` (the
``otel_traces`` columns) and the column each ``SpanRecord`` field fills come from the one
declaration of the table (``schemas.tables.SPANS``); the store imports ``SPAN_SCHEMA`` to check
what it inserts.

Two ways into a table, one column mapping: ``rows_to_arrow`` for the builder's plain rows (no
per-span model object on the hot path) and ``spans_to_arrow`` for ``SpanRecord`` models
(``TraceStore.insert_spans``). ``span_records`` reads a table back as models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypedDict

import pyarrow as pa

from schemas.errors import InvalidInputError
from schemas.models import SpanKind, SpanRecord, StatusCode
from schemas.tables import SPANS

__all__ = [
    "SPAN_SCHEMA",
    "EventRow",
    "LinkRow",
    "SpanBatch",
    "SpanRow",
    "rows_to_arrow",
    "span_records",
    "spans_to_arrow",
]

# The otel_traces columns Retrace inserts, from their one declaration.
SPAN_SCHEMA = SPANS.arrow_schema()
_MAP = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ns")


@dataclass(frozen=True, slots=True)
class SpanBatch:
    """Spans of one project in ``SPAN_SCHEMA`` columns, and the payloads they reference.

    ``payloads`` maps sha256 hex -> content, each stored once however many spans name it.
    ``rejected`` and ``message`` are what the OTLP partial-success answer reports for the request
    the batch was decoded from (a merged batch sums ``rejected`` and keeps no message). Pickling it
    (from a worker process) moves Arrow buffers and bytes, with no per-span object to rebuild.
    """

    project: str
    spans: pa.Table
    payloads: Mapping[str, bytes]
    rejected: int = 0
    message: str = ""

    @property
    def span_count(self) -> int:
        return int(self.spans.num_rows)

    @property
    def nbytes(self) -> int:
        """About what the batch weighs in memory (Arrow buffers plus payload bytes)."""
        table = int(self.spans.get_total_buffer_size())
        return table + sum(len(content) for content in self.payloads.values())

    @classmethod
    def merge(cls, batches: Sequence[SpanBatch]) -> SpanBatch:
        """One batch holding the spans and payloads of ``batches`` (all of one project).

        The tables are concatenated without copying their buffers.
        """
        if not batches:
            raise ValueError("merge needs at least one batch")
        project = batches[0].project
        if len(batches) == 1:
            return batches[0]
        payloads: dict[str, bytes] = {}
        for batch in batches:
            if batch.project != project:
                raise ValueError(
                    f"cannot merge batches of projects {project!r} and {batch.project!r}"
                )
            payloads.update(batch.payloads)
        spans = pa.concat_tables([batch.spans for batch in batches])
        return cls(project, spans, payloads, sum(batch.rejected for batch in batches))


class EventRow(NamedTuple):
    """A span event as the builder hands it over (``SpanEvent``'s fields)."""

    timestamp_unix_nano: int
    name: str
    attributes: dict[str, str]


class LinkRow(NamedTuple):
    """A span link as the builder hands it over (``SpanLink``'s fields)."""

    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


class SpanRow(TypedDict):
    """One span as the builder hands it over: ``SpanRecord``'s fields but ``project_id``.

    Field types are trusted (the decoders guarantee them); nothing validates a row.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: SpanKind
    service_name: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    start_time_unix_nano: int
    duration_ns: int
    status_code: StatusCode
    status_message: str
    events: list[EventRow]
    links: list[LinkRow]
    operation: str
    agent_name: str
    model: str
    tool_name: str
    input_tokens: int
    output_tokens: int
    step_index: int
    session_id: str
    user_id: str
    payload_refs: dict[str, str]
    input_preview: str
    output_preview: str


# The column each field fills (schemas.tables.SPANS): scalar columns, map columns, and the
# Nested(...) sub-columns (``events.name`` is the ``name`` of each of ``SpanRecord.events``).
# ProjectId is not among them: a batch is of one project, given apart.
_INSERTED = [c for c in SPANS.columns if c.arrow is not None and c.field != "project_id"]
_SCALAR_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.field)
    for c in _INSERTED
    if "." not in c.field and not pa.types.is_map(c.arrow) and not pa.types.is_list(c.arrow)
)
_MAP_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.field) for c in _INSERTED if c.arrow is not None and pa.types.is_map(c.arrow)
)
_EVENT_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.field.removeprefix("events.")) for c in _INSERTED if c.field.startswith("events.")
)
_LINK_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.field.removeprefix("links.")) for c in _INSERTED if c.field.startswith("links.")
)
_SCALAR_FIELDS = tuple(f for _, f in _SCALAR_COLUMNS)
_MAP_FIELDS = tuple(f for _, f in _MAP_COLUMNS)
_row_scalars = itemgetter(*_SCALAR_FIELDS)
_row_maps = itemgetter(*_MAP_FIELDS)
_record_scalars = attrgetter(*_SCALAR_FIELDS)
_record_maps = attrgetter(*_MAP_FIELDS)
# EventRow/LinkRow and SpanEvent/SpanLink share field names: one getter reads either.
_event_values = attrgetter(*(f for _, f in _EVENT_COLUMNS))
_link_values = attrgetter(*(f for _, f in _LINK_COLUMNS))


def rows_to_arrow(project: str, rows: Sequence[SpanRow]) -> pa.Table:
    """The builder's rows as one ``SPAN_SCHEMA`` table, every row in ``project``."""
    return _table(
        project,
        list(map(_row_scalars, rows)),
        list(map(_row_maps, rows)),
        [row["events"] for row in rows],
        [row["links"] for row in rows],
    )


def spans_to_arrow(project: str, spans: Sequence[SpanRecord]) -> pa.Table:
    """One ``otel_traces`` batch in columnar form. Every span must belong to ``project``."""
    for s in spans:
        if s.project_id != project:
            raise InvalidInputError(
                f"span {s.span_id} of trace {s.trace_id} belongs to project {s.project_id!r}, "
                f"not {project!r}"
            )
    return _table(
        project,
        list(map(_record_scalars, spans)),
        list(map(_record_maps, spans)),
        [s.events for s in spans],
        [s.links for s in spans],
    )


def _table(
    project: str,
    scalars: list[tuple[Any, ...]],
    maps: list[tuple[Mapping[str, str], ...]],
    events: Sequence[Sequence[Any]],
    links: Sequence[Sequence[Any]],
) -> pa.Table:
    arrays: dict[str, pa.Array] = {}
    scalar_columns = list(zip(*scalars, strict=True)) or [()] * len(_SCALAR_COLUMNS)
    for (column, _), values in zip(_SCALAR_COLUMNS, scalar_columns, strict=True):
        arrays[column] = pa.array(values, SPAN_SCHEMA.field(column).type)
    map_columns = list(zip(*maps, strict=True)) or [()] * len(_MAP_COLUMNS)
    for (column, _), dicts in zip(_MAP_COLUMNS, map_columns, strict=True):
        arrays[column] = _map_array(dicts)
    arrays.update(_nested(events, _EVENT_COLUMNS, _event_values))
    arrays.update(_nested(links, _LINK_COLUMNS, _link_values))
    arrays["ProjectId"] = pa.array([project] * len(scalars), pa.string())
    return pa.Table.from_arrays([arrays[name] for name in SPAN_SCHEMA.names], schema=SPAN_SCHEMA)


def _map_array(dicts: Iterable[Mapping[str, str]]) -> pa.Array:
    keys: list[str] = []
    values: list[str] = []
    offsets = [0]
    for d in dicts:
        keys.extend(d.keys())
        values.extend(d.values())
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(values, pa.string())
    )


def _nested(
    groups: Sequence[Sequence[Any]],
    columns: tuple[tuple[str, str], ...],
    values_of: Callable[[Any], tuple[Any, ...]],
) -> dict[str, pa.Array]:
    """Nested(...) sub-columns: one list column per field, from each span's events or links."""
    offsets = [0]
    flat: list[Any] = []
    for group in groups:
        flat.extend(group)
        offsets.append(len(flat))
    offs = pa.array(offsets, pa.int32())
    fields = list(zip(*map(values_of, flat), strict=True)) or [()] * len(columns)
    out: dict[str, pa.Array] = {}
    for (column, _), values in zip(columns, fields, strict=True):
        dtype = SPAN_SCHEMA.field(column).type.value_type
        child = _map_array(values) if dtype == _MAP else pa.array(values, dtype)
        out[column] = pa.ListArray.from_arrays(offs, child)
    return out


def _integer_times(dtype: pa.DataType) -> pa.DataType:
    if dtype == _TS:
        return pa.int64()
    if dtype == pa.list_(_TS):
        return pa.list_(pa.int64())
    return dtype


# SPAN_SCHEMA with timestamps as integer nanoseconds (Python datetimes stop at microseconds).
_PLAIN_SCHEMA = pa.schema([(f.name, _integer_times(f.type)) for f in SPAN_SCHEMA])


def span_records(table: pa.Table) -> list[SpanRecord]:
    """The rows of a ``SPAN_SCHEMA`` table as validated ``SpanRecord`` models.

    The inverse of ``spans_to_arrow``: for tests and tools, not the ingest path.
    """
    records: list[SpanRecord] = []
    for row in table.select(SPAN_SCHEMA.names).cast(_PLAIN_SCHEMA).to_pylist():
        values: dict[str, Any] = {"project_id": row["ProjectId"]}
        values.update({field: row[column] for column, field in _SCALAR_COLUMNS})
        values.update({field: dict(row[column]) for column, field in _MAP_COLUMNS})
        values["events"] = [
            dict(zip((f for _, f in _EVENT_COLUMNS), event, strict=True))
            for event in zip(*(row[column] for column, _ in _EVENT_COLUMNS), strict=True)
        ]
        values["links"] = [
            dict(zip((f for _, f in _LINK_COLUMNS), link, strict=True))
            for link in zip(*(row[column] for column, _ in _LINK_COLUMNS), strict=True)
        ]
        for nested in (*values["events"], *values["links"]):
            nested["attributes"] = dict(nested["attributes"])
        records.append(SpanRecord.model_validate(values))
    return records

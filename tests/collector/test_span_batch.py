"""``SpanBatch`` and its Arrow schema: one column mapping for the builder's rows and the models,
declared once and covering ``SPAN_SCHEMA`` exactly; batches merge per project without copies."""

from __future__ import annotations

import pyarrow as pa
import pytest

from collector import _span_batch as sb
from collector._span_batch import (
    SPAN_SCHEMA,
    EventRow,
    LinkRow,
    SpanBatch,
    SpanRow,
    rows_to_arrow,
    span_records,
    spans_to_arrow,
)
from schemas.errors import InvalidInputError
from schemas.models import SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode


def _record(project: str, n: int) -> SpanRecord:
    return SpanRecord(
        project_id=project,
        trace_id=f"{n:032x}",
        span_id=f"{n + 1:016x}",
        parent_span_id="",
        name=f"chat {n}",
        kind=SpanKind.CLIENT,
        service_name="svc",
        resource_attributes={"service.name": "svc"},
        attributes={"a": "1", "b": "two"},
        start_time_unix_nano=1_700_000_000_123_456_789 + n,
        duration_ns=1_001,
        status_code=StatusCode.ERROR,
        status_message="boom",
        events=[SpanEvent(timestamp_unix_nano=1_700_000_000_123_456_999, name="e", attributes={})],
        links=[SpanLink(trace_id="ab" * 16, span_id="cd" * 8, attributes={"why": "x"})],
        operation="chat",
        model="m",
        input_tokens=3,
        output_tokens=4,
        step_index=n,
        payload_refs={"gen_ai.input.messages": "f" * 64},
        input_preview="in",
        output_preview="out",
    )


def test_the_row_is_the_record_and_the_columns_are_the_schema() -> None:
    assert set(SpanRow.__annotations__) == set(SpanRecord.model_fields) - {"project_id"}
    assert EventRow._fields == tuple(SpanEvent.model_fields)
    assert LinkRow._fields == tuple(SpanLink.model_fields)
    mapped = [
        column
        for columns in (sb._SCALAR_COLUMNS, sb._MAP_COLUMNS, sb._EVENT_COLUMNS, sb._LINK_COLUMNS)
        for column, _ in columns
    ]
    assert sorted([*mapped, "ProjectId"]) == sorted(SPAN_SCHEMA.names)
    fields = [field for columns in (sb._SCALAR_COLUMNS, sb._MAP_COLUMNS) for _, field in columns]
    assert sorted([*fields, "events", "links"]) == sorted(SpanRow.__annotations__)


def test_rows_and_models_make_the_same_table_and_read_back_exactly() -> None:
    records = [_record("p", 1), _record("p", 2)]
    table = spans_to_arrow("p", records)
    assert table.schema.equals(SPAN_SCHEMA)
    assert span_records(table) == records  # nanoseconds and nested values intact
    rows: list[SpanRow] = []
    for record in records:
        values = record.model_dump(exclude={"project_id", "events", "links"})
        rows.append(
            {
                **values,  # type: ignore[typeddict-item]
                "events": [EventRow(**e.model_dump()) for e in record.events],
                "links": [LinkRow(**ln.model_dump()) for ln in record.links],
            }
        )
    assert rows_to_arrow("p", rows).equals(table)
    empty = rows_to_arrow("p", [])
    assert empty.num_rows == 0 and empty.schema.equals(SPAN_SCHEMA)
    assert empty.equals(spans_to_arrow("p", []))
    with pytest.raises(InvalidInputError, match="not 'other'"):
        spans_to_arrow("other", records)


def test_batches_of_one_project_merge() -> None:
    one = SpanBatch("p", spans_to_arrow("p", [_record("p", 1)]), {"a" * 64: b"x"}, 1, "why")
    two = SpanBatch("p", spans_to_arrow("p", [_record("p", 2)]), {"b" * 64: b"yy"})
    assert SpanBatch.merge([one]) is one
    merged = SpanBatch.merge([one, two])
    assert (merged.project, merged.span_count, merged.rejected) == ("p", 2, 1)
    assert merged.payloads == {"a" * 64: b"x", "b" * 64: b"yy"}
    assert merged.spans.equals(pa.concat_tables([one.spans, two.spans]))
    assert merged.nbytes >= 3
    other = SpanBatch("q", spans_to_arrow("q", [_record("q", 3)]), {})
    with pytest.raises(ValueError, match="projects 'p' and 'q'"):
        SpanBatch.merge([one, other])
    with pytest.raises(ValueError, match="at least one"):
        SpanBatch.merge([])

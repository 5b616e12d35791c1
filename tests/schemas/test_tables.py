"""``schemas.tables`` is the one declaration of the tables' columns: the migrations create exactly
those columns, each Arrow type fits its ClickHouse type, and the hand-written models (kept
hand-written for typing) carry the spans' fields with the table's defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from collector.conventions import DerivedColumns
from collector.store.chdb import ChdbTraceStore
from schemas.models import SpanEvent, SpanLink, SpanRecord, SpanView
from schemas.tables import SPANS, TABLES, Table

Layout = dict[str, list[tuple[str, str, str, str]]]


def _formatted(store: ChdbTraceStore, expression: str) -> str:
    """A default expression as ClickHouse's formatter writes it (``system.columns`` reports
    defaults so; the declaration writes the long derived ones readably)."""
    if not expression:
        return ""
    rows = store._rows(
        "SELECT formatQuerySingleLine({q:String}) AS f", {"q": f"SELECT {expression}"}
    )
    return str(rows[0]["f"])


def _declared(store: ChdbTraceStore, tables: tuple[Table, ...] = TABLES) -> Layout:
    """(name, type, default kind, default) of each declared column, per table."""
    return {
        t.name: [
            (
                c.name,
                c.clickhouse,
                "DEFAULT" if c.default else "",
                _formatted(store, c.default),
            )
            for c in t.columns
        ]
        for t in tables
    }


def _created(store: ChdbTraceStore) -> Layout:
    """The same, as ``system.columns`` reports the store's tables (views left out)."""
    rows = store._rows(
        "SELECT c.table AS t, c.name AS name, c.type AS type, c.default_kind AS kind,"
        " c.default_expression AS expr"
        " FROM system.columns AS c"
        " INNER JOIN system.tables AS s ON s.database = c.database AND s.name = c.table"
        " WHERE c.database = currentDatabase() AND s.engine NOT IN ('MaterializedView', 'View')"
        " ORDER BY c.table, c.position"
    )
    out: Layout = {}
    for r in rows:
        out.setdefault(r["t"], []).append(
            (r["name"], r["type"], r["kind"], _formatted(store, r["expr"]))
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbTraceStore]:
    """A fresh chDB store on disk with every migration applied by the store's own runner."""
    opened = ChdbTraceStore(tmp_path)
    try:
        opened.migrate()
        yield opened
    finally:
        opened.close()


@pytest.mark.integration
def test_the_migrations_create_exactly_the_declared_columns(store: ChdbTraceStore) -> None:
    created = _created(store)
    declared = _declared(store)
    assert sorted(created) == sorted(declared), (
        "the migrations create other tables than schemas.tables declares"
    )
    for table, columns in declared.items():
        assert created[table] == columns, f"{table}: migrations and schemas.tables differ"


@pytest.mark.integration
def test_a_column_the_declaration_lacks_is_found(store: ChdbTraceStore) -> None:
    """The comparison above fails when a migration adds a column the declaration lacks."""
    store._command("ALTER TABLE otel_traces ADD COLUMN Extra String DEFAULT ''")
    created = _created(store)["otel_traces"]
    declared = _declared(store)["otel_traces"]
    assert created != declared
    assert [c for c in created if c not in declared] == [
        ("Extra", "String", "DEFAULT", "SELECT ''")
    ]


# --- Arrow types --------------------------------------------------------------------------------
def _args(inner: str) -> list[str]:
    """Top-level comma-separated arguments of a type's parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        current += ch
    parts.append(current.strip())
    return parts


_INTS = {
    f"{u}Int{n}": getattr(pa, f"{u.lower()}int{n}")() for u in ("", "U") for n in (8, 16, 32, 64)
}


def _arrow_types(clickhouse: str) -> list[pa.DataType]:
    """The Arrow types a ClickHouse column of this type is inserted from."""
    match = re.fullmatch(r"(\w+)\((.*)\)", clickhouse)
    if match is None:
        if clickhouse == "String":
            return [pa.string(), pa.binary()]
        return [_INTS[clickhouse]]
    name, args = match.group(1), _args(match.group(2))
    if name in ("Nullable", "LowCardinality"):
        return _arrow_types(args[0])
    if name == "FixedString":
        return [pa.string(), pa.binary()]
    if name == "DateTime64":
        return [pa.timestamp({"3": "ms", "6": "us", "9": "ns"}[args[0]])]
    if name == "Array":
        return [pa.list_(t) for t in _arrow_types(args[0])]
    if name == "Map":
        return [pa.map_(k, v) for k in _arrow_types(args[0]) for v in _arrow_types(args[1])]
    raise AssertionError(f"no Arrow type is known for {clickhouse}")


def test_each_arrow_type_fits_its_clickhouse_type() -> None:
    inserted = [(t, c) for t in TABLES for c in t.columns if c.arrow is not None]
    assert inserted
    for table, column in inserted:
        assert column.arrow in _arrow_types(column.clickhouse), f"{table.name}.{column.name}"


def test_the_arrow_schemas_hold_the_inserted_columns_in_table_order() -> None:
    for table in TABLES:
        schema = table.arrow_schema()
        assert schema.names == [c.name for c in table.columns if c.arrow is not None]
    # Columns a default fills are never sent; every other spans column is.
    assert [c.name for c in SPANS.columns if c.arrow is None] == ["IngestedAt"]


# --- models ---------------------------------------------------------------------------------
def _python_type(clickhouse: str) -> Any:
    """The Python type a model holds a span column's value as (times in unix nanoseconds)."""
    match = re.fullmatch(r"(\w+)\((.*)\)", clickhouse)
    if match is None:
        return str if clickhouse == "String" else int
    name, args = match.group(1), _args(match.group(2))
    if name in ("LowCardinality", "Array"):  # an Array is one value per nested item
        return _python_type(args[0])
    if name == "Map":
        return dict[str, str]
    assert name == "DateTime64", clickhouse
    return int


def _fits(annotation: Any, expected: Any) -> bool:
    if annotation == expected:
        return True
    return (
        isinstance(annotation, type)
        and isinstance(expected, type)
        and issubclass(annotation, expected)
    )  # SpanKind, StatusCode: str enums


def test_span_record_has_a_field_for_each_span_column() -> None:
    fields = [c.field for c in SPANS.columns if c.field]
    top = {f.partition(".")[0] for f in fields}
    assert top == set(SpanRecord.model_fields)
    nested = {"events": SpanEvent, "links": SpanLink}
    for prefix, model in nested.items():
        subfields = [f.partition(".")[2] for f in fields if f.startswith(prefix + ".")]
        assert subfields == list(model.model_fields), prefix
    for column in SPANS.columns:
        if not column.field:
            continue
        head, _, sub = column.field.partition(".")
        info = nested[head].model_fields[sub] if sub else SpanRecord.model_fields[head]
        expected = _python_type(column.clickhouse)
        assert _fits(info.annotation, expected), f"{column.name}: {info.annotation} vs {expected}"


def test_span_models_default_as_the_table_does() -> None:
    for column in SPANS.columns:
        if column.default_value is None or not column.field:
            continue
        info = SpanRecord.model_fields[column.field]
        if column.field == "project_id":
            # The DDL default serves the exporter's inserts, which name no project; a record
            # always names its own.
            assert info.is_required()
            continue
        assert info.default == column.default_value, column.name


def test_derived_fields_are_the_declared_ones() -> None:
    derived = SPANS.derived
    assert [c.name for c in derived] == [
        "Operation",
        "AgentName",
        "Model",
        "ToolName",
        "InputTokens",
        "OutputTokens",
        "StepIndex",
        "SessionId",
        "UserId",
    ]
    assert DerivedColumns._fields == tuple(c.field for c in derived)
    assert DerivedColumns._field_defaults == {c.field: c.default_value for c in derived}
    assert DerivedColumns() == tuple(c.default_value for c in derived)
    for column in derived:
        assert SpanView.model_fields[column.field].default == column.default_value

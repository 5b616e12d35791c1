from schemas.migrations import SCHEMA_VERSION, load_migrations


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_initial_migration_keeps_the_otel_exporter_columns() -> None:
    ddl = "\n".join(load_migrations()[0].statements)
    for column in (
        "Timestamp DateTime64(9)",
        "TraceId String",
        "SpanId String",
        "ParentSpanId String",
        "SpanName LowCardinality(String)",
        "SpanKind LowCardinality(String)",
        "ServiceName LowCardinality(String)",
        "SpanAttributes Map(LowCardinality(String), String)",
        "Duration UInt64",
        "StatusCode LowCardinality(String)",
    ):
        assert column in ddl

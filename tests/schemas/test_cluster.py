"""The cluster form of the schema (``schemas.cluster``, ``RETRACE_CLICKHOUSE_CLUSTER``).

Every migration is converted (so a new migration is covered as soon as it exists), each
generated statement is parsed by ClickHouse's parser, and the whole schema runs on a single-shard
cluster in chDB with spans inserted through the Distributed
table and summarised by the views on the local tables (``tests/schemas/cluster_chdb.py`` says
what chDB can and cannot run: it has no Keeper, so ON CLUSTER and replication itself are not run).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.cluster import SHARDING_KEYS, ClusterDDLError, cluster_statements
from schemas.migrations import MIGRATIONS_TABLE_DDL, load_migrations

ROOT = Path(__file__).resolve().parents[2]
C = "'c1'"


def _all() -> list[tuple[str, list[str]]]:
    out = [(MIGRATIONS_TABLE_DDL, cluster_statements(MIGRATIONS_TABLE_DDL, "c1", "db"))]
    for migration in load_migrations():
        for statement in migration.statements:
            out.append((statement, cluster_statements(statement, "c1", "db")))
    return out


def test_every_migration_statement_has_a_cluster_form() -> None:
    converted = _all()
    assert len(converted) > 40
    for original, statements in converted:
        assert statements, original[:80]
        for statement in statements:
            if not statement.startswith("INSERT"):
                assert f"ON CLUSTER {C}" in statement, statement[:120]
            if statement.startswith("CREATE TABLE") and "MergeTree" in statement:
                # Local tables replicate; nothing is created unreplicated.
                assert re.search(
                    r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{uuid\}/\{shard\}', '\{replica\}'",  # noqa: E501
                    statement,
                ), statement[:200]
                assert "non_replicated_deduplication_window" not in statement
            if "Distributed(" in statement:
                table = re.search(r"TABLE (?:IF NOT EXISTS )?(\w+)", statement).group(1)  # type: ignore[union-attr]
                base = re.sub(r"_v\d+$", "", table)
                assert statement.endswith(f"'{table}_local', {SHARDING_KEYS[base]})")


def test_tables_become_local_replicated_tables_behind_distributed_ones() -> None:
    create = next(s for o, s in _all() if o.startswith("CREATE TABLE IF NOT EXISTS otel_traces\n"))
    local, dist = create
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS otel_traces_local ON CLUSTER {C} (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')" in local
    assert "replicated_deduplication_window = 100000" in local
    assert dist == (
        f"CREATE TABLE IF NOT EXISTS otel_traces ON CLUSTER {C} AS otel_traces_local "
        "ENGINE = Distributed('c1', 'db', 'otel_traces_local', cityHash64(TraceId))"
    )
    payloads = next(
        s for o, s in _all() if o.startswith("CREATE TABLE IF NOT EXISTS retrace_payloads")
    )
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', FirstSeen)"
        in payloads[0]
    )


def test_views_read_and_write_the_local_tables() -> None:
    views = [s for _, ss in _all() for s in ss if s.startswith("CREATE MATERIALIZED VIEW")]
    assert views
    for view in views:
        assert re.search(r" TO \w+_local AS", view), view[:120]
        sources = re.findall(r"\bFROM (\w+)", view)
        assert sources and all(s.endswith("_local") for s in sources), view[:120]


def test_alters_exchanges_and_drops() -> None:
    column = cluster_statements(
        "ALTER TABLE otel_traces ADD COLUMN X String DEFAULT ''", "c1", "db"
    )
    assert column == [
        f"ALTER TABLE otel_traces_local ON CLUSTER {C} ADD COLUMN X String DEFAULT ''",
        f"ALTER TABLE otel_traces ON CLUSTER {C} ADD COLUMN X String DEFAULT ''",
    ]
    index = cluster_statements(
        "ALTER TABLE otel_traces ADD INDEX i X TYPE bloom_filter(0.01) GRANULARITY 1", "c1", "db"
    )
    assert index == [
        f"ALTER TABLE otel_traces_local ON CLUSTER {C} ADD INDEX i X TYPE bloom_filter(0.01) GRANULARITY 1"  # noqa: E501
    ]
    setting = cluster_statements(
        "ALTER TABLE retrace_trace_summaries MODIFY SETTING non_replicated_deduplication_window = 5",  # noqa: E501
        "c1",
        "db",
    )
    assert setting == [
        f"ALTER TABLE retrace_trace_summaries_local ON CLUSTER {C} MODIFY SETTING replicated_deduplication_window = 5"  # noqa: E501
    ]
    exchange = cluster_statements(
        "EXCHANGE TABLES retrace_payloads AND retrace_payloads_v4", "c1", "db"
    )
    assert (
        exchange[0]
        == f"EXCHANGE TABLES retrace_payloads_local AND retrace_payloads_v4_local ON CLUSTER {C}"
    )
    assert exchange[1].startswith(
        f"CREATE OR REPLACE TABLE retrace_payloads ON CLUSTER {C} AS retrace_payloads_local "
    )
    assert cluster_statements("DROP TABLE retrace_payloads_v4", "c1", "db") == [
        f"DROP TABLE retrace_payloads_v4 ON CLUSTER {C} SYNC",
        f"DROP TABLE retrace_payloads_v4_local ON CLUSTER {C} SYNC",
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE mystery (a UInt8) ENGINE = MergeTree ORDER BY a",
        "RENAME TABLE otel_traces TO x",
        "ALTER TABLE otel_traces ADD COLUMN X String, ADD INDEX i X TYPE minmax GRANULARITY 1",
        "CREATE TABLE otel_traces_x (a UInt8) ENGINE = Memory",
    ],
)
def test_statements_without_a_cluster_form_are_refused(statement: str) -> None:
    with pytest.raises(ClusterDDLError):
        cluster_statements(statement, "c1", "db")


def _report(mode: str, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.schemas.cluster_chdb", mode, str(tmp_path / mode)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, f"{mode}: no report (exit {done.returncode}): {done.stderr[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1][len("REPORT ") :])
    return report


@pytest.mark.integration
def test_the_cluster_schema_parses_and_runs_in_chdb(tmp_path: Path) -> None:
    report = _report("main", tmp_path)
    assert report["errors"] == []
    assert report["clusters"] == "1,1"  # one shard, this process
    assert report["parsed"] == report["statements"] == report["ran"]
    assert report["local_rows"] == 4  # inserted through otel_traces, stored in otel_traces_local
    summaries = {r["TraceId"]: r for r in report["summaries"]}
    assert summaries["trace-a"] == {
        "ProjectId": "team",
        "TraceId": "trace-a",
        "spans": 2,
        "llm": 1,
        "errors": 1,
        "tokens": 10,
        "models": ["m"],
    }
    # Written as the exporter writes: derived by the defaults, through the Distributed table.
    assert summaries["trace-b"] == {
        "ProjectId": "team",
        "TraceId": "trace-b",
        "spans": 2,
        "llm": 1,
        "errors": 1,
        "tokens": 7,
        "models": ["gpt"],
    }
    assert report["lookup"] == ['"trace-a"', '"trace-b"']
    assert report["derived"] == '"chat","gpt",7'

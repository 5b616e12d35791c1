"""Run the cluster form of every migration in chDB, on a single-shard cluster; print a JSON report.

``python -m tests.schemas.cluster_chdb main DIR`` (a process of its own: chDB allows one engine
directory per process, and this one starts with a cluster configuration).

chDB (clickhouse-local) knows ``remote_servers``, so it runs Distributed tables over a cluster
of one shard (this process). It has no ClickHouse Keeper (only the in-process test keeper, which its
replicated tables do not connect to): ``ON CLUSTER`` statements are refused ("Replicated DDL
queries are disabled") and a ``Replicated*MergeTree`` table is created but stays read-only.
So, what is checked here:

1. ``parsed``: every generated statement, exactly as the store sends it to a cluster, is parsed
   and formatted by ClickHouse's own parser (``formatQuery``).
2. (not run here) the ``Replicated*MergeTree`` CREATE statements: with the in-process test keeper
   configured, chDB accepts each of them (given the UUID ON CLUSTER would give it) and leaves the
   table read-only, but the process then hangs on reading ``system.tables`` and at exit, so no
   test depends on it.
3. ``ran``: every generated statement, less ``ON CLUSTER`` and with each ``Replicated*`` engine
   as its non-replicated form, runs in order: local tables, Distributed tables over them, views
   on the local tables, alters of both, exchanges and backfills through the Distributed tables.
4. ``summaries`` / ``lookup`` / ``derived``: spans inserted through the Distributed
   ``otel_traces`` (a Retrace-style insert naming every column, and an exporter-style insert
   naming only the exporter's columns) reach the local tables, and the views fill the summaries
   and the trace-id lookup, read back through their Distributed tables.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from chdb import session

from collector.store._sql import escape_param
from schemas.cluster import cluster_statements
from schemas.migrations import MIGRATIONS_TABLE_DDL, load_migrations

CLUSTER = "retrace_test"
DATABASE = "retrace"
CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
{keeper}  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <{cluster}>
      <shard><replica><host>localhost</host><port>9000</port></replica></shard>
    </{cluster}>
  </remote_servers>
</clickhouse>
"""
_REPLICATED = re.compile(
    r"Replicated(\w*MergeTree)\('/clickhouse/tables/\{uuid\}/\{shard\}', '\{replica\}'(, )?"
)


def all_statements() -> list[str]:
    out = cluster_statements(MIGRATIONS_TABLE_DDL, CLUSTER, DATABASE)
    for migration in load_migrations():
        for statement in migration.statements:
            out += cluster_statements(statement, CLUSTER, DATABASE)
    return out


def _without_cluster(statement: str) -> str:
    return statement.replace(f" ON CLUSTER '{CLUSTER}'", "")


def _unreplicated(statement: str) -> str:
    statement = _REPLICATED.sub(r"\1(", _without_cluster(statement))
    return statement.replace(
        "replicated_deduplication_window", "non_replicated_deduplication_window"
    )


def _session(directory: Path, *, keeper: bool) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cluster.xml"
    test_keeper = "<zookeeper><implementation>testkeeper</implementation></zookeeper>"
    config.write_text(CONFIG.format(cluster=CLUSTER, keeper=test_keeper if keeper else ""))
    return session.Session(f"file:{directory / 'engine'}?config-file={config}")


def main(directory: Path) -> dict[str, Any]:
    """Checks 1, 3 and 4."""
    s = _session(directory, keeper=False)

    def run(sql: str, fmt: str = "CSV") -> Any:
        return s.query(sql, fmt)

    report: dict[str, Any] = {"errors": []}
    report["clusters"] = str(
        run(f"SELECT shard_num, is_local FROM system.clusters WHERE cluster = '{CLUSTER}'")
    ).strip()
    statements = all_statements()
    report["statements"] = len(statements)
    parsed = 0
    for statement in statements:
        try:
            s.query("SELECT formatQuery({q:String})", "CSV", params={"q": escape_param(statement)})
            parsed += 1
        except Exception as exc:  # reported, the test fails on it
            report["errors"].append(f"parse: {statement[:120]}: {exc}")
    report["parsed"] = parsed

    run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    run(f"USE {DATABASE}")
    ran = 0
    for statement in statements:
        try:
            run(_unreplicated(statement))
            ran += 1
        except Exception as exc:
            report["errors"].append(f"run: {_unreplicated(statement)[:200]}: {exc}")
    report["ran"] = ran
    report["tables"] = str(
        run(
            f"SELECT name, engine FROM system.tables WHERE database = '{DATABASE}' ORDER BY name",
            "JSONCompact",
        )
    )

    ts = "toDateTime64('2026-06-01 10:00:00', 9, 'UTC')"
    foreground = "SETTINGS distributed_foreground_insert = 1"
    # Retrace's collector names every column.
    run(
        "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, Duration,"
        " StatusCode, ProjectId, Operation, Model, InputTokens, OutputTokens) "
        f"{foreground} VALUES "
        f"({ts}, 'trace-a', 's1', '', 'invoke_agent a', 5000, 'Ok', 'team', 'invoke_agent', '', 0, 0),"  # noqa: E501
        f"({ts}, 'trace-a', 's2', 's1', 'chat m', 1000, 'Error', 'team', 'chat', 'm', 10, 2)"
    )
    # The exporter names only its own columns: the defaults (0007) derive the rest.
    run(
        "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,"
        " ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode) "
        f"{foreground} VALUES "
        f"({ts}, 'trace-b', 's1', '', 'root', 'Internal', 'svc', {{'retrace.project': 'team'}}, {{}}, 9000, 'Unset'),"  # noqa: E501
        f"({ts}, 'trace-b', 's2', 's1', 'llm', 'Client', 'svc', {{'retrace.project': 'team'}},"
        " {'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt',"
        " 'gen_ai.usage.input_tokens': '7'}, 1000, 'STATUS_CODE_ERROR')"
    )
    report["local_rows"] = int(str(run("SELECT count() FROM otel_traces_local")).strip())
    report["summaries"] = json.loads(
        str(
            run(
                "SELECT ProjectId, TraceId, sum(SpanCount) AS spans, sum(LlmCalls) AS llm,"
                " sum(ErrorCount) AS errors, sum(InputTokens) AS tokens,"
                " groupUniqArrayArray(Models) AS models"
                " FROM retrace_trace_summaries GROUP BY ProjectId, TraceId ORDER BY TraceId",
                "JSONEachRow",
            )
        )
        .strip()
        .replace("}\n{", "},{")
        .join("[]")
    )
    report["lookup"] = str(
        run("SELECT TraceId FROM otel_traces_trace_id_ts ORDER BY TraceId")
    ).split()
    report["derived"] = str(
        run(
            "SELECT Operation, Model, InputTokens FROM otel_traces WHERE TraceId = 'trace-b' AND SpanId = 's2'"  # noqa: E501
        )
    ).strip()
    return report


if __name__ == "__main__":
    result = main(Path(sys.argv[2]))
    print("REPORT " + json.dumps(result), flush=True)
    os._exit(0)  # chDB's engine aborts on interpreter teardown with a cluster configured

"""The migrations, rewritten for a ClickHouse cluster (``RETRACE_CLICKHOUSE_CLUSTER``).

A migration is written for one server (``schemas/migrations``). On a cluster each table ``t``
becomes two: ``t_local``, a ``Replicated*MergeTree`` on every node holding that shard's rows, and
``t``, a ``Distributed`` table over the ``t_local`` of every shard. The store reads and inserts
through ``t`` with the same SQL as on one server; each node's materialized views read the rows
inserted into its own ``otel_traces_local`` and write its own ``*_local`` summary tables. Spans
are sharded by ``cityHash64(TraceId)``, so every span of a trace is on one shard and its summary
there is the trace's whole summary (reads still merge with ``GROUP BY ProjectId, TraceId``).

``cluster_statements`` rewrites one statement; every statement kind the migrations use is
handled, and anything else is refused (``ClusterDDLError``) so a new migration cannot slip
through unconverted (``tests/schemas/test_cluster.py`` converts every migration):

* ``CREATE TABLE t (...) ENGINE = XMergeTree(args) ...`` -> ``CREATE TABLE t_local ON CLUSTER c
  (...) ENGINE = ReplicatedXMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', args)
  ...`` and ``CREATE TABLE t ON CLUSTER c AS t_local ENGINE = Distributed(c, db, t_local, key)``.
  ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window``.
* ``CREATE MATERIALIZED VIEW v TO t AS SELECT ... FROM s`` -> ``... v ON CLUSTER c TO t_local AS
  SELECT ... FROM s_local``.
* ``ALTER TABLE t <column changes>`` -> on ``t_local`` and on ``t`` (a Distributed table has the
  columns and defaults of its local table: an insert through it that omits a column gets the
  default there); ``ALTER TABLE t <index or setting>`` -> on ``t_local`` only.
* ``DROP TABLE t`` -> both; ``DROP VIEW v`` -> ``ON CLUSTER``.
* ``EXCHANGE TABLES a AND b`` -> the local tables are exchanged, and ``a`` is recreated over
  ``a_local`` (its new columns); the Distributed tables name their local tables, so they stay.
* ``INSERT INTO t ... SELECT ... FROM s`` (backfills) -> unchanged, through the Distributed
  tables; the store runs them with ``distributed_foreground_insert = 1`` so the rows are on the
  shards when the next statement runs.

The replica path uses the ``{uuid}`` of a table created ``ON CLUSTER`` (the same on every
replica, and it moves with the table through ``EXCHANGE``) and the ``{shard}``/``{replica}``
macros every node defines (``deploy/cluster/``).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "LOCAL_SUFFIX",
    "SHARDING_KEYS",
    "ClusterDDLError",
    "cluster_statements",
    "local_name",
]

LOCAL_SUFFIX: Final = "_local"
REPLICA_PATH: Final = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"

# Each table's sharding key: rows that must meet (a trace's spans, the versions of one
# ReplacingMergeTree key) land on one shard. Rebuilt copies (``t_v5``) share their table's key.
SHARDING_KEYS: Final[dict[str, str]] = {
    "otel_traces": "cityHash64(TraceId)",
    "otel_traces_trace_id_ts": "cityHash64(TraceId)",
    "retrace_span_attributes": "cityHash64(TraceId)",
    "retrace_trace_summaries": "cityHash64(TraceId)",
    "retrace_feedback": "cityHash64(TraceId)",
    "retrace_suites": "cityHash64(TraceId)",
    "retrace_payloads": "cityHash64(Hash)",
    "retrace_replays": "cityHash64(OriginalTraceId)",
    "retrace_approvals": "cityHash64(ApprovalId)",
    "retrace_api_keys": "cityHash64(KeyHash)",
    "retrace_schema_migrations": "cityHash64(Version)",
}
# Statements a Distributed table accepts in an ALTER: column changes only.
_COLUMN_CLAUSE = re.compile(r"^\s*(ADD|MODIFY|DROP|RENAME|COMMENT)\s+COLUMN\b", re.I)
_IDENT: Final = r"`?([A-Za-z_][A-Za-z0-9_]*)`?"


class ClusterDDLError(ValueError):
    """A statement the cluster rewrite does not know how to convert."""


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def _sharding_key(table: str) -> str:
    base = re.sub(r"_v\d+$", "", table)
    key = SHARDING_KEYS.get(base)
    if key is None:
        raise ClusterDDLError(
            f"table {table} has no sharding key: add it to schemas.cluster.SHARDING_KEYS"
        )
    return key


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _distributed(table: str, cluster: str, database: str, *, replace: bool = False) -> str:
    head = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    return (
        f"{head} {table} ON CLUSTER {_quote(cluster)} AS {local_name(table)} "
        f"ENGINE = Distributed({_quote(cluster)}, {_quote(database)}, "
        f"{_quote(local_name(table))}, {_sharding_key(table)})"
    )


_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?{_IDENT}\s*\(", re.I | re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)\b(\s*\(([^()]*)\))?", re.I)
_CREATE_VIEW = re.compile(
    rf"^CREATE\s+MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?{_IDENT}\s+TO\s+{_IDENT}\s+AS\b",
    re.I | re.S,
)
_FROM = re.compile(rf"\b(FROM|JOIN)\s+{_IDENT}", re.I)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+{_IDENT}\s+(.*)$", re.I | re.S)
_DROP = re.compile(rf"^DROP\s+(TABLE|VIEW)\s+(IF\s+EXISTS\s+)?{_IDENT}\s*$", re.I)
_EXCHANGE = re.compile(rf"^EXCHANGE\s+TABLES\s+{_IDENT}\s+AND\s+{_IDENT}\s*$", re.I)
_INSERT = re.compile(rf"^INSERT\s+INTO\s+{_IDENT}\b", re.I)
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")


def _replicated_settings(sql: str) -> str:
    return _DEDUP_WINDOW.sub("replicated_deduplication_window", sql)


def _create_table(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    table = match.group(2)
    engine = _ENGINE.search(sql)
    if engine is None:
        raise ClusterDDLError(f"CREATE TABLE {table}: only *MergeTree engines can be replicated")
    args = (engine.group(3) or "").strip()
    replicated = (
        f"ENGINE = Replicated{engine.group(1)}({REPLICA_PATH}{', ' + args if args else ''})"
    )
    body = sql[match.end() - 1 : engine.start()] + replicated + sql[engine.end() :]
    exists = "IF NOT EXISTS " if match.group(1) else ""
    local = (
        f"CREATE TABLE {exists}{local_name(table)} ON CLUSTER {_quote(cluster)} "
        f"{_replicated_settings(body)}"
    )
    return [local, _distributed(table, cluster, database)]


def _split_clauses(text: str) -> list[str]:
    """The comma-separated clauses of an ALTER, commas inside parentheses or quotes kept."""
    clauses: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    escaped = False
    for ch in text:
        if quote:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in ("'", "`", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            clauses.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    clauses.append("".join(current).strip())
    return [c for c in clauses if c]


def cluster_statements(sql: str, cluster: str, database: str) -> list[str]:
    """The statements that do on ``cluster`` what ``sql`` does on one server.

    ``database`` is the store's database (Distributed tables name it). Raises
    ``ClusterDDLError`` for a statement kind the rewrite does not cover.
    """
    sql = sql.strip().rstrip(";").strip()
    on = f"ON CLUSTER {_quote(cluster)}"
    if match := _CREATE_TABLE.match(sql):
        return _create_table(match, sql, cluster, database)
    if match := _CREATE_VIEW.match(sql):
        exists = "IF NOT EXISTS " if match.group(1) else ""
        view, target = match.group(2), match.group(3)
        select = sql[match.end() :]

        def _local_source(m: re.Match[str]) -> str:
            name = m.group(2)
            _sharding_key(name)  # a view reads a known, sharded table
            return f"{m.group(1)} {local_name(name)}"

        select = _FROM.sub(_local_source, select)
        return [f"CREATE MATERIALIZED VIEW {exists}{view} {on} TO {local_name(target)} AS{select}"]
    if match := _ALTER.match(sql):
        table, rest = match.group(1), match.group(2)
        _sharding_key(table)
        clauses = _split_clauses(rest)
        local = f"ALTER TABLE {local_name(table)} {on} {_replicated_settings(rest)}"
        if all(_COLUMN_CLAUSE.match(c) for c in clauses):
            return [local, f"ALTER TABLE {table} {on} {rest}"]
        if any(_COLUMN_CLAUSE.match(c) for c in clauses):
            raise ClusterDDLError(
                f"ALTER TABLE {table} mixes column changes with others: split the statement"
            )
        return [local]
    if match := _DROP.match(sql):
        kind, exists, name = match.group(1).upper(), match.group(2) or "", match.group(3)
        if kind == "VIEW":
            return [f"DROP VIEW {exists}{name} {on} SYNC"]
        _sharding_key(name)
        return [
            f"DROP TABLE {exists}{name} {on} SYNC",
            f"DROP TABLE {exists}{local_name(name)} {on} SYNC",
        ]
    if match := _EXCHANGE.match(sql):
        first, second = match.group(1), match.group(2)
        _sharding_key(first)
        _sharding_key(second)
        return [
            f"EXCHANGE TABLES {local_name(first)} AND {local_name(second)} {on}",
            _distributed(first, cluster, database, replace=True),
        ]
    if match := _INSERT.match(sql):
        _sharding_key(match.group(1))
        return [sql]
    raise ClusterDDLError(f"no cluster form is known for: {sql[:80]}")


def create_database_statement(database_sql: str, cluster: str) -> str:
    """``CREATE DATABASE IF NOT EXISTS db`` on every node of the cluster."""
    return f"{database_sql} ON CLUSTER {_quote(cluster)}"

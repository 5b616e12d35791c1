"""The server backend: a ClickHouse server reached with clickhouse-connect over HTTP.

Stateless: any number of collectors may share one server. Inserts travel as Arrow, results come
back as Arrow and are read with polars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import pyarrow as pa

from collector.store import _sql as q
from collector.store._engine import SqlTraceStore
from schemas.cluster import ClusterDDLError, cluster_statements, create_database_statement
from schemas.errors import ConfigError, StoreError


class ClickHouseTraceStore(SqlTraceStore):
    """A store in database ``database`` of the server at ``url`` (http[s]://host[:port]);
    with ``cluster``, of that ClickHouse cluster (``RETRACE_CLICKHOUSE_CLUSTER``): the schema is
    created ``ON CLUSTER`` as replicated local tables behind Distributed ones."""

    backend_name = "clickhouse"

    def __init__(
        self, url: str, *, user: str, password: str, database: str, cluster: str | None = None
    ) -> None:
        super().__init__()
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        self._errors: tuple[type[Exception], ...] = (ClickHouseError, OSError)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid ClickHouse URL {url!r}: expected http[s]://host[:port]")
        q.quote_identifier(database)
        self.database = database
        # On a cluster (schemas.cluster): the schema is sharded and replicated, and an insert
        # through a Distributed table returns once the shards have the rows, so an acknowledged
        # spool batch is stored (and a migration's backfill is there for its next statement).
        self.cluster = cluster or None
        self._settings: dict[str, Any] = (
            {"distributed_foreground_insert": 1} if self.cluster else {}
        )
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":")
        try:
            self._client: Any = clickhouse_connect.get_client(
                host=parts.hostname,
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                secure=parts.scheme == "https",
                username=parts.username or user,
                password=parts.password or password,
                autogenerate_session_id=False,
            )
        except self._errors as exc:
            raise StoreError(f"cannot reach ClickHouse at {self.url}: {exc}") from exc
        try:
            self._create_database()
        except StoreError:
            self.close()
            raise

    # --- primitives ----------------------------------------------------------------------------
    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._live().command(
                sql, parameters=dict(params) if params else None, settings=self._settings or None
            )
        except self._errors as exc:
            raise StoreError(f"ClickHouse at {self.url} failed: {exc}") from exc

    def _query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            table: pa.Table = self._live().query_arrow(
                sql, parameters=dict(params) if params else None, use_strings=True
            )
        except self._errors as exc:
            raise StoreError(f"ClickHouse at {self.url} failed: {exc}") from exc
        return table

    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        frame = pl.from_arrow(self._query_arrow(sql, params))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _insert(self, table: str, data: pa.Table, settings: Mapping[str, Any]) -> None:
        try:
            merged = {**self._settings, **settings}
            self._live().insert_arrow(table, data, settings=merged or None)
        except self._errors as exc:
            raise StoreError(
                f"ClickHouse at {self.url}: insert into {table} failed: {exc}"
            ) from exc

    def _live(self) -> Any:
        if self._client is None:
            raise StoreError(f"the store at {self.url} is closed")
        return self._client

    def _create_database(self) -> None:
        self._live().database = None
        statement = q.create_database_sql(self.database)
        if self.cluster:
            statement = create_database_statement(statement, self.cluster)
        self._command(statement)
        self._live().database = self.database

    def _ddl(self, statement: str) -> list[str]:
        if not self.cluster:
            return [statement]
        try:
            return cluster_statements(statement, self.cluster, self.database)
        except ClusterDDLError as exc:
            raise StoreError(f"cannot apply the schema to cluster {self.cluster}: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

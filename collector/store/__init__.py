"""Trace store backends: embedded chDB (default) or a ClickHouse server, one interface.

store = open_store(settings)   # chDB in settings.data_dir unless settings.clickhouse_url
store.insert_spans(project, spans, payloads, dedup_token=batch_id)
store.insert_arrow(project, spans_to_arrow(project, spans), payloads, dedup_token=batch_id)
detail = store.get_trace(project, trace_id)
"""

from __future__ import annotations

from collector._span_batch import SPAN_SCHEMA, spans_to_arrow
from collector.store.base import TraceStore
from schemas.errors import ConfigError
from schemas.settings import Settings

__all__ = ["SPAN_SCHEMA", "TraceStore", "open_store", "spans_to_arrow"]


def open_store(settings: Settings, *, migrate: bool = True) -> TraceStore:
    """Open the store the settings name and bring its schema up to date.

    Raises ``StoreLockedError`` when another process owns the embedded store,
    ``SchemaVersionError`` when the store is newer than this code, ``StoreError`` when a server
    cannot be reached.
    """
    store: TraceStore
    if settings.clickhouse_cluster and not settings.clickhouse_url:
        raise ConfigError(
            "RETRACE_CLICKHOUSE_CLUSTER names a ClickHouse cluster: it needs a server "
            "(RETRACE_CLICKHOUSE_URL / --clickhouse-url), not the embedded store"
        )
    if settings.clickhouse_url:
        from collector.store.clickhouse import ClickHouseTraceStore

        store = ClickHouseTraceStore(
            settings.clickhouse_url,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            database=settings.clickhouse_database,
            cluster=settings.clickhouse_cluster,
        )
    else:
        from collector.store.chdb import ChdbTraceStore

        store = ChdbTraceStore(settings.data_dir)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store

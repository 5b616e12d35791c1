"""Fixtures for the schema tests: a ClickHouse HTTP endpoint for the server backend."""

from tests.fixtures.chdb_http import clickhouse_url

__all__ = ["clickhouse_url"]

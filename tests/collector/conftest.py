"""Fixtures for the collector tests: a ClickHouse HTTP endpoint for the server backend."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector.test_app_durability import ChdbHttpServer
from tests.fixtures.chdb_http import clickhouse_url

__all__ = ["chdb_http", "clickhouse_url"]


@pytest.fixture
def chdb_http(tmp_path: Path) -> Iterator[ChdbHttpServer]:
    """chDB over the ClickHouse HTTP interface, in a subprocess a test may stop and restart."""
    server = ChdbHttpServer(tmp_path / "engine")
    server.start()
    yield server
    server.stop()

"""``retrace migrate``: create or upgrade a store's schema and exit (run it once before starting
several collectors, or stock OTel Collectors, on one ClickHouse)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from schemas.migrations import SCHEMA_VERSION


def _retrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retrace", *args], capture_output=True, text=True, timeout=300
    )


def test_migrate_an_embedded_store(tmp_path: Path) -> None:
    done = _retrace("migrate", "--data-dir", str(tmp_path / "store"))
    assert done.returncode == 0, done.stderr
    assert f"schema version {SCHEMA_VERSION}" in done.stdout
    again = _retrace("migrate", "--data-dir", str(tmp_path / "store"))
    assert again.returncode == 0, again.stderr


def test_migrate_a_clickhouse_database(clickhouse_url: str) -> None:
    done = _retrace("migrate", "--clickhouse-url", clickhouse_url, "--database", "migrated_db")
    assert done.returncode == 0, done.stderr
    assert "database migrated_db" in done.stdout


def test_a_cluster_needs_a_server(tmp_path: Path) -> None:
    done = _retrace("migrate", "--data-dir", str(tmp_path / "s"), "--cluster", "retrace")
    assert done.returncode == 2
    assert "RETRACE_CLICKHOUSE_CLUSTER" in done.stderr
    assert "Traceback" not in done.stderr

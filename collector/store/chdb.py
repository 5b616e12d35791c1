"""The embedded backend: chDB (the ClickHouse engine in-process) in a directory on disk.

One process owns the directory. chDB itself refuses a second engine path in the same process and
locks its files, but its error does not say who holds them; a lock file of our own, taken before
chDB opens, records the owner's PID and command line so the second process can be told.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa

from collector.store import _sql as q
from collector.store._engine import SqlTraceStore
from schemas.errors import StoreError, StoreLockedError

EMBEDDED_DATABASE = "retrace"
LOCK_FILE_NAME = "chdb.lock"
ENGINE_DIR_NAME = "chdb"


def _command_line() -> str:
    try:
        raw = Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
        return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        return " ".join(sys.argv)


class StoreLock:
    """An exclusive ``flock`` on ``DIR/chdb.lock`` naming its owner; released on close."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE_NAME
        data_dir.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "an unknown process"
            handle.close()
            pid, _, cmd = owner.partition(" ")
            who = f"process {pid} ({cmd})" if pid.isdigit() else owner
            raise StoreLockedError(
                f"the store in {data_dir} is owned by {who}; stop it or talk to its collector "
                "instead of opening the directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {_command_line()}\n")
        handle.flush()
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ChdbTraceStore(SqlTraceStore):
    """A store in ``data_dir`` owned by this process (one chDB directory per process)."""

    backend_name = "chdb"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        from chdb import session as chdb_session  # heavy import, only when used

        self.data_dir = Path(data_dir)
        self._lock = StoreLock(self.data_dir)
        self._mutex = threading.RLock()
        # Each insert's rows pass through a file here (see ``_insert``); a crash may leave one.
        self._insert_dir = self.data_dir / "inserts"
        self._insert_dir.mkdir(exist_ok=True)
        for stale in self._insert_dir.glob("insert-*.arrows"):
            stale.unlink(missing_ok=True)
        try:
            self._session: Any = chdb_session.Session(  # type: ignore[no-untyped-call]
                str(self.data_dir / ENGINE_DIR_NAME)
            )
        except Exception as exc:
            self._lock.release()
            raise StoreError(f"cannot open the chDB store in {self.data_dir}: {exc}") from exc
        self._closed = False
        try:
            self._create_database()
        except StoreError:
            self.close()
            raise

    # --- primitives ----------------------------------------------------------------------------
    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        rendered = q.render_params(params or {})
        for name, value in (params or {}).items():
            if isinstance(value, str):  # scalars travel escaped; arrays are parsed as literals
                rendered[name] = q.escape_param(value)
        with self._mutex:
            if self._closed:
                raise StoreError(f"the chDB store in {self.data_dir} is closed")
            try:
                return self._session.query(sql, fmt, params=rendered)
            except Exception as exc:
                raise StoreError(f"chDB query failed: {exc}") from exc

    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def _query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        table: pa.Table = self._run(sql, "ArrowTable", params)
        return table

    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        frame = pl.from_arrow(self._query_arrow(sql, params))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _insert(self, table: str, data: pa.Table, settings: Mapping[str, Any]) -> None:
        # INSERT ... SELECT FROM file(<Arrow stream>), not chDB's streaming insert
        # (``send_insert``): checked on chDB 4.4, a streaming insert whose rows the engine refuses
        # while writing them (a CHECK constraint, a DEFAULT expression that throws) reports
        # ``rows_written`` and raises nothing, yet stores nothing. A silently lost batch would be
        # acknowledged and dropped from the spool; this statement raises like any other. (Reading
        # the table through chDB's ``Python()`` table function instead cost twice the CPU.)
        columns = ", ".join(f"`{name}`" for name in data.schema.names)
        clause = ""
        if settings:
            clause = " SETTINGS " + ", ".join(
                f"{k} = {q.render_literal(v)}" for k, v in settings.items()
            )
        with self._mutex:
            if self._closed:
                raise StoreError(f"the chDB store in {self.data_dir} is closed")
            try:
                with tempfile.NamedTemporaryFile(
                    dir=self._insert_dir, prefix="insert-", suffix=".arrows"
                ) as body:
                    with pa.ipc.new_stream(body, data.schema) as writer:
                        writer.write_table(data)
                    body.flush()
                    source = q.render_literal(body.name)
                    self._session.query(
                        f"INSERT INTO {table} ({columns}){clause} "
                        f"SELECT {columns} FROM file({source}, 'ArrowStream')"
                    )
            except Exception as exc:
                raise StoreError(f"chDB insert into {table} failed: {exc}") from exc

    def _create_database(self) -> None:
        self._command(q.create_database_sql(EMBEDDED_DATABASE))
        self._command(f"USE {q.quote_identifier(EMBEDDED_DATABASE)}")
        self._command("SET output_format_arrow_string_as_string = 1")

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                self._session.close()
            finally:
                self._lock.release()

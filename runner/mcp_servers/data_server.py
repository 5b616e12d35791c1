"""MCP server: read-only SQL over the bundled sample dataset (or any SQLite file).

``python -m runner.mcp_servers.data_server [--db PATH] [--max-rows N] [--span-file PATH]
[--http PORT]`` (stdio by default; ``--http`` serves streamable HTTP on 127.0.0.1:PORT/mcp)

Tools: ``list_tables()``, ``describe_table(name)``, ``query(sql)``. Writes are impossible four
ways over: the SQL must parse (sqlglot) as a single read-only query before it reaches SQLite;
the database is opened ``mode=ro``; ``PRAGMA query_only`` is on; and an SQLite authorizer
refuses every action but reading. A progress handler stops runaway queries.
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from runner.data import SAMPLE_DB
from runner.mcp_servers._tracing import configure_server_tracing
from runner.policy import sql_read_only_problem
from schemas.errors import InvalidInputError
from schemas.settings import Settings

SERVER_NAME: Final = "retrace-data"
DEFAULT_MAX_ROWS: Final = 200
DEFAULT_MAX_CHARS: Final = 20_000
DEFAULT_TIMEOUT_S: Final = 5.0

# SQLite authorizer action codes a read-only query needs.
_READ_ACTIONS: Final = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


@dataclass(frozen=True)
class QueryResult:
    """Rows of one query, capped at ``max_rows``; ``truncated`` says whether more existed.

    Deliberately no timings: a replay compares tool results, and they must be reproducible.
    """

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool

    def to_csv(self, max_chars: int = DEFAULT_MAX_CHARS) -> str:
        """The rows as CSV with a header; cut (and marked) beyond ``max_chars``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        text = buf.getvalue()
        if len(text) > max_chars:
            text = text[:max_chars].rsplit("\n", 1)[0] + "\n"
            return text + f"... output cut at {max_chars} characters\n"
        if self.truncated:
            text += f"... more rows not shown (limit {len(self.rows)})\n"
        return text


def _authorize(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


class ReadOnlyDatabase:
    """A SQLite file opened read-only, one connection per operation (thread-safe, stateless)."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not path.is_file():
            raise InvalidInputError(f"database file {path} does not exist")
        self.path = path.resolve()
        self.max_rows = max_rows
        self.timeout_s = timeout_s

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only = ON")
            deadline = time.monotonic() + self.timeout_s
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            conn.set_authorizer(_authorize)
            yield conn
        finally:
            conn.close()

    def tables(self) -> list[tuple[str, int]]:
        """(name, row count) for every table, by name."""
        with self._connect() as conn:
            conn.set_authorizer(None)  # sqlite_master reads are ours, not the caller's
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            # Names come from sqlite_master itself; quoting guards odd characters.
            return [
                (
                    name,
                    conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), "")}"').fetchone()[
                        0
                    ],
                )
                for name in names
            ]

    def describe(self, name: str) -> dict[str, Any]:
        """Columns (name, type, not null, primary key) and three sample rows of ``name``."""
        known = dict(self.tables())
        if name not in known:
            raise InvalidInputError(
                f"no table named {name!r}; tables are: {', '.join(sorted(known))}"
            )
        with self._connect() as conn:
            conn.set_authorizer(None)
            cols = conn.execute(
                'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (name,)
            ).fetchall()
            sample = conn.execute(f'SELECT * FROM "{name}" LIMIT 3').fetchall()
        return {
            "table": name,
            "rows": known[name],
            "columns": [
                {"name": c[0], "type": c[1], "not_null": bool(c[2]), "primary_key": bool(c[3])}
                for c in cols
            ],
            "sample_rows": [list(r) for r in sample],
        }

    def query(self, sql: str) -> QueryResult:
        """Run one read-only query. Raises InvalidInputError for refused or failing SQL."""
        problem = sql_read_only_problem(sql, dialect="sqlite")
        if problem is not None:
            raise InvalidInputError(f"refused: {problem}")
        with self._connect() as conn:
            try:
                cursor = conn.execute(sql)
                rows = cursor.fetchmany(self.max_rows + 1)
            except sqlite3.DatabaseError as exc:
                message = str(exc)
                if "interrupted" in message:
                    message = f"query took longer than {self.timeout_s:g}s and was stopped"
                raise InvalidInputError(f"query failed: {message}") from None
            columns = [d[0] for d in cursor.description or []]
        return QueryResult(
            columns=columns,
            rows=[list(r) for r in rows[: self.max_rows]],
            truncated=len(rows) > self.max_rows,
        )


def _text(text: str, *, structured: Any = None, error: bool = False) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=error,
    )


def build_server(db: ReadOnlyDatabase) -> MCPServer[Any]:
    """The MCP server over ``db``; every failure is an ``isError`` result, never a crash."""
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions=(
            "Read-only SQL (SQLite dialect) over a store's customers, products, orders and "
            "order_items. Start with list_tables and describe_table."
        ),
    )

    @server.tool()
    async def list_tables() -> CallToolResult:
        """List the tables of the dataset with their row counts."""
        tables = db.tables()
        text = "\n".join(f"{name} ({rows} rows)" for name, rows in tables)
        return _text(text, structured={"tables": [{"name": n, "rows": r} for n, r in tables]})

    @server.tool()
    async def describe_table(name: str) -> CallToolResult:
        """Describe one table: its columns (name, type, keys) and three sample rows."""
        try:
            info = db.describe(name)
        except InvalidInputError as exc:
            return _text(exc.message, error=True, structured={"error": exc.message})
        lines = [f"table {info['table']} ({info['rows']} rows)"]
        for col in info["columns"]:
            flags = " PRIMARY KEY" if col["primary_key"] else ""
            flags += " NOT NULL" if col["not_null"] else ""
            lines.append(f"  {col['name']} {col['type']}{flags}")
        lines.append("sample rows:")
        lines.extend("  " + ", ".join(map(str, row)) for row in info["sample_rows"])
        return _text("\n".join(lines), structured=info)

    @server.tool()
    async def query(sql: str) -> CallToolResult:
        """Run ONE read-only SQL query (SELECT / WITH ... SELECT, SQLite dialect).

        Returns CSV with a header row, at most 200 rows; aggregate in SQL for big results.
        """
        try:
            result = db.query(sql)
        except InvalidInputError as exc:
            return _text(exc.message, error=True, structured={"error": exc.message})
        structured = {
            "columns": result.columns,
            "rows": result.rows,
            "row_count": len(result.rows),
            "truncated": result.truncated,
        }
        return _text(result.to_csv(), structured=structured)

    return server


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: serve over stdio until stdin closes."""
    parser = argparse.ArgumentParser(description="Retrace data MCP server (read-only SQL).")
    parser.add_argument("--db", type=Path, default=SAMPLE_DB, help="SQLite file (read-only)")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per query, s")
    parser.add_argument("--span-file", type=Path, default=None, help="also write spans here")
    parser.add_argument("--http", type=int, default=None, metavar="PORT", help="serve HTTP")
    args = parser.parse_args(argv)
    try:
        db = ReadOnlyDatabase(args.db, max_rows=args.max_rows, timeout_s=args.timeout)
    except InvalidInputError as exc:
        parser.exit(2, f"error: {exc.message}\n")
    provider = configure_server_tracing(SERVER_NAME, Settings(), span_file=args.span_file)
    try:
        server = build_server(db)
        if args.http is not None:
            server.run("streamable-http", host="127.0.0.1", port=args.http)
        else:
            server.run("stdio")
    finally:
        if provider is not None:
            provider.shutdown()


if __name__ == "__main__":
    main()

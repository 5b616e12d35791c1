"""Dead letters: batches the store rejects for good, set aside on disk instead of retried forever.

The spool writer retries a failing insert with backoff while the store is down. A batch the
store *answers* but refuses (a ClickHouse data error such as ``VIOLATED_CONSTRAINT`` or
``CANNOT_PARSE_TEXT``, a span table that fails the store's own checks, or a batch that still fails
after ``dead_letter_after`` attempts while the store answers pings) would block ingest behind it
forever. It goes to ``DATA_DIR/dead-letter/`` instead:

- ``<utc time>-<id>.json``: when, why (the error), which project and spool range, how many spans;
- ``<utc time>-<id>.arrow``: the batch's span rows (Arrow IPC file, the ``otel_traces`` layout);
- ``<utc time>-<id>.payloads.arrow``: its payloads (``sha256``, ``data``), when it has any;
- ``<utc time>-<id>.bin``: for a spool record that no longer decodes, the record as spooled.

Every file is fsync'ed before the spool moves past the batch, so nothing acknowledged is lost
silently. The JSON is written last: a ``.json`` names a complete dead letter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.errors import InvalidInputError

log = logging.getLogger(__name__)

# ClickHouse error codes that say "these rows can never be inserted" (a value the column cannot
# take), as opposed to the store being unreachable, overloaded, read-only or its schema being
# wrong for every batch alike (which an operator or a retry gets past).
PERMANENT_CLICKHOUSE_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        469,  # VIOLATED_CONSTRAINT
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)
# These are caused by particular rows: the rest of the batch may well be fine, so a refused
# batch is split to find them (see SpoolWriter).
ROW_CLICKHOUSE_CODES = PERMANENT_CLICKHOUSE_CODES

# Codes that say "not now" or "not this batch's fault" (the store is misconfigured, full or
# mid-change, so every batch fails alike): a batch failing with one of them is never
# dead-lettered, however many attempts it takes; the spool holds it (and back-pressure follows).
TRANSIENT_CLICKHOUSE_CODES = frozenset(
    {
        8,  # THERE_IS_NO_COLUMN
        10,  # NOT_FOUND_COLUMN_IN_BLOCK
        16,  # NO_SUCH_COLUMN_IN_TABLE
        20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        81,  # UNKNOWN_DATABASE
        164,  # READONLY
        225,  # NO_ZOOKEEPER
        236,  # ABORTED
        243,  # NOT_ENOUGH_SPACE
        285,  # TOO_FEW_LIVE_REPLICAS
        286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
        394,  # QUERY_WAS_CANCELLED
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_CODE = re.compile(r"\bCode: (\d+)\b")


def _codes(exc: BaseException) -> list[int]:
    """The ClickHouse error codes named along ``exc``'s cause chain."""
    codes: list[int] = []
    seen: BaseException | None = exc
    while seen is not None:
        codes += [int(code) for code in _CODE.findall(str(seen))]
        seen = seen.__cause__
    return codes


def caused_by_rows(exc: BaseException) -> bool:
    """Whether ``exc`` names a ClickHouse error that some rows cause, not the whole batch."""
    return any(code in ROW_CLICKHOUSE_CODES for code in _codes(exc))


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` names a ClickHouse error that a later retry gets past."""
    return any(code in TRANSIENT_CLICKHOUSE_CODES for code in _codes(exc))


def permanent_reason(exc: BaseException) -> str | None:
    """Why ``exc`` (from a store insert) will fail the same way on every retry, or None when a
    retry may succeed (store down, timeouts, too many parts, memory...)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InvalidInputError):
            return f"the store refuses the batch: {seen.message}"
        seen = seen.__cause__
    for code in _codes(exc):
        if code in PERMANENT_CLICKHOUSE_CODES:
            return f"the store rejects the data (ClickHouse code {code})"
    return None


class DeadLetters:
    """The dead-letter directory of one collector. Thread-safe; counts what it wrote."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.batches = 0
        self.spans = 0
        self._lock = threading.Lock()

    def add_batch(
        self,
        *,
        project: str,
        spans: pa.Table,
        payloads: Mapping[str, bytes],
        reason: str,
        error: str,
        attempts: int,
        spool_range: str,
    ) -> Path:
        """Write one refused batch (rows, payloads, reason); returns the ``.json`` path."""
        stem = self._stem()
        files = {"spans": f"{stem}.arrow"}
        self._write(self.directory / files["spans"], _arrow_file(spans))
        if payloads:
            files["payloads"] = f"{stem}.payloads.arrow"
            table = pa.table(
                {
                    "sha256": pa.array(list(payloads), pa.string()),
                    "data": pa.array(list(payloads.values()), pa.large_binary()),
                }
            )
            self._write(self.directory / files["payloads"], _arrow_file(table))
        meta = {
            "kind": "batch",
            "project": project,
            "span_count": spans.num_rows,
            "payload_count": len(payloads),
            "reason": reason,
            "error": error,
            "attempts": attempts,
            "spool_range": spool_range,
            "files": files,
        }
        path = self._finish(stem, meta)
        with self._lock:
            self.batches += 1
            self.spans += spans.num_rows
        return path

    def add_record(self, data: bytes, *, reason: str, error: str, spool_position: str) -> Path:
        """Write one spool record that no longer decodes (as spooled) with the reason."""
        stem = self._stem()
        self._write(self.directory / f"{stem}.bin", data)
        meta = {
            "kind": "spool_record",
            "reason": reason,
            "error": error,
            "spool_position": spool_position,
            "files": {"record": f"{stem}.bin"},
        }
        path = self._finish(stem, meta)
        with self._lock:
            self.batches += 1
        return path

    def _stem(self) -> str:
        now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{now}-{secrets.token_hex(4)}"

    def _finish(self, stem: str, meta: dict[str, Any]) -> Path:
        meta = {"time": datetime.now(UTC).isoformat(), **meta}
        path = self.directory / f"{stem}.json"
        self._write(path, json.dumps(meta, indent=2).encode() + b"\n")
        return path

    def _write(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` durably (temp file, fsync, rename, fsync the directory)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())

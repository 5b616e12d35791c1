"""Versioned ClickHouse DDL, applied in order and idempotently by the store at start-up.

A migration is a file ``NNNN_description.sql`` here; statements are separated by ``;`` at the end
of a line. ``SCHEMA_VERSION`` is the newest version this code understands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

MIGRATIONS_TABLE = "retrace_schema_migrations"
MIGRATIONS_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    Version UInt32,
    Description String,
    AppliedAt DateTime64(3) DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY Version
"""

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def _split(sql: str) -> tuple[str, ...]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return tuple(part.strip() for part in re.split(r";\s*$", body, flags=re.M) if part.strip())


def load_migrations() -> list[Migration]:
    """All migrations shipped with this code, oldest first."""
    found: list[Migration] = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), _split(entry.read_text("utf-8")))
            )
    return sorted(found, key=lambda m: m.version)


SCHEMA_VERSION = max(m.version for m in load_migrations())

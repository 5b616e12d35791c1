"""Ids a client chooses that later name a file, a process argument or a record on disk.

Run ids, approval ids and project ids end up in paths (``runs/PROJECT/RUN_ID.json``, job logs)
and in argv (``retrace resume -- RUN_ID``). They go through this one check: 1-128 letters,
digits, ``_``, ``.``, ``-``, starting with a letter or digit — so never ``/``, ``..``, a leading
``-`` (an option) or a control character. ``SafeId`` is the same rule as a pydantic type, so a bad
id in a request body is a 400 naming the field before anything is saved.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

from schemas.errors import InvalidInputError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

# pydantic-core's regex engine: ``$`` is the end of the text (no trailing newline allowed).
SafeId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def is_safe_id(value: str) -> bool:
    """Whether ``value`` may name a file or be passed as a process argument."""
    return _ID_RE.fullmatch(value) is not None


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a safe id, else raise ``InvalidInputError`` naming ``what``."""
    if not is_safe_id(value):
        raise InvalidInputError(
            f"invalid {what} {value[:80]!r}: use 1-128 letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    return value

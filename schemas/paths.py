"""Files named by someone else: the one check a client-named path goes through.

The collector reads no file an API client names unless it lies under a directory it may read
from (its data dir, the bundled demo scripts); the replay process it starts applies the same
check to the files and directories the recorded trace names (``runner.confinement``).
``offline:NAME`` names a bundled offline script, or a file when NAME looks like a path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from schemas.errors import InvalidInputError

SCRIPT_SUFFIXES = (".yaml", ".yml")
_BUNDLED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def is_script_path(name: str) -> bool:
    """Whether ``offline:NAME`` names a script file rather than a bundled script.

    A bundled name is letters, digits, ``_``, ``-`` and ``.`` (not ``..``), without a YAML
    suffix: ``data-scientist``. Anything else (``./mine.yaml``, ``/abs/path``, ``../x``) is a
    path.
    """
    return (
        _BUNDLED_NAME.fullmatch(name) is None
        or ".." in name
        or name.lower().endswith(SCRIPT_SUFFIXES)
    )


def file_under(name: str, roots: Sequence[Path], *, what: str, where: str) -> Path:
    """The existing regular file ``name`` names, if it lies under one of ``roots``.

    ``..`` and symlinks are resolved before the check, so neither leads out. ``what`` names the
    value for the error (``model 'offline:x'``), ``where`` describes ``roots``. The
    ``InvalidInputError`` is the same whether the file is missing or outside (it tells nothing
    about files outside ``roots``) and quotes nothing read from any file.
    """
    problem = InvalidInputError(f"{what} must be an existing file under {where}")
    path = _resolved_under(name, roots)
    try:
        if path is None or not path.is_file():
            raise problem
    except OSError:
        raise problem from None
    return path


def dir_under(name: str, roots: Sequence[Path], *, what: str, where: str) -> Path:
    """The directory ``name`` names (it may not exist yet), if it lies under one of ``roots``.

    Resolved and checked as :func:`file_under` does; an existing non-directory is refused with
    the same ``InvalidInputError`` as a path outside ``roots``.
    """
    problem = InvalidInputError(f"{what} must be a directory under {where}")
    path = _resolved_under(name, roots)
    try:
        if path is None or (path.exists() and not path.is_dir()):
            raise problem
    except OSError:
        raise problem from None
    return path


def _resolved_under(name: str, roots: Sequence[Path]) -> Path | None:
    """``name`` with ``..`` and symlinks resolved, if that lies under one of ``roots``."""
    try:
        path = Path(name).resolve()
        inside = any(path.is_relative_to(root.resolve()) for root in roots)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte, a name too long
        return None
    return path if inside else None

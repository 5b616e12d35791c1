"""Kept for compatibility: the product CLI is ``retrace.cli`` (``python -m retrace``).

``python -m runner.cli ARGS`` still works and runs the same ``retrace`` command group.
"""

from __future__ import annotations

from retrace.cli import COMMANDS, cli, main

__all__ = ["COMMANDS", "cli", "main"]

if __name__ == "__main__":
    main()

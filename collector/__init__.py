"""Retrace collector: OTLP/HTTP ingest, a durable write-ahead spool, the store, the query API.

Public API (imported lazily so ``from collector.client import CollectorClient`` stays light):
``create_app``, ``CollectorClient``, ``Spool``, ``SpoolWriter``, ``TraceStore``, ``open_store``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.app import create_app
    from collector.client import CollectorClient
    from collector.spool import Spool
    from collector.store import TraceStore, open_store
    from collector.writer import SpoolWriter

__all__ = ["CollectorClient", "Spool", "SpoolWriter", "TraceStore", "create_app", "open_store"]

_WHERE = {
    "create_app": "collector.app",
    "CollectorClient": "collector.client",
    "Spool": "collector.spool",
    "SpoolWriter": "collector.writer",
    "TraceStore": "collector.store",
    "open_store": "collector.store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'collector' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

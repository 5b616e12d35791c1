"""Retrace: see and replay what LLM agents do. The public Python API.

    from retrace import instrument
    graph = instrument(builder.compile(), endpoint="http://127.0.0.1:4318", agent_name="my-agent")

    from retrace import Replayer, Settings
    outcome = Replayer.from_settings(Settings()).replay(trace_id, "recorded")
    outcome.report.first_divergence

    from retrace import CollectorClient
    with CollectorClient("http://127.0.0.1:4318") as client:
        client.list_traces(limit=10)

Each name is re-exported from the component that owns it (``runner``, ``replay``,
``collector``, ``schemas``) and imported on first use, so ``import retrace`` stays cheap. The
product CLI is ``retrace.cli`` (the ``retrace`` console script, ``python -m retrace``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.client import CollectorClient
    from collector.store import TraceStore, open_store
    from replay import Replayer, ReplayOptions, ReplayOutcome
    from runner.instrumentation import instrument, trace_mcp_session
    from schemas.errors import RetraceError
    from schemas.models import (
        Divergence,
        DivergenceKind,
        DivergenceReport,
        ReplayMode,
        Trajectory,
    )
    from schemas.settings import Settings

# name -> the module that owns it. No submodule of this package may share a name with an
# export: once imported it would replace the export (tests/retrace/test_facade.py checks).
_EXPORTS: dict[str, str] = {
    # instrumenting your own LangGraph graph
    "instrument": "runner.instrumentation",
    "trace_mcp_session": "runner.instrumentation",
    # replay
    "Replayer": "replay",
    "ReplayOptions": "replay",
    "ReplayOutcome": "replay",
    "ReplayMode": "schemas.models",
    "DivergenceReport": "schemas.models",
    "Divergence": "schemas.models",
    "DivergenceKind": "schemas.models",
    "Trajectory": "schemas.models",
    # the collector and the store
    "CollectorClient": "collector.client",
    "TraceStore": "collector.store",
    "open_store": "collector.store",
    # configuration and errors
    "Settings": "schemas.settings",
    "RetraceError": "schemas.errors",
}

__all__ = [
    "CollectorClient",
    "Divergence",
    "DivergenceKind",
    "DivergenceReport",
    "ReplayMode",
    "ReplayOptions",
    "ReplayOutcome",
    "Replayer",
    "RetraceError",
    "Settings",
    "TraceStore",
    "Trajectory",
    "instrument",
    "open_store",
    "trace_mcp_session",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

"""Retrace runner: the traced LangGraph + MCP agent.

``run_agent`` runs one task through the agent graph behind the seams of ``runner.seams``;
``resume_agent`` continues a run paused for approval. Imported lazily, so ``retrace serve``
(whose CLI lives in this package) does not pay for LangGraph.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.config import AgentConfig, load_config
    from runner.instrument import instrument
    from runner.run import RunResult, resume_agent, run_agent
    from runner.runtime import LiveRuntime, RecordingRuntime

_EXPORTS = {
    "AgentConfig": "runner.config",
    "load_config": "runner.config",
    "RunResult": "runner.run",
    "resume_agent": "runner.run",
    "run_agent": "runner.run",
    "LiveRuntime": "runner.runtime",
    "RecordingRuntime": "runner.runtime",
    "instrument": "runner.instrumentation",
    "trace_mcp_session": "runner.instrumentation",
}

__all__ = [
    "AgentConfig",
    "LiveRuntime",
    "RecordingRuntime",
    "RunResult",
    "instrument",
    "load_config",
    "resume_agent",
    "run_agent",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

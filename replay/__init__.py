"""Retrace replay: re-run recorded trajectories deterministically and report divergences.

    from replay import Replayer
    from schemas.settings import Settings
    outcome = Replayer.from_settings(Settings()).replay(trace_id, "recorded")
    outcome.report.first_divergence

``Replayer(...)`` takes its collaborators (loader, live tools, live model, collector client)
directly; ``Replayer.from_settings`` wires the ones the CLI uses. The trajectory conversion
(``trajectory_from_detail``, golden-file ``load_trajectory`` / ``dump_trajectory``, what a mode
needs), the recorded providers, alignment, diff and report builders (``diff_trajectories``
compares two recorded runs; ``change_excerpts`` shows where two long values differ) are public
for tests and tools that want the pieces; the CLI (``retrace replay|export|ci|diff``) lives in
``replay.cli``.

The pure pieces import only ``schemas`` and the standard library, so the collector (which serves
``/trajectory`` with them) stays free of LangGraph: the names that need the runner
(``Replayer``, the recorded providers) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from replay._align import align
from replay._diff import DEFAULT_CONFIG, DiffConfig, canonical_message, json_diff, normalize
from replay._excerpt import Excerpt, change_excerpts, change_note
from replay._loading import DefaultTrajectoryLoader, TrajectoryLoader, TrajectorySource
from replay._report import Unanswered, build_report, diff_trajectories, report_fingerprint
from replay._trajectory import (
    dump_trajectory,
    load_trajectory,
    missing_for_mode,
    require_for_mode,
    step_label,
    trajectory_from_detail,
)

if TYPE_CHECKING:
    from replay._recorded import (
        RecordedModelProvider,
        RecordedRuntime,
        RecordedToolExecutor,
        RequestMismatch,
        UnanswerableRequest,
    )
    from replay._replayer import (
        LiveModelFactory,
        LiveToolsFactory,
        Replayer,
        ReplayOptions,
        ReplayOutcome,
    )

# Names whose modules pull in the runner (LangChain, LangGraph, OpenTelemetry SDK).
_LAZY = {
    "RecordedModelProvider": "replay._recorded",
    "RecordedRuntime": "replay._recorded",
    "RecordedToolExecutor": "replay._recorded",
    "RequestMismatch": "replay._recorded",
    "UnanswerableRequest": "replay._recorded",
    "LiveModelFactory": "replay._replayer",
    "LiveToolsFactory": "replay._replayer",
    "ReplayOptions": "replay._replayer",
    "ReplayOutcome": "replay._replayer",
    "Replayer": "replay._replayer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'replay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_CONFIG",
    "DefaultTrajectoryLoader",
    "DiffConfig",
    "Excerpt",
    "LiveModelFactory",
    "LiveToolsFactory",
    "RecordedModelProvider",
    "RecordedRuntime",
    "RecordedToolExecutor",
    "ReplayOptions",
    "ReplayOutcome",
    "Replayer",
    "RequestMismatch",
    "TrajectoryLoader",
    "TrajectorySource",
    "UnanswerableRequest",
    "Unanswered",
    "align",
    "build_report",
    "canonical_message",
    "change_excerpts",
    "change_note",
    "diff_trajectories",
    "dump_trajectory",
    "json_diff",
    "load_trajectory",
    "missing_for_mode",
    "normalize",
    "report_fingerprint",
    "require_for_mode",
    "step_label",
    "trajectory_from_detail",
]

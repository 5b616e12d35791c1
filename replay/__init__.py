"""Retrace replay: re-run recorded trajectories deterministically and report divergences.

    from replay import Replayer
    from schemas.settings import Settings
    outcome = Replayer.from_settings(Settings()).replay(trace_id, "recorded")
    outcome.report.first_divergence

``Replayer(...)`` takes its collaborators (loader, live tools, live model, collector client)
directly; ``Replayer.from_settings`` wires the ones the CLI uses. The recorded providers,
alignment, diff and report builders are public for tests and tools that want the pieces; the CLI
(``retrace replay|export|ci``) lives in ``replay.cli``.
"""

from replay._align import align
from replay._diff import DEFAULT_CONFIG, DiffConfig, canonical_message, json_diff, normalize
from replay._loading import DefaultTrajectoryLoader, TrajectoryLoader, TrajectorySource
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
from replay._report import Unanswered, build_report, report_fingerprint

__all__ = [
    "DEFAULT_CONFIG",
    "DefaultTrajectoryLoader",
    "DiffConfig",
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
    "json_diff",
    "normalize",
    "report_fingerprint",
]

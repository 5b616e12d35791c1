"""Retrace replay: re-run recorded trajectories deterministically and report divergences.

    from replay import Replayer
    outcome = Replayer(endpoint="http://127.0.0.1:4318").replay(trace_id, "recorded")
    outcome.report.first_divergence

The recorded providers, alignment, diff and report builders are public for tests and tools that
want the pieces; the CLI (``retrace replay|export|ci``) lives in ``replay.cli``.
"""

from replay._align import align
from replay._diff import DEFAULT_CONFIG, DiffConfig, canonical_message, json_diff, normalize
from replay._recorded import (
    RecordedModelProvider,
    RecordedRuntime,
    RecordedToolExecutor,
    RequestMismatch,
    UnanswerableRequest,
)
from replay._replayer import Replayer, ReplayOptions, ReplayOutcome
from replay._report import Unanswered, build_report, report_fingerprint

__all__ = [
    "DEFAULT_CONFIG",
    "DiffConfig",
    "RecordedModelProvider",
    "RecordedRuntime",
    "RecordedToolExecutor",
    "ReplayOptions",
    "ReplayOutcome",
    "Replayer",
    "RequestMismatch",
    "UnanswerableRequest",
    "Unanswered",
    "align",
    "build_report",
    "canonical_message",
    "json_diff",
    "normalize",
    "report_fingerprint",
]

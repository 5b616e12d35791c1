"""The contract every Retrace component shares: DDL, attribute keys, models, settings, errors."""

from schemas import attributes
from schemas.errors import RetraceError
from schemas.migrations import SCHEMA_VERSION, load_migrations
from schemas.models import (
    Approval,
    ApprovalStatus,
    Divergence,
    DivergenceKind,
    DivergenceReport,
    ReplayMode,
    ReplayRecord,
    RunStatus,
    SpanRecord,
    SpanView,
    Step,
    TraceDetail,
    TraceDiff,
    TracePage,
    TraceQuery,
    TraceSummary,
    TraceTreePage,
    Trajectory,
)
from schemas.settings import Settings

__all__ = [
    "SCHEMA_VERSION",
    "Approval",
    "ApprovalStatus",
    "Divergence",
    "DivergenceKind",
    "DivergenceReport",
    "ReplayMode",
    "ReplayRecord",
    "RetraceError",
    "RunStatus",
    "Settings",
    "SpanRecord",
    "SpanView",
    "Step",
    "TraceDetail",
    "TraceDiff",
    "TracePage",
    "TraceQuery",
    "TraceSummary",
    "TraceTreePage",
    "Trajectory",
    "attributes",
    "load_migrations",
]

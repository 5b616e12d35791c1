"""The ``TraceStore`` interface: one contract, two backends (chDB embedded, ClickHouse server).

Every method takes the project first: there is no unscoped read or write. Both backends run the
same parameterized SQL (chDB *is* the ClickHouse engine); only connection and transfer differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from schemas.models import (
    Approval,
    ApprovalStatus,
    Feedback,
    ReplayRecord,
    SessionDetail,
    SessionPage,
    SessionQuery,
    SpanPage,
    SpanQuery,
    SpanRecord,
    SpanView,
    Stats,
    StatsQuery,
    Suite,
    SuiteSummary,
    SuiteTrace,
    TraceDetail,
    TracePage,
    TraceQuery,
    TraceTreePage,
)

if TYPE_CHECKING:
    import pyarrow as pa


class TraceStore(ABC):
    """Where spans, payloads, summaries, replays, approvals and API keys live."""

    backend_name: str

    # --- lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def migrate(self) -> int:
        """Apply pending migrations idempotently; return the schema version now in force.

        Raises ``SchemaVersionError`` when the store is newer than this code.
        """

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreError`` when the store cannot answer a trivial query."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and locks. Idempotent."""

    # --- writes ------------------------------------------------------------------------------
    @abstractmethod
    def insert_spans(
        self,
        project: str,
        spans: Sequence[SpanRecord],
        payloads: Mapping[str, bytes],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert spans (columnar, one batch) and the payloads they reference.

        Every span must carry ``project``. Re-inserting with the same ``dedup_token`` is a no-op,
        which is what makes spool replay after a crash exactly-once.
        """

    @abstractmethod
    def insert_arrow(
        self,
        project: str,
        spans: pa.Table,
        payloads: Mapping[str, bytes],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """``insert_spans`` for spans already in columnar form (``spans_to_arrow``'s table).

        ``spans`` has ``collector.store.SPAN_SCHEMA`` and every row's ``ProjectId`` must be
        ``project``; the same dedup-token and payload guarantees as ``insert_spans`` hold.
        """

    @abstractmethod
    def put_payloads(self, project: str, payloads: Mapping[str, bytes]) -> None:
        """Store blobs by sha256 hex (workspace files, manifests). Existing hashes are kept."""

    @abstractmethod
    def delete_trace(self, project: str, trace_id: str) -> bool:
        """Delete a trace's spans and summary; return whether it existed."""

    # --- reads -------------------------------------------------------------------------------
    @abstractmethod
    def get_trace(self, project: str, trace_id: str) -> TraceDetail | None:
        """All spans of one trace, ordered by start time, payloads resolved; None if unknown."""

    @abstractmethod
    def get_trace_tree(
        self,
        project: str,
        trace_id: str,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> TraceTreePage | None:
        """A page of one trace's spans without payloads (``payload_keys`` names them), ordered
        by (start, span id), with the trace's summary and feedback; None if unknown. With
        ``fields`` (SpanView field names, or ``attributes.KEY`` for one attribute) each span
        holds only those (``InvalidInputError`` naming an unknown one)."""

    @abstractmethod
    def get_span(self, project: str, trace_id: str, span_id: str) -> SpanView | None:
        """One span of a trace, payloads resolved; None if unknown."""

    @abstractmethod
    def list_traces(self, project: str, query: TraceQuery) -> TracePage:
        """Trace summaries matching the filters, sorted, with an opaque cursor for the next page."""

    @abstractmethod
    def search_spans(self, project: str, query: SpanQuery) -> SpanPage:
        """Spans matching the filters, payloads resolved."""

    @abstractmethod
    def stats(self, project: str, query: StatsQuery) -> Stats:
        """Runs, error rate, latency percentiles, tokens over time, top failing tools."""

    @abstractmethod
    def get_payloads(self, project: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """The payloads found among ``hashes`` (missing ones are absent from the result)."""

    @abstractmethod
    def has_trace(self, project: str, trace_id: str) -> bool:
        """Whether the project holds spans of this trace."""

    # --- sessions and feedback -----------------------------------------------------------------
    @abstractmethod
    def list_sessions(self, project: str, query: SessionQuery) -> SessionPage:
        """Sessions (traces sharing a session id, replays left out), most recently active first."""

    @abstractmethod
    def get_session(self, project: str, session_id: str) -> SessionDetail | None:
        """One session with its traces oldest first (replays left out); None if unknown."""

    @abstractmethod
    def save_feedback(self, project: str, feedback: Feedback) -> None:
        """Store feedback on a trace (the caller checks the trace exists)."""

    @abstractmethod
    def list_feedback(self, project: str, trace_id: str) -> list[Feedback]:
        """A trace's feedback, oldest first."""

    # --- suites ------------------------------------------------------------------------------
    @abstractmethod
    def known_traces(self, project: str, trace_ids: Sequence[str]) -> set[str]:
        """The ids among ``trace_ids`` of traces the project holds."""

    @abstractmethod
    def add_to_suite(self, project: str, suite: str, traces: Sequence[SuiteTrace]) -> list[str]:
        """Add traces to a suite (created by its first trace); the ids of those not in it yet
        (a trace already in the suite keeps its row). The caller checks the traces exist."""

    @abstractmethod
    def get_suite(self, project: str, suite: str) -> Suite | None:
        """A suite and its traces, oldest added first; None if it has no traces."""

    @abstractmethod
    def list_suites(self, project: str, trace_id: str | None = None) -> list[SuiteSummary]:
        """The project's suites by name (those holding ``trace_id`` if given)."""

    @abstractmethod
    def remove_from_suite(self, project: str, suite: str, trace_id: str) -> bool:
        """Remove a trace from a suite; whether it was in it."""

    # --- replays -----------------------------------------------------------------------------
    @abstractmethod
    def save_replay(self, project: str, replay: ReplayRecord) -> None:
        """Insert or update (by ``replay_id``) a replay and its divergence report."""

    @abstractmethod
    def get_replay(self, project: str, replay_id: str) -> ReplayRecord | None: ...

    @abstractmethod
    def list_replays(self, project: str, original_trace_id: str) -> list[ReplayRecord]:
        """Replays of one trace, newest first."""

    # --- approvals ---------------------------------------------------------------------------
    @abstractmethod
    def save_approval(self, project: str, approval: Approval) -> None:
        """Insert or update (by ``approval_id``) an approval request or decision."""

    @abstractmethod
    def decide_approval(self, project: str, decision: Approval) -> Approval | None:
        """Record ``decision`` (a decided copy of a pending approval) unless one is recorded.

        Returns the decision that stands (None when the approval is unknown): the caller's own
        when it won, else the one recorded before it. Decisions are serialized in this process;
        across processes sharing a ClickHouse server the earliest-stamped decision stands
        whatever order the rows land in, and a later ``save_approval`` never replaces it.
        """

    @abstractmethod
    def get_approval(self, project: str, approval_id: str) -> Approval | None: ...

    @abstractmethod
    def list_approvals(
        self, project: str, status: ApprovalStatus | None = None, run_id: str | None = None
    ) -> list[Approval]: ...

    # --- API keys (not project-scoped: a key is how the project is found) ---------------------
    @abstractmethod
    def add_api_key(self, project: str, key_id: str, key_hash: str, name: str = "") -> None: ...

    @abstractmethod
    def revoke_api_key(self, key_id: str) -> bool: ...

    @abstractmethod
    def project_for_key_hash(self, key_hash: str) -> str | None:
        """The project a (sha256-hashed) API key belongs to, or None."""

    @abstractmethod
    def has_api_keys(self) -> bool: ...

    @abstractmethod
    def list_api_keys(self) -> list[dict[str, str]]:
        """Every key's id, project, name, created_at (ISO-8601), revoked; never the hashes."""

"""``TraceStore`` implemented once over three primitives a backend provides.

A backend (chDB in-process, ClickHouse over HTTP) only knows how to run a statement, run a query
into a ``polars.DataFrame``, and insert an Arrow table. Everything else — migrations, the SQL,
payload resolution, pagination — lives here, so both backends behave the same by construction.
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from collector._span_batch import spans_to_arrow
from collector.store import _batches, _rows
from collector.store import _sql as q
from collector.store.base import TraceStore
from schemas.errors import InvalidInputError, SchemaVersionError
from schemas.migrations import SCHEMA_VERSION, load_migrations
from schemas.models import (
    Approval,
    ApprovalStatus,
    Feedback,
    FeedbackCount,
    ReplayRecord,
    SessionDetail,
    SessionPage,
    SessionQuery,
    SessionSummary,
    SpanPage,
    SpanQuery,
    SpanRecord,
    SpanView,
    Stats,
    StatsBucket,
    StatsQuery,
    Suite,
    SuiteSummary,
    SuiteTrace,
    ToolFailures,
    TraceDetail,
    TracePage,
    TraceQuery,
    TraceTreePage,
)

# Settings every span insert carries: exactly-once through the views too (migration 0002 gives
# their target tables a deduplication window).
_DEDUP_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class SqlTraceStore(TraceStore):
    """The shared store logic; subclasses provide ``_command``, ``_query`` and ``_insert``."""

    def __init__(self) -> None:
        self._version_lock = threading.Lock()
        self._last_version = 0
        self._decision_lock = threading.Lock()

    # --- primitives ----------------------------------------------------------------------------
    @abstractmethod
    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""

    @abstractmethod
    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return its result."""

    @abstractmethod
    def _insert(self, table: str, data: pa.Table, settings: Mapping[str, Any]) -> None:
        """Insert an Arrow table (column names are the table's) with query settings."""

    @abstractmethod
    def _create_database(self) -> None:
        """Create the store's database if needed and make it the current one."""

    def _ddl(self, statement: str) -> list[str]:
        """The statements that apply one migration statement to this store (a cluster store
        rewrites it, ``schemas.cluster``)."""
        return [statement]

    def _query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as Arrow (backends override to skip polars)."""
        return self._query(sql, params).to_arrow()

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._query(sql, params).to_dicts()

    def _span_rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Span rows (see ``SPAN_SELECT``) straight from Arrow: a 200-span trace converts in a
        fifth of the time ``polars.DataFrame.to_dicts`` takes over its map columns."""
        return self._query_arrow(sql, params).to_pylist()  # type: ignore[no-any-return]

    def _trace_rows(
        self, sql: str, params: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], list[Feedback]]:
        """Span rows and the trace's feedback of a statement whose constant ``Feedback`` column
        carries the feedback (``TRACE_SPANS_SQL``, ``TRACE_TREE_SQL``); no rows, no feedback."""
        table = self._query_arrow(sql, params)
        if not table.num_rows:
            return [], []
        feedback = _rows.feedback_from_column(table.column("Feedback")[0].as_py())
        return table.drop_columns(["Feedback"]).to_pylist(), feedback

    def _next_version(self) -> int:
        # Monotonic per process even when the clock does not move between two upserts.
        with self._version_lock:
            self._last_version = max(self._last_version + 1, time.time_ns())
            return self._last_version

    # --- lifecycle -----------------------------------------------------------------------------
    def migrate(self) -> int:
        self._create_database()
        for ddl in self._ddl(q.MIGRATIONS_DDL):
            self._command(ddl)
        applied = {int(r["Version"]) for r in self._rows(q.APPLIED_VERSIONS_SQL)}
        newest = max(applied, default=0)
        if newest > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the store's schema is version {newest} but this code understands only up to "
                f"version {SCHEMA_VERSION}: upgrade Retrace or use another store"
            )
        for migration in load_migrations():
            if migration.version in applied:
                continue
            for statement in migration.statements:
                for ddl in self._ddl(statement):
                    self._command(ddl)
            self._command(
                q.RECORD_MIGRATION_SQL,
                {"version": migration.version, "description": migration.description},
            )
        return SCHEMA_VERSION

    def ping(self) -> None:
        self._rows("SELECT 1 AS ok")

    # --- writes --------------------------------------------------------------------------------
    def insert_spans(
        self,
        project: str,
        spans: Sequence[SpanRecord],
        payloads: Mapping[str, bytes],
        *,
        dedup_token: str | None = None,
    ) -> None:
        self.insert_arrow(
            project, spans_to_arrow(project, spans), payloads, dedup_token=dedup_token
        )

    def insert_arrow(
        self,
        project: str,
        spans: pa.Table,
        payloads: Mapping[str, bytes],
        *,
        dedup_token: str | None = None,
    ) -> None:
        table = _batches.check_span_table(project, spans)
        if payloads:
            self.put_payloads(project, payloads)
        table = self._unstored_spans(project, table)
        if not table.num_rows:
            return
        settings: dict[str, Any] = dict(_DEDUP_SETTINGS)
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        self._insert(q.SPANS_TABLE, table, settings)

    def _unstored_spans(self, project: str, table: pa.Table) -> pa.Table:
        """The rows of a span table whose (trace, span) id is neither stored already nor repeated
        earlier in the table.

        An OTLP client that retries sends the same spans again in a new request (a new spool
        batch, which insert deduplication rightly keeps): dropped here, every span is stored
        once and the summary view counts it once. One lookup in the small trace-id table finds
        which traces are known; only those are looked for among the stored spans, in the time
        range stored of them. Inserts through one store are sequential (the collector has one
        writer), so the check and the insert do not race; two writers delivering the same span
        at the same moment can both store it (trace reads and span search still show it once).
        """
        if not table.num_rows:
            return table
        first = _batches.first_deliveries(table)
        trace_ids = first.column("TraceId").unique().to_pylist()
        known = self._rows(q.KNOWN_TRACES_SQL, {"project": project, "trace_ids": trace_ids})
        if known:
            known_ids = [str(r["TraceId"]) for r in known]
            candidates = first.filter(pc.is_in(first.column("TraceId"), pa.array(known_ids)))
            stored = self._query_arrow(
                q.STORED_SPANS_SQL,
                {
                    "project": project,
                    "trace_ids": known_ids,
                    "span_ids": candidates.column("SpanId").unique().to_pylist(),
                    "start_ns": min(int(r["StartNs"]) for r in known),
                    "end_ns": max(int(r["EndNs"]) for r in known),
                },
            )
            if stored.num_rows:
                first = _batches.without_stored(first, stored)
        if first.num_rows == table.num_rows:
            return table
        rows = first.column("Row")
        return table.take(rows.take(pc.sort_indices(rows)))  # in arrival order

    def put_payloads(self, project: str, payloads: Mapping[str, bytes]) -> None:
        if payloads:
            self._insert(q.PAYLOADS_TABLE, _batches.payloads_to_arrow(project, payloads), {})

    def delete_trace(self, project: str, trace_id: str) -> bool:
        params = {"project": project, "trace_id": trace_id}
        found = self._rows(q.TRACE_RANGE_SQL, params)
        existed = bool(found) and int(found[0]["N"]) > 0
        for statement in q.DELETE_SQL:
            self._command(statement, params)
        return existed

    # --- reads ---------------------------------------------------------------------------------
    def get_payloads(self, project: str, hashes: Sequence[str]) -> dict[str, bytes]:
        wanted = sorted({h for h in hashes if _is_hash(h)})
        if not wanted:
            return {}
        out: dict[str, bytes] = {}
        for row in self._rows(q.PAYLOADS_SQL, {"project": project, "hashes": wanted}):
            digest = row["HashHex"]
            out[digest.decode() if isinstance(digest, bytes) else str(digest)] = bytes(
                row["Content"]
            )
        return out

    def _resolve(self, project: str, rows: list[dict[str, Any]]) -> dict[str, bytes]:
        return self.get_payloads(project, sorted(_rows.payload_hashes(rows)))

    def get_trace(self, project: str, trace_id: str) -> TraceDetail | None:
        found, feedback = self._trace_rows(
            q.TRACE_SPANS_SQL, {"project": project, "trace_id": trace_id}
        )
        rows = _rows.ordered_unique_spans(found)
        if not rows:
            return None
        payloads = self._resolve(project, rows)
        return TraceDetail.model_construct(
            trace=_rows.summary_from_spans(rows),
            spans=[_rows.span_from_row(r, payloads) for r in rows],
            feedback=feedback,
        )

    def get_trace_tree(
        self,
        project: str,
        trace_id: str,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> TraceTreePage | None:
        plain: list[str] = []
        keys: list[str] = []
        if fields is not None:
            plain, keys = q.split_tree_fields(fields)
        after: tuple[int, str] = (-1, "")
        if cursor:
            ts, span_id = q.decode_cursor(cursor, 2)
            if not (isinstance(ts, int) and isinstance(span_id, str)):
                raise InvalidInputError(f"invalid cursor {cursor!r}: not one this API returned")
            after = (ts, span_id)
        params = {"project": project, "trace_id": trace_id}
        page_params: dict[str, Any] = {
            **params,
            "c_ts": after[0],
            "c_span": after[1],
            "limit": limit + 1,
        }
        sql = q.TRACE_TREE_SQL
        if fields is not None:
            built = q.trace_tree_fields_sql(plain, keys)
            sql = built.sql
            page_params.update(built.params)
        rows, feedback = self._trace_rows(sql, page_params)
        more = len(rows) > limit
        rows = rows[:limit]
        if not cursor and not more and fields is None:
            # The whole trace in one page (the usual case): its summary from its spans, by the
            # view's rules, without another round trip.
            if not rows:
                return None
            trace = _rows.summary_from_spans(rows)
        else:
            summary = self._rows(
                q.TRACE_SUMMARY_SQL, {**params, "failed_statuses": list(q.FAILED_RUN_STATUSES)}
            )
            if not summary:
                return None
            trace = _rows.summary_from_row(summary[0])
            if not rows:  # a page past the last span: no row carried the feedback
                feedback = self.list_feedback(project, trace_id)
        next_cursor = None
        if more and rows:
            next_cursor = q.encode_cursor([int(rows[-1]["StartNs"]), str(rows[-1]["SpanId"])])
        return TraceTreePage.model_construct(
            trace=trace,
            spans=(
                [_rows.span_from_row(r, {}, tree=True) for r in rows]
                if fields is None
                else [_rows.partial_span_from_row(r, plain, bool(keys)) for r in rows]
            ),
            feedback=feedback,
            next_cursor=next_cursor,
        )

    def get_span(self, project: str, trace_id: str, span_id: str) -> SpanView | None:
        rows = self._span_rows(
            q.TRACE_SPAN_SQL, {"project": project, "trace_id": trace_id, "span_id": span_id}
        )
        if not rows:
            return None
        return _rows.span_from_row(rows[0], self._resolve(project, rows))

    def has_trace(self, project: str, trace_id: str) -> bool:
        found = self._rows(q.TRACE_RANGE_SQL, {"project": project, "trace_id": trace_id})
        return bool(found) and int(found[0]["N"]) > 0

    def list_traces(self, project: str, query: TraceQuery) -> TracePage:
        rows: list[dict[str, Any]] | None = None
        sort_col = q.SORT_COLUMNS[query.sort]
        floor = q.to_ns(query.start) if query.start is not None else None
        lows: list[int] = []
        if query.sort == "start_time" and query.order == "desc":
            # Keyset pages of a newest-first list: the traces older than the window can only
            # come after a full page of those inside it, so a full page ends the search.
            top = _newest_bound_ns(query)
            for width in q.NEWEST_WINDOWS_S:
                lo = top - width * 1_000_000_000
                if floor is not None and lo - floor < width * 1_000_000_000:
                    break  # the query's own start bound is about as narrow: use it directly
                lows.append(lo)
        # One count over the (day-partitioned) lookup table per list with a start bound: a
        # window that cannot fill the page (a quiet last hour) is skipped, and a bound with few
        # traces prunes the summaries read (PRUNE_MAX_LOOKUP_ROWS).
        counts: list[int] = []
        bounds = [*lows, *([floor] if floor is not None else [])]
        if bounds:
            counted = q.window_count_sql(project, bounds)
            found_counts = self._rows(counted.sql, counted.params)[0]
            counts = [int(found_counts[f"n{i}"]) for i in range(len(bounds))]
        for lo, n in zip(lows, counts, strict=False):
            if n <= query.limit:
                continue
            built, _ = q.list_traces_sql(
                project, query, window_start_ns=lo, prune=n <= q.PRUNE_MAX_LOOKUP_ROWS
            )
            found = self._rows(built.sql, built.params)
            if len(found) > query.limit:
                rows = found
                break
        if rows is None:
            prune = floor is not None and counts[-1] <= q.PRUNE_MAX_LOOKUP_ROWS
            built, _ = q.list_traces_sql(project, query, prune=prune)
            rows = self._rows(built.sql, built.params)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            cursor = q.encode_cursor([int(last[sort_col]), last["TraceId"]])
        return TracePage(traces=[_rows.summary_from_row(r) for r in rows], next_cursor=cursor)

    def search_spans(self, project: str, query: SpanQuery) -> SpanPage:
        # A span may be stored more than once (by a store before schema 5, or by two
        # collectors at once, see _unstored_spans); its copies share the sort key, so they come
        # together and one is kept. When copies shortened a page, read on after the last row
        # read until the page (plus one, for the cursor) is full.
        wanted = query.limit + 1
        built = q.search_spans_sql(project, query)
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        while True:
            read = self._span_rows(built.sql, built.params)
            for row in read:
                key = (row["TraceId"], row["SpanId"])
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
            if len(read) < int(built.params["limit"]) or len(rows) >= wanted:
                break
            last = read[-1]
            after = (int(last["StartNs"]), str(last["TraceId"]), str(last["SpanId"]))
            built = q.search_spans_sql(project, query, after=after, rows=wanted - len(rows))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            cursor = q.encode_cursor([int(last["StartNs"]), last["TraceId"], last["SpanId"]])
        payloads = self._resolve(project, rows)
        return SpanPage(spans=[_rows.span_from_row(r, payloads) for r in rows], next_cursor=cursor)

    def stats(self, project: str, query: StatsQuery) -> Stats:
        totals_b = q.stats_totals_sql(project, query)
        totals = self._rows(totals_b.sql, totals_b.params)[0]
        buckets_b = q.stats_buckets_sql(project, query)
        tools_b = q.stats_tools_sql(project, query)
        feedback_b = q.stats_feedback_sql(project, query)
        runs = int(totals["Runs"])
        errors = int(totals["Errors"])
        quantiles = [float(x) for x in (totals["Q"] or [0.0, 0.0, 0.0])] if runs else [0.0] * 3
        return Stats(
            runs=runs,
            errors=errors,
            error_rate=errors / runs if runs else 0.0,
            p50_ms=quantiles[0],
            p90_ms=quantiles[1],
            p99_ms=quantiles[2],
            input_tokens=int(totals["InTok"] or 0),
            output_tokens=int(totals["OutTok"] or 0),
            buckets=[
                StatsBucket(
                    time=_rows.from_ns(int(b["BucketS"]) * 1_000_000_000),
                    runs=int(b["Runs"]),
                    errors=int(b["Errors"]),
                    p50_ms=float(b["Q"][0]),
                    p95_ms=float(b["Q"][1]),
                    input_tokens=int(b["InTok"]),
                    output_tokens=int(b["OutTok"]),
                )
                for b in self._rows(buckets_b.sql, buckets_b.params)
            ],
            top_failing_tools=[
                ToolFailures(tool=t["Tool"], calls=int(t["Calls"]), errors=int(t["Errs"]))
                for t in self._rows(tools_b.sql, tools_b.params)
            ],
            feedback=[
                FeedbackCount(name=str(r["Name"]), count=int(r["N"]), traces=int(r["Traces"]))
                for r in self._rows(feedback_b.sql, feedback_b.params)
            ],
            approval_waits=int(totals["Waits"] or 0) if runs else 0,
            approval_wait_ms=float(totals["WaitMs"] or 0.0) if runs else 0.0,
            approval_wait_p50_ms=float(totals["WaitP50"] or 0.0) if totals["Waits"] else 0.0,
            waiting_for_approval=int(totals["Paused"] or 0) if runs else 0,
        )

    # --- sessions and feedback -------------------------------------------------------------------
    def list_sessions(self, project: str, query: SessionQuery) -> SessionPage:
        built = q.list_sessions_sql(project, query)
        rows = self._rows(built.sql, built.params)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            cursor = q.encode_cursor([int(last["LastNs"]), str(last["SessionId"])])
        return SessionPage(sessions=[_rows.session_from_row(r) for r in rows], next_cursor=cursor)

    def get_session(self, project: str, session_id: str) -> SessionDetail | None:
        traces = []
        cursor: str | None = None
        while True:
            page = self.list_traces(
                project,
                TraceQuery(
                    session_id=session_id,
                    include_replays=False,
                    order="asc",
                    limit=1000,
                    cursor=cursor,
                ),
            )
            traces.extend(page.traces)
            cursor = page.next_cursor
            if cursor is None:
                break
        if not traces:
            return None
        feedback = self._rows(
            q.FEEDBACK_COUNT_SQL,
            {"project": project, "trace_ids": [t.trace_id for t in traces]},
        )
        return SessionDetail(
            session=SessionSummary(
                session_id=session_id,
                user_id=max(t.user_id for t in traces),
                trace_count=len(traces),
                error_count=sum(1 for t in traces if t.status == "error"),
                feedback_count=int(feedback[0]["N"]) if feedback else 0,
                first_time=traces[0].start_time,
                last_time=max(t.end_time for t in traces),
            ),
            traces=traces,
        )

    def save_feedback(self, project: str, feedback: Feedback) -> None:
        self._insert(q.FEEDBACK_TABLE, _batches.feedback_to_arrow(project, feedback), {})

    def list_feedback(self, project: str, trace_id: str) -> list[Feedback]:
        rows = self._rows(q.FEEDBACK_OF_TRACE_SQL, {"project": project, "trace_id": trace_id})
        return [_rows.feedback_from_row(r) for r in rows]

    # --- suites --------------------------------------------------------------------------------
    def known_traces(self, project: str, trace_ids: Sequence[str]) -> set[str]:
        if not trace_ids:
            return set()
        rows = self._rows(q.KNOWN_TRACES_SQL, {"project": project, "trace_ids": list(trace_ids)})
        return {str(r["TraceId"]) for r in rows}

    def _suite_traces(self, project: str, suite: str) -> list[SuiteTrace]:
        rows = self._rows(q.SUITE_TRACES_SQL, {"project": project, "suite": suite})
        return [_rows.suite_trace_from_row(r) for r in rows]

    def add_to_suite(self, project: str, suite: str, traces: Sequence[SuiteTrace]) -> list[str]:
        have = {t.trace_id for t in self._suite_traces(project, suite)}
        new = [t for t in dict((t.trace_id, t) for t in traces).values() if t.trace_id not in have]
        if new:
            versions = [self._next_version() for _ in new]  # the suite's order
            table = _batches.suite_traces_to_arrow(project, suite, new, versions)
            self._insert(q.SUITES_TABLE, table, {})
        return [t.trace_id for t in new]

    def get_suite(self, project: str, suite: str) -> Suite | None:
        traces = self._suite_traces(project, suite)
        if not traces:
            return None
        return Suite(
            name=suite,
            trace_count=len(traces),
            updated_at=max(t.added_at for t in traces),
            traces=traces,
        )

    def list_suites(self, project: str, trace_id: str | None = None) -> list[SuiteSummary]:
        if trace_id is None:
            rows = self._rows(q.SUITES_SQL, {"project": project})
        else:
            rows = self._rows(q.SUITES_OF_TRACE_SQL, {"project": project, "trace_id": trace_id})
        return [_rows.suite_summary_from_row(r) for r in rows]

    def remove_from_suite(self, project: str, suite: str, trace_id: str) -> bool:
        params = {"project": project, "suite": suite, "trace_id": trace_id}
        present = any(t.trace_id == trace_id for t in self._suite_traces(project, suite))
        if present:
            self._command(q.SUITE_REMOVE_SQL, params)
        return present

    # --- replays -------------------------------------------------------------------------------
    def save_replay(self, project: str, replay: ReplayRecord) -> None:
        self._insert(q.REPLAYS_TABLE, _batches.replay_to_arrow(project, replay), {})

    def get_replay(self, project: str, replay_id: str) -> ReplayRecord | None:
        rows = self._rows(q.REPLAY_SQL, {"project": project, "replay_id": replay_id})
        return _rows.replay_from_row(rows[0]) if rows else None

    def list_replays(self, project: str, original_trace_id: str) -> list[ReplayRecord]:
        rows = self._rows(
            q.REPLAYS_OF_TRACE_SQL, {"project": project, "trace_id": original_trace_id}
        )
        return [_rows.replay_from_row(r) for r in rows]

    # --- approvals -----------------------------------------------------------------------------
    def save_approval(self, project: str, approval: Approval) -> None:
        table = _batches.approval_to_arrow(project, approval, self._next_version())
        self._insert(q.APPROVALS_TABLE, table, {})

    def decide_approval(self, project: str, decision: Approval) -> Approval | None:
        if decision.status == ApprovalStatus.PENDING or decision.decided_at is None:
            raise InvalidInputError(
                f"a decision on approval {decision.approval_id} needs a status and decided_at"
            )
        with self._decision_lock:  # read-check-write is atomic for this process's store
            current = self.get_approval(project, decision.approval_id)
            if current is None or current.status != ApprovalStatus.PENDING:
                return current
            version = _batches.decision_version(decision.decided_at)
            self._insert(
                q.APPROVALS_TABLE, _batches.approval_to_arrow(project, decision, version), {}
            )
            # Read back: another process may have recorded an earlier decision meanwhile.
            return self.get_approval(project, decision.approval_id)

    def get_approval(self, project: str, approval_id: str) -> Approval | None:
        rows = self._rows(q.APPROVAL_SQL, {"project": project, "approval_id": approval_id})
        return _rows.approval_from_row(rows[0]) if rows else None

    def list_approvals(
        self, project: str, status: ApprovalStatus | None = None, run_id: str | None = None
    ) -> list[Approval]:
        built = q.list_approvals_sql(project, status, run_id)
        return [_rows.approval_from_row(r) for r in self._rows(built.sql, built.params)]

    # --- API keys ------------------------------------------------------------------------------
    def add_api_key(self, project: str, key_id: str, key_hash: str, name: str = "") -> None:
        if not key_id:
            raise InvalidInputError("an API key needs a non-empty key id")
        created_ms = time.time_ns() // 1_000_000
        table = _batches.api_key_to_arrow(
            project, key_id, key_hash, name, created_ms, False, self._next_version()
        )
        self._insert(q.API_KEYS_TABLE, table, {})

    def revoke_api_key(self, key_id: str) -> bool:
        rows = [r for r in self._rows(q.API_KEY_BY_ID_SQL, {"key_id": key_id}) if not r["Revoked"]]
        for r in rows:
            table = _batches.api_key_to_arrow(
                r["ProjectId"],
                key_id,
                r["KeyHash"],
                r["Name"],
                int(r["CreatedMs"]),
                True,
                self._next_version(),
            )
            self._insert(q.API_KEYS_TABLE, table, {})
        return bool(rows)

    def project_for_key_hash(self, key_hash: str) -> str | None:
        if not _is_hash(key_hash):
            return None
        rows = self._rows(q.PROJECT_FOR_KEY_SQL, {"key_hash": key_hash})
        return str(rows[0]["ProjectId"]) if rows else None

    def list_api_keys(self) -> list[dict[str, str]]:
        return [
            {
                "key_id": str(r["KeyId"]),
                "project": str(r["ProjectId"]),
                "name": str(r["Name"]),
                "created_at": _rows.from_ns(int(r["CreatedMs"]) * 1_000_000).isoformat(),
                "revoked": "yes" if r["Revoked"] else "no",
            }
            for r in self._rows(q.LIST_API_KEYS_SQL)
        ]

    def has_api_keys(self) -> bool:
        return int(self._rows(q.HAS_API_KEYS_SQL)[0]["N"]) > 0


def _newest_bound_ns(query: TraceQuery) -> int:
    """The newest start time a newest-first page can hold: cursor, end, or now."""
    # Only the window's lower edge comes from this: traces stamped after it (a client clock
    # ahead of ours) are still in the window.
    bounds = [time.time_ns()]
    if query.end is not None:
        bounds.append(q.to_ns(query.end))
    if query.cursor:
        value, _ = q.decode_cursor(query.cursor, 2)
        if isinstance(value, int):
            bounds.append(value)
    return min(bounds)


def _is_hash(value: str) -> bool:
    try:
        _batches.check_hash(value)
    except InvalidInputError:
        return False
    return True

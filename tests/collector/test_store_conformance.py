"""One conformance suite for every TraceStore backend: chDB on disk, and ClickHouse over HTTP.

The ClickHouse backend talks to a real ClickHouse engine (chDB served over the HTTP interface by
tests/fixtures/chdb_http.py, or the server named by RETRACE_TEST_CLICKHOUSE_URL).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.store import TraceStore, open_store, spans_to_arrow
from collector.store import _batches as store_batches
from collector.store import _sql as store_sql
from schemas import attributes as attr
from schemas.errors import (
    ConfigError,
    InvalidInputError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
)
from schemas.migrations import MIGRATIONS_TABLE, SCHEMA_VERSION, load_migrations
from schemas.models import (
    MAX_SPAN_TIME_UNIX_NANO,
    Approval,
    ApprovalStatus,
    DivergenceMetrics,
    DivergenceReport,
    Feedback,
    FeedbackSource,
    ReplayMode,
    ReplayRecord,
    RunStatus,
    SessionQuery,
    SpanEvent,
    SpanKind,
    SpanLink,
    SpanQuery,
    SpanRecord,
    SpanView,
    StatsQuery,
    StatusCode,
    SuiteTrace,
    TraceQuery,
)
from schemas.settings import Settings

pytestmark = pytest.mark.integration

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MS = 1_000_000


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def make_run(
    project: str,
    *,
    start: datetime = BASE,
    agent: str = "analyst",
    model: str = "gpt-test",
    tool: str = "run_python",
    question: str = "How many rows?",
    answer: str = "42 rows",
    run_status: RunStatus = RunStatus.COMPLETED,
    tool_fails: bool = False,
    duration_ms: int = 100,
    attributes: dict[str, str] | None = None,
    tokens: tuple[int, int] = (10, 5),
) -> tuple[str, list[SpanRecord], dict[str, bytes]]:
    """A realistic agent run: invoke_agent root, one chat span, one tool span, with payloads."""
    trace_id = uuid.uuid4().hex
    root_id, chat_id, tool_id = (uuid.uuid4().hex[:16] for _ in range(3))
    t0 = _ns(start)
    messages = json.dumps([{"role": "user", "content": question}]).encode()
    output = json.dumps([{"role": "assistant", "content": answer}]).encode()
    result = json.dumps({"stdout": f"result of {question}"}).encode()
    payloads = {_sha(b): b for b in (messages, output, result)}
    root = SpanRecord(
        project_id=project,
        trace_id=trace_id,
        span_id=root_id,
        name=f"invoke_agent {agent}",
        service_name="retrace-runner",
        resource_attributes={attr.SERVICE_NAME: "retrace-runner"},
        attributes={attr.RETRACE_RUN_STATUS: run_status.value, **(attributes or {})},
        start_time_unix_nano=t0,
        duration_ns=duration_ms * MS,
        status_code=StatusCode.ERROR if run_status == RunStatus.FAILED else StatusCode.OK,
        operation=attr.OP_INVOKE_AGENT,
        agent_name=agent,
        input_preview=question,
        output_preview=answer,
    )
    chat = SpanRecord(
        project_id=project,
        trace_id=trace_id,
        span_id=chat_id,
        parent_span_id=root_id,
        name=f"chat {model}",
        kind=SpanKind.CLIENT,
        service_name="retrace-runner",
        attributes={attr.GEN_AI_REQUEST_MODEL: model},
        start_time_unix_nano=t0 + 1 * MS,
        duration_ns=10 * MS,
        status_code=StatusCode.OK,
        operation=attr.OP_CHAT,
        agent_name=agent,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        step_index=0,
        payload_refs={
            attr.GEN_AI_INPUT_MESSAGES: _sha(messages),
            attr.GEN_AI_OUTPUT_MESSAGES: _sha(output),
        },
        events=[SpanEvent(timestamp_unix_nano=t0 + 2 * MS, name="tick", attributes={"n": "1"})],
    )
    tool_span = SpanRecord(
        project_id=project,
        trace_id=trace_id,
        span_id=tool_id,
        parent_span_id=root_id,
        name=f"execute_tool {tool}",
        service_name="retrace-runner",
        attributes={
            attr.GEN_AI_TOOL_NAME: tool,
            **({attr.RETRACE_TOOL_ERROR: "true"} if tool_fails else {}),
        },
        start_time_unix_nano=t0 + 20 * MS,
        duration_ns=30 * MS,
        status_code=StatusCode.ERROR if tool_fails else StatusCode.OK,
        status_message="boom" if tool_fails else "",
        operation=attr.OP_EXECUTE_TOOL,
        agent_name=agent,
        tool_name=tool,
        step_index=1,
        payload_refs={attr.GEN_AI_TOOL_CALL_RESULT: _sha(result)},
        links=[SpanLink(trace_id=trace_id, span_id=chat_id, attributes={"why": "answers"})],
    )
    return trace_id, [root, chat, tool_span], payloads


def _open(request: pytest.FixtureRequest, tmp_path: Path, *, migrate: bool = True) -> TraceStore:
    if request.param == "chdb":
        return open_store(Settings(data_dir=tmp_path / "data"), migrate=migrate)
    url = request.getfixturevalue("clickhouse_url")
    database = f"retrace_test_{uuid.uuid4().hex[:12]}"
    return open_store(Settings(clickhouse_url=url, clickhouse_database=database), migrate=migrate)


@pytest.fixture(params=["chdb", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    opened = _open(request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def _ids(store: TraceStore, project: str, query: TraceQuery) -> list[str]:
    return [t.trace_id for t in store.list_traces(project, query).traces]


def _paged_spans(store: TraceStore, project: str, limit: int) -> list[tuple[str, str]]:
    """(trace id, span id) of every span, page after page of ``limit``."""
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = store.search_spans(project, SpanQuery(limit=limit, cursor=cursor))
        seen.extend((s.trace_id, s.span_id) for s in page.spans)
        cursor = page.next_cursor
        if cursor is None:
            return seen


# --- migrations -------------------------------------------------------------------------------
def test_migrations_are_idempotent_and_refuse_a_newer_schema(store: TraceStore) -> None:
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    rows = store._rows(f"SELECT Version FROM {MIGRATIONS_TABLE} ORDER BY Version")  # type: ignore[attr-defined]
    assert [r["Version"] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    store.ping()

    store._command(  # type: ignore[attr-defined]
        f"INSERT INTO {MIGRATIONS_TABLE} (Version, Description) VALUES ({SCHEMA_VERSION + 1}, 'x')"
    )
    with pytest.raises(SchemaVersionError) as err:
        store.migrate()
    assert str(SCHEMA_VERSION + 1) in err.value.message
    assert f"up to version {SCHEMA_VERSION}" in err.value.message


# --- writes and single-trace reads -------------------------------------------------------------
def test_insert_and_get_trace_resolves_payloads(store: TraceStore) -> None:
    trace_id, spans, payloads = make_run("p", question="What is the mean?", answer="3.5")
    store.insert_spans("p", spans, payloads)

    detail = store.get_trace("p", trace_id)
    assert detail is not None
    assert [s.span_id for s in detail.spans] == [s.span_id for s in spans]  # by start time
    root, chat, tool = detail.spans
    assert root.parent_span_id == ""
    assert root.attributes[attr.RETRACE_RUN_STATUS] == "completed"
    assert root.resource_attributes == {attr.SERVICE_NAME: "retrace-runner"}
    assert json.loads(chat.attributes[attr.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "content": "What is the mean?"}
    ]
    assert json.loads(chat.attributes[attr.GEN_AI_OUTPUT_MESSAGES])[0]["content"] == "3.5"
    assert chat.events == spans[1].events
    assert chat.input_tokens == 10 and chat.model == "gpt-test" and chat.step_index == 0
    assert tool.links == spans[2].links
    assert tool.attributes[attr.GEN_AI_TOOL_CALL_RESULT].startswith('{"stdout"')
    assert chat.start_time_unix_nano == spans[1].start_time_unix_nano
    assert chat.start_time == BASE + timedelta(milliseconds=1)
    assert chat.end_time == BASE + timedelta(milliseconds=11)

    summary = detail.trace
    assert summary.trace_id == trace_id
    assert summary.span_count == 3 and summary.error_count == 0 and summary.status == "ok"
    assert summary.run_status == "completed" and summary.agent_name == "analyst"
    assert summary.root_span_name == "invoke_agent analyst"
    assert summary.input_preview == "What is the mean?" and summary.output_preview == "3.5"
    assert summary.llm_calls == 1 and summary.tool_calls == 1
    assert summary.models == ["gpt-test"] and summary.tools == ["run_python"]
    assert summary.duration_ms == pytest.approx(100.0)

    assert store.get_payloads("p", [*payloads, "0" * 64, "not-a-hash"]) == payloads
    # Spans are built from trusted rows without validation: each is a whole, valid model.
    tree = store.get_trace_tree("p", trace_id)
    one = store.get_span("p", trace_id, chat.span_id)
    assert tree is not None and one == chat
    for span in [*detail.spans, *tree.spans, one]:
        assert span.model_fields_set == set(SpanView.model_fields)
        assert SpanView.model_validate_json(span.model_dump_json()) == span


def test_large_trace_round_trip(store: TraceStore) -> None:
    """250 spans with 250 payloads: big parameter lists (the HTTP client form-encodes them)."""
    trace_id, spans, payloads = make_run("p")
    root = spans[0]
    for i in range(247):
        blob = json.dumps({"step": i, "text": "x" * 500}).encode()
        payloads[_sha(blob)] = blob
        spans.append(
            root.model_copy(
                update={
                    "span_id": f"{i:016x}",
                    "parent_span_id": root.span_id,
                    "name": "chat big",
                    "start_time_unix_nano": root.start_time_unix_nano + (i + 100) * MS,
                    "payload_refs": {attr.GEN_AI_INPUT_MESSAGES: _sha(blob)},
                }
            )
        )
    store.insert_spans("p", spans, payloads)
    detail = store.get_trace("p", trace_id)
    assert detail is not None and len(detail.spans) == 250
    assert json.loads(detail.spans[-1].attributes[attr.GEN_AI_INPUT_MESSAGES])["step"] == 246
    assert detail.trace.span_count == 250
    assert store.get_payloads("p", list(payloads)) == payloads


def test_trace_tree_pages_without_payloads_and_one_span_with_them(store: TraceStore) -> None:
    """The lazy reads: pages of the span tree cover the trace once, in order, without payloads;
    one span comes with them; both are scoped to the project."""
    trace_id, spans, payloads = make_run("p")
    root = spans[0]
    for i in range(40):
        blob = json.dumps({"step": i}).encode()
        payloads[_sha(blob)] = blob
        spans.append(
            root.model_copy(
                update={
                    "span_id": f"{i:016x}",
                    "parent_span_id": root.span_id,
                    "name": "chat big",
                    # pairs of spans share a start time: the cursor orders by (start, span id)
                    "start_time_unix_nano": root.start_time_unix_nano + (i // 2 + 100) * MS,
                    "payload_refs": {attr.GEN_AI_INPUT_MESSAGES: _sha(blob)},
                }
            )
        )
    store.insert_spans("p", spans, payloads)
    full = store.get_trace("p", trace_id)
    assert full is not None and len(full.spans) == 43

    whole = store.get_trace_tree("p", trace_id)
    assert whole is not None and whole.next_cursor is None and whole.trace == full.trace
    assert [s.span_id for s in whole.spans] == [s.span_id for s in full.spans]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.get_trace_tree("p", trace_id, limit=7, cursor=cursor)
        assert page is not None and len(page.spans) <= 7 and page.trace == full.trace
        seen += [s.span_id for s in page.spans]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [s.span_id for s in full.spans]
    for stub, span in zip(whole.spans, full.spans, strict=True):
        assert attr.GEN_AI_INPUT_MESSAGES not in stub.attributes
        assert stub.payload_keys == sorted(set(span.attributes) & attr.PAYLOAD_KEYS)
        assert store.get_span("p", trace_id, span.span_id) == span
    assert store.get_trace_tree("other", trace_id) is None
    assert store.get_span("other", trace_id, full.spans[5].span_id) is None
    assert store.get_span("p", trace_id, "f" * 16) is None
    with pytest.raises(InvalidInputError, match="invalid cursor"):
        store.get_trace_tree("p", trace_id, cursor="bogus")


def test_trace_reads_carry_the_traces_feedback_in_order(store: TraceStore) -> None:
    """The whole trace and every page of its tree carry the trace's feedback (read with the
    spans), ordered by creation time then id, of this project and trace only."""
    trace_id, spans, payloads = make_run("p")
    store.insert_spans("p", spans, payloads)
    quiet_id, quiet_spans, quiet_payloads = make_run("p")
    store.insert_spans("p", quiet_spans, quiet_payloads)
    for feedback_id, hours, value in (("f-b", 1, 0.5), ("f-a", 1, True), ("f-c", 0, "late")):
        store.save_feedback(
            "p",
            Feedback(
                feedback_id=feedback_id,
                trace_id=trace_id,
                span_id=spans[1].span_id if feedback_id == "f-a" else "",
                name="score",
                value=value,
                comment=f"it's {feedback_id}\tok",
                source=FeedbackSource.REVIEWER,
                created_at=BASE + timedelta(hours=hours),
            ),
        )
    elsewhere = Feedback(
        feedback_id="f-q", trace_id=trace_id, name="score", value=1, created_at=BASE
    )
    store.save_feedback("q", elsewhere)

    listed = store.list_feedback("p", trace_id)
    assert [f.feedback_id for f in listed] == ["f-c", "f-a", "f-b"]
    full = store.get_trace("p", trace_id)
    assert full is not None and full.feedback == listed
    tree = store.get_trace_tree("p", trace_id)
    assert tree is not None and tree.feedback == listed
    first = store.get_trace_tree("p", trace_id, limit=1)
    assert first is not None and first.feedback == listed and first.next_cursor is not None
    last = store.get_trace_tree("p", trace_id, limit=1, cursor=first.next_cursor)
    assert last is not None and last.feedback == listed
    # A page after the last span has no span row to carry the feedback: it is still there.
    past = store_sql.encode_cursor([2**62, "f" * 16])
    beyond = store.get_trace_tree("p", trace_id, cursor=past)
    assert beyond is not None and beyond.spans == [] and beyond.feedback == listed
    quiet = store.get_trace("p", quiet_id)
    quiet_tree = store.get_trace_tree("p", quiet_id)
    assert quiet is not None and quiet.feedback == [] and quiet_tree is not None
    assert quiet_tree.feedback == []


def test_text_with_quotes_backslashes_and_tabs_is_bound_exactly(store: TraceStore) -> None:
    odd = 'it\'s "odd" \\ back\tslash\nnewline'
    trace_id, spans, payloads = make_run("p", question=f"why is {odd} here", answer="ok")
    store.insert_spans("p", spans, payloads)
    assert _ids(store, "p", TraceQuery(text=odd)) == [trace_id]
    assert _ids(store, "p", TraceQuery(text=odd + "x")) == []
    detail = store.get_trace("p", trace_id)
    assert detail is not None and detail.trace.input_preview == f"why is {odd} here"
    assert _ids(store, "p", TraceQuery(agent="analyst' OR '1'='1")) == []


def test_unknown_trace_is_none(store: TraceStore) -> None:
    assert store.get_trace("p", uuid.uuid4().hex) is None
    assert store.get_trace("p", "") is None


def test_spans_of_another_project_are_rejected(store: TraceStore) -> None:
    _, spans, payloads = make_run("a")
    with pytest.raises(InvalidInputError, match="belongs to project 'a'"):
        store.insert_spans("b", spans, payloads)
    with pytest.raises(InvalidInputError, match="sha256"):
        store.put_payloads("a", {"xyz": b"data"})


def test_project_isolation(store: TraceStore) -> None:
    trace_id, spans, payloads = make_run("a", question="secret question")
    store.insert_spans("a", spans, payloads)
    now = datetime.now(UTC)
    store.save_replay(
        "a",
        ReplayRecord(
            replay_id="r1",
            original_trace_id=trace_id,
            mode=ReplayMode.RECORDED,
            created_at=now,
            updated_at=now,
        ),
    )
    store.save_approval(
        "a", Approval(approval_id="ap1", run_id="run1", tool_name="rm", requested_at=now)
    )

    assert store.get_trace("b", trace_id) is None
    assert store.get_payloads("b", list(payloads)) == {}
    assert store.list_traces("b", TraceQuery()).traces == []
    assert store.list_traces("b", TraceQuery(text="secret")).traces == []
    assert store.search_spans("b", SpanQuery()).spans == []
    assert store.stats("b", StatsQuery()).runs == 0
    assert store.get_replay("b", "r1") is None
    assert store.list_replays("b", trace_id) == []
    assert store.get_approval("b", "ap1") is None
    assert store.list_approvals("b") == []
    assert store.delete_trace("b", trace_id) is False

    assert store.get_trace("a", trace_id) is not None
    assert _ids(store, "a", TraceQuery(text="secret")) == [trace_id]
    assert store.get_replay("a", "r1") is not None
    assert [a.approval_id for a in store.list_approvals("a")] == ["ap1"]


def test_dedup_token_makes_a_replayed_batch_a_no_op(store: TraceStore) -> None:
    trace_id, spans, payloads = make_run("p", tokens=(7, 3))
    store.insert_spans("p", spans, payloads, dedup_token="spool-segment-1:0-3")
    store.insert_spans("p", spans, payloads, dedup_token="spool-segment-1:0-3")

    detail = store.get_trace("p", trace_id)
    assert detail is not None
    assert len(detail.spans) == 3
    # The views (summaries, trace-id lookup) must not count the replayed batch either.
    assert detail.trace.span_count == 3 and detail.trace.input_tokens == 7
    [summary] = store.list_traces("p", TraceQuery()).traces
    assert summary.span_count == 3 and summary.llm_calls == 1
    assert store.stats("p", StatsQuery()).input_tokens == 7
    spans_rows = store._rows(  # type: ignore[attr-defined]
        "SELECT count() AS n FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}",
        {"t": trace_id},
    )
    assert spans_rows[0]["n"] == 1

    # A different token is a different batch: it is stored.
    other_id, other, other_payloads = make_run("p")
    store.insert_spans("p", other, other_payloads, dedup_token="spool-segment-1:3-6")
    assert store.get_trace("p", other_id) is not None


# --- re-delivered spans, and the server side of a tool call -----------------------------------
def mcp_server_span(tool_span: SpanRecord, *, fails: bool = False) -> SpanRecord:
    """The span an MCP server makes for the call (mcp's OpenTelemetry middleware): a SERVER span
    inside the runner's ``execute_tool`` span, carrying the same ``gen_ai`` operation and tool."""
    return SpanRecord(
        project_id=tool_span.project_id,
        trace_id=tool_span.trace_id,
        span_id=uuid.uuid4().hex[:16],
        parent_span_id=tool_span.span_id,
        name=f"tools/call {tool_span.tool_name}",
        kind=SpanKind.SERVER,
        service_name="retrace-data",
        attributes={
            attr.GEN_AI_OPERATION_NAME: attr.OP_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: tool_span.tool_name,
        },
        start_time_unix_nano=tool_span.start_time_unix_nano + 1 * MS,
        duration_ns=tool_span.duration_ns - 2 * MS,
        status_code=StatusCode.ERROR if fails else StatusCode.OK,
        operation=attr.OP_EXECUTE_TOOL,
        tool_name=tool_span.tool_name,
    )


def test_redelivered_spans_and_server_tool_spans_are_counted_once(store: TraceStore) -> None:
    """A span an OTLP client sends again (a retry, in a new request) is one span everywhere, and
    the MCP server's own span of a tool call is not a second tool call."""
    trace_id, spans, payloads = make_run("p", tool_fails=True, tokens=(7, 3))
    server = mcp_server_span(spans[2], fails=True)
    # Each request is its own spool batch with its own token, as the collector inserts them.
    store.insert_spans("p", [*spans, server], payloads, dedup_token="spool:0-1:p")
    store.insert_spans("p", spans[1:], payloads, dedup_token="spool:1-2:p")  # a client retry
    repeats = [spans[1], spans[1], spans[0], server]  # repeats inside one batch
    store.insert_spans("p", repeats, {}, dedup_token="spool:2-3:p")
    other_id, other, other_payloads = make_run(
        "p", start=BASE + timedelta(minutes=1), tokens=(1, 1), tool="read_file"
    )
    store.insert_spans("p", other, other_payloads)

    stored = store._rows(  # type: ignore[attr-defined]
        "SELECT count() AS n FROM otel_traces WHERE TraceId = {t:String}", {"t": trace_id}
    )
    assert stored[0]["n"] == 4  # each span stored once

    def check() -> None:
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        run = listed[trace_id]
        assert run.span_count == 4  # root, chat, execute_tool and the server's tools/call
        assert (run.llm_calls, run.tool_calls) == (1, 1)
        assert (run.input_tokens, run.output_tokens) == (7, 3)
        assert run.error_count == 2 and run.status == "error"
        detail = store.get_trace("p", trace_id)
        assert detail is not None and len(detail.spans) == 4
        assert detail.trace == run  # one rule, two readers

        by = {"sort": "spans", "order": "desc"}
        assert _ids(store, "p", TraceQuery.model_validate(by)) == [trace_id, other_id]
        by = {"sort": "tokens", "order": "asc"}
        assert _ids(store, "p", TraceQuery.model_validate(by)) == [other_id, trace_id]
        by = {"sort": "errors", "order": "desc"}
        assert _ids(store, "p", TraceQuery.model_validate(by)) == [trace_id, other_id]

        found = store.search_spans("p", SpanQuery(trace_id=trace_id)).spans
        assert sorted(s.span_id for s in found) == sorted({s.span_id for s in [*spans, server]})
        seen = _paged_spans(store, "p", 1)
        assert len(seen) == 7 and len(set(seen)) == 7

        stats = store.stats("p", StatsQuery())
        assert (stats.runs, stats.errors) == (2, 1)
        assert (stats.input_tokens, stats.output_tokens) == (8, 4)
        tools = [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools]
        assert tools == [("run_python", 1, 1)]

    check()
    _optimize_summaries(store)
    check()


# The latest instant the store holds: spans up to it are stored and read like any other.
LAST_INSTANT = datetime(2149, 6, 6, 23, 59, 59, 999_999, tzinfo=UTC)


def test_spans_up_to_the_last_representable_instant_round_trip(store: TraceStore) -> None:
    """Spans after 2106-02-07 (where a 32-bit DateTime ends) are read, listed, found and
    deleted like any other, up to the last nanosecond the store holds."""
    now_id, now_spans, now_payloads = make_run("p")
    store.insert_spans("p", now_spans, now_payloads)
    starts = {
        "after_2106": datetime(2106, 2, 8, 6, 30, tzinfo=UTC),
        "last_day": datetime(2149, 6, 6, 12, 0, tzinfo=UTC),
    }
    ids = {}
    for name, start in starts.items():
        trace_id, spans, payloads = make_run("p", start=start, question=f"run {name}")
        store.insert_spans("p", spans, payloads)
        ids[name] = trace_id
    # A run that ends on the very last nanosecond.
    last_start = MAX_SPAN_TIME_UNIX_NANO - 100 * MS
    edge_id, edge, edge_payloads = make_run("p", start=datetime(2149, 6, 6, tzinfo=UTC))
    shift = last_start - edge[0].start_time_unix_nano
    edge = [
        s.model_copy(update={"start_time_unix_nano": s.start_time_unix_nano + shift}) for s in edge
    ]
    store.insert_spans("p", edge, edge_payloads)
    ids["last_nanosecond"] = edge_id

    for name, trace_id in ids.items():
        detail = store.get_trace("p", trace_id)
        assert detail is not None, name
        assert len(detail.spans) == 3 and detail.trace.span_count == 3
    detail = store.get_trace("p", edge_id)
    assert detail is not None
    assert max(s.start_time_unix_nano + s.duration_ns for s in detail.spans) == (
        MAX_SPAN_TIME_UNIX_NANO
    )
    assert detail.trace.end_time == LAST_INSTANT

    everything = [now_id, ids["after_2106"], ids["last_day"], edge_id]
    newest_first = TraceQuery(limit=10)
    assert _ids(store, "p", newest_first) == everything[::-1]
    since_2100 = TraceQuery(start=datetime(2100, 1, 1, tzinfo=UTC), limit=10)
    assert _ids(store, "p", since_2100) == everything[:0:-1]
    since_now = TraceQuery(start=BASE, order="asc", limit=10)
    assert _ids(store, "p", since_now) == everything
    assert store.stats("p", StatsQuery(start=datetime(2100, 1, 1, tzinfo=UTC))).runs == 3
    found = store.search_spans("p", SpanQuery(start=datetime(2100, 1, 1, tzinfo=UTC)))
    assert {s.trace_id for s in found.spans} == set(everything[1:])
    assert len(store.search_spans("p", SpanQuery(start=BASE, limit=100)).spans) == 12

    for trace_id in everything[1:]:
        assert store.delete_trace("p", trace_id) is True
        assert store.get_trace("p", trace_id) is None
    assert _ids(store, "p", newest_first) == [now_id]


# --- lists -------------------------------------------------------------------------------------
@pytest.fixture
def populated(store: TraceStore) -> dict[str, str]:
    """Five runs with distinct agents, models, tools, outcomes and durations; name -> trace id."""
    runs = {
        "ok_fast": make_run("p", start=BASE, duration_ms=50, question="count the rows"),
        "ok_slow": make_run(
            "p",
            start=BASE + timedelta(minutes=1),
            duration_ms=5000,
            agent="planner",
            model="claude-test",
            attributes={"customer.id": "c-77"},
        ),
        "tool_error": make_run(
            "p",
            start=BASE + timedelta(minutes=2),
            tool="run_sql",
            tool_fails=True,
            tokens=(100, 50),
        ),
        "failed_run": make_run(
            "p", start=BASE + timedelta(hours=2), run_status=RunStatus.FAILED, answer="gave up"
        ),
        "replay": make_run(
            "p",
            start=BASE + timedelta(hours=3),
            attributes={attr.RETRACE_REPLAY_OF: "orig-trace"},
            question="a replayed question",
        ),
    }
    for _, spans, payloads in runs.values():
        store.insert_spans("p", spans, payloads)
    return {name: run[0] for name, run in runs.items()}


def test_list_filters(store: TraceStore, populated: dict[str, str]) -> None:
    ids = populated

    def names(**filters: object) -> set[str]:
        # Every filter applies to replays too: ask for them unless a test says otherwise.
        query = TraceQuery.model_validate({"include_replays": True, **filters})
        found = set(_ids(store, "p", query))
        return {name for name, trace_id in ids.items() if trace_id in found}

    # Replays are left out unless asked for (or asked for by their original).
    assert set(_ids(store, "p", TraceQuery())) == set(ids.values()) - {ids["replay"]}
    assert _ids(store, "p", TraceQuery(replay_of="orig-trace")) == [ids["replay"]]
    assert names() == set(ids)
    assert names(status="error") == {"tool_error", "failed_run"}
    assert names(status="ok") == {"ok_fast", "ok_slow", "replay"}
    assert names(run_status="failed") == {"failed_run"}
    assert names(agent="planner") == {"ok_slow"}
    assert names(model="claude-test") == {"ok_slow"}
    assert names(tool="run_sql") == {"tool_error"}
    assert names(service="retrace-runner") == set(ids)
    assert names(service="other") == set()
    assert names(min_duration_ms=1000) == {"ok_slow"}
    assert names(start=BASE + timedelta(hours=1)) == {"failed_run", "replay"}
    assert names(end=BASE + timedelta(hours=1)) == {"ok_fast", "ok_slow", "tool_error"}
    assert names(replay_of="orig-trace") == {"replay"}
    assert names(include_replays=False) == set(ids) - {"replay"}
    assert names(attributes={"customer.id": "c-77"}) == {"ok_slow"}
    assert names(attributes={"customer.id": "c-78"}) == set()
    assert names(attributes={attr.GEN_AI_TOOL_NAME: "run_sql"}) == {"tool_error"}
    assert names(attributes={"customer.id": "c-77", attr.GEN_AI_REQUEST_MODEL: "claude-test"}) == {
        "ok_slow"
    }
    # Free text: previews, then payload contents (the tool result mentions the question).
    assert names(text="COUNT THE") == {"ok_fast"}
    assert names(text="gave up") == {"failed_run"}
    assert names(text="result of a replayed") == {"replay"}
    assert names(text="no such words anywhere") == set()
    assert names(text="it's \\ odd\t") == set()  # quoting and escapes are bound, not spliced

    [summary] = store.list_traces("p", TraceQuery(tool="run_sql")).traces
    assert summary.error_count == 1 and summary.status == "error"
    assert summary.input_tokens == 100 and summary.output_tokens == 50


# --- paused and resumed runs: one trace, several root segments ---------------------------------
def resumed_segment(
    project: str,
    trace_id: str,
    first_root: str,
    *,
    start: datetime,
    run_status: RunStatus,
    answer: str,
) -> list[SpanRecord]:
    """The segment a resumed run adds to its trace: a later root (no input) and one tool call."""
    root_id, tool_id = (uuid.uuid4().hex[:16] for _ in range(2))
    t0 = _ns(start)
    root = SpanRecord(
        project_id=project,
        trace_id=trace_id,
        span_id=root_id,
        name="invoke_agent analyst",
        service_name="retrace-runner",
        attributes={attr.RETRACE_RUN_STATUS: run_status.value},
        start_time_unix_nano=t0,
        duration_ns=50 * MS,
        status_code=StatusCode.OK,
        operation=attr.OP_INVOKE_AGENT,
        agent_name="analyst",
        output_preview=answer,
        links=[SpanLink(trace_id=trace_id, span_id=first_root)],
    )
    tool_span = SpanRecord(
        project_id=project,
        trace_id=trace_id,
        span_id=tool_id,
        parent_span_id=root_id,
        name="execute_tool write_file",
        service_name="retrace-runner",
        start_time_unix_nano=t0 + 5 * MS,
        duration_ns=10 * MS,
        status_code=StatusCode.OK,
        operation=attr.OP_EXECUTE_TOOL,
        agent_name="analyst",
        tool_name="write_file",
        step_index=2,
    )
    return [root, tool_span]


def _paused_run(
    project: str, outcome: RunStatus, answer: str
) -> tuple[str, list[list[SpanRecord]]]:
    """A run paused for approval (a first root, "pending_approval") and resumed an hour later."""
    trace_id, first, _ = make_run(
        project,
        question="Delete the temp files?",
        answer="waiting for approval",
        run_status=RunStatus.PENDING_APPROVAL,
    )
    later = resumed_segment(
        project,
        trace_id,
        first[0].span_id,
        start=BASE + timedelta(hours=1),
        run_status=outcome,
        answer=answer,
    )
    return trace_id, [first, later]


def _optimize_summaries(store: TraceStore) -> None:
    store._command("OPTIMIZE TABLE retrace_trace_summaries FINAL")  # type: ignore[attr-defined]


@pytest.mark.parametrize("arrival", ["in_order", "resumed_segment_first"])
def test_resumed_run_summary_follows_the_latest_root_segment(
    store: TraceStore, arrival: str
) -> None:
    completed, completed_batches = _paused_run("p", RunStatus.COMPLETED, "deleted 3 files")
    rejected, rejected_batches = _paused_run("p", RunStatus.REJECTED, "")
    still_paused, paused_batches = _paused_run("p", RunStatus.COMPLETED, "never")
    paused_batches = paused_batches[:1]
    for batches in (completed_batches, rejected_batches, paused_batches):
        # Separate insert batches: separate summary rows, combined at read time and by merges.
        for batch in batches if arrival == "in_order" else batches[::-1]:
            store.insert_spans("p", batch, {})

    def check() -> None:
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        done = listed[completed]
        assert (done.run_status, done.status) == ("completed", "ok")
        assert done.output_preview == "deleted 3 files"
        assert done.input_preview == "Delete the temp files?"  # the run's input, first segment
        assert done.span_count == 5 and done.tool_calls == 2
        assert (listed[rejected].run_status, listed[rejected].status) == ("rejected", "error")
        assert listed[rejected].output_preview == ""  # the final segment answered nothing
        assert listed[still_paused].run_status == "pending_approval"
        assert listed[still_paused].output_preview == "waiting for approval"
        for trace_id, summary in listed.items():
            detail = store.get_trace("p", trace_id)
            assert detail is not None and detail.trace == summary  # one rule, two readers

        assert set(_ids(store, "p", TraceQuery(run_status="completed"))) == {completed}
        assert set(_ids(store, "p", TraceQuery(run_status="pending_approval"))) == {still_paused}
        assert set(_ids(store, "p", TraceQuery(run_status="rejected"))) == {rejected}
        assert set(_ids(store, "p", TraceQuery(status="error"))) == {rejected}
        assert set(_ids(store, "p", TraceQuery(status="ok"))) == {completed, still_paused}
        stats = store.stats("p", StatsQuery())
        assert (stats.runs, stats.errors) == (3, 1)

    check()
    _optimize_summaries(store)  # merged into one row per trace: max() of the tuples
    rows = store._rows(  # type: ignore[attr-defined]
        "SELECT count() AS n FROM retrace_trace_summaries WHERE TraceId = {t:String}",
        {"t": completed},
    )
    assert rows[0]["n"] == 1
    check()


def _store_at(request: pytest.FixtureRequest, tmp_path: Path, version: int) -> TraceStore:
    """A store whose schema stopped at ``version``, as an older Retrace left it."""
    opened = _open(request, tmp_path, migrate=False)
    opened._command(store_sql.MIGRATIONS_DDL)  # type: ignore[attr-defined]
    for migration in load_migrations()[:version]:
        for statement in migration.statements:
            opened._command(statement)  # type: ignore[attr-defined]
        opened._command(  # type: ignore[attr-defined]
            store_sql.RECORD_MIGRATION_SQL,
            {"version": migration.version, "description": migration.description},
        )
    return opened


def _insert_as_older_code(
    store: TraceStore,
    spans: list[SpanRecord],
    payloads: dict[str, bytes],
    dedup_token: str | None = None,
) -> None:
    """Insert as a Retrace before schema 5 did: every row as given, nothing looked up first."""
    store.put_payloads("p", payloads)
    settings: dict[str, object] = {"deduplicate_blocks_in_dependent_materialized_views": 1}
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    # Older code knew no SessionId/UserId columns (schema 6).
    table = spans_to_arrow("p", spans).drop_columns(["SessionId", "UserId"])
    store._insert(store_sql.SPANS_TABLE, table, settings)  # type: ignore[attr-defined]


@pytest.fixture(params=["chdb", "clickhouse"])
def store_at_v2(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped at version 2 (before the latest-root-segment columns)."""
    opened = _store_at(request, tmp_path, 2)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=["chdb", "clickhouse"])
def store_at_v4(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped at version 4 (summing summaries, 32-bit lookup times)."""
    opened = _store_at(request, tmp_path, 4)
    try:
        yield opened
    finally:
        opened.close()


def test_upgrade_keeps_old_summaries_and_fixes_runs_resumed_after_it(
    store_at_v2: TraceStore,
) -> None:
    store = store_at_v2
    old_id, old_spans, old_payloads = make_run("p", question="old question", answer="old answer")
    _insert_as_older_code(store, old_spans, old_payloads)
    resumed_id, (first, later) = _paused_run("p", RunStatus.COMPLETED, "resumed after upgrade")
    _insert_as_older_code(store, first, {})

    assert store.migrate() == SCHEMA_VERSION
    # Migration 0004 rebuilt the payload table: what was stored before is still there.
    assert old_payloads and store.get_payloads("p", list(old_payloads)) == old_payloads
    store.insert_spans("p", later, {})
    for _ in range(2):  # before and after the merge of old and new summary rows
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        old = listed[old_id]  # written before the migration: read from the old columns
        assert (old.run_status, old.status) == ("completed", "ok")
        assert (old.input_preview, old.output_preview) == ("old question", "old answer")
        resumed = listed[resumed_id]
        assert resumed.run_status == "completed"
        assert resumed.output_preview == "resumed after upgrade"
        assert resumed.input_preview == "Delete the temp files?"
        assert _ids(store, "p", TraceQuery(run_status="pending_approval")) == []
        assert set(_ids(store, "p", TraceQuery(run_status="completed"))) == {old_id, resumed_id}
        _optimize_summaries(store)


@pytest.fixture(params=["chdb", "clickhouse"])
def store_at_v5(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped at version 5 (no sessions, users or feedback)."""
    opened = _store_at(request, tmp_path, 5)
    try:
        yield opened
    finally:
        opened.close()


def test_upgrade_to_v6_gives_stored_traces_their_session_and_user(store_at_v5: TraceStore) -> None:
    store = store_at_v5
    on_span, spans, payloads = make_run("p", attributes={attr.SESSION_ID: "s-old"})
    _insert_as_older_code(store, spans, payloads)
    on_resource, spans2, payloads2 = make_run("p", start=BASE + timedelta(minutes=1))
    spans2[0].resource_attributes[attr.LANGFUSE_USER_ID] = "u-old"
    spans2[0].resource_attributes[attr.LANGFUSE_SESSION_ID] = "s-old"
    _insert_as_older_code(store, spans2, payloads2)
    plain, spans3, payloads3 = make_run("p", start=BASE + timedelta(minutes=2))
    _insert_as_older_code(store, spans3, payloads3)

    assert store.migrate() == SCHEMA_VERSION
    for _ in range(2):  # before and after the merge of the backfilled rows
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        assert listed[on_span].session_id == "s-old"
        assert (listed[on_resource].session_id, listed[on_resource].user_id) == ("s-old", "u-old")
        assert (listed[plain].session_id, listed[plain].user_id) == ("", "")
        # Counts and times are those stored before: the backfill adds nothing to them.
        assert listed[on_span].span_count == 3
        assert listed[on_span].start_time == BASE
        assert listed[on_span].input_preview == "How many rows?"
        sessions = store.list_sessions("p", SessionQuery()).sessions
        assert [(x.session_id, x.user_id, x.trace_count) for x in sessions] == [
            ("s-old", "u-old", 2)
        ]
        _optimize_summaries(store)
    # New spans are mapped at ingest from then on.
    new_id, new_spans, new_payloads = make_run("p", start=BASE + timedelta(minutes=3))
    for span in new_spans:
        span.session_id = "s-old"
    store.insert_spans("p", new_spans, new_payloads)
    assert store.get_session("p", "s-old") is not None
    assert [t.trace_id for t in store.get_session("p", "s-old").traces] == [  # type: ignore[union-attr]
        on_span,
        on_resource,
        new_id,
    ]


@pytest.fixture(params=["chdb", "clickhouse"])
def store_before_v10(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped before version 10 (payload granules of 256 rows, 64 KB
    compressed blocks)."""
    opened = _store_at(request, tmp_path, 9)
    try:
        yield opened
    finally:
        opened.close()


def test_upgrade_to_v10_rebuilds_payloads_in_small_blocks_keeping_them(
    store_before_v10: TraceStore,
) -> None:
    store = store_before_v10
    trace_id, spans, payloads = make_run("p")
    _insert_as_older_code(store, spans, payloads)
    store.put_payloads("q", {_sha(b"other"): b"other"})
    assert store.migrate() == SCHEMA_VERSION
    created = store._rows(  # type: ignore[attr-defined]
        "SELECT create_table_query AS q FROM system.tables "
        "WHERE database = currentDatabase() AND name = {t:String}",
        {"t": store_sql.PAYLOADS_TABLE},
    )
    assert "index_granularity_bytes = 32768" in created[0]["q"]
    assert "min_compress_block_size = 8192" in created[0]["q"]
    assert payloads and store.get_payloads("p", list(payloads)) == payloads
    assert store.get_payloads("q", [_sha(b"other")]) == {_sha(b"other"): b"other"}
    assert store.get_payloads("p", [_sha(b"other")]) == {}
    detail = store.get_trace("p", trace_id)
    assert detail is not None
    resolved = {
        v.encode() for s in detail.spans for k, v in s.attributes.items() if k in attr.PAYLOAD_KEYS
    }
    assert resolved == set(payloads.values())


def test_upgrade_from_v4_recounts_stored_runs_and_reads_late_spans(
    store_at_v4: TraceStore,
) -> None:
    """Runs stored before the upgrade keep their data; their summaries are rebuilt from the
    spans (re-delivered spans and server tool spans counted once), and spans stored after
    2106-02-07, unreadable before, are read."""
    store = store_at_v4
    trace_id, spans, payloads = make_run("p", tool_fails=True, tokens=(7, 3))
    server = mcp_server_span(spans[2], fails=True)
    _insert_as_older_code(store, [*spans, server], payloads, dedup_token="spool:0-1:p")
    _insert_as_older_code(store, spans, payloads, dedup_token="spool:1-2:p")  # a client retry
    late_id, late, late_payloads = make_run("p", start=datetime(2120, 1, 1, tzinfo=UTC))
    _insert_as_older_code(store, late, late_payloads)
    resumed_id, (first, later) = _paused_run("p", RunStatus.COMPLETED, "resumed after upgrade")
    _insert_as_older_code(store, first, {})
    counted = store._rows(  # type: ignore[attr-defined]
        "SELECT sum(SpanCount) AS n, sum(ToolCalls) AS tools FROM retrace_trace_summaries"
        " WHERE TraceId = {t:String}",
        {"t": trace_id},
    )
    assert (counted[0]["n"], counted[0]["tools"]) == (7, 3)  # what the upgrade repairs

    assert store.migrate() == SCHEMA_VERSION
    store.insert_spans("p", spans[:2], {}, dedup_token="spool:5-6:p")  # a retry after it
    store.insert_spans("p", later, {})
    for _ in range(2):  # before and after the merge of backfilled and new summary rows
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        assert set(listed) == {trace_id, late_id, resumed_id}
        run = listed[trace_id]
        assert (run.span_count, run.llm_calls, run.tool_calls) == (4, 1, 1)
        assert (run.input_tokens, run.output_tokens, run.error_count) == (7, 3, 2)
        assert run.input_preview == "How many rows?" and run.output_preview == "42 rows"
        assert run.run_status == "completed" and run.status == "error"
        resumed = listed[resumed_id]
        assert resumed.run_status == "completed"
        assert resumed.output_preview == "resumed after upgrade"
        assert resumed.input_preview == "Delete the temp files?"
        assert (resumed.span_count, resumed.tool_calls) == (5, 2)
        for listed_id, summary in listed.items():
            detail = store.get_trace("p", listed_id)
            assert detail is not None and detail.trace == summary
        assert store.get_payloads("p", list(payloads)) == payloads
        found = store.search_spans("p", SpanQuery(trace_id=trace_id)).spans
        assert len(found) == 4  # stored twice by the old code, found once
        assert len(_paged_spans(store, "p", 2)) == 4 + 3 + 5
        late_detail = store.get_trace("p", late_id)
        assert late_detail is not None and len(late_detail.spans) == 3
        stats = store.stats("p", StatsQuery())
        assert stats.input_tokens == 7 + 10 + 10
        # one run_python call in each of the three runs, the first one stored twice
        assert [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools] == [
            ("run_python", 3, 1)
        ]
        _optimize_summaries(store)
    assert store.delete_trace("p", late_id) is True
    assert store.get_trace("p", late_id) is None


@pytest.fixture(params=["chdb", "clickhouse"])
def store_at_v8(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped at version 8 (summaries without RootKey)."""
    opened = _store_at(request, tmp_path, 8)
    try:
        yield opened
    finally:
        opened.close()


def test_upgrade_to_v9_lists_stored_runs_by_their_status(store_at_v8: TraceStore) -> None:
    """Summary rows written before RootKey existed list with the status of their latest root
    segment, alone and merged with rows written after the upgrade."""
    store = store_at_v8
    failed, spans, payloads = make_run("p", run_status=RunStatus.FAILED)
    store.insert_spans("p", spans, payloads)
    done, spans, payloads = make_run("p", start=BASE + timedelta(minutes=1))
    store.insert_spans("p", spans, payloads)
    rejected, (first, later) = _paused_run("p", RunStatus.REJECTED, "")
    store.insert_spans("p", first, {})  # pending_approval, before the upgrade
    approved, (first2, later2) = _paused_run("p", RunStatus.COMPLETED, "approved after it")
    store.insert_spans("p", first2, {})
    # Rejected without an error status: only the stored row's run status says it failed.
    old_rejected, spans, payloads = make_run("p", run_status=RunStatus.REJECTED)
    store.insert_spans("p", spans, payloads)
    # The resumed segment arrived first: the stored row's root is the later one.
    arrived_late, (first3, later3) = _paused_run("p", RunStatus.REJECTED, "")
    store.insert_spans("p", later3, {})

    assert store.migrate() == SCHEMA_VERSION
    store.insert_spans("p", later, {})  # the resumed segments, after the upgrade
    store.insert_spans("p", later2, {})
    store.insert_spans("p", first3, {})  # the paused first segment, after the upgrade
    failing = {failed, rejected, old_rejected, arrived_late}
    for _ in range(2):  # before and after the merge of old and new summary rows
        assert set(_ids(store, "p", TraceQuery(status="error"))) == failing
        assert set(_ids(store, "p", TraceQuery(status="ok"))) == {done, approved}
        assert set(_ids(store, "p", TraceQuery(run_status="rejected"))) == {
            rejected,
            old_rejected,
            arrived_late,
        }
        assert set(_ids(store, "p", TraceQuery(run_status="completed"))) == {done, approved}
        assert _ids(store, "p", TraceQuery(run_status="pending_approval")) == []
        listed = {t.trace_id: t for t in store.list_traces("p", TraceQuery()).traces}
        assert {k: (v.status, v.run_status) for k, v in listed.items()} == {
            failed: ("error", "failed"),
            done: ("ok", "completed"),
            rejected: ("error", "rejected"),
            approved: ("ok", "completed"),
            old_rejected: ("error", "rejected"),
            arrived_late: ("error", "rejected"),
        }
        assert listed[approved].output_preview == "approved after it"
        _optimize_summaries(store)


@pytest.fixture(params=["chdb", "clickhouse"])
def store_at_v10(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    """A store whose schema stopped at version 10 (no attribute index)."""
    opened = _store_at(request, tmp_path, 10)
    try:
        yield opened
    finally:
        opened.close()


def test_upgrade_to_v11_lists_stored_runs_by_their_attributes(store_at_v10: TraceStore) -> None:
    """Spans stored before the attribute index existed are found by attribute filters after the
    upgrade (the migration fills it from the spans), alone and with spans stored after it."""
    store = store_at_v10
    old, spans, payloads = make_run("p", attributes={"customer.id": "c-1"})
    store.insert_spans("p", spans, payloads)
    mixed, mixed_spans, payloads = make_run(
        "p", start=BASE + timedelta(minutes=1), attributes={"customer.id": "c-1"}
    )
    store.insert_spans("p", mixed_spans[:1], payloads)  # the root, before the upgrade
    other, spans, payloads = make_run(
        "p", start=BASE + timedelta(minutes=2), attributes={"customer.id": "c-2"}
    )
    store.insert_spans("p", spans, payloads)

    assert store.migrate() == SCHEMA_VERSION
    tagged = mixed_spans[1].model_copy(
        update={"attributes": {**mixed_spans[1].attributes, "tier": "gold"}}
    )
    store.insert_spans("p", [tagged, *mixed_spans[2:]], {})  # after the upgrade
    new, spans, payloads = make_run(
        "p", start=BASE + timedelta(minutes=3), attributes={"customer.id": "c-1"}
    )
    store.insert_spans("p", spans, payloads)

    def by(**attributes: str) -> list[str]:
        return _ids(store, "p", TraceQuery(attributes=attributes))

    assert by(**{"customer.id": "c-1"}) == [new, mixed, old]
    assert by(**{"customer.id": "c-2"}) == [other]
    assert by(tier="gold") == [mixed]
    assert by(**{"customer.id": "c-1", "tier": "gold"}) == [mixed]  # on two spans
    assert by(**{"customer.id": "c-2", "tier": "gold"}) == []
    bounded = TraceQuery(attributes={"customer.id": "c-1"}, start=BASE + timedelta(seconds=30))
    assert _ids(store, "p", bounded) == [new, mixed]
    assert _ids(store, "q", TraceQuery(attributes={"customer.id": "c-1"})) == []


def test_attribute_filters_on_values_the_index_leaves_out(store: TraceStore) -> None:
    """Values longer than the index keeps (in bytes, not characters) and '' (which also matches
    a span without the key) filter as the spans say; a deleted trace leaves the index with it."""
    limit = store_sql.ATTRIBUTE_INDEX_MAX_VALUE_BYTES
    values = {
        "long": "x" * (limit + 1),
        "widest": "é" * (limit // 2),  # exactly the limit in bytes: indexed
        "wide": "é" * (limit // 2 + 1),  # over it in bytes, under it in characters
    }
    ids = {}
    for n, (name, value) in enumerate(values.items()):
        trace_id, spans, payloads = make_run(
            "p", start=BASE + timedelta(minutes=n), attributes={"note": value}
        )
        store.insert_spans("p", spans, payloads)
        ids[name] = trace_id
    for name, value in values.items():
        assert _ids(store, "p", TraceQuery(attributes={"note": value})) == [ids[name]]
        assert _ids(store, "p", TraceQuery(attributes={"note": value + "y"})) == []
    # Each run has spans without the key, whose value reads as ''.
    everything = [ids["wide"], ids["widest"], ids["long"]]
    assert _ids(store, "p", TraceQuery(attributes={"note": ""})) == everything
    assert _ids(store, "p", TraceQuery(attributes={"note": "", "customer.id": ""})) == everything

    # Deleted, then stored again under the same id with another value: found by the new one.
    again, spans, payloads = make_run(
        "p", start=BASE + timedelta(hours=1), attributes={"customer.id": "c-9"}
    )
    store.insert_spans("p", spans, payloads)
    assert _ids(store, "p", TraceQuery(attributes={"customer.id": "c-9"})) == [again]
    assert store.delete_trace("p", again) is True
    assert _ids(store, "p", TraceQuery(attributes={"customer.id": "c-9"})) == []
    moved = {**spans[0].attributes, "customer.id": "c-10"}
    root = spans[0].model_copy(update={"attributes": moved})
    store.insert_spans("p", [root, *spans[1:]], payloads)
    assert _ids(store, "p", TraceQuery(attributes={"customer.id": "c-10"})) == [again]
    assert _ids(store, "p", TraceQuery(attributes={"customer.id": "c-9"})) == []


def test_list_filters_and_sorts_see_each_trace_whole_before_merges(
    store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace's later batches (separate, unmerged summary rows) decide its filters and sort:
    an error, a replay mark or more tokens that arrive later count, whether the start bound
    narrows the read through the lookup table or not."""
    late_error, spans, payloads = make_run("p", tokens=(1, 1))
    store.insert_spans("p", spans[:2], payloads)
    store.insert_spans("p", [spans[2].model_copy(update={"status_code": StatusCode.ERROR})], {})
    late_replay, spans, payloads = make_run("p", start=BASE + timedelta(minutes=1))
    store.insert_spans("p", spans[:2], payloads)
    marked = spans[2].model_copy(update={"attributes": {attr.RETRACE_REPLAY_OF: "orig"}})
    store.insert_spans("p", [marked], {})
    plain, spans, payloads = make_run("p", start=BASE + timedelta(minutes=2), tokens=(5, 5))
    store.insert_spans("p", spans, payloads)
    bounded = TraceQuery(start=BASE - timedelta(minutes=1))

    def check() -> None:
        assert _ids(store, "p", TraceQuery(status="error")) == [late_error]
        assert _ids(store, "p", TraceQuery(status="ok")) == [plain]
        assert _ids(store, "p", TraceQuery()) == [plain, late_error]
        assert _ids(store, "p", bounded) == [plain, late_error]
        assert _ids(store, "p", TraceQuery(include_replays=True)) == [
            plain,
            late_replay,
            late_error,
        ]
        assert _ids(store, "p", TraceQuery(replay_of="orig")) == [late_replay]
        assert _ids(store, "p", TraceQuery(sort="errors", order="desc")) == [late_error, plain]
        assert _ids(store, "p", TraceQuery(sort="tokens", order="asc")) == [late_error, plain]
        on_bound = TraceQuery(start=BASE + timedelta(minutes=1), include_replays=True)
        assert _ids(store, "p", on_bound) == [plain, late_replay]

    for prune in (0, 1_000_000):  # never / always through the lookup table
        monkeypatch.setattr(store_sql, "PRUNE_MAX_LOOKUP_ROWS", prune)
        check()
    _optimize_summaries(store)
    check()


@pytest.mark.parametrize(
    ("sort", "order"),
    [("start_time", "desc"), ("start_time", "asc"), ("duration", "desc"), ("tokens", "asc")],
)
def test_cursor_pagination_is_complete_and_stable(store: TraceStore, sort: str, order: str) -> None:
    expected = []
    for i in range(7):
        # Equal durations and tokens on some runs: the trace id breaks ties.
        trace_id, spans, payloads = make_run(
            "p",
            start=BASE + timedelta(seconds=i),
            duration_ms=100 * (i % 3 + 1),
            tokens=(i % 2, 1),
        )
        store.insert_spans("p", spans, payloads)
        expected.append(trace_id)

    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        page = store.list_traces(
            "p",
            TraceQuery.model_validate({"sort": sort, "order": order, "limit": 3, "cursor": cursor}),
        )
        seen.extend(t.trace_id for t in page.traces)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(expected) and len(seen) == 7
    everything = _ids(store, "p", TraceQuery.model_validate({"sort": sort, "order": order}))
    assert seen == everything

    with pytest.raises(InvalidInputError, match="invalid cursor"):
        store.list_traces("p", TraceQuery(cursor="not-a-cursor"))


def test_newest_first_pages_cross_from_recent_windows_to_older_traces(store: TraceStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    starts = [now - timedelta(minutes=m) for m in (1, 5, 9, 20, 40)]  # inside the first window
    starts += [now - timedelta(hours=5), now - timedelta(days=3), now - timedelta(days=40)]
    starts.append(BASE)
    by_start = {}
    for start in starts:
        trace_id, spans, payloads = make_run("p", start=start)
        store.insert_spans("p", spans, payloads)
        by_start[start] = trace_id
    expected = [by_start[s] for s in sorted(starts, reverse=True)]

    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_traces("p", TraceQuery(limit=3, cursor=cursor))
        seen.extend(t.trace_id for t in page.traces)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert _ids(store, "p", TraceQuery(limit=2)) == expected[:2]
    assert _ids(store, "p", TraceQuery(limit=2, end=now - timedelta(minutes=30))) == expected[4:6]
    recent = TraceQuery(limit=10, start=now - timedelta(days=1))
    assert _ids(store, "p", recent) == expected[:6]


def test_newest_first_list_after_a_quiet_hour(store: TraceStore) -> None:
    # The last hour holds a page's worth or less: the list reads on into older traces.
    now = datetime.now(UTC).replace(microsecond=0)
    starts = [now - timedelta(minutes=10), now - timedelta(minutes=50)]
    starts += [now - timedelta(hours=h) for h in (2, 3, 30)] + [now - timedelta(days=9)]
    by_start = {}
    for start in starts:
        trace_id, spans, payloads = make_run("p", start=start)
        store.insert_spans("p", spans, payloads)
        by_start[start] = trace_id
    expected = [by_start[s] for s in sorted(starts, reverse=True)]
    for limit in (1, 2, 3, 5):
        assert _ids(store, "p", TraceQuery(limit=limit)) == expected[:limit]
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_traces("p", TraceQuery(limit=limit, cursor=cursor))
            seen.extend(t.trace_id for t in page.traces)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected


# --- spans, stats, delete ------------------------------------------------------------------------
def test_search_spans(store: TraceStore, populated: dict[str, str]) -> None:
    chats = store.search_spans("p", SpanQuery(operation=attr.OP_CHAT))
    assert len(chats.spans) == 5
    assert all(s.operation == attr.OP_CHAT for s in chats.spans)
    assert all(attr.GEN_AI_INPUT_MESSAGES in s.attributes for s in chats.spans)  # resolved
    assert [s.start_time for s in chats.spans] == sorted(
        (s.start_time for s in chats.spans), reverse=True
    )

    failed = store.search_spans("p", SpanQuery(status="error"))
    assert {s.trace_id for s in failed.spans} == {populated["tool_error"], populated["failed_run"]}
    assert store.search_spans("p", SpanQuery(tool="run_sql")).spans[0].status_message == "boom"
    assert len(store.search_spans("p", SpanQuery(trace_id=populated["ok_fast"])).spans) == 3
    assert len(store.search_spans("p", SpanQuery(min_duration_ms=1000)).spans) == 1
    by_attr = store.search_spans("p", SpanQuery(attributes={"customer.id": "c-77"}))
    assert [s.trace_id for s in by_attr.spans] == [populated["ok_slow"]]

    seen = _paged_spans(store, "p", 4)
    assert len(seen) == 15 and len(set(seen)) == 15


def test_stats(store: TraceStore, populated: dict[str, str]) -> None:
    stats = store.stats("p", StatsQuery(bucket_seconds=3600))
    # The replay (hour 3) is no run: left out of every figure.
    assert stats.runs == 4
    assert stats.errors == 2
    assert stats.error_rate == pytest.approx(0.5)
    assert stats.input_tokens == 10 * 3 + 100 and stats.output_tokens == 5 * 3 + 50
    assert stats.p50_ms == pytest.approx(100.0)
    assert stats.p99_ms >= stats.p90_ms >= stats.p50_ms
    assert [b.runs for b in stats.buckets] == [3, 1]
    assert (stats.approval_waits, stats.approval_wait_ms, stats.waiting_for_approval) == (0, 0, 0)
    assert stats.buckets[0].time == BASE and stats.buckets[0].errors == 1
    assert [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools] == [("run_sql", 1, 1)]

    narrow = store.stats("p", StatsQuery(start=BASE + timedelta(hours=1), agent="analyst"))
    assert narrow.runs == 1 and narrow.errors == 1
    assert store.stats("p", StatsQuery(agent="planner")).runs == 1


def _segments(
    project: str, start: datetime, parts: list[tuple[int, RunStatus, timedelta]]
) -> tuple[str, list[SpanRecord], dict[str, bytes]]:
    """One run in root segments, as the runner records a run paused for approval and resumed:
    each part is (milliseconds it ran, the status it ended with, the wait before the next)."""
    trace_id = uuid.uuid4().hex
    spans: list[SpanRecord] = []
    payloads: dict[str, bytes] = {}
    for ms, status, wait in parts:
        _, part, part_payloads = make_run(project, start=start, duration_ms=ms, run_status=status)
        for span in part:
            links = [link.model_copy(update={"trace_id": trace_id}) for link in span.links]
            spans.append(span.model_copy(update={"trace_id": trace_id, "links": links}))
        payloads |= part_payloads
        start += timedelta(milliseconds=ms) + wait
    return trace_id, spans, payloads


def test_stats_time_runs_without_their_waits_for_approval(store: TraceStore) -> None:
    paused, done, none = RunStatus.PENDING_APPROVAL, RunStatus.COMPLETED, timedelta(0)
    runs = [
        make_run("p", start=BASE, duration_ms=100),
        # Paused for an hour, resumed, 200 + 300 ms of work.
        _segments(
            "p", BASE + timedelta(minutes=1), [(200, paused, timedelta(hours=1)), (300, done, none)]
        ),
        # Paused twice (10 and 20 minutes), 300 ms of work.
        _segments(
            "p",
            BASE + timedelta(minutes=2),
            [
                (100, paused, timedelta(minutes=10)),
                (100, paused, timedelta(minutes=20)),
                (100, done, none),
            ],
        ),
        # Waiting now.
        make_run("p", start=BASE + timedelta(minutes=3), duration_ms=150, run_status=paused),
        # A replay that took two hours: no run.
        make_run(
            "p",
            start=BASE + timedelta(minutes=4),
            duration_ms=7_200_000,
            attributes={attr.RETRACE_REPLAY_OF: "orig"},
        ),
    ]
    for _, spans, payloads in runs:
        store.insert_spans("p", spans, payloads)
    # The trace keeps its wall time.
    waited = store.get_trace("p", runs[1][0])
    assert waited is not None and waited.trace.duration_ms == pytest.approx(3_600_500)

    stats = store.stats("p", StatsQuery(bucket_seconds=86_400))
    assert stats.runs == 4
    # Active durations 100, 500, 300, 150 ms: the largest is 500, not an hour.
    assert stats.p99_ms == pytest.approx(500)
    assert stats.p50_ms == pytest.approx(300)
    assert (stats.approval_waits, stats.waiting_for_approval) == (2, 1)
    assert stats.approval_wait_ms == pytest.approx(5_400_000)
    assert stats.approval_wait_p50_ms == pytest.approx(3_600_000)
    [bucket] = stats.buckets
    assert bucket.runs == 4 and bucket.p95_ms == pytest.approx(500)
    # Another project sees none of it.
    assert store.stats("q", StatsQuery()).approval_waits == 0


def test_delete_trace(store: TraceStore) -> None:
    trace_id, spans, payloads = make_run("p")
    keep_id, keep, keep_payloads = make_run("p")
    store.insert_spans("p", spans + keep, {**payloads, **keep_payloads})

    assert store.delete_trace("p", trace_id) is True
    assert store.get_trace("p", trace_id) is None
    assert _ids(store, "p", TraceQuery()) == [keep_id]
    assert {s.trace_id for s in store.search_spans("p", SpanQuery()).spans} == {keep_id}
    assert store.delete_trace("p", trace_id) is False
    assert store.get_trace("p", keep_id) is not None


def test_suites(store: TraceStore) -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    runs = [make_run("p") for _ in range(3)]
    for _, spans, payloads in runs:
        store.insert_spans("p", spans, payloads)
    a, b, c = (trace_id for trace_id, _, _ in runs)

    def entry(trace_id: str, minutes: int = 0, note: str = "") -> SuiteTrace:
        return SuiteTrace(
            trace_id=trace_id, added_at=t0 + timedelta(minutes=minutes), source="cli", note=note
        )

    assert store.add_to_suite("p", "smoke", [entry(c), entry(a, note="first")]) == [c, a]
    # again with one more: the known one keeps its row (time, note), the order is the adding order
    assert store.add_to_suite("p", "smoke", [entry(a, 5, "again"), entry(b, 5)]) == [b]
    suite = store.get_suite("p", "smoke")
    assert suite is not None and suite.trace_count == 3
    assert [(t.trace_id, t.note) for t in suite.traces] == [(c, ""), (a, "first"), (b, "")]
    assert suite.updated_at == t0 + timedelta(minutes=5)
    assert store.add_to_suite("p", "other", [entry(a)]) == [a]
    assert [(s.name, s.trace_count) for s in store.list_suites("p")] == [("other", 1), ("smoke", 3)]
    assert [s.name for s in store.list_suites("p", trace_id=b)] == ["smoke"]
    # two writers adding the same trace at once store it twice: reads see it once
    rows = store_batches.suite_traces_to_arrow("p", "other", [entry(a, 9)], [2**62])
    store._insert(store_sql.SUITES_TABLE, rows, {})  # type: ignore[attr-defined]
    other = store.get_suite("p", "other")
    assert other is not None and [t.trace_id for t in other.traces] == [a]
    # projects are apart
    assert store.list_suites("q") == [] and store.get_suite("q", "smoke") is None
    assert store.remove_from_suite("q", "smoke", a) is False
    assert store.known_traces("p", [a, "f" * 32]) == {a} and store.known_traces("q", [a]) == set()
    # remove; a suite without traces is gone; a deleted trace leaves its suites
    assert store.remove_from_suite("p", "smoke", c) is True
    assert store.remove_from_suite("p", "smoke", c) is False
    assert store.remove_from_suite("p", "other", a) is True
    assert store.get_suite("p", "other") is None
    assert store.delete_trace("p", a) is True
    suite = store.get_suite("p", "smoke")
    assert suite is not None and [t.trace_id for t in suite.traces] == [b]


# --- replays, approvals, keys --------------------------------------------------------------------
def test_replays_upsert_and_list(store: TraceStore) -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    running = ReplayRecord(
        replay_id="r1",
        original_trace_id="orig",
        mode=ReplayMode.RECORDED,
        created_at=t0,
        updated_at=t0,
    )
    store.save_replay("p", running)
    report = DivergenceReport(
        original_trace_id="orig",
        replay_trace_id="new",
        mode=ReplayMode.RECORDED,
        diverged=True,
        metrics=DivergenceMetrics(steps_recorded=3, steps_replayed=2, steps_matched=2),
    )
    done = running.model_copy(
        update={
            "status": "completed",
            "updated_at": t0 + timedelta(seconds=5),
            "replay_trace_id": "new",
            "diverged": True,
            "first_divergence_step": 2,
            "first_divergence_kind": "missing_step",
            "report": report,
        }
    )
    store.save_replay("p", done)
    later = ReplayRecord(
        replay_id="r2",
        original_trace_id="orig",
        mode=ReplayMode.LIVE_TOOLS,
        created_at=t0 + timedelta(minutes=1),
        updated_at=t0 + timedelta(minutes=1),
        status="failed",
        error="sandbox missing",
    )
    store.save_replay("p", later)

    assert store.get_replay("p", "r1") == done
    assert store.get_replay("p", "nope") is None
    assert [r.replay_id for r in store.list_replays("p", "orig")] == ["r2", "r1"]
    assert store.list_replays("p", "orig")[0].error == "sandbox missing"
    assert store.list_replays("p", "other") == []


def test_approvals_upsert_and_filter(store: TraceStore) -> None:
    t0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    pending = Approval(
        approval_id="ap1",
        run_id="run1",
        trace_id="t1",
        span_id="s1",
        tool_name="write_file",
        arguments={"path": "/workspace/x", "n": [1, 2]},
        reason="writes",
        rule="ask-writes",
        requested_at=t0,
        expires_at=t0 + timedelta(hours=1),
    )
    store.save_approval("p", pending)
    store.save_approval(
        "p",
        Approval(approval_id="ap2", run_id="run2", tool_name="run_shell", requested_at=t0),
    )
    decided = pending.model_copy(
        update={
            "status": ApprovalStatus.APPROVED,
            "decided_at": t0 + timedelta(minutes=3),
            "decided_by": "ana",
            "comment": "fine",
        }
    )
    store.save_approval("p", decided)

    assert store.get_approval("p", "ap1") == decided
    assert store.get_approval("p", "missing") is None
    assert [a.approval_id for a in store.list_approvals("p")] == ["ap1", "ap2"]
    assert [a.approval_id for a in store.list_approvals("p", ApprovalStatus.PENDING)] == ["ap2"]
    assert [a.approval_id for a in store.list_approvals("p", run_id="run1")] == ["ap1"]
    assert store.list_approvals("p", ApprovalStatus.APPROVED, run_id="run2") == []


def test_the_earliest_decision_on_an_approval_stands(store: TraceStore) -> None:
    t0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    pending = Approval(approval_id="apd", run_id="rund", tool_name="rm", requested_at=t0)
    store.save_approval("p", pending)

    def decided(status: ApprovalStatus, minutes: int, who: str) -> Approval:
        return pending.model_copy(
            update={
                "status": status,
                "decided_at": t0 + timedelta(minutes=minutes),
                "decided_by": who,
            }
        )

    first = decided(ApprovalStatus.APPROVED, 2, "ana")
    assert store.decide_approval("q", first) is None  # unknown in another project
    assert store.decide_approval("p", first) == first
    assert store.decide_approval("p", decided(ApprovalStatus.REJECTED, 3, "bob")) == first
    store.save_approval("p", pending)  # a late upsert of the request does not undo it
    assert store.get_approval("p", "apd") == first

    # Rows another collector wrote after reading "pending" too: the earliest-stamped decision
    # stands whatever order the rows land in.
    def land(row: Approval) -> None:
        assert row.decided_at is not None
        version = store_batches.decision_version(row.decided_at)
        store._insert(
            store_sql.APPROVALS_TABLE, store_batches.approval_to_arrow("p", row, version), {}
        )  # type: ignore[attr-defined]

    land(decided(ApprovalStatus.REJECTED, 5, "late"))
    assert store.get_approval("p", "apd") == first
    earlier = decided(ApprovalStatus.REJECTED, 1, "earlier")
    land(earlier)
    assert store.get_approval("p", "apd") == earlier
    with pytest.raises(InvalidInputError):
        store.decide_approval("p", pending)


def test_api_keys(store: TraceStore) -> None:
    assert store.has_api_keys() is False
    key_hash = _sha(b"rt_secret_key")
    store.add_api_key("team-a", "k1", key_hash, name="ci")
    assert store.has_api_keys() is True
    assert store.project_for_key_hash(key_hash) == "team-a"
    assert store.project_for_key_hash(_sha(b"other")) is None
    assert store.project_for_key_hash("not-a-hash") is None
    with pytest.raises(InvalidInputError):
        store.add_api_key("team-a", "k2", "plaintext-key")

    [listed] = store.list_api_keys()
    assert listed["key_id"] == "k1" and listed["project"] == "team-a" and listed["name"] == "ci"
    assert listed["revoked"] == "no" and key_hash not in listed.values()

    assert store.revoke_api_key("k1") is True
    assert store.list_api_keys()[0]["revoked"] == "yes"
    assert store.project_for_key_hash(key_hash) is None
    assert store.has_api_keys() is False
    assert store.revoke_api_key("k1") is False
    assert store.revoke_api_key("unknown") is False


def test_engine_errors_and_closed_stores_raise_store_error(store: TraceStore) -> None:
    with pytest.raises(StoreError, match="no_such_table"):
        store._rows("SELECT * FROM no_such_table")  # type: ignore[attr-defined]
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.get_trace("p", "a" * 32)


def test_unreachable_or_misconfigured_server_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        open_store(Settings(clickhouse_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(ConfigError, match="invalid ClickHouse URL"):
        open_store(Settings(clickhouse_url="ftp://example"))
    with pytest.raises(InvalidInputError, match="invalid database name"):
        open_store(Settings(clickhouse_url="http://127.0.0.1:1", clickhouse_database="x;drop"))


# --- the embedded store's owner lock -------------------------------------------------------------
def test_chdb_store_is_owned_by_one_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    owner = open_store(Settings(data_dir=data_dir))
    try:
        code = (
            "import sys\n"
            "from pathlib import Path\n"
            "from collector.store import open_store\n"
            "from schemas.errors import StoreLockedError\n"
            "from schemas.settings import Settings\n"
            "try:\n"
            f"    open_store(Settings(data_dir=Path({str(data_dir)!r})))\n"
            "except StoreLockedError as exc:\n"
            "    print(exc.message)\n"
            "    sys.exit(3)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 3, result.stderr
        assert f"owned by process {os.getpid()} (" in result.stdout
        assert "pytest" in result.stdout or "python" in result.stdout

        # The same process opening it twice is refused the same way.
        with pytest.raises(StoreLockedError, match=str(os.getpid())):
            open_store(Settings(data_dir=data_dir))
    finally:
        owner.close()
    reopened = open_store(Settings(data_dir=data_dir))  # released on close
    reopened.close()
    owner.close()  # idempotent


# --- sessions, end users and feedback (schema 6) ------------------------------------------------
def _in_session(
    project: str, session: str, user: str, minutes: int, **kw: object
) -> tuple[str, list[SpanRecord], dict[str, bytes]]:
    trace_id, spans, payloads = make_run(project, start=BASE + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]
    for span in spans:
        span.session_id, span.user_id = session, user
    return trace_id, spans, payloads


def test_sessions_users_and_feedback(store: TraceStore) -> None:
    ids: dict[str, str] = {}
    for key, session, user, minutes, fails in (
        ("a1", "s-a", "alice", 0, False),
        ("a2", "s-a", "alice", 5, True),
        ("b1", "s-b", "bob", 2, False),
        ("c1", "s-c", "alice", 10, False),
    ):
        trace_id, spans, payloads = _in_session(
            "p",
            session,
            user,
            minutes,
            run_status=RunStatus.FAILED if fails else RunStatus.COMPLETED,
        )
        store.insert_spans("p", spans, payloads)
        ids[key] = trace_id
    # A replay of a1 in the same session is no part of the session's count.
    replay_id, replay_spans, replay_payloads = _in_session(
        "p", "s-a", "alice", 20, attributes={attr.RETRACE_REPLAY_OF: ids["a1"]}
    )
    store.insert_spans("p", replay_spans, replay_payloads)
    # Another project has a session of the same name.
    other, other_spans, other_payloads = _in_session("q", "s-a", "alice", 0)
    store.insert_spans("q", other_spans, other_payloads)

    with_replays = TraceQuery(session_id="s-a", include_replays=True)
    assert set(_ids(store, "p", with_replays)) == {ids["a1"], ids["a2"], replay_id}
    assert set(_ids(store, "p", TraceQuery(session_id="s-a", include_replays=False))) == {
        ids["a1"],
        ids["a2"],
    }
    assert set(_ids(store, "p", TraceQuery(user_id="bob"))) == {ids["b1"]}
    assert _ids(store, "p", TraceQuery(user_id="nobody")) == []
    listed = store.list_traces("p", TraceQuery(session_id="s-b")).traces
    assert [(t.session_id, t.user_id) for t in listed] == [("s-b", "bob")]
    detail = store.get_trace("p", ids["b1"])
    assert detail is not None
    assert (detail.trace.session_id, detail.trace.user_id) == ("s-b", "bob")
    assert {(s.session_id, s.user_id) for s in detail.spans} == {("s-b", "bob")}
    spans = store.search_spans("p", SpanQuery(user_id="bob")).spans
    assert {s.trace_id for s in spans} == {ids["b1"]} and len(spans) == 3
    assert (
        store.search_spans("p", SpanQuery(session_id="s-c", operation="chat")).spans[0].trace_id
        == ids["c1"]
    )

    # Feedback: stored per project, shown with the trace, filterable.
    complaint = Feedback(
        feedback_id="f1",
        trace_id=ids["a2"],
        name="complaint",
        value="said the refund was sent; it was not",
        comment="ticket 4711",
        source=FeedbackSource.USER,
        created_at=BASE + timedelta(hours=1),
    )
    score = Feedback(
        feedback_id="f2",
        trace_id=ids["a2"],
        span_id=detail.spans[1].span_id,
        name="score",
        value=0.25,
        source=FeedbackSource.REVIEWER,
        created_at=BASE + timedelta(hours=2),
    )
    thumbs = Feedback(
        feedback_id="f3",
        trace_id=ids["b1"],
        name="thumbs_up",
        value=True,
        source=FeedbackSource.CI,
        created_at=BASE + timedelta(hours=3),
    )
    for fb in (complaint, score, thumbs):
        store.save_feedback("p", fb)
    got = store.get_trace("p", ids["a2"])
    assert got is not None and got.feedback == [complaint, score]
    assert store.list_feedback("p", ids["b1"])[0].value is True
    assert _ids(store, "p", TraceQuery(feedback="complaint")) == [ids["a2"]]
    assert _ids(store, "p", TraceQuery(feedback="complaint", user_id="bob")) == []
    assert store.list_feedback("q", ids["a2"]) == []
    assert _ids(store, "q", TraceQuery(feedback="complaint")) == []

    # Sessions: newest activity first, per user, with counts; replays left out.
    page = store.list_sessions("p", SessionQuery())
    assert [s.session_id for s in page.sessions] == ["s-c", "s-a", "s-b"]
    a = next(s for s in page.sessions if s.session_id == "s-a")
    assert (a.user_id, a.trace_count, a.error_count, a.feedback_count) == ("alice", 2, 1, 2)
    assert a.first_time == BASE
    assert a.last_time == BASE + timedelta(minutes=5, milliseconds=100)
    alice = store.list_sessions("p", SessionQuery(user_id="alice")).sessions
    assert [s.session_id for s in alice] == ["s-c", "s-a"]
    in_range = store.list_sessions(
        "p", SessionQuery(start=BASE + timedelta(minutes=1), end=BASE + timedelta(minutes=6))
    ).sessions
    assert {(s.session_id, s.trace_count) for s in in_range} == {("s-a", 1), ("s-b", 1)}
    first = store.list_sessions("p", SessionQuery(limit=2))
    assert [s.session_id for s in first.sessions] == ["s-c", "s-a"] and first.next_cursor
    rest = store.list_sessions("p", SessionQuery(limit=2, cursor=first.next_cursor))
    assert [s.session_id for s in rest.sessions] == ["s-b"] and rest.next_cursor is None

    session = store.get_session("p", "s-a")
    assert session is not None
    assert [t.trace_id for t in session.traces] == [ids["a1"], ids["a2"]]  # oldest first
    assert session.session.trace_count == 2 and session.session.feedback_count == 2
    assert store.get_session("p", "s-unknown") is None
    # Project isolation: the other project sees its own session only.
    q_sessions = store.list_sessions("q", SessionQuery()).sessions
    assert [(s.session_id, s.trace_count) for s in q_sessions] == [("s-a", 1)]
    q_session = store.get_session("q", "s-a")
    assert q_session is not None and [t.trace_id for t in q_session.traces] == [other]
    assert store.list_sessions("r", SessionQuery()).sessions == []

    # Stats count feedback on the runs in their range, by name.
    counted = store.stats("p", StatsQuery()).feedback
    assert [(c.name, c.count, c.traces) for c in counted] == [
        ("complaint", 1, 1),
        ("score", 1, 1),
        ("thumbs_up", 1, 1),
    ]
    later = store.stats("p", StatsQuery(start=BASE + timedelta(minutes=3))).feedback
    assert [c.name for c in later] == ["complaint", "score"]  # a2 started at 5 min, b1 at 2
    assert store.stats("q", StatsQuery()).feedback == []

    # Deleting a trace deletes its feedback.
    assert store.delete_trace("p", ids["b1"])
    assert store.list_feedback("p", ids["b1"]) == []


# --- text search in any script ------------------------------------------------------------------
def test_text_search_finds_any_script_in_any_case_as_written_or_json_escaped(
    store: TraceStore,
) -> None:
    ru, _, ru_payloads = make_run("p", question="Где мой возврат?", answer="Ваш возврат отправлен")
    store.insert_spans("p", _, ru_payloads)
    ja, spans, payloads = make_run(
        "p", question="返金はどこですか", start=BASE + timedelta(minutes=1)
    )
    # Tool arguments as Python's json.dumps writes them: every non-ASCII character \uXXXX-escaped,
    # one past the BMP as a surrogate pair.
    args = json.dumps({"note": "Заказ Ñandú 注文番号 😀", "path": 'a/b "c"'}).encode()
    assert b"\\u0417" in args and b"\\ud83d\\ude00" in args
    spans[2].payload_refs[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = _sha(args)
    store.insert_spans("p", spans, {**payloads, _sha(args): args})
    plain, spans3, payloads3 = make_run(
        "p", question="Plain ASCII question", start=BASE + timedelta(minutes=2)
    )
    store.insert_spans("p", spans3, payloads3)

    def found(text: str) -> set[str]:
        return set(_ids(store, "p", TraceQuery(text=text)))

    for text in ("ВОЗВРАТ", "возврат", "Возврат", "ОТПРАВЛЕН"):
        assert found(text) == {ru}, text
    for text in ("返金", "どこ"):  # as written (the previews)
        assert found(text) == {ja}, text
    for text in ("заказ", "ЗАКАЗ", "ñANDÚ", "注文番号", "😀", 'b "c"', "a/b"):  # escaped payload
        assert found(text) == {ja}, text
    assert found("plain ascii") == {plain}
    assert found("Возвраты") == set()
    assert found("(.*)") == set()  # regular-expression syntax is text
    assert _ids(store, "q", TraceQuery(text="возврат")) == []


def test_a_batch_the_engine_refuses_raises_and_stores_nothing(store: TraceStore) -> None:
    """An insert the engine refuses row by row is an error, never a silent success.

    chDB's streaming insert reports success and stores nothing when the engine refuses the rows
    (here: a CHECK constraint): an acknowledged batch would be dropped from the spool and lost.
    """
    good_id, good_spans, good_payloads = make_run("p")
    store.insert_spans("p", good_spans, good_payloads)
    store._command(  # type: ignore[attr-defined]
        f"ALTER TABLE {store_sql.SPANS_TABLE} ADD CONSTRAINT no_poison CHECK SpanName != 'poison'"
    )
    bad_id, bad_spans, bad_payloads = make_run("p", start=BASE + timedelta(minutes=1))
    bad_spans[1] = bad_spans[1].model_copy(update={"name": "poison"})
    with pytest.raises(StoreError, match="no_poison"):
        store.insert_spans("p", bad_spans, bad_payloads)
    assert store.get_trace("p", bad_id) is None
    assert store.get_trace("p", good_id) is not None


def test_stats_failing_tools_leave_out_replays(store: TraceStore) -> None:
    original, spans, payloads = make_run("p", tool="run_sql", tool_fails=True)
    store.insert_spans("p", spans, payloads)
    for minutes, tool in ((1, "run_sql"), (2, "fetch_url")):
        _, replay, replay_payloads = make_run(
            "p",
            start=BASE + timedelta(minutes=minutes),
            tool=tool,
            tool_fails=True,
            attributes={attr.RETRACE_REPLAY_OF: original},
        )
        store.insert_spans("p", replay, replay_payloads)
    stats = store.stats("p", StatsQuery())
    assert stats.runs == 1
    assert [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools] == [("run_sql", 1, 1)]

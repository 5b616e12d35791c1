"""A stock OpenTelemetry Collector writing into ``otel_traces`` gives what Retrace's collector does.

The same realistic spans (GenAI, OpenInference and OpenLLMetry agent runs, spans known only by
their names) go in twice: once through Retrace's ingest (OTLP JSON decoded by the collector's
decoder, Retrace's columns derived in Python, inserted by the store), once with the OTel Collector
ClickHouse exporter's INSERT (its 22 columns only, so ClickHouse derives Retrace's columns from
their defaults, migration 0007). Both land in one real store (a ClickHouse HTTP server over chDB,
read with the clickhouse backend): the derived columns of every span, the trace summaries, the
traces as read back and the trajectories replay builds from them must be the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from collector.otlp import CONTENT_TYPE_JSON, decode_export_request
from collector.store import TraceStore, open_store
from replay._trajectory import trajectory_from_detail
from schemas.models import StatsQuery, TraceQuery
from schemas.settings import Settings
from schemas.tables import SPANS

pytestmark = pytest.mark.integration

# The exporter's statement (opentelemetry-collector-contrib, exporter/clickhouseexporter,
# internal/sql_templates/traces_insert.sql): these columns, in this order, nothing else.
EXPORTER_INSERT = """INSERT INTO otel_traces (
    Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,
    StatusMessage, Events.Timestamp, Events.Name, Events.Attributes, Links.TraceId,
    Links.SpanId, Links.TraceState, Links.Attributes
)"""
EXPORTER_COLUMNS = [
    c.strip() for c in EXPORTER_INSERT.partition("(")[2].rpartition(")")[0].split(",")
]
DERIVED = (
    "Operation, AgentName, Model, ToolName, InputTokens, OutputTokens, StepIndex, SessionId, "
    "UserId, InputPreview, OutputPreview"
)
BASE_NS = 1_780_000_000_000_000_000
LONG_TEXT = "Please  look\nat the quarterly numbers,\t" + "and explain every change " * 20

_KINDS = {"Internal": 1, "Server": 2, "Client": 3}
_STATUS = {"Unset": 0, "Ok": 1, "Error": 2}


def _msgs(*messages: dict[str, Any]) -> str:
    return json.dumps(list(messages))


def _span(
    trace: str,
    span: str,
    parent: str,
    name: str,
    attrs: dict[str, Any],
    *,
    start: int,
    kind: str = "Internal",
    status: str = "Unset",
) -> dict[str, Any]:
    return {
        "trace": trace,
        "span": span,
        "parent": parent,
        "name": name,
        "attrs": attrs,
        "start": BASE_NS + start * 1_000_000,
        "end": BASE_NS + start * 1_000_000 + 5_000_000,
        "kind": kind,
        "status": status,
    }


def _traces() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(resource attributes, spans) per resource: three conventions and bare span names."""
    t1, t2, t3, t4, t5 = (uuid.uuid4().hex for _ in range(5))
    run = "run-" + t1[:8]
    genai = [
        _span(
            t1,
            "1000000000000001",
            "",
            "invoke_agent planner",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "planner",
                "retrace.run.id": run,
                "retrace.run.status": "completed",
                "retrace.run.input": json.dumps("What changed in Q3?"),
                "retrace.run.output": json.dumps({"answer": "Revenue   grew\n12%."}),
                "gen_ai.conversation.id": run,  # a run id there is no session
                "session.id": "sess-1",
            },
            start=0,
        ),
        _span(
            t1,
            "1000000000000002",
            "1000000000000001",
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "retrace.step.index": 0,
                "gen_ai.input.messages": _msgs(
                    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                    {"role": "user", "parts": [{"type": "text", "content": LONG_TEXT}]},
                ),
                "gen_ai.output.messages": _msgs(
                    {
                        "role": "assistant",
                        "parts": [{"type": "tool_call", "name": "search", "id": "c1"}],
                    }
                ),
            },
            start=1,
        ),
        _span(
            t1,
            "1000000000000003",
            "1000000000000001",
            "execute_tool search",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.call.id": "c1",
                "gen_ai.tool.call.arguments": json.dumps({"q": "Q3 revenue"}),
                "gen_ai.tool.call.result": "not found",
                "retrace.step.index": "1",
            },
            start=2,
            status="Error",
        ),
        # The MCP server's own span of the same call: not a second tool call.
        _span(
            t1,
            "1000000000000004",
            "1000000000000003",
            "tools/call search",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            start=3,
            kind="Server",
        ),
        _span(
            t1,
            "1000000000000005",
            "1000000000000001",
            "chat",
            {
                "gen_ai.operation.name": "text_completion",
                "gen_ai.response.model": "gpt-4o-2024",
                "gen_ai.usage.prompt_tokens": "12.0",
                "gen_ai.usage.completion_tokens": "abc",
                "llm.usage.completion_tokens": "7",
                "gen_ai.output.messages": _msgs(
                    {"role": "assistant", "content": "Revenue grew 12%."}
                ),
            },
            start=4,
        ),
    ]
    openinference = [
        _span(
            t2,
            "2000000000000001",
            "",
            "research",
            {"openinference.span.kind": "AGENT", "input.value": "find the report"},
            start=10,
        ),
        _span(
            t2,
            "2000000000000002",
            "2000000000000001",
            "ChatOpenAI",
            {
                "openinference.span.kind": "llm",
                "llm.model_name": "gpt-4o-mini",
                "llm.token_count.prompt": "40",
                "llm.token_count.completion": "1e1",
                "input.value": json.dumps({"query": "report"}),
                "output.value": json.dumps({"text": "Here it is"}),
                "user.id": "alice",
            },
            start=11,
        ),
        _span(
            t2,
            "2000000000000003",
            "2000000000000001",
            "fetch_report",
            {"openinference.span.kind": "TOOL", "input.value": "{}"},
            start=12,
        ),
        _span(
            t2,
            "2000000000000004",
            "2000000000000001",
            "rerank docs",
            {"openinference.span.kind": "RERANKER"},
            start=13,
        ),
    ]
    openllmetry = [
        _span(
            t3,
            "3000000000000001",
            "",
            "daily.workflow",
            {
                "traceloop.span.kind": "workflow",
                "traceloop.entity.input": json.dumps({"inputs": {"day": "mon"}}),
                "traceloop.entity.output": "done",
                "traceloop.association.properties.session_id": "tl-sess",
            },
            start=20,
        ),
        _span(
            t3,
            "3000000000000002",
            "3000000000000001",
            "writer.agent",
            {"traceloop.span.kind": "agent", "traceloop.entity.name": "writer"},
            start=21,
        ),
        _span(
            t3,
            "3000000000000003",
            "3000000000000002",
            "lookup.tool",
            {"traceloop.span.kind": "tool"},
            start=22,
        ),
        _span(
            t3,
            "3000000000000004",
            "3000000000000002",
            "openai.chat",
            {
                "llm.request.type": "chat",
                "gen_ai.request.model": "gpt-4.1",
                "llm.usage.prompt_tokens": "99999999999999999999999",
                "llm.usage.completion_tokens": 5,
            },
            start=23,
        ),
    ]
    by_name = [
        _span(t4, "4000000000000001", "", "invoke_agent helper", {}, start=30, status="Ok"),
        _span(t4, "4000000000000002", "4000000000000001", "chat claude-3", {}, start=31),
        _span(t4, "4000000000000003", "4000000000000001", "execute_tool grep -r", {}, start=32),
        _span(t4, "4000000000000004", "4000000000000001", "embeddings small", {}, start=33),
        _span(t4, "4000000000000005", "4000000000000001", "plain span", {}, start=34),
        # no user message among the inputs (the last one is the preview), a message without
        # a role, a negative and an empty count before a valid one
        _span(
            t4,
            "4000000000000006",
            "4000000000000001",
            "chat claude-3",
            {
                "gen_ai.input.messages": _msgs(
                    {"role": "system", "content": "Be brief."},
                    {"content": "no role here"},
                    {"role": "assistant", "content": "last of all"},
                ),
                "gen_ai.usage.input_tokens": "-5",
                "gen_ai.usage.prompt_tokens": "",
                "llm.token_count.prompt": "41",
                "gen_ai.usage.output_tokens": "1e3",
            },
            start=35,
        ),
        # the user's message is not the last input (a tool round came after it)
        _span(
            t4,
            "4000000000000008",
            "4000000000000001",
            "chat claude-3",
            {
                "gen_ai.input.messages": _msgs(
                    {"role": "user", "content": "the question"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": "grep"}}]},
                    {"role": "tool", "content": "the tool's result"},
                ),
            },
            start=37,
        ),
        # input.value (no role chosen) whose messages lack roles: the last message
        _span(
            t5,
            "5000000000000001",
            "",
            "root without a name convention",
            {
                "input.value": _msgs({"content": "first"}, {"content": "second, no role"}),
                "output.value": "plain   text\nanswer",
            },
            start=36,
        ),
    ]
    return [
        ({"service.name": "genai-svc", "user.id": "bob"}, genai),
        ({"service.name": "oi-svc", "session.id": "oi-sess"}, openinference),
        ({"service.name": "tl-svc", "enduser.id": "carol"}, openllmetry),
        ({"service.name": "names-svc"}, by_name),
    ]


def _otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": value}


def _otlp_body(traces: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> bytes:
    resource_spans = []
    for resource, spans in traces:
        resource_spans.append(
            {
                "resource": {
                    "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in resource.items()]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "agent", "version": "1.0"},
                        "spans": [
                            {
                                "traceId": s["trace"],
                                "spanId": s["span"],
                                "parentSpanId": s["parent"],
                                "name": s["name"],
                                "kind": _KINDS[s["kind"]],
                                "startTimeUnixNano": str(s["start"]),
                                "endTimeUnixNano": str(s["end"]),
                                "attributes": [
                                    {"key": k, "value": _otlp_value(v)}
                                    for k, v in s["attrs"].items()
                                ],
                                "status": {"code": _STATUS[s["status"]]},
                            }
                            for s in spans
                        ],
                    }
                ],
            }
        )
    return json.dumps({"resourceSpans": resource_spans}).encode()


def _exporter_rows(
    traces: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    *,
    status: dict[str, str] | None = None,
    kind: dict[str, str] | None = None,
) -> list[list[Any]]:
    """The values the exporter binds to its INSERT for each span (attributes as strings)."""
    rows = []
    for resource, spans in traces:
        res = {k: str(v) for k, v in resource.items()}
        for s in spans:
            rows.append(
                [
                    s["start"],
                    s["trace"],
                    s["span"],
                    s["parent"],
                    "",
                    s["name"],
                    (kind or {}).get(s["kind"], s["kind"]),
                    res["service.name"],
                    res,
                    "agent",
                    "1.0",
                    {k: str(v) for k, v in s["attrs"].items()},
                    s["end"] - s["start"],
                    (status or {}).get(s["status"], s["status"]),
                    "",
                    [],
                    [],
                    [],
                    [],
                    [],
                    [],
                    [],
                ]
            )
    return rows


@pytest.fixture
def store(clickhouse_url: str) -> Iterator[TraceStore]:
    database = f"retrace_test_{uuid.uuid4().hex[:12]}"
    opened = open_store(Settings(clickhouse_url=clickhouse_url, clickhouse_database=database))
    try:
        yield opened
    finally:
        opened.close()


def _exporter_insert(store: TraceStore, rows: list[list[Any]]) -> None:
    """The exporter's INSERT: its 22 columns and nothing else (sent as Arrow here)."""
    schema = pa.schema([(name, SPANS.column(name).arrow) for name in EXPORTER_COLUMNS])
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        [pa.array(c, type=t) for c, t in zip(columns, schema.types, strict=True)], schema=schema
    )
    store._insert("otel_traces", table, {})  # type: ignore[attr-defined]


def _derived(store: TraceStore, project: str) -> list[dict[str, Any]]:
    return store._rows(  # type: ignore[attr-defined, no-any-return]
        f"SELECT TraceId, SpanId, {DERIVED} FROM otel_traces WHERE ProjectId = {{p:String}}"
        " ORDER BY TraceId, SpanId",
        {"p": project},
    )


def test_the_exporter_insert_statement_is_the_exporters() -> None:
    assert len(EXPORTER_COLUMNS) == 22
    assert EXPORTER_COLUMNS[:3] == ["Timestamp", "TraceId", "SpanId"]
    assert EXPORTER_COLUMNS[-1] == "Links.Attributes"


def test_exporter_rows_derive_what_retrace_derives(store: TraceStore) -> None:
    traces = _traces()
    for resource, _ in traces:
        resource["retrace.project"] = "via-exporter"
    batch = decode_export_request(
        _otlp_body(traces),
        content_type=CONTENT_TYPE_JSON,
        content_encoding=None,
        project="via-retrace",
        max_body_bytes=1 << 24,
    )
    assert batch.rejected == 0
    store.insert_arrow("via-retrace", batch.spans, batch.payloads)
    _exporter_insert(store, _exporter_rows(traces))

    ours = _derived(store, "via-retrace")
    theirs = _derived(store, "via-exporter")
    assert len(ours) == sum(len(spans) for _, spans in traces) == len(theirs)
    for mine, exported in zip(ours, theirs, strict=True):
        assert exported == mine, mine["SpanId"]
    # The spans were worth deriving: every convention gave its operation, names and counts.
    by_span = {r["SpanId"]: r for r in theirs}
    assert by_span["1000000000000002"]["InputTokens"] == 120
    assert by_span["1000000000000002"]["InputPreview"].endswith("…")
    assert by_span["1000000000000003"]["ToolName"] == "search"  # from the span name
    assert by_span["4000000000000006"]["InputPreview"] == "last of all"  # no user message
    assert (
        by_span["4000000000000006"]["InputTokens"],
        by_span["4000000000000006"]["OutputTokens"],
    ) == (41, 1000)
    assert by_span["4000000000000008"]["InputPreview"] == "the question"  # the user's
    assert by_span["5000000000000001"]["InputPreview"] == "second, no role"
    assert by_span["5000000000000001"]["OutputPreview"] == "plain text answer"
    assert by_span["2000000000000003"]["ToolName"] == "fetch_report"
    assert by_span["3000000000000002"]["AgentName"] == "writer"
    assert by_span["3000000000000004"]["InputTokens"] == 2**64 - 1
    assert by_span["4000000000000003"]["ToolName"] == "grep -r"
    assert {r["SessionId"] for r in theirs} >= {"sess-1", "oi-sess", "tl-sess"}

    query = TraceQuery(limit=50)
    mine_list = store.list_traces("via-retrace", query).traces
    their_list = store.list_traces("via-exporter", query).traces
    assert [t.model_dump() for t in their_list] == [t.model_dump() for t in mine_list]
    summary = {t.trace_id: t for t in their_list}[traces[0][1][0]["trace"]]
    assert (summary.llm_calls, summary.tool_calls, summary.error_count) == (2, 1, 1)
    assert summary.input_preview == "What changed in Q3?"
    assert summary.session_id == "sess-1" and summary.user_id == "bob"
    # Attribute filters read the attribute index, which the view fills from either insert.
    by_attr = TraceQuery(attributes={"session.id": "sess-1"})
    their_ids = [t.trace_id for t in store.list_traces("via-exporter", by_attr).traces]
    assert their_ids == [traces[0][1][0]["trace"]]
    assert [t.trace_id for t in store.list_traces("via-retrace", by_attr).traces] == their_ids

    for _, spans in traces:
        trace_id = spans[0]["trace"]
        mine_detail = store.get_trace("via-retrace", trace_id)
        their_detail = store.get_trace("via-exporter", trace_id)
        assert mine_detail is not None and their_detail is not None
        assert their_detail.trace.model_dump() == mine_detail.trace.model_dump()
        for a, b in zip(mine_detail.spans, their_detail.spans, strict=True):
            assert b.model_dump() == a.model_dump(), a.span_id
        # What replay reads of the run: the same steps, messages and tool calls.
        mine_run = trajectory_from_detail(mine_detail).model_dump()
        their_run = trajectory_from_detail(their_detail).model_dump()
        mine_run.pop("project_id")
        their_run.pop("project_id")
        assert their_run == mine_run
    genai_run = trajectory_from_detail(store.get_trace("via-exporter", traces[0][1][0]["trace"]))  # type: ignore[arg-type]
    assert [s.kind for s in genai_run.steps][:2] == ["llm", "tool"]


def test_exporter_rows_without_a_project_land_in_the_default_project(store: TraceStore) -> None:
    traces = _traces()[3:]
    traces[0][0]["retrace.project"] = "not a project!"
    _exporter_insert(store, _exporter_rows(traces))
    trace_id = traces[0][1][0]["trace"]
    assert store.get_trace("default", trace_id) is not None


def test_older_exporter_spellings_count_as_errors_and_server_spans(store: TraceStore) -> None:
    """Exporters before pdata's short names wrote STATUS_CODE_ERROR and SPAN_KIND_SERVER."""
    traces = _traces()[:1]
    traces[0][0]["retrace.project"] = "old"
    rows = _exporter_rows(
        traces,
        status={"Error": "STATUS_CODE_ERROR", "Unset": "STATUS_CODE_UNSET"},
        kind={"Server": "SPAN_KIND_SERVER", "Internal": "SPAN_KIND_INTERNAL"},
    )
    _exporter_insert(store, rows)
    (summary,) = store.list_traces("old", TraceQuery()).traces
    assert summary.error_count == 1
    assert summary.status == "error"
    assert summary.tool_calls == 1
    detail = store.get_trace("old", summary.trace_id)
    assert detail is not None
    assert {s.status for s in detail.spans} == {"Error", "Unset"}
    assert {s.kind for s in detail.spans} == {"Internal", "Server"}
    stats = store.stats("old", StatsQuery())
    tools = [(t.tool, t.calls, t.errors) for t in stats.top_failing_tools]
    assert tools == [("search", 1, 1)]  # the server span is no second call

"""The columns of every table the migrations create, declared once.

Each column has its ClickHouse type (as ``system.columns`` reports it: no codec, Nested
sub-columns as ``Events.Name Array(...)``), its ``DEFAULT``, and the Arrow type Retrace inserts it
with (``None`` for columns a default or a materialized view fills). The spans table's columns also
name the ``SpanRecord`` field they hold and whether the collector derives them from the span's
name and attributes (``collector.conventions``).

What is derived from here: the Arrow schemas of every insert (``SPAN_SCHEMA`` in
``collector._span_batch``, the others in ``collector.store._batches``) and the span table's column
to field mapping. What is checked against it (``tests/schemas/test_tables.py``): the columns a
fresh store has after the migrations (name, type, default), the fields of ``SpanRecord``,
``SpanEvent`` and ``SpanLink``, the derived fields of ``SpanView`` and of
``collector.conventions.DerivedColumns``.
A migration that adds a column adds it here too.

Importing this module imports pyarrow; ``import schemas`` does not import it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import pyarrow as pa

from schemas.derived_sql import DERIVED_DEFAULTS as _D
from schemas.migrations import MIGRATIONS_TABLE

__all__ = [
    "API_KEYS",
    "APPROVALS",
    "FEEDBACK",
    "PAYLOADS",
    "REPLAYS",
    "SCHEMA_MIGRATIONS",
    "SPANS",
    "SPAN_ATTRIBUTES",
    "SUITES",
    "SUMMARIES",
    "TABLES",
    "TRACE_ID_TS",
    "Column",
    "Table",
]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table.

    ``field`` is the model field the column holds (spans: a ``SpanRecord`` field, or
    ``events.<SpanEvent field>`` / ``links.<SpanLink field>`` for the Nested sub-columns).
    ``derived`` marks the spans' columns ``collector.conventions.derive_columns`` computes.
    ``default`` is the DDL ``DEFAULT`` as written; when it is an expression (the spans' Retrace
    columns derive their value from the attributes, ``schemas.derived_sql``), ``fallback`` is the
    literal it gives a span that carries nothing to derive from.
    """

    name: str
    clickhouse: str
    arrow: pa.DataType | None = None
    default: str = ""
    field: str = ""
    derived: bool = False
    fallback: str = ""

    @property
    def nullable(self) -> bool:
        return self.clickhouse.startswith("Nullable(")

    @property
    def default_value(self) -> object:
        """The ``DEFAULT`` as a Python value when it is a literal (``''``, ``0``, ``-1``), or the
        ``fallback`` of an expression; else None (no default, or ``now64(3)``)."""
        literal = self.fallback or self.default
        try:
            return ast.literal_eval(literal) if literal else None
        except (ValueError, SyntaxError):
            return None


@dataclass(frozen=True, slots=True)
class Table:
    """A table's name and its columns in ``system.columns`` order."""

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """The columns Retrace inserts, in table order, with their Arrow types."""
        return pa.schema([(c.name, c.arrow) for c in self.columns if c.arrow is not None])

    @property
    def derived(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.derived)


_STR = pa.string()
_MAP = pa.map_(pa.string(), pa.string())
_NS = pa.timestamp("ns")
_MS = pa.timestamp("ms")
_LC = "LowCardinality(String)"
_CH_MAP = "Map(LowCardinality(String), String)"


def _derived(name: str, clickhouse: str, arrow: pa.DataType, field: str, fallback: str) -> Column:
    """A Retrace column ``collector.conventions`` derives at ingest; its DDL default derives the
    same in ClickHouse for rows the OTel Collector's exporter writes (migration 0007)."""
    return Column(
        name, clickhouse, arrow, default=_D[name], field=field, derived=True, fallback=fallback
    )


# The OpenTelemetry Collector ClickHouse exporter's columns, then Retrace's (migration 0001;
# the defaults of Retrace's columns derive them from the attributes since 0007).
SPANS = Table(
    "otel_traces",
    (
        Column("Timestamp", "DateTime64(9)", _NS, field="start_time_unix_nano"),
        Column("TraceId", "String", _STR, field="trace_id"),
        Column("SpanId", "String", _STR, field="span_id"),
        Column("ParentSpanId", "String", _STR, field="parent_span_id"),
        Column("TraceState", "String", _STR, field="trace_state"),
        Column("SpanName", _LC, _STR, field="name"),
        Column("SpanKind", _LC, _STR, field="kind"),
        Column("ServiceName", _LC, _STR, field="service_name"),
        Column("ResourceAttributes", _CH_MAP, _MAP, field="resource_attributes"),
        Column("ScopeName", "String", _STR, field="scope_name"),
        Column("ScopeVersion", "String", _STR, field="scope_version"),
        Column("SpanAttributes", _CH_MAP, _MAP, field="attributes"),
        Column("Duration", "UInt64", pa.uint64(), field="duration_ns"),
        Column("StatusCode", _LC, _STR, field="status_code"),
        Column("StatusMessage", "String", _STR, field="status_message"),
        Column(
            "Events.Timestamp",
            "Array(DateTime64(9))",
            pa.list_(_NS),
            field="events.timestamp_unix_nano",
        ),
        Column("Events.Name", f"Array({_LC})", pa.list_(_STR), field="events.name"),
        Column("Events.Attributes", f"Array({_CH_MAP})", pa.list_(_MAP), field="events.attributes"),
        Column("Links.TraceId", "Array(String)", pa.list_(_STR), field="links.trace_id"),
        Column("Links.SpanId", "Array(String)", pa.list_(_STR), field="links.span_id"),
        Column("Links.TraceState", "Array(String)", pa.list_(_STR), field="links.trace_state"),
        Column("Links.Attributes", f"Array({_CH_MAP})", pa.list_(_MAP), field="links.attributes"),
        Column(
            "ProjectId",
            _LC,
            _STR,
            default=_D["ProjectId"],
            field="project_id",
            fallback="'default'",
        ),
        _derived("Operation", _LC, _STR, "operation", "''"),
        _derived("AgentName", _LC, _STR, "agent_name", "''"),
        _derived("Model", _LC, _STR, "model", "''"),
        _derived("ToolName", _LC, _STR, "tool_name", "''"),
        _derived("InputTokens", "UInt64", pa.uint64(), "input_tokens", "0"),
        _derived("OutputTokens", "UInt64", pa.uint64(), "output_tokens", "0"),
        _derived("StepIndex", "Int32", pa.int32(), "step_index", "-1"),
        # Session (conversation) and end user (migration 0006).
        _derived("SessionId", "String", _STR, "session_id", "''"),
        _derived("UserId", "String", _STR, "user_id", "''"),
        Column("PayloadRefs", _CH_MAP, _MAP, field="payload_refs"),
        # Previews of root and chat spans (collector.otlp._previews; derived by 0007's default).
        Column(
            "InputPreview",
            "String",
            _STR,
            default=_D["InputPreview"],
            field="input_preview",
            fallback="''",
        ),
        Column(
            "OutputPreview",
            "String",
            _STR,
            default=_D["OutputPreview"],
            field="output_preview",
            fallback="''",
        ),
        Column("IngestedAt", "DateTime64(3)", default="now64(3)"),
    ),
)

# The exporter's trace-id lookup table plus the project, filled by a view (exact times: 0005).
TRACE_ID_TS = Table(
    "otel_traces_trace_id_ts",
    (
        Column("ProjectId", _LC, default="'default'"),
        Column("TraceId", "String"),
        Column("Start", "DateTime64(9)"),
        Column("End", "DateTime64(9)"),
    ),
)

# One row per span attribute with a short value, sorted for attribute filters (migration 0011);
# filled by its view from otel_traces, never inserted by Retrace itself.
SPAN_ATTRIBUTES = Table(
    "retrace_span_attributes",
    (
        Column("ProjectId", _LC),
        Column("Key", _LC),
        Column("Value", "String"),
        Column("Timestamp", "DateTime64(9)"),
        Column("TraceId", "String"),
    ),
)

PAYLOADS = Table(
    "retrace_payloads",
    (
        Column("ProjectId", _LC, _STR),
        Column("Hash", "FixedString(64)", _STR),
        Column("Size", "UInt64", pa.uint64()),
        Column("Content", "String", pa.binary()),
        Column("FirstSeen", "DateTime64(3)", default="now64(3)"),
    ),
)


def _agg(function: str, of: str) -> str:
    return f"SimpleAggregateFunction({function}, {of})"


# A summary row's RootKey when its part has none (written before migration 0009).
ROOT_KEY_FROM_LATEST_ROOT = (
    "concat(leftPad(hex(bitXor(reinterpretAsUInt64(toUnixTimestamp64Nano("
    "tupleElement(LatestRoot, 1))), 9223372036854775808)), 16, '0'), "
    "tupleElement(LatestRoot, 2), '\\0', tupleElement(LatestRoot, 3))"
)

# Per-trace summary filled by its view (shape of migration 0005, RootKey from 0009).
SUMMARIES = Table(
    "retrace_trace_summaries",
    (
        Column("ProjectId", _LC),
        Column("TraceId", "String"),
        Column("Start", _agg("min", "DateTime64(9)")),
        Column("End", _agg("max", "DateTime64(9)")),
        Column("SpanCount", _agg("sum", "UInt64")),
        Column("ErrorCount", _agg("sum", "UInt64")),
        Column("InputTokens", _agg("sum", "UInt64")),
        Column("OutputTokens", _agg("sum", "UInt64")),
        Column("LlmCalls", _agg("sum", "UInt64")),
        Column("ToolCalls", _agg("sum", "UInt64")),
        Column("ServiceName", _agg("max", _LC)),
        Column("RootSpanName", _agg("max", "String")),
        Column("AgentName", _agg("max", "String")),
        Column("InputPreview", _agg("max", "String")),
        Column("OutputPreview", _agg("max", "String")),
        Column("ReplayOf", _agg("max", "String")),
        Column("Models", _agg("groupUniqArrayArray", "Array(String)")),
        Column("Tools", _agg("groupUniqArrayArray", "Array(String)")),
        Column("LatestRoot", _agg("max", "Tuple(DateTime64(9), String, String, String)")),
        # LatestRoot's end time, run status and status code as one string (migration 0009).
        Column("RootKey", _agg("max", "String"), default=ROOT_KEY_FROM_LATEST_ROOT),
        Column("FirstInputPreview", "AggregateFunction(argMin, String, DateTime64(9))"),
        Column("SessionId", _agg("max", "String")),
        Column("UserId", _agg("max", "String")),
    ),
)

REPLAYS = Table(
    "retrace_replays",
    (
        Column("ProjectId", _LC, _STR),
        Column("ReplayId", "String", _STR),
        Column("OriginalTraceId", "String", _STR),
        Column("ReplayTraceId", "String", _STR),
        Column("Mode", _LC, _STR),
        Column("Status", _LC, _STR),
        Column("CodeVersion", "String", _STR),
        Column("CreatedAt", "DateTime64(3)", _MS),
        Column("UpdatedAt", "DateTime64(3)", _MS),
        Column("Diverged", "UInt8", pa.uint8()),
        Column("FirstDivergenceStep", "Int32", pa.int32()),
        Column("FirstDivergenceKind", _LC, _STR),
        Column("Report", "String", _STR),
    ),
)

APPROVALS = Table(
    "retrace_approvals",
    (
        Column("ProjectId", _LC, _STR),
        Column("ApprovalId", "String", _STR),
        Column("RunId", "String", _STR),
        Column("TraceId", "String", _STR),
        Column("SpanId", "String", _STR),
        Column("ToolName", "String", _STR),
        Column("Arguments", "String", _STR),
        Column("Reason", "String", _STR),
        Column("Rule", "String", _STR),
        Column("Status", _LC, _STR),
        Column("RequestedAt", "DateTime64(3)", _MS),
        Column("ExpiresAt", "Nullable(DateTime64(3))", _MS),
        Column("DecidedAt", "Nullable(DateTime64(3))", _MS),
        Column("DecidedBy", "String", _STR),
        Column("Comment", "String", _STR),
        Column("Version", "UInt64", pa.uint64()),
    ),
)

# Feedback and annotations on a trace or one of its spans (migration 0006); Value is JSON.
FEEDBACK = Table(
    "retrace_feedback",
    (
        Column("ProjectId", _LC, _STR),
        Column("TraceId", "String", _STR),
        Column("FeedbackId", "String", _STR),
        Column("SpanId", "String", _STR),
        Column("Name", _LC, _STR),
        Column("Value", "String", _STR),
        Column("Comment", "String", _STR),
        Column("Source", _LC, _STR),
        Column("CreatedAt", "DateTime64(3)", _MS),
    ),
)

# Suites: named sets of recorded traces replayed as regression tests (migration 0008).
SUITES = Table(
    "retrace_suites",
    (
        Column("ProjectId", _LC, _STR),
        Column("Suite", "String", _STR),
        Column("TraceId", "String", _STR),
        Column("AddedAt", "DateTime64(3)", _MS),
        Column("Source", _LC, _STR),
        Column("Note", "String", _STR),
        Column("Version", "UInt64", pa.uint64()),
    ),
)

API_KEYS = Table(
    "retrace_api_keys",
    (
        Column("KeyId", "String", _STR),
        Column("ProjectId", _LC, _STR),
        Column("KeyHash", "FixedString(64)", _STR),
        Column("Name", "String", _STR),
        Column("CreatedAt", "DateTime64(3)", _MS),
        Column("Revoked", "UInt8", pa.uint8(), default="0"),
        Column("Version", "UInt64", pa.uint64()),
    ),
)

# The store's record of applied migrations (schemas.migrations.MIGRATIONS_TABLE_DDL).
SCHEMA_MIGRATIONS = Table(
    MIGRATIONS_TABLE,
    (
        Column("Version", "UInt32"),
        Column("Description", "String"),
        Column("AppliedAt", "DateTime64(3)", default="now64(3)"),
    ),
)

TABLES: tuple[Table, ...] = (
    SPANS,
    TRACE_ID_TS,
    SPAN_ATTRIBUTES,
    PAYLOADS,
    SUMMARIES,
    REPLAYS,
    APPROVALS,
    FEEDBACK,
    SUITES,
    API_KEYS,
    SCHEMA_MIGRATIONS,
)

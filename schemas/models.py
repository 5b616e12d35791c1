"""Pydantic models shared by every component: stored spans, API views, trajectories, replays.

The API returns these models as JSON; the UI, replay engine and CLI parse them back. Changing a
field here changes the contract.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from schemas.ids import SafeId

TRAJECTORY_FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --- spans as stored --------------------------------------------------------------------------

# The last nanosecond a span may start or end at (2149-06-06T23:59:59.999999999Z). otel_traces is
# partitioned by toDate(Timestamp) and ClickHouse's Date ends on that day: later days wrap around
# to 1970 and time-range reads prune their partitions away, although DateTime64(9) itself would
# reach 2262-04-11. OTLP's fixed64 nanoseconds go further still, so ingest rejects what is later.
MAX_SPAN_TIME_UNIX_NANO: Final = 65_536 * 86_400 * 1_000_000_000 - 1


class StatusCode(StrEnum):
    """Span status, spelled as the OTel ClickHouse exporter spells it."""

    UNSET = "Unset"
    OK = "Ok"
    ERROR = "Error"


class SpanKind(StrEnum):
    """Span kind, spelled as the OTel ClickHouse exporter spells it."""

    UNSPECIFIED = "Unspecified"
    INTERNAL = "Internal"
    SERVER = "Server"
    CLIENT = "Client"
    PRODUCER = "Producer"
    CONSUMER = "Consumer"


class RunStatus(StrEnum):
    """Value of ``retrace.run.status`` on a root ``invoke_agent`` span."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INCOMPLETE = "incomplete"  # the process died; spans flushed on the crash path
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    GUARDRAIL = "guardrail"  # stopped by max turns, budget, loop detection


class SpanEvent(_Model):
    timestamp_unix_nano: int
    name: str
    attributes: dict[str, str] = Field(default_factory=dict)


class SpanLink(_Model):
    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class SpanRecord(_Model):
    """One span as the store keeps it (one ``otel_traces`` row). Ids are lowercase hex."""

    project_id: str
    trace_id: str
    span_id: str
    parent_span_id: str = ""
    trace_state: str = ""
    name: str
    kind: SpanKind = SpanKind.INTERNAL
    service_name: str = ""
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    start_time_unix_nano: int
    duration_ns: int = 0
    status_code: StatusCode = StatusCode.UNSET
    status_message: str = ""
    events: list[SpanEvent] = Field(default_factory=list)
    links: list[SpanLink] = Field(default_factory=list)
    # Retrace columns, derived at ingest from the attributes of whichever convention was used.
    operation: str = ""
    agent_name: str = ""
    model: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    step_index: int = -1
    session_id: str = ""
    user_id: str = ""
    payload_refs: dict[str, str] = Field(
        default_factory=dict, description="attribute key -> sha256 of a payload moved out"
    )
    input_preview: str = ""
    output_preview: str = ""


# --- query API views --------------------------------------------------------------------------


class SpanView(_Model):
    """A span as the query API returns it: payload references resolved into ``attributes``."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service_name: str
    start_time: datetime
    end_time: datetime
    start_time_unix_nano: int
    duration_ns: int
    status: str
    status_message: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)
    links: list[SpanLink] = Field(default_factory=list)
    operation: str = ""
    agent_name: str = ""
    model: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    step_index: int = -1
    session_id: str = ""
    user_id: str = ""
    payload_keys: list[str] = Field(
        default_factory=list,
        description="In a span tree (GET /traces/{id}/spans): the attribute keys whose values are "
        "payloads, left out of attributes; GET /traces/{id}/spans/{span_id} resolves them",
    )


class TraceSummary(_Model):
    trace_id: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    span_count: int
    error_count: int
    status: str = Field(description="'error' if a span failed or the run did not complete")
    run_status: str = ""
    service_name: str = ""
    agent_name: str = ""
    root_span_name: str = ""
    input_preview: str = ""
    output_preview: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    models: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    replay_of: str = ""
    session_id: str = ""
    user_id: str = ""


class FeedbackSource(StrEnum):
    USER = "user"  # the end user (thumbs down, a complaint)
    REVIEWER = "reviewer"  # someone reading the trace
    CI = "ci"  # an automated check


MAX_FEEDBACK_NAME = 200
MAX_FEEDBACK_TEXT = 10_000


class NewFeedback(_Model):
    """Feedback or an annotation on a trace (or one of its spans), as a client posts it."""

    name: str = Field(min_length=1, max_length=MAX_FEEDBACK_NAME, pattern=r"\S")
    # bool before int: JSON true stays a bool (pydantic's smart union keeps exact types).
    value: (
        bool
        | int
        | Annotated[float, Field(allow_inf_nan=False)]
        | Annotated[str, Field(max_length=MAX_FEEDBACK_TEXT)]
    ) = Field(union_mode="smart")
    comment: str = Field("", max_length=MAX_FEEDBACK_TEXT)
    span_id: str = ""
    source: FeedbackSource = FeedbackSource.USER


def parse_feedback_value(text: str) -> bool | int | float | str:
    """A feedback value typed by a person (CLI, UI): true/false, a number, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan", "inf": no number JSON can carry, so the text itself.
    return number if math.isfinite(number) else text


class Feedback(NewFeedback):
    """Feedback as stored: with its id, trace and time."""

    feedback_id: str
    trace_id: str
    created_at: datetime


class FeedbackList(_Model):
    feedback: list[Feedback]


# --- suites --------------------------------------------------------------------------------------
MAX_SUITE_TRACES_PER_REQUEST = 1000
MAX_SUITE_NOTE = 2_000


class SuiteSource(StrEnum):
    API = "api"  # a client of the API
    CLI = "cli"  # ``retrace suite add``
    UI = "ui"  # "Add to suite" on the trace page


class NewSuiteTraces(_Model):
    """Traces to add to a suite: ``trace_ids``, or one ``trace_id``."""

    trace_ids: list[SafeId] = Field(default_factory=list, max_length=MAX_SUITE_TRACES_PER_REQUEST)
    trace_id: SafeId | None = None
    note: str = Field("", max_length=MAX_SUITE_NOTE)
    source: SuiteSource = SuiteSource.API

    def all_ids(self) -> list[str]:
        """The trace ids asked for, each once, in the order given."""
        ids = [*self.trace_ids, *([self.trace_id] if self.trace_id else [])]
        return list(dict.fromkeys(ids))


class SuiteTrace(_Model):
    """One trace of a suite: when and how it was added."""

    trace_id: str
    added_at: datetime
    source: SuiteSource = SuiteSource.API
    note: str = ""


class SuiteSummary(_Model):
    name: str
    trace_count: int
    updated_at: datetime = Field(description="When a trace was last added")


class Suite(SuiteSummary):
    """A suite with its traces, oldest added first."""

    traces: list[SuiteTrace]
    added: list[str] = Field(
        default_factory=list, description="In an answer to an add: the trace ids newly added"
    )


class SuiteList(_Model):
    suites: list[SuiteSummary]


class TraceDetail(_Model):
    trace: TraceSummary
    spans: list[SpanView]
    feedback: list[Feedback] = Field(default_factory=list)


class TraceTreePage(_Model):
    """A page of one trace's spans without their payloads (``GET /traces/{id}/spans``), ordered
    by (start time, span id); ``next_cursor`` reads on. Each page carries the trace's summary
    and feedback."""

    trace: TraceSummary
    spans: list[SpanView]
    feedback: list[Feedback] = Field(default_factory=list)
    next_cursor: str | None = None


class TracePage(_Model):
    traces: list[TraceSummary]
    next_cursor: str | None = None


class SpanPage(_Model):
    spans: list[SpanView]
    next_cursor: str | None = None


SortField = Literal["start_time", "duration", "tokens", "errors", "spans"]

# What a query may ask for: the store keeps times and durations as Int64 nanoseconds
# (DateTime64(9)), spans start after the Unix epoch, and every attribute filter adds a
# subquery to the statement (thousands would exceed the engine's query size).
_INT64_MAX = 2**63 - 1
MIN_QUERY_TIME: datetime = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_TIME: datetime = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
    microseconds=_INT64_MAX // 1000
)  # 2262-04-11T23:47:16.854775Z
MAX_DURATION_MS: int = _INT64_MAX // 1_000_000
MAX_BUCKET_SECONDS: int = _INT64_MAX // 1_000_000_000
MAX_ATTRIBUTE_FILTERS: int = 50


class TraceQuery(_Model):
    """Filters for listing traces. Every field is optional; ``text`` searches inputs/outputs."""

    start: datetime | None = None
    end: datetime | None = None
    status: Literal["ok", "error"] | None = None
    run_status: str | None = None
    service: str | None = None
    agent: str | None = None
    model: str | None = None
    tool: str | None = None
    min_duration_ms: float | None = None
    text: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    replay_of: str | None = Field(None, description="only replays of this trace (implies replays)")
    include_replays: bool = Field(
        False, description="list replays too (each names its original in replay_of)"
    )
    session_id: str | None = None
    user_id: str | None = None
    feedback: str | None = Field(None, description="only traces with feedback of this name")
    sort: SortField = "start_time"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class SpanQuery(_Model):
    start: datetime | None = None
    end: datetime | None = None
    trace_id: str | None = None
    name: str | None = None
    operation: str | None = None
    service: str | None = None
    model: str | None = None
    tool: str | None = None
    status: Literal["ok", "error", "unset"] | None = None
    min_duration_ms: float | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    session_id: str | None = None
    user_id: str | None = None
    limit: int = Field(100, ge=1, le=5000)
    cursor: str | None = None


class SessionQuery(_Model):
    """Filters for listing sessions: by end user, and by when their traces started."""

    user_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class SessionSummary(_Model):
    """A session (conversation): its traces (replays left out) taken together."""

    session_id: str
    user_id: str = ""
    trace_count: int
    error_count: int = Field(description="traces of the session whose status is 'error'")
    feedback_count: int = 0
    first_time: datetime
    last_time: datetime


class SessionPage(_Model):
    sessions: list[SessionSummary]
    next_cursor: str | None = None


class SessionDetail(_Model):
    session: SessionSummary
    traces: list[TraceSummary] = Field(description="the session's traces, oldest first")


class StatsQuery(_Model):
    start: datetime | None = None
    end: datetime | None = None
    bucket_seconds: int = Field(3600, ge=1)
    service: str | None = None
    agent: str | None = None


class StatsBucket(_Model):
    time: datetime
    runs: int
    errors: int
    p50_ms: float = Field(description="median active duration (waits for approval left out)")
    p95_ms: float
    input_tokens: int
    output_tokens: int


class ToolFailures(_Model):
    tool: str
    calls: int
    errors: int


class FeedbackCount(_Model):
    name: str
    count: int = Field(description="feedback entries of this name")
    traces: int = Field(description="runs with at least one")


class Stats(_Model):
    """Runs that started in the range (replays are not runs: they are left out).

    Durations are active durations: a run's wall time less the time it waited for a human's
    approval (from the end of the segment that paused to the start of the one that resumed).
    The waits are counted apart in ``approval_*``.
    """

    runs: int
    errors: int
    error_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    input_tokens: int
    output_tokens: int
    buckets: list[StatsBucket]
    approval_waits: int = Field(0, description="runs that waited for approval and resumed")
    approval_wait_ms: float = Field(0.0, description="total time those runs waited")
    approval_wait_p50_ms: float = Field(0.0, description="median wait of a run that waited")
    waiting_for_approval: int = Field(
        0, description="runs paused for approval now (their last segment paused)"
    )
    top_failing_tools: list[ToolFailures]
    feedback: list[FeedbackCount] = Field(
        default_factory=list,
        description="feedback on the runs counted here, by name (most frequent first)",
    )


# --- approvals --------------------------------------------------------------------------------


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Approval(_Model):
    approval_id: str
    run_id: str
    trace_id: str = ""
    span_id: str = ""
    tool_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""
    rule: str = ""
    status: ApprovalStatus = ApprovalStatus.PENDING
    requested_at: datetime
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str = ""
    comment: str = ""


class NewApproval(Approval):
    """Body of ``POST /api/v1/approvals``: its ids later name files and process arguments."""

    approval_id: SafeId
    run_id: SafeId


# --- trajectories -----------------------------------------------------------------------------

StepKind = Literal["llm", "tool"]


class Step(_Model):
    """One thought (LLM call) or one tool call of a run, with everything replay needs."""

    index: int
    kind: StepKind
    span_id: str = ""
    name: str = ""
    start_time_unix_nano: int = 0
    duration_ns: int = 0
    status: str = StatusCode.UNSET.value
    error: str | None = None
    # llm steps
    model: str = ""
    input_messages: list[dict[str, Any]] = Field(default_factory=list)
    output_message: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tool_definitions: list[dict[str, Any]] = Field(
        default_factory=list, description="the tools offered to the model (gen_ai.tool.definitions)"
    )
    input_tokens: int = 0
    output_tokens: int = 0
    # tool steps
    tool_name: str = ""
    tool_call_id: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    mcp_server: str = ""
    sandbox_backend: str = ""
    exit_code: int | None = None
    snapshot_before: str = ""
    snapshot_after: str = ""
    # decisions and pinned nondeterminism seen during this step
    policy_decision: str = ""
    policy_rule: str = ""
    approval: dict[str, Any] | None = None
    events: list[SpanEvent] = Field(default_factory=list)
    clock_values: list[float] = Field(default_factory=list)
    random_values: list[float] = Field(default_factory=list)


class Trajectory(_Model):
    """A run as an ordered list of steps. Also the on-disk golden-trajectory format."""

    format_version: int = TRAJECTORY_FORMAT_VERSION
    schema_version: int = 1
    trace_id: str
    project_id: str = ""
    run_id: str = ""
    agent_name: str = ""
    service_name: str = ""
    input: str = ""
    output: str = ""
    run_status: str = ""
    model: str = ""
    seed: int | None = None
    code_version: str = ""
    agent_config: dict[str, Any] = Field(default_factory=dict)
    clock_values: list[float] = Field(default_factory=list)
    random_values: list[float] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)
    # A user's own graph (recorded by ``instrument``; other SDKs' root input where they have one):
    graph_ref: str = ""  # "pkg.module:attr"
    graph_input: Any = None  # the input as langchain_core.load.dumpd gives it
    graph_config: dict[str, Any] = Field(default_factory=dict)  # run config without callbacks
    graph_method: str = ""  # invoke | ainvoke | stream | astream
    graph_kwargs: dict[str, Any] = Field(default_factory=dict)  # stream_mode... of the call
    random_state: str = ""  # the global random's state at the start (opaque to all but replay)
    replay_of: str = ""
    steps: list[Step] = Field(default_factory=list)


# --- replay and divergence --------------------------------------------------------------------


class ReplayMode(StrEnum):
    RECORDED = "recorded"
    LIVE_TOOLS = "live-tools"
    LIVE_MODEL = "live-model"


class DivergenceKind(StrEnum):
    OTHER_TOOL = "other_tool"
    OTHER_ARGUMENTS = "other_arguments"
    OTHER_MESSAGES = "other_messages"  # the prompt / input messages differ
    OTHER_OUTPUT = "other_output"  # model output or tool result differs
    EXTRA_STEP = "extra_step"
    MISSING_STEP = "missing_step"
    ERROR_STATUS = "error_status"  # error vs success
    POLICY = "policy"  # policy decision or approval differs
    UNANSWERABLE = "unanswerable"  # replay asked something the recording cannot answer


class DiffEntry(_Model):
    path: str = Field(description="JSON-pointer-like path, e.g. /messages/2/content")
    op: Literal["add", "remove", "change"]
    recorded: Any = None
    replayed: Any = None


class Divergence(_Model):
    kind: DivergenceKind
    recorded_index: int | None
    replayed_index: int | None
    step_kind: StepKind | None = None
    summary: str
    diff: list[DiffEntry] = Field(default_factory=list)


class AlignedPair(_Model):
    recorded_index: int | None
    replayed_index: int | None
    status: Literal["match", "diverged", "extra", "missing"]


class DivergenceMetrics(_Model):
    steps_recorded: int
    steps_replayed: int
    steps_matched: int
    input_tokens_delta: int = 0
    output_tokens_delta: int = 0
    latency_delta_ms: float = 0.0
    final_answer_changed: bool = False
    recorded_answer: str = ""
    replayed_answer: str = ""


class DivergenceReport(_Model):
    original_trace_id: str
    replay_trace_id: str = ""
    mode: ReplayMode | None = Field(
        description="The replay's mode; null for a diff of two recorded runs (A vs B)"
    )
    diverged: bool
    first_divergence: Divergence | None = None
    divergences: list[Divergence] = Field(default_factory=list)
    alignment: list[AlignedPair] = Field(default_factory=list)
    metrics: DivergenceMetrics
    from_step: int | None = Field(
        None, description="a replay from this step: earlier steps were served, not compared"
    )

    # Two replays of the same code differed from each other at or before the first divergence:
    # unpinned non-determinism in the graph, not (only) a code change. ``nondeterminism`` says
    # where.
    nondeterministic: bool = False
    nondeterminism: str = ""


class TraceDiff(_Model):
    """Two recorded runs compared (``GET /api/v1/diff``, ``retrace diff``): A in the recording's
    place, B in the replay's, so ``report`` reads like a replay's."""

    a: str
    b: str
    report: DivergenceReport


class ReplayRecord(_Model):
    replay_id: str
    original_trace_id: str
    replay_trace_id: str = ""
    mode: ReplayMode
    status: Literal["running", "completed", "failed"] = "running"
    code_version: str = ""
    created_at: datetime
    updated_at: datetime
    diverged: bool = False
    first_divergence_step: int = -1
    first_divergence_kind: str = ""
    report: DivergenceReport | None = None
    error: str = ""
    from_step: int | None = None  # replayed from this step (served from the recording before)


# --- API request/response envelopes -----------------------------------------------------------


class ReplayRequest(_Model):
    """Body of ``POST /api/v1/traces/{trace_id}/replay``."""

    mode: ReplayMode = ReplayMode.RECORDED
    model: str | None = None
    script: str | None = Field(
        None,
        # "policy" was this field's first name; it means the tool policy everywhere else.
        validation_alias=AliasChoices("script", "policy"),
        description="live-model: an offline model script (under the collector's data dir) to "
        "run instead; `policy` is a deprecated name for it",
    )
    prompt: str | None = Field(
        None, max_length=200_000, description="A system prompt to use instead of the recorded one"
    )
    from_step: int | None = Field(
        None,
        ge=0,
        description="Serve the steps before this one from the recording, run live from it on "
        "(the report compares from it on)",
    )


class ReplayList(_Model):
    replays: list[ReplayRecord]


class ApprovalDecision(_Model):
    """Body of ``POST /api/v1/approvals/{approval_id}/decision``."""

    decision: Literal["approve", "reject"]
    decided_by: str = ""
    comment: str = ""


class ApprovalList(_Model):
    approvals: list[Approval]


JobKind = Literal["replay", "resume"]


class Job(_Model):
    """A background process the collector started for a project (a replay or a resume)."""

    job_id: str
    kind: JobKind
    subject: str = Field(description="the replay id or the run id the job works on")
    status: Literal["running", "succeeded", "failed"] = "running"
    exit_code: int | None = None
    started_at: datetime
    finished_at: datetime | None = None


class JobList(_Model):
    jobs: list[Job]


class Caller(_Model):
    """``GET /api/v1/whoami``: the project the caller's API key acts for."""

    project: str


class ErrorDetail(_Model):
    code: str
    message: str


class ErrorBody(_Model):
    """Every API error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail

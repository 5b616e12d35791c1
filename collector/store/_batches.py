"""What the store inserts: models as Arrow batches, and the checks on those batches.

Each batch has its table's Arrow schema, derived from the table's one declaration
(``schemas.tables``); spans come as ``collector._span_batch.SPAN_SCHEMA`` tables already. Pure.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from collector._span_batch import SPAN_SCHEMA
from collector.store._sql import to_ns
from schemas import tables
from schemas.errors import InvalidInputError
from schemas.models import Approval, Feedback, ReplayRecord, SuiteTrace

PAYLOAD_SCHEMA = tables.PAYLOADS.arrow_schema()
REPLAY_SCHEMA = tables.REPLAYS.arrow_schema()
APPROVAL_SCHEMA = tables.APPROVALS.arrow_schema()
API_KEY_SCHEMA = tables.API_KEYS.arrow_schema()
FEEDBACK_SCHEMA = tables.FEEDBACK.arrow_schema()
SUITES_SCHEMA = tables.SUITES.arrow_schema()


# --- spans ---------------------------------------------------------------------------------------
def check_span_table(project: str, table: pa.Table) -> pa.Table:
    """``table`` in ``SPAN_SCHEMA``'s column order, if it has that schema and only ``project``."""
    try:
        table = table.select(SPAN_SCHEMA.names)
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(f"a span table lacks otel_traces columns: {exc}") from exc
    if not table.schema.equals(SPAN_SCHEMA):
        raise InvalidInputError("a span table's column types are not the otel_traces ones")
    ids = table.column("ProjectId")
    if ids.null_count or pc.all(pc.equal(ids, project)).as_py() is False:
        others = sorted(set(pc.unique(ids).to_pylist()) - {project}, key=str)
        raise InvalidInputError(f"span table rows belong to projects {others!r}, not {project!r}")
    return table


# Spans already stored are dropped before insert (see SqlTraceStore._unstored_spans).
_SPAN_KEY = ["TraceId", "SpanId"]
_SPAN_KEY_SCHEMA = pa.schema([("TraceId", pa.string()), ("SpanId", pa.string())])


def first_deliveries(table: pa.Table) -> pa.Table:
    """(TraceId, SpanId, Row): each span's first row number in a span table."""
    keys = table.select(_SPAN_KEY).append_column("Row", pa.array(range(table.num_rows), pa.int64()))
    first = keys.group_by(_SPAN_KEY, use_threads=False).aggregate([("Row", "min")])
    return first.rename_columns([*_SPAN_KEY, "Row"])


def without_stored(first: pa.Table, stored: pa.Table) -> pa.Table:
    """``first`` (see :func:`first_deliveries`) minus the (trace, span) ids in ``stored``."""
    stored = stored.select(_SPAN_KEY).cast(_SPAN_KEY_SCHEMA)
    return first.join(stored, keys=_SPAN_KEY, join_type="left anti")


# --- payloads ------------------------------------------------------------------------------------
def payloads_to_arrow(project: str, payloads: Mapping[str, bytes]) -> pa.Table:
    """A ``retrace_payloads`` batch; hashes must be 64 lowercase hex characters.

    On the ingest path (tens of thousands of payloads per insert): the hashes are checked in one
    vectorised pass, and the contents are joined into one buffer and wrapped, not converted one
    Python object at a time.
    """
    hashes = pa.array(list(payloads), pa.string())
    if len(hashes) and not pc.all(pc.match_substring_regex(hashes, _HASH_ANCHORED)).as_py():
        for key in payloads:  # name the first bad one
            check_hash(key)
    blobs = list(payloads.values())
    sizes = pa.array(map(len, blobs), pa.int64(), size=len(blobs))
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(sizes)])
    content = pa.Array.from_buffers(
        pa.large_binary(),
        len(blobs),
        [None, offsets.buffers()[1], pa.py_buffer(b"".join(blobs))],
    )
    return pa.Table.from_arrays(
        [
            pa.array([project] * len(blobs), pa.string()),
            hashes,
            sizes.cast(pa.uint64()),
            content.cast(pa.binary()),
        ],
        schema=PAYLOAD_SCHEMA,
    )


_HASH = re.compile(r"[0-9a-f]{64}")
_HASH_ANCHORED = "^[0-9a-f]{64}$"


def check_hash(value: str) -> str:
    """Return ``value`` if it is a sha256 hex digest, else raise InvalidInputError."""
    if not _HASH.fullmatch(value):
        raise InvalidInputError(f"{value!r} is not a sha256 hex digest (64 lowercase hex chars)")
    return value


# --- replays -----------------------------------------------------------------------------------
def _ms(value: datetime) -> int:
    return to_ns(value) // 1_000_000


def replay_to_arrow(project: str, r: ReplayRecord) -> pa.Table:
    """One replay row; the whole record is kept as JSON in ``Report`` (columns are for lookups)."""
    row = {
        "ProjectId": project,
        "ReplayId": r.replay_id,
        "OriginalTraceId": r.original_trace_id,
        "ReplayTraceId": r.replay_trace_id,
        "Mode": r.mode.value,
        "Status": r.status,
        "CodeVersion": r.code_version,
        "CreatedAt": _ms(r.created_at),
        "UpdatedAt": _ms(r.updated_at),
        "Diverged": int(r.diverged),
        "FirstDivergenceStep": r.first_divergence_step,
        "FirstDivergenceKind": r.first_divergence_kind,
        "Report": r.model_dump_json(),
    }
    return pa.Table.from_pylist([row], schema=REPLAY_SCHEMA)


# --- feedback ----------------------------------------------------------------------------------
def feedback_to_arrow(project: str, f: Feedback) -> pa.Table:
    """One feedback row; the value is kept as JSON (a number, string or bool)."""
    row = {
        "ProjectId": project,
        "TraceId": f.trace_id,
        "FeedbackId": f.feedback_id,
        "SpanId": f.span_id,
        "Name": f.name,
        "Value": json.dumps(f.value, ensure_ascii=False),
        "Comment": f.comment,
        "Source": f.source.value,
        "CreatedAt": _ms(f.created_at),
    }
    return pa.Table.from_pylist([row], schema=FEEDBACK_SCHEMA)


# --- suites ------------------------------------------------------------------------------------
def suite_traces_to_arrow(
    project: str, suite: str, traces: list[SuiteTrace], versions: list[int]
) -> pa.Table:
    """One row per trace added to a suite; ``versions`` (increasing) keep their order."""
    rows = [
        {
            "ProjectId": project,
            "Suite": suite,
            "TraceId": t.trace_id,
            "AddedAt": _ms(t.added_at),
            "Source": t.source.value,
            "Note": t.note,
            "Version": version,
        }
        for t, version in zip(traces, versions, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=SUITES_SCHEMA)


# --- approvals ---------------------------------------------------------------------------------
def approval_to_arrow(project: str, a: Approval, version: int) -> pa.Table:
    """One approval row; ``version`` orders upserts (larger wins)."""
    row = {
        "ProjectId": project,
        "ApprovalId": a.approval_id,
        "RunId": a.run_id,
        "TraceId": a.trace_id,
        "SpanId": a.span_id,
        "ToolName": a.tool_name,
        "Arguments": json.dumps(a.arguments, sort_keys=True),
        "Reason": a.reason,
        "Rule": a.rule,
        "Status": a.status.value,
        "RequestedAt": _ms(a.requested_at),
        "ExpiresAt": _ms(a.expires_at) if a.expires_at else None,
        "DecidedAt": _ms(a.decided_at) if a.decided_at else None,
        "DecidedBy": a.decided_by,
        "Comment": a.comment,
        "Version": version,
    }
    return pa.Table.from_pylist([row], schema=APPROVAL_SCHEMA)


# Upserts are versioned by time_ns (< 2**62). A decision's version is above all of them, and
# higher the earlier the decision (random below the millisecond breaks ties): the earliest
# decision stands whatever order rows from several collectors land in, and no later upsert of
# the pending request can undo it.
_DECISION_VERSION_BASE = 2**63 + 2**62


def decision_version(decided_at: datetime) -> int:
    """The ``Version`` of a decision row decided at ``decided_at`` (see above)."""
    ms = to_ns(decided_at) // 1_000_000
    return _DECISION_VERSION_BASE - ms * 1_000_000 + secrets.randbelow(1_000_000)


# --- API keys ----------------------------------------------------------------------------------
def api_key_to_arrow(
    project: str,
    key_id: str,
    key_hash: str,
    name: str,
    created_ms: int,
    revoked: bool,
    version: int,
) -> pa.Table:
    row = {
        "KeyId": key_id,
        "ProjectId": project,
        "KeyHash": check_hash(key_hash),
        "Name": name,
        "CreatedAt": created_ms,
        "Revoked": int(revoked),
        "Version": version,
    }
    return pa.Table.from_pylist([row], schema=API_KEY_SCHEMA)

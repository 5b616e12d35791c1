"""The batch builder: decoded spans become the store's ``SpanBatch``, one request at a time.

Both decoders hand it plain values, span by span. It checks what every span must satisfy
(``check_span_times``, ``check_event_time``: the per-span validation), counts and describes
rejected spans, redacts secrets (``collector.redact``), moves payloads out of the attributes into
content-addressed blobs, derives the Retrace columns (``collector.conventions``) and previews,
and at the end emits one Arrow table in ``SPAN_SCHEMA``: no per-span model object is built.

This is the ingest hot path: repeated payloads are redacted and hashed once per batch, and a
body found free of secret candidates is not scanned value by value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from collector._span_batch import EventRow, LinkRow, SpanBatch, SpanRow, rows_to_arrow
from collector.conventions import derive_columns
from collector.otlp._previews import previews
from collector.otlp._values import INT64_MAX
from collector.redact import is_secret_key, may_contain_secret, redact_text, redact_value
from schemas.attributes import OP_CHAT, PAYLOAD_INLINE_MAX_BYTES, PAYLOAD_KEYS, RETRACE_REDACTED
from schemas.models import MAX_SPAN_TIME_UNIX_NANO, SpanKind, StatusCode

_MAX_PROBLEMS_LISTED: Final = 3


class SpanProblem(Exception):
    """One span (or a resource/scope and its spans) is invalid; the message names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.text = f"{path}: {problem}"


# --- per-span validation (a SpanProblem rejects the span alone: OTLP partial success) ----------


# Spans later than MAX_SPAN_TIME_UNIX_NANO cannot be stored and found again.
_LAST_SECOND: Final = datetime.fromtimestamp(MAX_SPAN_TIME_UNIX_NANO // 1_000_000_000, UTC)
_TOO_LATE: Final = (
    f"is after {_LAST_SECOND:%Y-%m-%dT%H:%M:%S}.{MAX_SPAN_TIME_UNIX_NANO % 1_000_000_000:09d}Z,"
    " the latest time the store can hold"
)


def check_span_times(prefix: str, start: int, end: int) -> None:
    """Validate a span's times; ``prefix`` is the span's path plus "." (or "" when relative)."""
    if start <= 0:
        raise SpanProblem(f"{prefix}startTimeUnixNano", "is missing")
    if start > MAX_SPAN_TIME_UNIX_NANO:
        raise SpanProblem(f"{prefix}startTimeUnixNano", _TOO_LATE)
    if end > MAX_SPAN_TIME_UNIX_NANO:
        raise SpanProblem(f"{prefix}endTimeUnixNano", _TOO_LATE)
    if end < start:
        raise SpanProblem(f"{prefix}endTimeUnixNano", "is before startTimeUnixNano")


def check_event_time(prefix: str, time: int) -> None:
    """Validate an event's time; ``prefix`` is the event's path plus "."."""
    if time > INT64_MAX:
        raise SpanProblem(f"{prefix}timeUnixNano", "out of range")


# --- the builder --------------------------------------------------------------------------------


class _Payload:
    __slots__ = ("digest", "redacted", "text")

    def __init__(self, text: str, redacted: int, digest: str) -> None:
        self.text = text
        self.redacted = redacted
        self.digest = digest


class BatchBuilder:
    """Collects span rows, payloads and rejections for one request of ``project``."""

    def __init__(self, project: str, *, scan_text: bool) -> None:
        self.project = project
        # False when the whole body was found free of secret candidates: only keys are checked.
        self.scan_text = scan_text
        self.rows: list[SpanRow] = []
        self.payloads: dict[str, bytes] = {}
        self.rejected = 0
        self.problems: list[str] = []
        # raw value -> its redacted text and hash, so a payload repeated in many spans (system
        # prompt, tool definitions) is redacted and hashed once.
        self._payload_cache: dict[str, _Payload] = {}
        self._text_cache: dict[str, tuple[str, int]] = {}

    def reject(self, problem: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.rejected += count
        if len(self.problems) <= _MAX_PROBLEMS_LISTED:
            self.problems.append(problem)

    def finish(self) -> SpanBatch:
        """The batch: the kept spans as one Arrow table, their payloads, what was rejected."""
        message = ""
        if self.rejected:
            total = self.rejected + len(self.rows)
            shown = "; ".join(self.problems[:_MAX_PROBLEMS_LISTED])
            more = len(self.problems) > _MAX_PROBLEMS_LISTED
            message = f"rejected {self.rejected} of {total} spans: {shown}" + (
                "; ..." if more else ""
            )
        table = rows_to_arrow(self.project, self.rows)
        return SpanBatch(self.project, table, self.payloads, self.rejected, message)

    # -- attributes ------------------------------------------------------------------------------

    def redact_map(self, attributes: dict[str, str]) -> tuple[dict[str, str], int]:
        """Redact short attribute maps (resource, event, link attributes) in place."""
        scan = self.scan_text and _may_contain_secret(attributes.values())
        total = 0
        for key, value in attributes.items():
            if value:
                text, count = self._redact_short(key, value, scan)
                if text is not value:
                    attributes[key] = text
                total += count
        return attributes, total

    def _redact_short(self, key: str, value: str, scan: bool) -> tuple[str, int]:
        if is_secret_key(key):
            return redact_value(key, str(value))
        if type(value) is not str:
            # A flattened array/map: its JSON text is not verbatim in the body, always scan it.
            return redact_text(str(value))
        if not scan:
            return value, 0
        cached = self._text_cache.get(value)
        if cached is None:
            cached = redact_text(value)
            self._text_cache[value] = cached
        return cached

    def _payload(self, key: str, value: str, scan: bool) -> _Payload:
        if is_secret_key(key):
            text, count = redact_value(key, str(value))
            return self._store_payload(text, count)
        if type(value) is not str:
            text, count = redact_text(str(value))
            return self._store_payload(text, count)
        cached = self._payload_cache.get(value)
        if cached is None:
            # Cached even when not scanned: not scanning means this very text is clean.
            text, count = redact_text(value) if scan else (value, 0)
            cached = self._store_payload(text, count)
            self._payload_cache[value] = cached
        return cached

    def _store_payload(self, text: str, redacted: int) -> _Payload:
        encoded = text.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(encoded).hexdigest()
        self.payloads[digest] = encoded
        return _Payload(text, redacted, digest)

    # -- one span --------------------------------------------------------------------------------

    def add_span(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        trace_state: str,
        name: str,
        kind: SpanKind,
        service_name: str,
        resource_attributes: dict[str, str],
        scope_name: str,
        scope_version: str,
        attributes: dict[str, str],
        start: int,
        end: int,
        status_code: StatusCode,
        status_message: str,
        events: list[EventRow],
        links: list[LinkRow],
        redacted: int,
    ) -> None:
        """Keep one valid span: redact it, move its payloads out, derive its columns."""
        derived = derive_columns(name, attributes, resource_attributes)
        operation, agent_name, model, tool_name = (
            derived.operation,
            derived.agent_name,
            derived.model,
            derived.tool_name,
        )
        if (
            type(operation) is not str
            or type(agent_name) is not str
            or type(model) is not str
            or type(tool_name) is not str
        ):
            # Taken from a flattened array/map value: store plain strings.
            operation, agent_name, model = str(operation), str(agent_name), str(model)
            tool_name = str(tool_name)
        refs: dict[str, str] = {}
        payload_texts: dict[str, str] = {}
        moved: list[str] = []
        # A body with a secret candidate somewhere: look closer only at spans that have one.
        scan = self.scan_text and _may_contain_secret(attributes.values(), status_message)
        for key, value in attributes.items():
            if not value:
                continue
            role = _KEY_ROLES.get(key)
            if role is None:
                role = _key_role(key)
            size = len(value)
            if role == _PAYLOAD_KEY or (
                size > PAYLOAD_INLINE_MAX_BYTES
                or (
                    size * 4 > PAYLOAD_INLINE_MAX_BYTES
                    and _utf8_len(value) > PAYLOAD_INLINE_MAX_BYTES
                )
            ):
                payload = self._payload(key, value, scan)
                refs[key] = payload.digest
                payload_texts[key] = payload.text
                redacted += payload.redacted
                moved.append(key)
            elif role == _SECRET_KEY or scan or type(value) is not str:
                text, count = self._redact_short(key, value, scan)
                if text is not value:
                    attributes[key] = text
                redacted += count
        for key in moved:
            del attributes[key]

        input_preview = output_preview = ""
        if payload_texts and (not parent_span_id or operation == OP_CHAT):
            input_preview, output_preview = previews(payload_texts)
        if status_message:
            status_message, count = self._redact_short("", status_message, scan)
            redacted += count
        if redacted:
            attributes[RETRACE_REDACTED] = str(redacted)

        self.rows.append(
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent_span_id,
                "trace_state": trace_state,
                "name": name,
                "kind": kind,
                "service_name": service_name,
                "resource_attributes": resource_attributes,
                "scope_name": scope_name,
                "scope_version": scope_version,
                "attributes": attributes,
                "start_time_unix_nano": start,
                "duration_ns": end - start,
                "status_code": status_code,
                "status_message": status_message,
                "events": events,
                "links": links,
                "operation": operation,
                "agent_name": agent_name,
                "model": model,
                "tool_name": tool_name,
                "input_tokens": derived.input_tokens,
                "output_tokens": derived.output_tokens,
                "step_index": derived.step_index,
                "session_id": derived.session_id,
                "user_id": derived.user_id,
                "payload_refs": refs,
                "input_preview": input_preview,
                "output_preview": output_preview,
            }
        )

    def event(self, time: int, name: str, attributes: dict[str, str]) -> tuple[EventRow, int]:
        """A span event, its attributes redacted; with how many values were redacted."""
        attributes, count = self.redact_map(attributes)
        return EventRow(time, name, attributes), count

    def link(
        self, trace_id: str, span_id: str, trace_state: str, attributes: dict[str, str]
    ) -> tuple[LinkRow, int]:
        """A span link, its attributes redacted; with how many values were redacted."""
        attributes, count = self.redact_map(attributes)
        return LinkRow(trace_id, span_id, trace_state, attributes), count


_PLAIN_KEY: Final = 0
_PAYLOAD_KEY: Final = 1
_SECRET_KEY: Final = 2
# attribute key -> its role, so the per-attribute hot loop does one dict lookup.
_KEY_ROLES: dict[str, int] = {key: _PAYLOAD_KEY for key in PAYLOAD_KEYS}
_KEY_ROLES_MAX: Final = 16384


def _key_role(key: str) -> int:
    role = (
        _PAYLOAD_KEY if key in PAYLOAD_KEYS else _SECRET_KEY if is_secret_key(key) else _PLAIN_KEY
    )
    if len(_KEY_ROLES) >= _KEY_ROLES_MAX:
        _KEY_ROLES.clear()
        _KEY_ROLES.update({payload_key: _PAYLOAD_KEY for payload_key in PAYLOAD_KEYS})
    _KEY_ROLES[key] = role
    return role


def _may_contain_secret(values: Iterable[str], *more: str) -> bool:
    """One prefilter pass over many values (joined: a match across a seam only costs time)."""
    joined = "\n".join((*values, *more))
    return bool(joined) and may_contain_secret(joined.encode("utf-8", "surrogatepass"))


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))

"""Render one span for people: conversation, tool call, error, sandbox, policy, workspace files.

Everything in a span is sender-controlled: raw values are shown with ``st.text``/``st.code``/
``st.json``/dataframes, and any value inside markdown (headings, captions, alerts, metrics, labels)
goes through ``ui._escape``.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import streamlit as st

from schemas import attributes as attr
from schemas.models import SpanEvent, SpanView
from ui._connection import client, shown_errors
from ui._escape import md_code, md_text
from ui._payloads import (
    PREVIEW_CHARS,
    ChatTurn,
    looks_binary,
    parse_json,
    parse_manifest,
    parse_messages,
    truncate,
)
from ui._span_table import key_value_table_html

MAX_TURNS_SHOWN = 12
_JSON_INLINE_MAX = 20_000
_SANDBOX_KEYS = (
    attr.RETRACE_SANDBOX_BACKEND,
    attr.RETRACE_SANDBOX_EXIT_CODE,
    attr.RETRACE_SANDBOX_CPU_MS,
    attr.RETRACE_SANDBOX_MEMORY_BYTES,
    attr.RETRACE_SANDBOX_TIMED_OUT,
    attr.RETRACE_SANDBOX_OUTPUT_TRUNCATED,
    attr.RETRACE_SANDBOX_INSECURE,
    attr.RETRACE_SANDBOX_POLICY,
    attr.RETRACE_MCP_SERVER,
)
_POLICY_KEYS = (
    attr.RETRACE_POLICY_DECISION,
    attr.RETRACE_POLICY_RULE,
    attr.RETRACE_POLICY_REASON,
    attr.RETRACE_APPROVAL_ID,
    attr.RETRACE_APPROVAL_STATUS,
    attr.RETRACE_APPROVAL_DECIDED_BY,
    attr.RETRACE_GUARDRAIL,
)
_DECISION_EVENTS = (attr.EVENT_POLICY, attr.EVENT_GUARDRAIL, attr.EVENT_APPROVAL, attr.EVENT_RETRY)


def long_text(text: str, key: str, *, language: str | None = None) -> None:
    """Show ``text``; past ``PREVIEW_CHARS`` it is cut, with a toggle to show all of it."""
    shown, cut = truncate(text)
    show_all = cut and st.toggle(f"Show all ({len(text):,} characters)", key=f"all-{key}")
    if show_all:
        shown = text
    if language is not None:
        st.code(shown, language=language, wrap_lines=True)
    elif "\n" in shown or len(shown) > 300:
        st.text(shown)
    else:
        st.markdown(md_text(shown))
    if cut and not show_all:
        st.caption(f"Showing the first {PREVIEW_CHARS:,} of {len(text):,} characters.")


def json_value(value: Any, key: str, *, expanded: bool | int = 2) -> None:
    """A JSON value as an explorable tree; very large values as cut text first."""
    if isinstance(value, str):
        long_text(value, key)
        return
    dumped = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(dumped) > _JSON_INLINE_MAX:
        long_text(dumped, key, language="json")
    else:
        st.json(value, expanded=expanded)


def _language(argument: str) -> str:
    return {"code": "python", "sql": "sql", "query": "sql", "command": "bash"}.get(argument, "text")


def _conversation(turns: list[ChatTurn], key: str) -> None:
    hidden = max(0, len(turns) - MAX_TURNS_SHOWN)
    if hidden and not st.toggle(f"Show {hidden} earlier messages", key=f"earlier-{key}"):
        turns_shown = list(enumerate(turns))[hidden:]
    else:
        turns_shown = list(enumerate(turns))
    for index, turn in turns_shown:
        avatar = {"system": ":material/settings:", "tool": ":material/build:"}.get(turn.role)
        with st.chat_message(turn.role, avatar=avatar):
            finish = f" · finish: {turn.finish_reason}" if turn.finish_reason else ""
            st.caption(md_text(turn.role + finish))
            for part_index, part in enumerate(turn.parts):
                part_key = f"{key}-{index}-{part_index}"
                call_id = f" · id {md_code(part.call_id)}" if part.call_id else ""
                if part.kind == "text":
                    long_text(part.text, part_key)
                elif part.kind == "tool_call":
                    st.markdown(f"**Tool call** {md_code(part.name)}{call_id}")
                    json_value(part.data, part_key)
                elif part.kind == "tool_result":
                    st.markdown(f"**Tool result**{call_id}")
                    json_value(part.data, part_key)
                else:
                    json_value(part.data, part_key)


def _payload_section(title: str, raw: str, key: str) -> None:
    st.markdown(f"**{md_text(title)}**")
    turns = parse_messages(raw)
    if turns:
        _conversation(turns, key)
    else:
        json_value(parse_json(raw), key)


def _error_section(span: SpanView) -> None:
    exceptions = [e for e in span.events if e.name == attr.EVENT_EXCEPTION]
    message = (
        span.status_message
        or span.attributes.get(attr.EXCEPTION_MESSAGE, "")
        or span.attributes.get(attr.ERROR_TYPE, "")
        or (exceptions[0].attributes.get(attr.EXCEPTION_MESSAGE, "") if exceptions else "")
    )
    tool_error = span.attributes.get(attr.RETRACE_TOOL_ERROR) == "true"
    if span.status.lower() != "error" and not exceptions and not tool_error:
        return
    st.error(f"Error: {md_text(message or 'the span ended with an error status')}")
    for index, event in enumerate(exceptions):
        kind = event.attributes.get(attr.EXCEPTION_TYPE, "exception")
        message = event.attributes.get(attr.EXCEPTION_MESSAGE, "")
        st.markdown(f"**{md_text(kind)}**: {md_text(message)}")
        stack = event.attributes.get(attr.EXCEPTION_STACKTRACE, "")
        if stack:
            long_text(stack, f"{span.span_id}-stack-{index}", language="python")
    if stack := span.attributes.get(attr.EXCEPTION_STACKTRACE, ""):
        long_text(stack, f"{span.span_id}-stack-attr", language="python")


def _servers_section(span: SpanView) -> None:
    """The run's MCP servers and where each ran (the root's ``retrace.sandbox.servers``)."""
    raw = span.attributes.get(attr.RETRACE_SANDBOX_SERVERS)
    if not raw:
        return
    parsed = parse_json(raw)
    st.markdown("**MCP servers**")
    if isinstance(parsed, dict):
        # A dataframe never renders its cells as markup.
        frame = pl.DataFrame(
            {
                "server": [str(k) for k in parsed],
                "sandbox": [str(v) for v in parsed.values()],
            }
        )
        st.dataframe(frame, hide_index=True, key=f"{span.span_id}-servers")
    else:
        json_value(parsed, f"{span.span_id}-servers")


def _sandbox_section(span: SpanView) -> None:
    present = [k for k in _SANDBOX_KEYS if k in span.attributes]
    if not present:
        return
    st.markdown("**Sandbox**")
    values = span.attributes
    cols = st.columns(4)
    # A metric's value is markdown too.
    cols[0].metric("Backend", md_text(values.get(attr.RETRACE_SANDBOX_BACKEND, "—")))
    cols[1].metric("Exit code", md_text(values.get(attr.RETRACE_SANDBOX_EXIT_CODE, "—")))
    cols[2].metric("CPU ms", md_text(values.get(attr.RETRACE_SANDBOX_CPU_MS, "—")))
    memory = values.get(attr.RETRACE_SANDBOX_MEMORY_BYTES, "")
    cols[3].metric("Memory", f"{int(memory) / 1e6:.1f} MB" if memory.isdigit() else "—")
    flags = [
        label
        for key, label in (
            (attr.RETRACE_SANDBOX_TIMED_OUT, "timed out"),
            (attr.RETRACE_SANDBOX_OUTPUT_TRUNCATED, "output truncated"),
            (attr.RETRACE_SANDBOX_INSECURE, "INSECURE backend (no isolation)"),
        )
        if values.get(key, "").lower() == "true"
    ]
    if flags:
        st.warning("Sandbox: " + ", ".join(flags))
    if server := values.get(attr.RETRACE_MCP_SERVER):
        st.caption(f"MCP server: {md_text(server)}")
    if limits := values.get(attr.RETRACE_SANDBOX_LIMITS):
        with st.expander("Limits"):
            json_value(parse_json(limits), f"{span.span_id}-limits")
    if policy := values.get(attr.RETRACE_SANDBOX_POLICY):
        with st.expander("Server sandbox policy"):
            json_value(parse_json(policy), f"{span.span_id}-sandbox-policy")


def _event_line(event: SpanEvent) -> str:
    """One markdown list item: the event's name and its attributes, all escaped."""
    return f"- {md_code(event.name)} " + ", ".join(
        f"{md_text(k)}={md_text(v)}" for k, v in event.attributes.items()
    )


def _policy_section(span: SpanView) -> None:
    present = {k: span.attributes[k] for k in _POLICY_KEYS if k in span.attributes}
    events = [e for e in span.events if e.name in _DECISION_EVENTS]
    if not present and not events:
        return
    st.markdown("**Policy, guardrails and approvals**")
    decision = present.get(attr.RETRACE_POLICY_DECISION, "")
    if decision:
        text = f"Policy decision: **{md_text(decision)}**"
        if rule := present.get(attr.RETRACE_POLICY_RULE):
            text += f" (rule {md_code(rule)})"
        if reason := present.get(attr.RETRACE_POLICY_REASON):
            text += f": {md_text(reason)}"
        (st.warning if decision != "allow" else st.info)(text)
    if guardrail := present.get(attr.RETRACE_GUARDRAIL):
        st.warning(f"Guardrail fired: {md_text(guardrail)}")
    if approval := present.get(attr.RETRACE_APPROVAL_STATUS):
        by = present.get(attr.RETRACE_APPROVAL_DECIDED_BY, "")
        st.info(
            f"Approval {md_text(present.get(attr.RETRACE_APPROVAL_ID, ''))}: {md_text(approval)}"
            + (f" by {md_text(by)}" if by else "")
        )
    for event in events:
        st.markdown(_event_line(event))


def _workspace_section(span: SpanView) -> None:
    snapshots = {
        label: span.attributes[key]
        for label, key in (
            ("after this step", attr.RETRACE_WORKSPACE_AFTER),
            ("before this step", attr.RETRACE_WORKSPACE_BEFORE),
        )
        if span.attributes.get(key)
    }
    if not snapshots:
        return
    st.markdown("**Workspace files**")
    which = st.radio("Snapshot", list(snapshots), horizontal=True, key=f"snap-{span.span_id}")
    manifest_hash = snapshots[which]
    with shown_errors(f"load workspace snapshot {manifest_hash[:12]}", stop=False):
        entries = parse_manifest(client().get_payload(manifest_hash))
        if not entries:
            st.info(f"The workspace was empty {which} (snapshot {md_text(manifest_hash[:12])}).")
            return
        st.dataframe(
            pl.DataFrame(
                {
                    "path": [e.path for e in entries],
                    "kind": [e.kind if e.kind != "link" else f"link → {e.target}" for e in entries],
                    "size": [e.size if e.kind == "file" else None for e in entries],
                    "sha256": [e.sha256[:12] for e in entries],
                }
            ),
            hide_index=True,
            height=min(38 + 35 * len(entries), 300),
        )
        files = [e for e in entries if e.kind == "file"]
        if not files:
            return
        chosen = st.selectbox(
            "View file", [f.path for f in files], key=f"file-{span.span_id}-{manifest_hash}"
        )
        entry = next(f for f in files if f.path == chosen)
        content = client().get_payload(entry.sha256)
        st.download_button(
            f"Download {md_text(chosen)}",
            data=content,
            file_name=chosen.rsplit("/", 1)[-1] or "file",
            key=f"dl-{span.span_id}-{entry.sha256}",
        )
        if looks_binary(content):
            st.caption(f"{md_text(chosen)} is binary ({len(content):,} bytes).")
        else:
            text = content.decode("utf-8", errors="replace")
            long_text(text, f"file-{entry.sha256}", language="text")


def render_span(span: SpanView) -> None:
    """Everything a person needs to understand one span."""
    a = span.attributes
    st.subheader(md_text(span.name))
    facts = [
        f"operation {md_code(span.operation or '—')}",
        f"status **{md_text(span.status)}**",
        f"{span.duration_ns / 1e6:,.1f} ms",
        f"span {md_code(span.span_id)}",
    ]
    if span.model:
        facts.append(f"model {md_code(span.model)}")
    if span.tool_name:
        facts.append(f"tool {md_code(span.tool_name)}")
    if span.step_index >= 0:
        facts.append(f"step {span.step_index}")
    st.caption(" · ".join(facts))
    _error_section(span)
    if span.input_tokens or span.output_tokens:
        cols = st.columns(3)
        cols[0].metric("Input tokens", f"{span.input_tokens:,}")
        cols[1].metric("Output tokens", f"{span.output_tokens:,}")
        cols[2].metric("Duration", f"{span.duration_ns / 1e6:,.0f} ms")
    key = span.span_id
    if system := a.get(attr.GEN_AI_SYSTEM_INSTRUCTIONS):
        with st.expander("System instructions"):
            _payload_section("System", system, f"{key}-sys")
    for title, name in (
        ("Run input", attr.RETRACE_RUN_INPUT),
        ("Input messages", attr.GEN_AI_INPUT_MESSAGES),
        ("Output messages", attr.GEN_AI_OUTPUT_MESSAGES),
        ("Input", attr.OI_INPUT_VALUE),
        ("Output", attr.OI_OUTPUT_VALUE),
        ("Input", attr.TL_ENTITY_INPUT),
        ("Output", attr.TL_ENTITY_OUTPUT),
    ):
        if raw := a.get(name):
            _payload_section(title, raw, f"{key}-{name}")
    if args := a.get(attr.GEN_AI_TOOL_CALL_ARGUMENTS):
        tool = span.tool_name or a.get(attr.GEN_AI_TOOL_NAME, "tool")
        st.markdown(f"**Arguments** of {md_code(tool)}")
        parsed = parse_json(args)
        json_value(parsed, f"{key}-args")
        if isinstance(parsed, dict):
            # Code and commands read better as code than as an escaped JSON string.
            for name, value in parsed.items():
                if isinstance(value, str) and "\n" in value.strip():
                    st.caption(md_text(name))
                    long_text(value, f"{key}-arg-{name}", language=_language(name))
    if attr.GEN_AI_TOOL_CALL_RESULT in a:
        st.markdown("**Result**")
        json_value(parse_json(a[attr.GEN_AI_TOOL_CALL_RESULT]), f"{key}-result")
    if answer := a.get(attr.RETRACE_RUN_OUTPUT):
        st.markdown("**Answer**")
        with st.chat_message("assistant"):
            long_text(answer, f"{key}-answer")
    _servers_section(span)
    _sandbox_section(span)
    _policy_section(span)
    _workspace_section(span)
    if tools := a.get(attr.GEN_AI_TOOL_DEFINITIONS):
        with st.expander("Tool definitions"):
            json_value(parse_json(tools), f"{key}-tooldefs")
    shown_elsewhere = (*_DECISION_EVENTS, attr.EVENT_EXCEPTION)
    other_events = [e for e in span.events if e.name not in shown_elsewhere]
    if other_events:
        with st.expander(f"Events ({len(other_events)})"):
            for event in other_events:
                st.markdown(_event_line(event))
    with st.expander(f"All attributes ({len(a)})"):
        # An HTML table (escaped text), not st.dataframe: every span shows this, and the grid's
        # 1.2 MB of JavaScript held up a trace page opened in a new tab.
        cut = [(k, v if len(v) <= 300 else v[:300] + "…") for k, v in a.items()]
        st.html(key_value_table_html(cut))

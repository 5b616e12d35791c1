"""The collector's traces in the terminal: ``retrace traces``, ``show``, ``sessions``, ``feedback``.

Each command is a client of a running collector (``--endpoint``/``RETRACE_ENDPOINT``, the API key
from ``--api-key``/``RETRACE_API_KEY``) through ``collector.client.CollectorClient``. Lists leave
replays out unless ``--include-replays`` is given, and mark them as replays of their original.
``--json`` prints what the API answers (``{"traces": [...], "next_cursor": ...}`` for traces).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.errors import NotFoundError
from schemas.ids import check_id
from schemas.models import (
    Feedback,
    FeedbackSource,
    SessionQuery,
    Step,
    TraceDetail,
    TraceQuery,
    TraceSummary,
    Trajectory,
    parse_feedback_value,
)
from schemas.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["feedback", "sessions", "show", "traces"]

_ENDPOINT = click.option(
    "--endpoint", default=None, help="Collector URL (default: RETRACE_ENDPOINT)."
)
_API_KEY = click.option(
    "--api-key", default=None, help="Collector API key (default: RETRACE_API_KEY)."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
# Text cut to this many characters in tables and step lines.
_CUT = 160


def _client(endpoint: str | None, api_key: str | None) -> Any:
    from collector.client import CollectorClient

    flags: dict[str, Any] = {"endpoint": endpoint, "api_key": api_key}
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return CollectorClient(settings.endpoint, api_key=key)


def _cut(text: str, width: int = _CUT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _console() -> Console:
    return Console(soft_wrap=False, highlight=False)


# --- traces --------------------------------------------------------------------------------------
def _replay_mark(t: TraceSummary) -> str:
    return f"replay of {t.replay_of}" if t.replay_of else ""


def traces_table(page_traces: list[TraceSummary]) -> Table:
    table = Table(show_lines=False)
    table.add_column("trace", no_wrap=True, min_width=32)
    table.add_column("started (UTC)", no_wrap=True, min_width=14)
    table.add_column("status", no_wrap=True, min_width=6)
    for name in ("agent", "session", "user"):
        table.add_column(name, overflow="fold")
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("input / replay")
    for t in page_traces:
        status = "[red]error[/]" if t.status == "error" else "ok"
        what = _replay_mark(t) or _cut(t.input_preview, 48)
        table.add_row(
            t.trace_id,
            t.start_time.strftime("%m-%d %H:%M:%S"),
            status,
            escape(t.agent_name),
            escape(t.session_id),
            escape(t.user_id),
            f"{t.duration_ms:,.0f}",
            escape(what),
        )
    return table


@click.command()
@click.option("--user", "user_id", default=None, help="Only this end user's traces.")
@click.option("--session", "session_id", default=None, help="Only this session's traces.")
@click.option("--text", default=None, help="Search inputs, answers, tool arguments and results.")
@click.option("--feedback", default=None, help="Only traces with feedback of this name.")
@click.option("--status", type=click.Choice(["ok", "error"]), default=None)
@click.option("--agent", default=None, help="Only this agent's traces.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--include-replays",
    is_flag=True,
    help="List replays too (marked as replays of their original).",
)
@_JSON
@_ENDPOINT
@_API_KEY
def traces(
    user_id: str | None,
    session_id: str | None,
    text: str | None,
    feedback: str | None,
    status: str | None,
    agent: str | None,
    limit: int,
    include_replays: bool,
    as_json: bool,
    endpoint: str | None,
    api_key: str | None,
) -> None:
    """List traces, newest first (replays left out unless --include-replays)."""
    query = TraceQuery.model_validate(
        {
            "user_id": user_id,
            "session_id": session_id,
            "text": text,
            "feedback": feedback,
            "status": status,
            "agent": agent,
            "limit": limit,
            "include_replays": include_replays,
        }
    )
    with _client(endpoint, api_key) as client:
        page = client.list_traces(query)
    if as_json:
        click.echo(page.model_dump_json(indent=2))
        return
    console = _console()
    if not page.traces:
        console.print("no traces match")
        return
    console.print(traces_table(page.traces))
    if page.next_cursor:
        console.print(f"(first {limit}; more with --limit)")


# --- show ----------------------------------------------------------------------------------------
def _message_text(message: dict[str, Any] | None) -> str:
    if not message:
        return ""
    if isinstance(message.get("data"), dict):  # a LangChain message as dumpd writes it
        message = message["data"]
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = message.get("parts")
    texts: list[str] = []
    for part in (parts if isinstance(parts, list) else []) + (
        content if isinstance(content, list) else []
    ):
        if isinstance(part, dict):
            value = part.get("content") or part.get("text")
            if isinstance(value, str):
                texts.append(value)
    return " ".join(texts)


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _manifest(client: Any, digest: str) -> dict[str, Any]:
    if not digest:
        return {}
    try:
        value = json.loads(client.get_payload(digest).decode("utf-8"))
    except (NotFoundError, UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def files_written(client: Any, step: Step) -> list[str]:
    """Workspace files a tool step created or changed (its snapshots' manifests compared)."""
    if not step.snapshot_after or step.snapshot_after == step.snapshot_before:
        return []
    before = _manifest(client, step.snapshot_before)
    after = _manifest(client, step.snapshot_after)
    return sorted(
        path
        for path, entry in after.items()
        if isinstance(entry, dict) and "hash" in entry and before.get(path) != entry
    )


def _step_lines(step: Step, written: list[str]) -> list[str]:
    head = f"[bold]{step.index + 1}.[/] "
    failed = step.status == "Error" or step.error
    if step.kind == "llm":
        lines = [head + f"[cyan]LLM[/] {escape(step.model or step.name)}"]
        text = _message_text(step.output_message)
        if text:
            lines.append(f"   says: {escape(_cut(text))}")
        for call in step.tool_calls:
            name = call.get("name") or call.get("function", {}).get("name", "")
            args = call.get("arguments", call.get("args", {}))
            lines.append(f"   asks for {escape(str(name))}({escape(_cut(_json_text(args), 120))})")
    else:
        lines = [
            head
            + f"[magenta]tool[/] {escape(step.tool_name or step.name)}"
            + (" [red](failed)[/]" if failed else "")
        ]
        lines.append(f"   arguments: {escape(_cut(_json_text(step.arguments)))}")
        if step.result is not None:
            lines.append(f"   result: {escape(_cut(_json_text(step.result)))}")
    if step.error:
        lines.append(f"   [red]error: {escape(_cut(step.error))}[/]")
    if step.policy_decision:
        rule = f" (rule {step.policy_rule})" if step.policy_rule else ""
        lines.append(f"   policy: {escape(step.policy_decision)}{escape(rule)}")
    if step.approval:
        status = step.approval.get("status", "")
        by = step.approval.get("decided_by", "")
        lines.append(
            f"   approval: {escape(str(status))}" + (f" by {escape(str(by))}" if by else "")
        )
    if written:
        lines.append(f"   files written: {escape(', '.join(written))}")
    return lines


def _feedback_line(f: Feedback) -> str:
    where = f" on span {f.span_id}" if f.span_id else ""
    comment = f" — {f.comment}" if f.comment else ""
    return escape(f"{f.name} = {_json_text(f.value)} ({f.source.value}{where}){comment}")


def render_show(
    console: Console, detail: TraceDetail, trajectory: Trajectory, written: dict[int, list[str]]
) -> None:
    t = detail.trace
    console.print(f"[bold]trace {t.trace_id}[/]  {_time(t.start_time)}  {t.duration_ms:,.0f} ms")
    facts = [
        ("agent", t.agent_name),
        ("status", f"{t.status} ({t.run_status})" if t.run_status else t.status),
        ("session", t.session_id),
        ("user", t.user_id),
        ("replay of", t.replay_of),
    ]
    for label, value in facts:
        if value:
            console.print(f"{label}: {escape(value)}")
    console.print(f"\n[bold]input[/]: {escape(trajectory.input or t.input_preview)}\n")
    for step in trajectory.steps:
        for line in _step_lines(step, written.get(step.index, [])):
            console.print(line)
    console.print(f"\n[bold]answer[/]: {escape(trajectory.output or t.output_preview)}")
    if detail.feedback:
        console.print("\n[bold]feedback[/]:")
        for f in detail.feedback:
            console.print("  " + _feedback_line(f))


@click.command()
@click.argument("trace_id")
@_JSON
@_ENDPOINT
@_API_KEY
def show(trace_id: str, as_json: bool, endpoint: str | None, api_key: str | None) -> None:
    """Show a run step by step: input, LLM and tool calls, policy, files written, the answer."""
    check_id(trace_id, "trace id")
    with _client(endpoint, api_key) as client:
        detail = client.get_trace(trace_id)
        trajectory = client.get_trajectory(trace_id)
        written = {s.index: files_written(client, s) for s in trajectory.steps if s.kind == "tool"}
    if as_json:
        body = {
            "trace": detail.trace.model_dump(mode="json"),
            "feedback": [f.model_dump(mode="json") for f in detail.feedback],
            "trajectory": trajectory.model_dump(mode="json"),
            "files_written": {str(k): v for k, v in written.items() if v},
        }
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    render_show(_console(), detail, trajectory, written)


# --- sessions ------------------------------------------------------------------------------------
@click.command()
@click.argument("session_id", required=False)
@click.option("--user", "user_id", default=None, help="Only this end user's sessions.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@_JSON
@_ENDPOINT
@_API_KEY
def sessions(
    session_id: str | None,
    user_id: str | None,
    limit: int,
    as_json: bool,
    endpoint: str | None,
    api_key: str | None,
) -> None:
    """List sessions (most recently active first), or one session's traces in order."""
    console = _console()
    with _client(endpoint, api_key) as client:
        if session_id is not None:
            detail = client.get_session(session_id)
            if as_json:
                click.echo(detail.model_dump_json(indent=2))
                return
            s = detail.session
            console.print(
                f"[bold]session {escape(s.session_id)}[/]  user {escape(s.user_id or '-')}  "
                f"{s.trace_count} traces, {s.error_count} failed, {s.feedback_count} feedback"
            )
            for t in detail.traces:
                status = "[red]error[/]" if t.status == "error" else "ok"
                console.print(f"\n{_time(t.start_time)}  {t.trace_id}  {status}")
                console.print(f"  user: {escape(_cut(t.input_preview))}")
                console.print(f"  agent: {escape(_cut(t.output_preview))}")
            return
        page = client.list_sessions(SessionQuery(user_id=user_id, limit=limit))
    if as_json:
        click.echo(page.model_dump_json(indent=2))
        return
    if not page.sessions:
        console.print("no sessions match")
        return
    table = Table()
    table.add_column("session", no_wrap=True)
    table.add_column("user", no_wrap=True)
    table.add_column("traces", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("feedback", justify="right")
    table.add_column("first", no_wrap=True)
    table.add_column("last", no_wrap=True)
    for s in page.sessions:
        table.add_row(
            escape(s.session_id),
            escape(s.user_id),
            str(s.trace_count),
            str(s.error_count),
            str(s.feedback_count),
            _time(s.first_time),
            _time(s.last_time),
        )
    console.print(table)


# --- feedback ------------------------------------------------------------------------------------
@click.command()
@click.argument("trace_id")
@click.option("--name", required=True, help="What the feedback is (complaint, thumbs_up, score…).")
@click.option("--value", "raw_value", required=True, help="true/false, a number or text.")
@click.option("--comment", default="", help="Free text.")
@click.option("--span-id", default="", help="The span the feedback is about.")
@click.option(
    "--source",
    type=click.Choice([s.value for s in FeedbackSource]),
    default=FeedbackSource.REVIEWER.value,
    show_default=True,
)
@_JSON
@_ENDPOINT
@_API_KEY
def feedback(
    trace_id: str,
    name: str,
    raw_value: str,
    comment: str,
    span_id: str,
    source: str,
    as_json: bool,
    endpoint: str | None,
    api_key: str | None,
) -> None:
    """Record feedback on a trace (e.g. mark it as the customer's complaint)."""
    check_id(trace_id, "trace id")
    value = parse_feedback_value(raw_value)
    with _client(endpoint, api_key) as client:
        stored = client.add_feedback(
            trace_id, name, value, comment=comment, span_id=span_id, source=source
        )
    if as_json:
        click.echo(stored.model_dump_json(indent=2))
        return
    click.echo(f"recorded {stored.name} = {_json_text(stored.value)} on trace {trace_id}")

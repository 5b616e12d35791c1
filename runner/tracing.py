"""OpenTelemetry for a run: one ``invoke_agent`` root, one ``chat`` span per LLM call, one
``execute_tool`` span per tool call, all keys from ``schemas.attributes``.

Spans leave through a ``BatchSpanProcessor`` + OTLP/HTTP (protobuf) exporter to
``{endpoint}/v1/traces``. A run that dies still leaves its spans: SIGTERM/SIGINT handlers and an
atexit hook end every open root span with ``retrace.run.status=incomplete`` and flush; after a
SIGKILL the next runner recovers the root from the run's journal (``runner.journal``).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import json
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from runner import journal
from runner.otel_resource import SCOPE_NAME, runner_resource
from runner.seams import ToolResult, ToolSpec
from schemas import attributes as A
from schemas.models import RunStatus

# Short metadata names a ToolExecutor may use instead of the full attribute key.
_METADATA_KEYS: dict[str, str] = {
    "backend": A.RETRACE_SANDBOX_BACKEND,
    "sandbox_backend": A.RETRACE_SANDBOX_BACKEND,
    "insecure": A.RETRACE_SANDBOX_INSECURE,
    "limits": A.RETRACE_SANDBOX_LIMITS,
    "exit_code": A.RETRACE_SANDBOX_EXIT_CODE,
    "cpu_ms": A.RETRACE_SANDBOX_CPU_MS,
    "memory_bytes": A.RETRACE_SANDBOX_MEMORY_BYTES,
    "timed_out": A.RETRACE_SANDBOX_TIMED_OUT,
    "output_truncated": A.RETRACE_SANDBOX_OUTPUT_TRUNCATED,
    "snapshot_before": A.RETRACE_WORKSPACE_BEFORE,
    "snapshot_after": A.RETRACE_WORKSPACE_AFTER,
    "mcp_server": A.RETRACE_MCP_SERVER,
    "server": A.RETRACE_MCP_SERVER,
}
_KNOWN_KEYS = frozenset(
    value for name, value in vars(A).items() if name.isupper() and isinstance(value, str)
)


# --- provider ---------------------------------------------------------------------------------


_PINNED_TRACE_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "retrace_pinned_trace_id", default=None
)


class PinnableIdGenerator(RandomIdGenerator):
    """Random ids, except inside :func:`pinned_trace_id` (a resumed run continues its original
    trace). A context variable, so concurrent runs sharing a provider do not interfere."""

    def generate_trace_id(self) -> int:
        pinned = _PINNED_TRACE_ID.get()
        return pinned if pinned is not None else super().generate_trace_id()


@contextlib.contextmanager
def pinned_trace_id(trace_id: str | None) -> Iterator[None]:
    """New traces started in this block get ``trace_id`` (hex)."""
    token = _PINNED_TRACE_ID.set(int(trace_id, 16) if trace_id else None)
    try:
        yield
    finally:
        _PINNED_TRACE_ID.reset(token)


def session_attributes(
    session_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Root-span attributes naming a run's session (conversation), end user and metadata.

    The session goes in ``session.id`` and ``gen_ai.conversation.id``, the user in ``user.id``
    (the collector maps them to its SessionId/UserId columns), each metadata entry in
    ``retrace.metadata.<key>`` (text as is, anything else as JSON).
    """
    out: dict[str, str] = {}
    if session_id:
        out[A.SESSION_ID] = session_id
        out[A.GEN_AI_CONVERSATION_ID] = session_id
    if user_id:
        out[A.USER_ID] = user_id
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        out[A.RETRACE_METADATA_PREFIX + str(key)] = text
    return out


def build_tracer_provider(
    *,
    endpoint: str | None,
    api_key: str | None = None,
    project: str = "default",
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A new provider exporting to ``{endpoint}/v1/traces`` (batched), or to ``exporter``
    synchronously (tests, replay), or nowhere when both are None."""
    provider = TracerProvider(resource=runner_resource(project), id_generator=PinnableIdGenerator())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif endpoint:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        otlp = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", headers=headers)
        provider.add_span_processor(
            BatchSpanProcessor(
                otlp, schedule_delay_millis=500, max_export_batch_size=512, max_queue_size=16384
            )
        )
    return provider


_SHARED: dict[tuple[str, str | None, str], TracerProvider] = {}
_SHARED_LOCK = threading.Lock()


def shared_tracer_provider(endpoint: str, api_key: str | None, project: str) -> TracerProvider:
    """One batching provider per collector for the whole process: runs do not pay for a
    provider, an exporter and a final synchronous export each. Flushed by
    :func:`flush_exports`, on the crash paths and at exit."""
    key = (endpoint, api_key, project)
    with _SHARED_LOCK:
        provider = _SHARED.get(key)
        if provider is None:
            provider = build_tracer_provider(endpoint=endpoint, api_key=api_key, project=project)
            _SHARED[key] = provider
        return provider


_ENDED_JOURNALS: list[Path] = []  # runs whose root ended; deleted once flushed


def flush_exports(timeout_ms: int = 30_000) -> bool:
    """Export every span still queued in the shared providers; True when all went out. The
    journal entries of runs whose root ended before the flush are then deleted."""
    with _SHARED_LOCK:
        providers = list(_SHARED.values())
        ended = list(_ENDED_JOURNALS)
    flushed = all(provider.force_flush(timeout_ms) for provider in providers)
    if flushed:
        with _SHARED_LOCK:
            for path in ended:
                if path in _ENDED_JOURNALS:  # another thread's flush may have taken it
                    _ENDED_JOURNALS.remove(path)
                    journal.remove(path)
    return flushed


@functools.cache
def code_version() -> str:
    """The git sha of the checkout this code runs from, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"retrace=={version('retrace')}"
    except PackageNotFoundError:
        return "unknown"


# --- message formats --------------------------------------------------------------------------


def messages_to_genai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Messages in the GenAI semantic-convention shape (role + parts)."""
    return [_genai_message(m) for m in messages]


def _genai_message(message: BaseMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    text = message.text if isinstance(message.content, list) else message.content
    if isinstance(message, ToolMessage):
        parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": text})
        return {"role": "tool", "parts": parts, "status": message.status}
    if text:
        parts.append({"type": "text", "content": text})
    role = "user"
    if isinstance(message, AIMessage):
        role = "assistant"
        for call in message.tool_calls:
            parts.append(
                {
                    "type": "tool_call",
                    "id": call["id"],
                    "name": call["name"],
                    "arguments": call["args"],
                }
            )
    elif isinstance(message, SystemMessage):
        role = "system"
    elif not isinstance(message, HumanMessage):
        role = message.type
    return {"role": role, "parts": parts}


def ai_message_to_json(message: AIMessage) -> str:
    """The exact AIMessage (LangChain's dict form) as JSON: what replay serves back."""
    return json.dumps(message_to_dict(message), default=str, sort_keys=True)


def ai_message_from_json(text: str) -> AIMessage:
    """Inverse of :func:`ai_message_to_json`."""
    (message,) = messages_from_dict([json.loads(text)])
    if not isinstance(message, AIMessage):
        raise ValueError(f"recorded model response is a {message.type} message, not ai")
    return message


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _attr(value: Any) -> str | bool | int | float:
    if isinstance(value, str | bool | int | float):
        return value
    return _json(value)


# --- the run's spans --------------------------------------------------------------------------


class RunTracer:
    """Creates one run's spans. The graph calls it; it never decides anything."""

    def __init__(
        self,
        provider: TracerProvider,
        *,
        agent_name: str,
        provider_name: str,
        model_name: str,
    ) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE_NAME)
        self.agent_name = agent_name
        self.provider_name = provider_name
        self.model_name = model_name
        self.root: Span | None = None
        self._root_token: Any = None
        self._ended = False
        self._lock = threading.Lock()
        self._open: set[Span] = set()  # children in flight, ended by the crash path
        self.context_token: Any = None  # set by wrappers that make this run current
        self.journal: Path | None = None  # see runner.journal; set by start_journal

    def start_journal(
        self,
        data_dir: Path,
        *,
        run_id: str,
        endpoint: str,
        project: str,
        api_key: str | None,
        continues: tuple[str, str] | None = None,
    ) -> None:
        """Journal the started root so another process can end it if this one is killed."""
        root = self.root
        if root is None:
            return
        ctx = root.get_span_context()
        try:
            self.journal = journal.write_entry(
                data_dir,
                run_id=run_id,
                trace_id=format(ctx.trace_id, "032x"),
                span_id=format(ctx.span_id, "016x"),
                start_ns=int(getattr(root, "start_time", None) or 0),
                name=str(getattr(root, "name", f"{A.OP_INVOKE_AGENT} {self.agent_name}")),
                attributes=dict(getattr(root, "attributes", None) or {}),
                links=[continues] if continues else [],
                endpoint=endpoint,
                project=project,
                api_key=api_key,
            )
        except OSError:  # a read-only data dir loses SIGKILL recovery, not the run
            self.journal = None

    # root ------------------------------------------------------------------------------------
    def start_root(
        self,
        attributes: dict[str, Any],
        *,
        trace_id: str | None = None,
        continues: tuple[str, str] | None = None,
    ) -> tuple[str, str]:
        """Start the ``invoke_agent`` span; ``trace_id`` pins the trace (a resumed run) and
        ``continues`` links to the (trace_id, span_id) of the segment it continues."""
        links = []
        if continues:
            ctx = SpanContext(
                int(continues[0], 16),
                int(continues[1], 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            links.append(Link(ctx))
        base: dict[str, str | bool | int | float] = {
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
            A.GEN_AI_AGENT_NAME: self.agent_name,
            A.GEN_AI_PROVIDER_NAME: self.provider_name,
            A.GEN_AI_REQUEST_MODEL: self.model_name,
            A.RETRACE_RUN_STATUS: RunStatus.RUNNING.value,
            A.RETRACE_CODE_VERSION: code_version(),
        }
        base.update({k: _attr(v) for k, v in attributes.items()})
        with pinned_trace_id(trace_id):
            self.root = self.tracer.start_span(
                f"{A.OP_INVOKE_AGENT} {self.agent_name}",
                kind=SpanKind.INTERNAL,
                attributes=base,
                links=links,
                context=trace.set_span_in_context(trace.INVALID_SPAN),
            )
        self._root_token = trace.set_span_in_context(self.root)
        _ACTIVE.add(self)
        _install_crash_handlers()
        ctx = self.root.get_span_context()
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    def root_event(self, name: str, attributes: dict[str, Any]) -> None:
        if self.root is not None and not self._ended:
            self.root.add_event(name, {k: _attr(v) for k, v in attributes.items()})

    def finish_root(
        self,
        status: RunStatus,
        *,
        answer: str | None = None,
        attributes: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End the root span with the run's status. Idempotent (the crash path may win)."""
        with self._lock:
            if self.root is None or self._ended:
                return
            self._ended = True
        root = self.root
        root.set_attribute(A.RETRACE_RUN_STATUS, status.value)
        if answer is not None:
            root.set_attribute(A.RETRACE_RUN_OUTPUT, answer)
        for key, value in (attributes or {}).items():
            root.set_attribute(key, _attr(value))
        if error is not None:
            root.record_exception(error)
            root.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif status in (RunStatus.FAILED, RunStatus.INCOMPLETE):
            root.set_status(Status(StatusCode.ERROR, f"run {status.value}"))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end()
        _ACTIVE.discard(self)
        if self.journal is not None:
            with _SHARED_LOCK:
                shared = any(p is self.provider for p in _SHARED.values())
                if shared:  # deleted by the next flush_exports, once the root went out
                    _ENDED_JOURNALS.append(self.journal)
            if not shared:
                journal.remove(self.journal)  # exported synchronously (or not at all)

    def abandon_children(self, reason: str) -> None:
        """End the spans still in flight (the process is going down), marked as errors."""
        for span in list(self._open):
            self._open.discard(span)
            span.set_status(Status(StatusCode.ERROR, f"interrupted: {reason}"))
            span.end()

    def flush(self, timeout_ms: int = 10_000) -> bool:
        return self.provider.force_flush(timeout_ms)

    # children --------------------------------------------------------------------------------
    def _child(self, name: str, attributes: dict[str, Any]) -> Span:
        context = trace.set_span_in_context(self.root) if self.root is not None else None
        return self.tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, context=context
        )

    @contextlib.contextmanager
    def chat_span(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> Iterator[Span]:
        """The ``chat`` span around one model call; record the answer with :meth:`record_chat`."""
        span = self.start_chat(messages, tools, step_index=step_index, parameters=parameters)
        with self._around(span):
            yield span

    def start_chat(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
        model_name: str | None = None,
    ) -> Span:
        """Start a ``chat`` span (end it with :meth:`end_child`)."""
        model_name = model_name or self.model_name
        attributes: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
            A.GEN_AI_PROVIDER_NAME: self.provider_name,
            A.GEN_AI_REQUEST_MODEL: model_name,
            A.GEN_AI_AGENT_NAME: self.agent_name,
            A.RETRACE_STEP_INDEX: step_index,
            A.GEN_AI_INPUT_MESSAGES: _json(messages_to_genai(messages)),
            A.GEN_AI_TOOL_DEFINITIONS: _json(
                [
                    {"name": t.name, "description": t.description, "parameters": t.input_schema}
                    for t in tools
                ]
            ),
            A.RETRACE_MODEL_PARAMETERS: _json(parameters),
        }
        for key, attr in (
            ("temperature", A.GEN_AI_REQUEST_TEMPERATURE),
            ("top_p", A.GEN_AI_REQUEST_TOP_P),
            ("max_tokens", A.GEN_AI_REQUEST_MAX_TOKENS),
            ("seed", A.GEN_AI_REQUEST_SEED),
        ):
            if isinstance(parameters.get(key), int | float):
                attributes[attr] = parameters[key]
        span = self._child(f"{A.OP_CHAT} {model_name}", attributes)
        self._open.add(span)
        return span

    @contextlib.contextmanager
    def _around(self, span: Span) -> Iterator[None]:
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                yield
        except BaseException as exc:
            self.end_child(span, exc)
            raise
        self.end_child(span)

    def end_child(self, span: Span, error: BaseException | None = None) -> None:
        """End a span from :meth:`start_chat` / :meth:`start_tool`, as failed if ``error``."""
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        if span in self._open:
            self._open.discard(span)
            span.end()
            journal.heartbeat(self.journal)

    @staticmethod
    def record_chat(span: Span, message: AIMessage) -> tuple[int, int]:
        """Put the model's answer on its span; returns (input_tokens, output_tokens)."""
        usage = message.usage_metadata
        input_tokens = int(usage["input_tokens"]) if usage else 0
        output_tokens = int(usage["output_tokens"]) if usage else 0
        meta = message.response_metadata or {}
        finish = meta.get("finish_reason") or ("tool_calls" if message.tool_calls else "stop")
        span.set_attribute(A.GEN_AI_OUTPUT_MESSAGES, _json(messages_to_genai([message])))
        span.set_attribute(A.RETRACE_MODEL_TOOL_CALLS, _json(message.tool_calls))
        span.set_attribute(A.RETRACE_MODEL_RESPONSE, ai_message_to_json(message))
        span.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        span.set_attribute(A.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        span.set_attribute(A.GEN_AI_RESPONSE_FINISH_REASONS, [str(finish)])
        model = meta.get("model_name") or meta.get("model")
        if model:
            span.set_attribute(A.GEN_AI_RESPONSE_MODEL, str(model))
        response_id = meta.get("id") or message.id
        if response_id:
            span.set_attribute(A.GEN_AI_RESPONSE_ID, str(response_id))
        return input_tokens, output_tokens

    @contextlib.contextmanager
    def tool_span(
        self,
        name: str,
        *,
        call_id: str,
        arguments: dict[str, Any],
        step_index: int,
        server: str = "",
        attempt: int = 1,
    ) -> Iterator[Span]:
        """The ``execute_tool`` span around one attempt of one tool call."""
        span = self.start_tool(
            name,
            call_id=call_id,
            arguments=arguments,
            step_index=step_index,
            server=server,
            attempt=attempt,
        )
        with self._around(span):
            yield span

    def start_tool(
        self,
        name: str,
        *,
        call_id: str,
        arguments: dict[str, Any] | str,
        step_index: int,
        server: str = "",
        attempt: int = 1,
    ) -> Span:
        """Start an ``execute_tool`` span (end it with :meth:`end_child`)."""
        attributes: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
            A.GEN_AI_TOOL_NAME: name,
            A.GEN_AI_TOOL_TYPE: "function",
            A.GEN_AI_TOOL_CALL_ID: call_id,
            A.GEN_AI_TOOL_CALL_ARGUMENTS: arguments
            if isinstance(arguments, str)
            else _json(arguments),
            A.GEN_AI_AGENT_NAME: self.agent_name,
            A.RETRACE_STEP_INDEX: step_index,
            A.RETRACE_TOOL_ATTEMPT: attempt,
        }
        if server:
            attributes[A.RETRACE_MCP_SERVER] = server
        span = self._child(f"{A.OP_EXECUTE_TOOL} {name}", attributes)
        self._open.add(span)
        return span

    @staticmethod
    def record_tool_result(span: Span, result: ToolResult) -> None:
        """Put a tool's result (and the sandbox/MCP metadata it carries) on its span."""
        span.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, result.content)
        span.set_attribute(A.RETRACE_TOOL_ERROR, "true" if result.is_error else "false")
        for key, value in result.metadata.items():
            attr = _METADATA_KEYS.get(key, key)
            if attr in _KNOWN_KEYS and value is not None:
                span.set_attribute(attr, _attr(value))
        if result.is_error:
            span.set_status(Status(StatusCode.ERROR, result.content[:200]))


# --- crash path -------------------------------------------------------------------------------

_ACTIVE: set[RunTracer] = set()
_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}


def flush_incomplete(reason: str) -> None:
    """End every open run as ``incomplete`` and flush all spans (crash paths and exit)."""
    for run in list(_ACTIVE):
        run.abandon_children(reason)
        run.root_event(A.EVENT_EXCEPTION, {A.EXCEPTION_TYPE: reason, A.EXCEPTION_MESSAGE: reason})
        run.finish_root(RunStatus.INCOMPLETE)
        run.flush(5_000)
    flush_exports(10_000)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    flush_incomplete(signal.Signals(signum).name)
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    # Default action was "terminate": exit, but through the interpreter, so the caller's
    # cleanup (e.g. the collector `retrace demo` started) still runs.
    raise SystemExit(128 + signum)


def _install_crash_handlers() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    atexit.register(flush_incomplete, "exit")
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if previous is _on_signal:
            continue
        _PREVIOUS[signum] = previous if previous not in (signal.SIG_DFL, signal.SIG_IGN) else None
        signal.signal(signum, _on_signal)

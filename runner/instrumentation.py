"""``instrument(graph)``: trace a user's own compiled LangGraph graph like Retrace's agent.

One call wraps an existing graph; each ``invoke``/``ainvoke``/``stream``/``astream`` becomes an
``invoke_agent`` root span, every chat-model call inside it a ``chat`` span and every LangChain
tool call an ``execute_tool`` span (a LangChain callback handler sees both, whatever the graph's
shape). ``trace_mcp_session`` does the same for direct ``call_tool`` calls on an MCP session
made by the graph's nodes.

What a replay of the graph needs goes on the root span too (``graph_ref=``, the input as
``langchain_core.load.dumpd`` gives it, the run config without callbacks, the method, the global
``random`` state at the start, the ``uuid.uuid4()`` values drawn during the run and the clock at
the start): ``retrace replay TRACE --graph MODULE:ATTR`` (replay/_graph.py) re-drives the graph
from them. ``uuid.uuid4`` (and in a replay ``time.time``) is wrapped once per process; the
wrappers only act inside an instrumented run (a context variable), see docs/replay.md for what
is pinned.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import json
import random
import secrets
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Span

from runner.seams import ToolResult
from runner.tracing import (
    PinnableIdGenerator,
    RunTracer,
    build_tracer_provider,
    session_attributes,
)
from schemas import attributes as A
from schemas.models import RunStatus

_CURRENT_RUN: contextvars.ContextVar[RetraceCallbackHandler | None] = contextvars.ContextVar(
    "retrace_instrumented_run", default=None
)

# --- pinning: ids, clock, random ------------------------------------------------------------------

_ORIGINAL_UUID4 = uuid.uuid4
_ORIGINAL_TIME = time.time


class IdSource:
    """The ``uuid.uuid4()`` values of one run: drawn and kept (recording), or served from a
    recording in order (replay; past its end, ids derived from ``seed``)."""

    def __init__(self, recorded: list[str] | None = None, *, seed: str = "") -> None:
        self.replaying = recorded is not None
        self._recorded = list(recorded or [])
        self._seed = seed
        self.drawn: list[str] = []
        self.beyond_recording = 0
        self._lock = threading.Lock()

    def draw(self) -> UUID:
        with self._lock:
            n = len(self.drawn)
            if not self.replaying:
                value = _ORIGINAL_UUID4()
            elif n < len(self._recorded):
                value = UUID(self._recorded[n])
            else:
                self.beyond_recording += 1
                digest = hashlib.sha256(f"{self._seed}:uuid:{n}".encode()).digest()[:16]
                value = UUID(bytes=digest, version=4)
            self.drawn.append(str(value))
            return value


_IDS: contextvars.ContextVar[IdSource | None] = contextvars.ContextVar(
    "retrace_id_source", default=None
)
_CLOCK_OFFSET: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "retrace_clock_offset", default=None
)


def _pinned_uuid4() -> UUID:
    source = _IDS.get()
    return _ORIGINAL_UUID4() if source is None else source.draw()


def _pinned_time() -> float:
    offset = _CLOCK_OFFSET.get()
    return _ORIGINAL_TIME() if offset is None else _ORIGINAL_TIME() + offset


_pinned_uuid4.__doc__ = uuid.uuid4.__doc__
_pinned_time.__doc__ = time.time.__doc__
_PIN_LOCK = threading.Lock()


def _install_pins(*, clock: bool = False) -> None:
    """Wrap ``uuid.uuid4`` (and, for a replay, ``time.time``) once per process. Outside an
    instrumented run (a replayed one for the clock) the wrappers call the originals."""
    with _PIN_LOCK:
        if uuid.uuid4 is not _pinned_uuid4:
            uuid.uuid4 = _pinned_uuid4
        if clock and time.time is not _pinned_time:
            time.time = _pinned_time


def encode_random_state(state: tuple[Any, ...]) -> str:
    """``random.getstate()`` as a short string: JSON of the version, the packed (base64) ints
    and the pending gauss value."""
    version, internal, gauss = state
    packed = struct.pack(f"<{len(internal)}I", *internal)
    return json.dumps(
        {"version": version, "state": base64.b64encode(packed).decode(), "gauss": gauss}
    )


def decode_random_state(text: str) -> tuple[Any, ...]:
    """Inverse of :func:`encode_random_state`; ``ValueError`` for anything else."""
    try:
        value = json.loads(text)
        packed = base64.b64decode(value["state"], validate=True)
        internal = struct.unpack(f"<{len(packed) // 4}I", packed)
        return (int(value["version"]), internal, value.get("gauss"))
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise ValueError(f"not a recorded random state: {exc}") from None


@dataclass
class ReplayPins:
    """What a replay pins for one run of an instrumented graph (set by replay/_graph.py)."""

    ids: list[str] = field(default_factory=list)
    random_state: str = ""
    clock_start: float | None = None
    seed: str = ""
    id_source: IdSource | None = None  # the run's, once started


class _UrandomIds(PinnableIdGenerator):
    """Trace and span ids from the OS, never from the global ``random``: the graph's own draws
    must not depend on how many spans were started (and a replay, which pins ``random``, must
    not mint the original's trace id)."""

    def generate_span_id(self) -> int:
        return secrets.randbits(64) or 1

    def generate_trace_id(self) -> int:
        from runner.tracing import _PINNED_TRACE_ID

        pinned = _PINNED_TRACE_ID.get()
        return pinned if pinned is not None else (secrets.randbits(128) or 1)


# A replay's stand-in for MCP ``call_tool`` (replay/_graph.py): (name, arguments, step_index,
# live call) -> result.
McpSeam = Callable[[str, dict[str, Any], int, Callable[[], Awaitable[Any]]], Awaitable[Any]]
MCP_SEAM: contextvars.ContextVar[McpSeam | None] = contextvars.ContextVar(
    "retrace_mcp_seam", default=None
)


class RetraceCallbackHandler(BaseCallbackHandler):
    """Turns LangChain chat-model and tool callbacks into ``chat`` / ``execute_tool`` spans
    under one run's root span."""

    run_inline = True  # keep callbacks in order with the graph's own steps

    def __init__(self, tracer: RunTracer) -> None:
        self.tracer = tracer
        self.step = 0
        self.step_of: dict[UUID, int] = {}  # LangChain run id -> step index (replay seams)
        self._spans: dict[UUID, Span] = {}
        self._lock = threading.Lock()

    def _next_step(self) -> int:
        with self._lock:
            step, self.step = self.step, self.step + 1
            return step

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        params = dict(kwargs.get("invocation_params") or {})
        tools = params.pop("tools", None)
        model = str(
            params.get("model")
            or params.get("model_name")
            or (metadata or {}).get("ls_model_name")
            or serialized.get("name")
            or "chat-model"
        )
        step = self._next_step()
        self.step_of[run_id] = step
        span = self.tracer.start_chat(
            messages[0] if messages else [],
            [],
            step_index=step,
            parameters={k: v for k, v in params.items() if _plain(v)},
            model_name=model,
        )
        provider = (metadata or {}).get("ls_provider")
        if provider:
            span.set_attribute(A.GEN_AI_PROVIDER_NAME, str(provider))
        if tools:
            span.set_attribute(A.GEN_AI_TOOL_DEFINITIONS, json.dumps(tools, default=str))
        self._spans[run_id] = span

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        generation = response.generations[0][0] if response.generations else None
        if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage):
            self.tracer.record_chat(span, generation.message)
        self.tracer.end_child(span)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            self.tracer.end_child(span, error)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(serialized.get("name") or kwargs.get("name") or "tool")
        step = self._next_step()
        self.step_of[run_id] = step
        span = self.tracer.start_tool(
            name,
            call_id=tool_call_id or str(run_id),
            arguments=inputs if inputs is not None else input_str,
            step_index=step,
        )
        self._spans[run_id] = span

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if isinstance(output, ToolMessage):
            content = output.content if isinstance(output.content, str) else output.text
            result = ToolResult(content, is_error=output.status == "error")
        else:
            result = ToolResult(
                output if isinstance(output, str) else json.dumps(output, default=str)
            )
        self.tracer.record_tool_result(span, result)
        self.tracer.end_child(span)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            self.tracer.record_tool_result(
                span, ToolResult(f"{type(error).__name__}: {error}", is_error=True)
            )
            self.tracer.end_child(span, error)


@dataclass
class _Run:
    tracer: RunTracer
    ids: IdSource
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]


class InstrumentedGraph:
    """A compiled graph whose runs are traced. Everything else is delegated to the graph."""

    def __init__(
        self,
        graph: Any,
        provider: TracerProvider,
        agent_name: str,
        owns: bool,
        *,
        graph_ref: str | None = None,
        root_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.graph = graph
        self.provider = provider
        self.agent_name = agent_name
        self.graph_ref = graph_ref
        self._owns_provider = owns
        self._root_attributes = dict(root_attributes or {})
        self.last_trace_id = ""
        self.replay_pins: ReplayPins | None = None  # set by a replay (replay/_graph.py)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)

    def _start(
        self, method: str, payload: Any, config: Mapping[str, Any] | None, kwargs: dict[str, Any]
    ) -> tuple[_Run, dict[str, Any]]:
        tracer = RunTracer(
            self.provider, agent_name=self.agent_name, provider_name="", model_name=""
        )
        run_id = _ORIGINAL_UUID4().hex  # the run's own id is not one of the graph's draws
        pins = self.replay_pins
        tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
        if pins is not None:  # a replay: the recorded values, from the start of the run
            if pins.random_state:
                with contextlib.suppress(ValueError):
                    random.setstate(decode_random_state(pins.random_state))
            ids = IdSource(pins.ids, seed=pins.seed)
            pins.id_source = ids
            if pins.clock_start is not None:
                _install_pins(clock=True)
                tokens.append(
                    (_CLOCK_OFFSET, _CLOCK_OFFSET.set(pins.clock_start - _ORIGINAL_TIME()))
                )
        else:
            ids = IdSource()
        random_state = encode_random_state(random.getstate())
        clock_start = time.time()
        attributes: dict[str, Any] = {
            A.RETRACE_RUN_ID: run_id,
            A.RETRACE_RUN_INPUT: _text_of(payload),
            A.RETRACE_GRAPH_METHOD: method,
            A.RETRACE_GRAPH_INPUT: _dumpd_json(payload),
            A.RETRACE_GRAPH_CONFIG: _config_json(config),
            A.RETRACE_RANDOM_STATE: random_state,
            A.RETRACE_CLOCK_VALUES: json.dumps([clock_start]),
        }
        if self.graph_ref:
            attributes[A.RETRACE_GRAPH_REF] = self.graph_ref
        plain_kwargs = _kwargs_json(kwargs)
        if plain_kwargs:
            attributes[A.RETRACE_GRAPH_KWARGS] = plain_kwargs
        attributes.update(self._root_attributes)
        self.last_trace_id, _ = tracer.start_root(attributes)
        handler = RetraceCallbackHandler(tracer)
        tokens.append((_CURRENT_RUN, _CURRENT_RUN.set(handler)))  # for trace_mcp_session
        tokens.append((_IDS, _IDS.set(ids)))
        config = dict(config or {})
        callbacks = config.get("callbacks") or []
        if not isinstance(callbacks, list):  # a CallbackManager: add our handler to it
            callbacks.add_handler(handler, inherit=True)
        else:
            config["callbacks"] = [*callbacks, handler]
        return _Run(tracer, ids, tokens), config

    def _finish(self, run: _Run, output: Any, error: BaseException | None) -> None:
        for var, token in reversed(run.tokens):
            with contextlib.suppress(
                ValueError, AttributeError
            ):  # another context: nothing to undo
                var.reset(token)
        tracer = run.tracer
        pinned = {A.RETRACE_IDS: json.dumps(run.ids.drawn)}
        if error is None:
            tracer.finish_root(RunStatus.COMPLETED, answer=_text_of(output), attributes=pinned)
        elif isinstance(error, Exception):
            tracer.finish_root(RunStatus.FAILED, error=error, attributes=pinned)
        else:
            tracer.finish_root(RunStatus.INCOMPLETE, attributes=pinned)
        tracer.flush()

    def invoke(self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        run, config = self._start("invoke", payload, config, kwargs)
        try:
            output = self.graph.invoke(payload, config, **kwargs)
        except BaseException as exc:
            self._finish(run, None, exc)
            raise
        self._finish(run, output, None)
        return output

    async def ainvoke(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        run, config = self._start("ainvoke", payload, config, kwargs)
        try:
            output = await self.graph.ainvoke(payload, config, **kwargs)
        except BaseException as exc:
            self._finish(run, None, exc)
            raise
        self._finish(run, output, None)
        return output

    def stream(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        run, config = self._start("stream", payload, config, kwargs)
        last: Any = None
        try:
            for chunk in self.graph.stream(payload, config, **kwargs):
                last = chunk
                yield chunk
        except BaseException as exc:
            self._finish(run, None, exc)
            raise
        self._finish(run, last, None)

    async def astream(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        run, config = self._start("astream", payload, config, kwargs)
        last: Any = None
        try:
            async for chunk in self.graph.astream(payload, config, **kwargs):
                last = chunk
                yield chunk
        except BaseException as exc:
            self._finish(run, None, exc)
            raise
        self._finish(run, last, None)

    def shutdown(self) -> None:
        """Flush and stop the exporter (only when ``instrument`` created it)."""
        self.provider.force_flush()
        if self._owns_provider:
            self.provider.shutdown()


def instrument(
    graph: Any,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    agent_name: str = "agent",
    project: str = "default",
    span_exporter: SpanExporter | None = None,
    graph_ref: str | None = None,
    root_attributes: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> InstrumentedGraph:
    """Wrap a compiled LangGraph graph so each run emits Retrace's agent spans.

    Spans go to the collector at ``endpoint`` (OTLP/HTTP) or to ``span_exporter``. The wrapper
    behaves like the graph (``invoke``, ``ainvoke``, ``stream``, ``astream``; other attributes
    pass through); ``last_trace_id`` names the trace of the latest run.

    ``graph_ref`` (``"package.module:attr"``, importable from the project's directory) is what
    ``retrace replay TRACE`` re-drives without ``--graph``. ``root_attributes`` are added to
    every run's root span (a replay's ``retrace.replay_of``...). ``session_id``, ``user_id`` and
    ``metadata`` name every run's session (conversation), end user and metadata (recorded on the
    root span, see ``runner.tracing.session_attributes``); the collector files the runs under
    them (``GET /api/v1/sessions``, ``?user_id=`` on trace lists).
    """
    if isinstance(graph, InstrumentedGraph):
        graph = graph.graph
    _install_pins()
    provider = build_tracer_provider(
        endpoint=endpoint, api_key=api_key, project=project, exporter=span_exporter
    )
    provider.id_generator = _UrandomIds()
    return InstrumentedGraph(
        graph,
        provider,
        agent_name,
        owns=span_exporter is None,
        graph_ref=graph_ref,
        root_attributes={
            **session_attributes(session_id, user_id, metadata),
            **(root_attributes or {}),
        },
    )


def trace_mcp_session(session: Any, *, server: str) -> Any:
    """Wrap an MCP ``Client``/``ClientSession`` so its ``call_tool`` calls made while an
    instrumented graph runs become ``execute_tool`` spans of that run, naming the ``server``.
    Outside a run the calls pass through untraced."""
    return _TracedSession(session, server)


class _TracedSession:
    def __init__(self, session: Any, server: str) -> None:
        self._session = session
        self._server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        run = _CURRENT_RUN.get()
        if run is None:
            return await self._session.call_tool(name, arguments, *args, **kwargs)
        tracer = run.tracer
        step = run._next_step()
        span = tracer.start_tool(
            name,
            call_id=_ORIGINAL_UUID4().hex,
            arguments=arguments or {},
            step_index=step,
            server=self._server,
        )
        seam = MCP_SEAM.get()
        try:
            if seam is None:
                result = await self._session.call_tool(name, arguments, *args, **kwargs)
            else:
                result = await seam(
                    name,
                    dict(arguments or {}),
                    step,
                    lambda: self._session.call_tool(name, arguments, *args, **kwargs),
                )
        except BaseException as exc:
            tracer.end_child(span, exc)
            raise
        texts = [getattr(block, "text", "") for block in getattr(result, "content", [])]
        is_error = bool(getattr(result, "is_error", False))
        tracer.record_tool_result(span, ToolResult("\n".join(texts), is_error=is_error))
        tracer.end_child(span)
        return result


def _dumpd_json(value: Any) -> str:
    """The graph's input as ``langchain_core.load.dumpd`` gives it, as JSON."""
    from langchain_core.load import dumpd

    try:
        return json.dumps(dumpd(value), default=str, sort_keys=True)
    except (TypeError, ValueError):
        return json.dumps(value, default=str, sort_keys=True)


def _config_json(config: Mapping[str, Any] | None) -> str:
    """The run config without callbacks (they are this process's objects), as JSON."""
    plain = {k: v for k, v in (config or {}).items() if k not in ("callbacks", "run_id")}
    return json.dumps(plain, default=str, sort_keys=True)


def _kwargs_json(kwargs: Mapping[str, Any]) -> str:
    """The JSON-able keyword arguments of the call (``stream_mode``...), or ""."""
    plain = {}
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        plain[key] = value
    return json.dumps(plain, sort_keys=True) if plain else ""


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _text_of(value: Any) -> str:
    """A readable input/output for the root span: the last message's text, else JSON."""
    messages = value.get("messages") if isinstance(value, dict) else None
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, BaseMessage):
            return last.text if isinstance(last.content, list) else str(last.content)
        if isinstance(last, tuple | list) and len(last) == 2:
            return str(last[1])
        if isinstance(last, dict):
            return str(last.get("content", ""))
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)

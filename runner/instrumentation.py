"""``instrument(graph)``: trace a user's own compiled LangGraph graph like Retrace's agent.

One call wraps an existing graph; each ``invoke``/``ainvoke``/``stream``/``astream`` becomes an
``invoke_agent`` root span, every chat-model call inside it a ``chat`` span and every LangChain
tool call an ``execute_tool`` span (a LangChain callback handler sees both, whatever the graph's
shape). ``trace_mcp_session`` does the same for direct ``call_tool`` calls on an MCP session
made by the graph's nodes.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Span

from runner.seams import ToolResult
from runner.tracing import RunTracer, build_tracer_provider
from schemas import attributes as A
from schemas.models import RunStatus

_CURRENT_RUN: contextvars.ContextVar[RetraceCallbackHandler | None] = contextvars.ContextVar(
    "retrace_instrumented_run", default=None
)


class RetraceCallbackHandler(BaseCallbackHandler):
    """Turns LangChain chat-model and tool callbacks into ``chat`` / ``execute_tool`` spans
    under one run's root span."""

    run_inline = True  # keep callbacks in order with the graph's own steps

    def __init__(self, tracer: RunTracer) -> None:
        self.tracer = tracer
        self.step = 0
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
        span = self.tracer.start_chat(
            messages[0] if messages else [],
            [],
            step_index=self._next_step(),
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
        span = self.tracer.start_tool(
            name,
            call_id=tool_call_id or str(run_id),
            arguments=inputs if inputs is not None else input_str,
            step_index=self._next_step(),
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


class InstrumentedGraph:
    """A compiled graph whose runs are traced. Everything else is delegated to the graph."""

    def __init__(self, graph: Any, provider: TracerProvider, agent_name: str, owns: bool) -> None:
        self.graph = graph
        self.provider = provider
        self.agent_name = agent_name
        self._owns_provider = owns
        self.last_trace_id = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)

    def _start(
        self, payload: Any, config: dict[str, Any] | None
    ) -> tuple[RunTracer, dict[str, Any]]:
        tracer = RunTracer(
            self.provider, agent_name=self.agent_name, provider_name="", model_name=""
        )
        run_id = uuid.uuid4().hex
        self.last_trace_id, _ = tracer.start_root(
            {
                A.RETRACE_RUN_ID: run_id,
                A.GEN_AI_CONVERSATION_ID: run_id,
                A.RETRACE_RUN_INPUT: _text_of(payload),
            }
        )
        handler = RetraceCallbackHandler(tracer)
        tracer.context_token = _CURRENT_RUN.set(handler)  # for trace_mcp_session in nodes
        config = dict(config or {})
        callbacks = config.get("callbacks") or []
        if not isinstance(callbacks, list):  # a CallbackManager: add our handler to it
            callbacks.add_handler(handler, inherit=True)
        else:
            config["callbacks"] = [*callbacks, handler]
        return tracer, config

    def _finish(self, tracer: RunTracer, output: Any, error: BaseException | None) -> None:
        with contextlib.suppress(ValueError, AttributeError):  # another context: nothing to undo
            _CURRENT_RUN.reset(tracer.context_token)
        if error is None:
            tracer.finish_root(RunStatus.COMPLETED, answer=_text_of(output))
        elif isinstance(error, Exception):
            tracer.finish_root(RunStatus.FAILED, error=error)
        else:
            tracer.finish_root(RunStatus.INCOMPLETE)
        tracer.flush()

    def invoke(self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        tracer, config = self._start(payload, config)
        try:
            output = self.graph.invoke(payload, config, **kwargs)
        except BaseException as exc:
            self._finish(tracer, None, exc)
            raise
        self._finish(tracer, output, None)
        return output

    async def ainvoke(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        tracer, config = self._start(payload, config)
        try:
            output = await self.graph.ainvoke(payload, config, **kwargs)
        except BaseException as exc:
            self._finish(tracer, None, exc)
            raise
        self._finish(tracer, output, None)
        return output

    def stream(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        tracer, config = self._start(payload, config)
        last: Any = None
        try:
            for chunk in self.graph.stream(payload, config, **kwargs):
                last = chunk
                yield chunk
        except BaseException as exc:
            self._finish(tracer, None, exc)
            raise
        self._finish(tracer, last, None)

    async def astream(
        self, payload: Any, config: dict[str, Any] | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        tracer, config = self._start(payload, config)
        last: Any = None
        try:
            async for chunk in self.graph.astream(payload, config, **kwargs):
                last = chunk
                yield chunk
        except BaseException as exc:
            self._finish(tracer, None, exc)
            raise
        self._finish(tracer, last, None)

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
) -> InstrumentedGraph:
    """Wrap a compiled LangGraph graph so each run emits Retrace's agent spans.

    Spans go to the collector at ``endpoint`` (OTLP/HTTP) or to ``span_exporter``. The wrapper
    behaves like the graph (``invoke``, ``ainvoke``, ``stream``, ``astream``; other attributes
    pass through); ``last_trace_id`` names the trace of the latest run.
    """
    provider = build_tracer_provider(
        endpoint=endpoint, api_key=api_key, project=project, exporter=span_exporter
    )
    return InstrumentedGraph(graph, provider, agent_name, owns=span_exporter is None)


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
        span = tracer.start_tool(
            name,
            call_id=uuid.uuid4().hex,
            arguments=arguments or {},
            step_index=run._next_step(),
            server=self._server,
        )
        try:
            result = await self._session.call_tool(name, arguments, *args, **kwargs)
        except BaseException as exc:
            tracer.end_child(span, exc)
            raise
        texts = [getattr(block, "text", "") for block in getattr(result, "content", [])]
        is_error = bool(getattr(result, "is_error", False))
        tracer.record_tool_result(span, ToolResult("\n".join(texts), is_error=is_error))
        tracer.end_child(span)
        return result


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

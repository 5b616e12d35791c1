"""Replay a user's own LangGraph graph: re-drive the *current* code behind recorded seams.

A trace recorded by ``runner.instrumentation.instrument(graph, graph_ref=...)`` carries the
graph's input, config and call method on its root span. :func:`replay_graph` imports the graph
(``module:attr``, like uvicorn's app string: importable from the current directory; a compiled
graph, an ``InstrumentedGraph`` or a zero-argument factory returning one), runs it again with
the same input, and substitutes the outside world VCR-style *at LangChain's own interfaces*, so
whatever chat-model class and tools the graph uses:

* ``BaseChatModel._generate_with_cache`` / ``_agenerate_with_cache``: the Nth chat call gets the
  recording's Nth answer (its request is compared with the recorded one: ``mismatches``), or in
  live-model the graph's own model / the ``--model`` one answers; ``_should_stream`` is false
  during a replay, so ``stream``/``astream`` on a model go through the same path;
* ``BaseTool.run`` / ``arun``: the recorded result of the same tool with the same arguments
  (position-aware: the first unused one) is what the concrete tool class's ``_run``/``_arun``
  returns (a class-level patch that only acts for the call it was armed for, so parallel
  ``ToolNode`` calls do not race); a recorded error is raised again;
* ``trace_mcp_session`` calls (``runner.instrumentation.MCP_SEAM``).

The patches are installed for the duration of a replay and only act inside it (context
variables). LangChain's callbacks still fire, so the run is traced by ``instrument`` into a
``CaptureExporter`` and compared with the recording by the same ``build_report`` as the runner's
replays. A diverging replay is run once more: when the two replays differ from each other at or
before the divergence, the report says the divergence comes from non-determinism.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import functools
import importlib
import json
import os
import random
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, ToolException

from replay._capture import CaptureExporter, detail_from_spans
from replay._diff import (
    DEFAULT_CONFIG,
    DiffConfig,
    MessageMemo,
    canonical_tool,
    json_diff,
    normalize,
)
from replay._recorded import (
    OnUnmatched,
    RequestMismatch,
    UnanswerableRequest,
    _ai_message,
    no_recorded_answer,
    tool_definitions_diff,
)
from replay._report import Unanswered, build_report
from replay._trajectory import require_for_mode, step_label, trajectory_from_detail
from runner.instrumentation import (
    _CURRENT_RUN,
    MCP_SEAM,
    InstrumentedGraph,
    ReplayPins,
    instrument,
)
from runner.seams import ModelProvider, ToolSpec
from schemas import attributes as A
from schemas.errors import ConfigError, ReplayError
from schemas.models import DivergenceReport, ReplayMode, Step, Trajectory
from schemas.settings import DEFAULT_PROJECT

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from runner.config import AgentConfig

_T = TypeVar("_T")

METHODS = ("invoke", "ainvoke", "stream", "astream")


# --- resolving MODULE:ATTR ------------------------------------------------------------------------


def _is_graph(value: Any) -> bool:
    return isinstance(value, InstrumentedGraph) or all(
        callable(getattr(value, name, None)) for name in ("invoke", "ainvoke", "stream", "astream")
    )


def resolve_graph(ref: str) -> Any:
    """The graph ``module:attr`` names (the current directory importable, like uvicorn's app
    string): a compiled graph, an ``InstrumentedGraph``, or what a zero-argument factory there
    returns. ``ConfigError`` naming what is wrong otherwise."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"--graph must look like 'module:attr' (e.g. 'myapp.graph:graph'), got {ref!r}"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise ConfigError(
                f"--graph {ref}: no module {module_name!r} importable from {cwd}"
            ) from None
        raise ConfigError(f"--graph {ref}: importing {module_name} failed: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(
            f"--graph {ref}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"--graph {ref}: module {module_name} has no attribute {attr!r}")
        value = getattr(value, part)
    if _is_graph(value):
        return value
    if hasattr(value, "compile") and hasattr(value, "add_node"):
        raise ConfigError(
            f"--graph {ref}: {attr} is an uncompiled StateGraph; name the compiled graph"
        )
    if callable(value):
        try:
            built = value()
        except TypeError as exc:
            raise ConfigError(
                f"--graph {ref}: {attr} is neither a compiled graph nor a zero-argument factory "
                f"({exc})"
            ) from None
        if _is_graph(built):
            return built
        value = built
    raise ConfigError(
        f"--graph {ref}: {attr} is a {type(value).__name__}, not a compiled LangGraph graph"
    )


# --- the replay session: what the seams answer ----------------------------------------------------


@dataclass
class _Session:
    trajectory: Trajectory
    mode: ReplayMode
    from_step: int
    on_unmatched: OnUnmatched
    config: DiffConfig
    substitute: ModelProvider | None = None
    calls: int = 0
    served_tools: int = 0
    executed_live: int = 0
    mismatches: list[RequestMismatch] = field(default_factory=list)
    unanswered: list[Unanswered] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.llm_steps = [s for s in self.trajectory.steps if s.kind == "llm"]
        self.tool_steps = [s for s in self.trajectory.steps if s.kind == "tool"]
        self._args = [normalize(s.arguments, self.config) for s in self.tool_steps]
        self._used: set[int] = set()
        self.memo = MessageMemo(self.config)  # the history repeats in every request

    def live_phase(self, step: int) -> bool:
        return step < 0 or step >= self.from_step

    def model_live(self, step: int) -> bool:
        return self.mode is ReplayMode.LIVE_MODEL and self.live_phase(step)

    def next_call(self) -> int:
        with self._lock:
            number, self.calls = self.calls, self.calls + 1
            return number

    def _stop(self, unanswered: Unanswered) -> UnanswerableRequest:
        with self._lock:
            self.unanswered.append(unanswered)
        return UnanswerableRequest(unanswered)

    # model ---------------------------------------------------------------------------------------
    def serve_model(
        self, number: int, messages: list[BaseMessage], tools: Any, step_index: int
    ) -> AIMessage:
        if number >= len(self.llm_steps) or self.llm_steps[number].output_message is None:
            raise self._stop(no_recorded_answer(step_index, number, len(self.llm_steps)))
        step = self.llm_steps[number]
        diff = self.memo.diff_request(step, [message_to_dict(m) for m in messages])
        if step.tool_definitions or tools:
            asked = (canonical_tool(t) for t in _plain(tools or []) if isinstance(t, dict))
            diff += tool_definitions_diff(step, asked, self.config)
        if diff:
            with self._lock:
                self.mismatches.append(
                    RequestMismatch(
                        call_number=number,
                        step_index=step_index,
                        recorded_index=step.index,
                        diff=tuple(diff),
                    )
                )
        assert step.output_message is not None
        return _ai_message(step.output_message)

    async def ask_substitute(
        self, messages: list[BaseMessage], kwargs: dict[str, Any], step_index: int
    ) -> AIMessage:
        assert self.substitute is not None
        specs = []
        for definition in _plain(kwargs.get("tools") or []):
            if isinstance(definition, dict):
                tool = canonical_tool(definition)
                params = tool["parameters"] if isinstance(tool["parameters"], dict) else {}
                specs.append(ToolSpec(tool["name"], tool["description"], params))
        token = _PASS.set(True)  # the substitute's own LangChain calls are not replayed
        try:
            return await self.substitute.ainvoke(
                list(messages), specs, step_index=step_index, parameters={}
            )
        finally:
            _PASS.reset(token)

    # tools ---------------------------------------------------------------------------------------
    def tool_answer(self, name: str, arguments: dict[str, Any], step_index: int) -> Step | None:
        """The recorded step whose result to serve, or None to run the tool live; raises
        ``UnanswerableRequest`` when the recording has no answer and live is not allowed."""
        wanted = normalize(arguments, self.config)
        live_phase = self.live_phase(step_index)
        with self._lock:
            found = next(
                (
                    i
                    for i, s in enumerate(self.tool_steps)
                    if i not in self._used and s.tool_name == name and self._args[i] == wanted
                ),
                None,
            )
            if found is not None:
                self._used.add(found)
            expected = next((s for i, s in enumerate(self.tool_steps) if i not in self._used), None)
        if self.mode is ReplayMode.LIVE_TOOLS and live_phase:
            self.executed_live += 1
            return None
        if found is not None:
            self.served_tools += 1
            return self.tool_steps[found]
        if self.mode is ReplayMode.LIVE_MODEL and live_phase and self.on_unmatched == "live":
            self.executed_live += 1
            return None
        diff = []
        if expected is not None:
            diff = json_diff(
                {"tool_name": expected.tool_name, "arguments": expected.arguments},
                {"tool_name": name, "arguments": arguments},
                self.config,
            )
        raise self._stop(
            Unanswered(
                replayed_index=step_index,
                step_kind="tool",
                recorded_index=expected.index if expected is not None else None,
                summary=(
                    f"replay step {step_index}: call {name}({_short(arguments)}) has no "
                    "recorded counterpart"
                    + (f" (next recorded: {step_label(expected)})" if expected else "")
                ),
                diff=tuple(diff),
            )
        )


_SESSION: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "retrace_graph_replay", default=None
)
_PASS: contextvars.ContextVar[bool] = contextvars.ContextVar("retrace_graph_pass", default=False)


@dataclass
class _ToolCall:
    tool: BaseTool
    name: str
    arguments: dict[str, Any]
    run_id: UUID
    direct: bool  # called with plain input (not a model's tool call): the raw value returns
    decided: bool = False
    recorded: Step | None = None  # decided and None: live


_CALL: contextvars.ContextVar[_ToolCall | None] = contextvars.ContextVar(
    "retrace_graph_tool_call", default=None
)


def _short(arguments: Any, limit: int = 80) -> str:
    text = json.dumps(arguments, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data (what a span attribute holds)."""
    try:
        return json.loads(json.dumps(value, default=str, sort_keys=True))
    except (TypeError, ValueError):
        return str(value)


def _step_of(run_id: UUID | None) -> int:
    """The step index the instrumented run gave the LangChain run ``run_id`` (-1 unknown)."""
    handler = _CURRENT_RUN.get()
    if handler is None:
        return -1
    if run_id is not None and run_id in handler.step_of:
        return handler.step_of[run_id]
    return handler.step - 1


def _tool_arguments(tool: BaseTool, tool_input: Any) -> dict[str, Any]:
    """The arguments as the recording saw them (``instrument``'s ``on_tool_start``)."""
    if isinstance(tool_input, dict):
        value = _plain(tool._filter_injected_args(tool_input))
        return value if isinstance(value, dict) else {"input": value}
    try:
        parsed = json.loads(str(tool_input))
    except ValueError:
        return {"input": str(tool_input)}
    return dict(parsed) if isinstance(parsed, dict) else {"input": parsed}


def _content(step: Step) -> str:
    if isinstance(step.result, str):
        return step.result
    if step.result is None:
        return step.error or ""
    return json.dumps(step.result, default=str)


def _rebuilt_error(text: str) -> Exception:
    """The recorded ``"Type: message"`` as an exception of that name (a builtin one when it is),
    so the graph's error handling formats it as it did."""
    name, sep, message = text.partition(": ")
    if not sep or not name.isidentifier():
        return ToolException(text)
    known = getattr(builtins, name, None)
    if isinstance(known, type) and issubclass(known, Exception):
        error: Exception = known(message)
        return error
    made: type[Exception] = type(name, (Exception,), {})
    return made(message)


def _served_tool(tool: BaseTool, call: _ToolCall, step: Step) -> Any:
    content = _content(step)
    if step.error is not None:
        if tool.handle_tool_error:
            raise ToolException(content)
        raise _rebuilt_error(content or step.error)
    value: Any = content
    if call.direct:  # the node gets the tool's raw value back, as it did (JSON when it was)
        with contextlib.suppress(ValueError):
            parsed = json.loads(content)
            if not isinstance(parsed, str):
                value = parsed
    if tool.response_format == "content_and_artifact":
        return (value, None)  # the artifact is not recorded
    return value


def _decide(call: _ToolCall) -> Step | None:
    if not call.decided:
        session = _SESSION.get()
        call.decided = True
        call.recorded = (
            None
            if session is None
            else session.tool_answer(call.name, call.arguments, _step_of(call.run_id))
        )
    return call.recorded


# --- the patches ----------------------------------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}
_PATCH_LOCK = threading.RLock()
_USERS = 0
_TOOL_PATCHES: list[tuple[type, str, Any]] = []  # (class, attribute, its own value or _ABSENT)
_ABSENT = object()


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from sync code (in a thread of its own inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


def _generate_with_cache(
    self: BaseChatModel,
    messages: list[BaseMessage],
    stop: list[str] | None = None,
    run_manager: Any = None,
    **kwargs: Any,
) -> ChatResult:
    session = _SESSION.get()
    original = _ORIGINAL["_generate_with_cache"]
    if session is None or _PASS.get():
        return original(self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
    step = _step_of(getattr(run_manager, "run_id", None))
    number = session.next_call()
    if session.model_live(step):
        if session.substitute is None:
            return original(self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
        return _result(_run_coro(session.ask_substitute(messages, kwargs, step)))
    return _result(session.serve_model(number, messages, kwargs.get("tools"), step))


async def _agenerate_with_cache(
    self: BaseChatModel,
    messages: list[BaseMessage],
    stop: list[str] | None = None,
    run_manager: Any = None,
    **kwargs: Any,
) -> ChatResult:
    session = _SESSION.get()
    original = _ORIGINAL["_agenerate_with_cache"]
    if session is None or _PASS.get():
        return await original(self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
    step = _step_of(getattr(run_manager, "run_id", None))
    number = session.next_call()
    if session.model_live(step):
        if session.substitute is None:
            return await original(self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
        return _result(await session.ask_substitute(messages, kwargs, step))
    return _result(session.serve_model(number, messages, kwargs.get("tools"), step))


def _should_stream(self: BaseChatModel, *, async_api: bool, **kwargs: Any) -> bool:
    if _SESSION.get() is not None and not _PASS.get():
        return False  # stream()/astream() fall back to invoke: through the replayed seam
    return bool(_ORIGINAL["_should_stream"](self, async_api=async_api, **kwargs))


def _arm(tool: BaseTool, tool_input: Any, kwargs: dict[str, Any]) -> _ToolCall:
    _patch_tool_class(type(tool))
    run_id = kwargs.get("run_id")
    if not isinstance(run_id, UUID):
        run_id = UUID(bytes=os.urandom(16), version=4)  # not uuid4(): that one is pinned
        kwargs["run_id"] = run_id
    return _ToolCall(
        tool=tool,
        name=tool.name,
        arguments=_tool_arguments(tool, tool_input),
        run_id=run_id,
        direct=kwargs.get("tool_call_id") is None,
    )


def _tool_run(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
    original = _ORIGINAL["run"]
    if _SESSION.get() is None or _PASS.get():
        return original(self, tool_input, *args, **kwargs)
    token = _CALL.set(_arm(self, tool_input, kwargs))
    try:
        return original(self, tool_input, *args, **kwargs)
    finally:
        _CALL.reset(token)


async def _tool_arun(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
    original = _ORIGINAL["arun"]
    if _SESSION.get() is None or _PASS.get():
        return await original(self, tool_input, *args, **kwargs)
    token = _CALL.set(_arm(self, tool_input, kwargs))
    try:
        return await original(self, tool_input, *args, **kwargs)
    finally:
        _CALL.reset(token)


def _sync_body(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _run(self: BaseTool, *args: Any, **kwargs: Any) -> Any:
        call = _CALL.get()
        if call is None or call.tool is not self:
            return original(self, *args, **kwargs)
        recorded = _decide(call)
        if recorded is None:
            return original(self, *args, **kwargs)
        return _served_tool(self, call, recorded)

    return _run


def _async_body(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def _arun(self: BaseTool, *args: Any, **kwargs: Any) -> Any:
        call = _CALL.get()
        if call is None or call.tool is not self:
            return await original(self, *args, **kwargs)
        recorded = _decide(call)
        if recorded is None:
            return await original(self, *args, **kwargs)
        return _served_tool(self, call, recorded)

    return _arun


def _patch_tool_class(cls: type) -> None:
    """Patch ``cls._run`` (and its own ``_arun``) once per replay; undone by :func:`_unpatch`."""
    with _PATCH_LOCK:
        if _USERS == 0 or any(c is cls for c, _, _ in _TOOL_PATCHES):
            return
        names = ["_run"]
        if cls._arun is not BaseTool._arun:  # type: ignore[attr-defined]
            names.append("_arun")
        for name in names:
            original = getattr(cls, name)
            _TOOL_PATCHES.append((cls, name, cls.__dict__.get(name, _ABSENT)))
            body = _sync_body(original) if name == "_run" else _async_body(original)
            setattr(cls, name, body)


def _install() -> None:
    _ORIGINAL["_generate_with_cache"] = BaseChatModel._generate_with_cache
    _ORIGINAL["_agenerate_with_cache"] = BaseChatModel._agenerate_with_cache
    _ORIGINAL["_should_stream"] = BaseChatModel._should_stream
    _ORIGINAL["run"] = BaseTool.run
    _ORIGINAL["arun"] = BaseTool.arun
    BaseChatModel._generate_with_cache = _generate_with_cache  # type: ignore[method-assign]
    BaseChatModel._agenerate_with_cache = _agenerate_with_cache  # type: ignore[method-assign]
    BaseChatModel._should_stream = _should_stream  # type: ignore[method-assign]
    BaseTool.run = _tool_run  # type: ignore[method-assign]
    BaseTool.arun = _tool_arun  # type: ignore[method-assign]


def _unpatch() -> None:
    BaseChatModel._generate_with_cache = _ORIGINAL["_generate_with_cache"]  # type: ignore[method-assign]
    BaseChatModel._agenerate_with_cache = _ORIGINAL["_agenerate_with_cache"]  # type: ignore[method-assign]
    BaseChatModel._should_stream = _ORIGINAL["_should_stream"]  # type: ignore[method-assign]
    BaseTool.run = _ORIGINAL["run"]  # type: ignore[method-assign]
    BaseTool.arun = _ORIGINAL["arun"]  # type: ignore[method-assign]
    for cls, name, own in reversed(_TOOL_PATCHES):
        if own is _ABSENT:
            delattr(cls, name)
        else:
            setattr(cls, name, own)
    _TOOL_PATCHES.clear()


@contextlib.contextmanager
def _patched() -> Iterator[None]:
    """LangChain's seams patched while any replay of this process runs."""
    global _USERS
    with _PATCH_LOCK:
        if _USERS == 0:
            _install()
        _USERS += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _USERS -= 1
            if _USERS == 0:
                _unpatch()


async def _mcp_seam(
    name: str, arguments: dict[str, Any], step_index: int, live: Callable[[], Awaitable[Any]]
) -> Any:
    session = _SESSION.get()
    if session is None or _PASS.get():
        return await live()
    recorded = session.tool_answer(name, _plain(arguments), step_index)
    if recorded is None:
        return await live()
    from mcp.types import CallToolResult, TextContent

    return CallToolResult(
        content=[TextContent(type="text", text=_content(recorded))],
        is_error=recorded.error is not None,
    )


# --- one run --------------------------------------------------------------------------------------


@dataclass
class _Run:
    spans: list[ReadableSpan]
    session: _Session
    status: str
    error: str = ""


def _revive(trajectory: Trajectory) -> Any:
    """The recorded input as the graph got it (LangChain messages revived, nothing else)."""
    from langchain_core.load import load

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # load() is "beta"
            return load(trajectory.graph_input, allowed_objects="messages")
    except Exception as exc:  # a malformed recording: say so, do not crash
        raise ReplayError(
            f"trace {trajectory.trace_id}: the recorded graph input cannot be revived: {exc}"
        ) from None


def _fresh_checkpointer(graph: Any) -> Any:
    """The graph with an empty in-memory checkpointer instead of its own (a replay must not
    continue, nor write to, the user's threads)."""
    saver = getattr(graph, "checkpointer", None)
    if saver is None or isinstance(saver, bool) or not hasattr(graph, "copy"):
        return graph
    from langgraph.checkpoint.memory import InMemorySaver

    return graph.copy(update={"checkpointer": InMemorySaver()})


async def _drive(
    wrapped: InstrumentedGraph, method: str, payload: Any, config: Any, kwargs: Any
) -> None:
    if method == "ainvoke":
        await wrapped.ainvoke(payload, config, **kwargs)
    elif method == "astream":
        async for _ in wrapped.astream(payload, config, **kwargs):
            pass
    elif method == "stream":
        await asyncio.to_thread(lambda: list(wrapped.stream(payload, config, **kwargs)))
    else:  # a sync graph: in a thread (context copied), so sync code may start its own loops
        await asyncio.to_thread(wrapped.invoke, payload, config, **kwargs)


async def _run_once(
    graph: Any,
    ref: str,
    trajectory: Trajectory,
    opts: GraphReplay,
    substitute: ModelProvider | None,
) -> _Run:
    capture = CaptureExporter()
    inner = graph.graph if isinstance(graph, InstrumentedGraph) else graph
    agent_name = (
        graph.agent_name
        if isinstance(graph, InstrumentedGraph)
        else (trajectory.agent_name or "agent")
    )
    wrapped = instrument(
        _fresh_checkpointer(inner),
        span_exporter=capture,
        agent_name=agent_name,
        project=opts.project,
        graph_ref=ref,
        root_attributes={
            A.RETRACE_REPLAY_OF: trajectory.trace_id,
            A.RETRACE_REPLAY_MODE: opts.mode.value,
            A.RETRACE_REPLAY_ID: opts.replay_id,
        },
    )
    wrapped.replay_pins = ReplayPins(
        ids=list(trajectory.ids),
        random_state=trajectory.random_state,
        clock_start=trajectory.clock_values[0] if trajectory.clock_values else None,
        seed=trajectory.trace_id,
    )
    session = _Session(
        trajectory=trajectory,
        mode=opts.mode,
        from_step=max(0, opts.from_step or 0),
        on_unmatched=opts.on_unmatched,
        config=opts.diff_config,
        substitute=substitute,
    )
    payload = _revive(trajectory)
    method = trajectory.graph_method if trajectory.graph_method in METHODS else "invoke"
    run = _Run(spans=[], session=session, status="completed")
    saved_random = random.getstate()
    with _patched():
        tokens = (_SESSION.set(session), MCP_SEAM.set(_mcp_seam))
        try:
            await _drive(
                wrapped,
                method,
                payload,
                dict(trajectory.graph_config),
                dict(trajectory.graph_kwargs),
            )
        except BaseException as exc:
            if session.unanswered:  # UnanswerableRequest, maybe inside a task group's group
                run.status = "incomplete"
            elif isinstance(exc, Exception):  # the graph raised: carried, compared, not raised
                run.status = "failed"
                run.error = f"{type(exc).__name__}: {exc}"
            else:
                raise
        finally:
            MCP_SEAM.reset(tokens[1])
            _SESSION.reset(tokens[0])
            random.setstate(saved_random)
    run.spans = capture.spans
    return run


def _substitute(opts: GraphReplay) -> ModelProvider | None:
    """live-model's ``--model``/``--script`` model, built as the runner builds it (None: the
    graph's own model answers)."""
    if opts.model is None and opts.script is None:
        return None
    if opts.mode is not ReplayMode.LIVE_MODEL:
        raise ConfigError(
            "a model or an offline model script only applies to mode live-model "
            f"(mode {opts.mode.value} serves the recorded model answers)"
        )
    from runner.config import AgentConfig

    model = opts.model or "offline:script"
    provider, _, name = model.partition(":")
    if not provider or not name:
        raise ConfigError(f"--model must look like 'provider:model', got {model!r}")
    config = AgentConfig(model=model)
    if opts.script is not None:
        config.offline_script = str(Path(opts.script).resolve())
    if opts.live_model is not None:
        return opts.live_model(config)
    from runner.providers import offline_model

    return offline_model(config)


def _replayed(run: _Run) -> Trajectory:
    return trajectory_from_detail(detail_from_spans(run.spans))


def _nondeterminism(
    report: DivergenceReport,
    first: Trajectory,
    second: Trajectory,
    from_step: int,
    config: DiffConfig,
) -> str:
    """Where two replays of the same code differ at or before ``report``'s first divergence
    ("" when they agree there)."""
    between = build_report(first, second, report.mode, config=config, from_step=from_step)
    if not between.diverged:
        return ""
    found = report.first_divergence
    other = between.first_divergence
    if other is None:
        if found is None:  # only the final answer differs, in both comparisons
            return "two replays of the same code gave different final answers"
        return ""
    at = found.replayed_index if found is not None else None
    where = other.recorded_index if other.recorded_index is not None else other.replayed_index
    if at is None or where is None or where <= at:
        return f"two replays of the same code differ: [{other.kind.value}] {other.summary}"
    return ""


@dataclass(frozen=True)
class GraphReplay:
    """What :func:`replay_graph` is asked to do (the Replayer's options and collaborators)."""

    mode: ReplayMode = ReplayMode.RECORDED
    graph: str | None = None  # "module:attr"; None: the recorded graph_ref
    from_step: int | None = None
    on_unmatched: OnUnmatched = "live"
    model: str | None = None  # live-model: provider:model instead of the graph's own model
    script: str | None = None  # live-model: an offline model script
    replay_id: str = ""
    project: str = DEFAULT_PROJECT
    diff_config: DiffConfig = DEFAULT_CONFIG
    live_model: Callable[[AgentConfig], ModelProvider] | None = None
    confine_to: Path | None = None  # a replay the collector runs for a client: refused


@dataclass
class GraphResult:
    """One replay of a user's graph: the report and the replay's own spans (to export)."""

    report: DivergenceReport
    replay_trace_id: str
    run_status: str
    error: str = ""
    mismatches: list[RequestMismatch] = field(default_factory=list)
    spans: list[ReadableSpan] = field(default_factory=list)


async def replay_graph(trajectory: Trajectory, opts: GraphReplay) -> GraphResult:
    """Replay ``trajectory`` through the user's graph (``opts.graph``, else the recorded ref).
    Raises ``RetraceError`` for setup problems only; what the graph did is in the result."""
    ref = opts.graph or trajectory.graph_ref
    if opts.confine_to is not None:
        # A replay the collector runs for an API client: the graph ref is client data, and
        # importing it would run a module a client chose on the collector's host.
        raise ConfigError(
            f"trace {trajectory.trace_id} is a run of a user's own graph ({ref or 'no ref'}): "
            "it replays only where its code lives, with `retrace replay TRACE --graph "
            "MODULE:ATTR` run in the project's directory, never through the collector"
        )
    if not ref:
        raise ReplayError(
            f"trace {trajectory.trace_id} names no graph to re-drive: pass --graph MODULE:ATTR"
        )
    require_for_mode(trajectory, opts.mode, graph=True)
    substitute = _substitute(opts)
    graph = resolve_graph(ref)
    from_step = max(0, opts.from_step or 0)
    first = await _run_once(graph, ref, trajectory, opts, substitute)
    replayed = _replayed(first)
    report = build_report(
        trajectory,
        replayed,
        opts.mode,
        unanswered=first.session.unanswered[:1],
        config=opts.diff_config,
        from_step=from_step,
        memo=first.session.memo,
    )
    if report.diverged:  # once more: a code change diverges the same way every time
        second = await _run_once(graph, ref, trajectory, opts, substitute)
        reason = _nondeterminism(report, replayed, _replayed(second), from_step, opts.diff_config)
        if reason:
            report.nondeterministic = True
            report.nondeterminism = reason
    error = ""
    if first.error and trajectory.run_status != "failed":
        error = f"the replayed graph failed: {first.error}"
    return GraphResult(
        report=report,
        replay_trace_id=replayed.trace_id,
        run_status=first.status,
        error=error,
        mismatches=list(first.session.mismatches),
        spans=first.spans,
    )

"""Recorded providers behind the runner's seams: the recording answers instead of the world.

``RecordedModelProvider`` serves the recorded AIMessage for the Nth LLM call (comparing the
request with the recorded one), ``RecordedToolExecutor`` serves recorded tool results where tool
and arguments match (else executes live or stops, as configured), ``RecordedRuntime`` pins the
clock, random draws and ids to the recorded values. A request the recording cannot answer raises
:class:`UnanswerableRequest`, which ends the replay run; the replay engine turns it into an
``UNANSWERABLE`` divergence, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict

from replay._diff import (
    DEFAULT_CONFIG,
    DiffConfig,
    MessageMemo,
    canonical_message,
    canonical_tool,
    json_diff,
    normalize,
)
from replay._report import Unanswered
from replay._trajectory import step_label
from runner.seams import ToolExecutor, ToolResult, ToolSpec
from schemas.models import DiffEntry, Step, Trajectory

OnUnmatched = Literal["live", "stop"]


class UnanswerableRequest(BaseException):
    """The replayed agent asked something the recording cannot answer.

    A ``BaseException`` on purpose, like ``asyncio.CancelledError``: it must end the run rather
    than be turned into a tool error by the agent's own error handling. The replay engine catches
    it and reports it as a divergence.
    """

    def __init__(self, unanswered: Unanswered) -> None:
        super().__init__(unanswered.summary)
        self.unanswered = unanswered


@dataclass(frozen=True)
class RequestMismatch:
    """A model request that differs from the recorded one at the same call (served anyway)."""

    call_number: int
    step_index: int
    recorded_index: int
    diff: tuple[DiffEntry, ...]


def _ai_message(recorded: dict[str, Any]) -> AIMessage:
    """Rebuild the exact AIMessage from its recorded form (LangChain dict form, else any shape
    :func:`canonical_message` understands)."""
    if "type" in recorded and isinstance(recorded.get("data"), dict):
        try:
            (message,) = messages_from_dict([recorded])
        except (ValueError, KeyError, TypeError):
            message = None
        if isinstance(message, AIMessage):
            return message
    canonical = canonical_message(recorded)
    calls = [
        {
            "name": call["name"],
            "args": call["args"] if isinstance(call["args"], dict) else {"input": call["args"]},
            "id": f"call_{i}",
            "type": "tool_call",
        }
        for i, call in enumerate(canonical["tool_calls"])
    ]
    content = canonical["content"]
    return AIMessage(content=content if isinstance(content, str) else "", tool_calls=calls)


def no_recorded_answer(step_index: int, number: int, recorded_calls: int) -> Unanswered:
    """The replay's LLM call #``number + 1`` (at replay step ``step_index``) has no recorded
    answer among the ``recorded_calls`` LLM calls."""
    return Unanswered(
        replayed_index=step_index,
        step_kind="llm",
        summary=(
            f"replay step {step_index}: LLM call #{number + 1}, but the recording "
            f"has only {recorded_calls} LLM call(s) with an answer to serve"
        ),
    )


def tool_definitions_diff(
    step: Step, asked: Iterable[dict[str, Any]], config: DiffConfig
) -> list[DiffEntry]:
    """The tools a replayed request offers against those recorded ``step`` offered, by name."""
    offered = sorted((canonical_tool(t) for t in step.tool_definitions), key=lambda t: t["name"])
    return json_diff(
        offered, sorted(asked, key=lambda t: str(t["name"])), config, "/tool_definitions"
    )


class RecordedModelProvider:
    """A ``ModelProvider`` answering the Nth LLM call with the recording's Nth answer."""

    def __init__(self, trajectory: Trajectory, *, config: DiffConfig = DEFAULT_CONFIG) -> None:
        self.name = trajectory.model or "recorded"
        self._steps = [s for s in trajectory.steps if s.kind == "llm"]
        self._config = config
        self._memo = MessageMemo(config)
        self.calls = 0
        self.mismatches: list[RequestMismatch] = []

    async def ainvoke(
        self,
        messages: list[BaseMessage],
        tools: list[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> AIMessage:
        number = self.calls
        if number >= len(self._steps) or self._steps[number].output_message is None:
            raise UnanswerableRequest(no_recorded_answer(step_index, number, len(self._steps)))
        step = self._steps[number]
        self.calls += 1
        diff = self._memo.diff_request(step, [message_to_dict(m) for m in messages])
        if step.tool_definitions:
            asked = (
                {"name": t.name, "description": t.description, "parameters": t.input_schema}
                for t in tools
            )
            diff += tool_definitions_diff(step, asked, self._config)
        if diff:
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


def _served(step: Step) -> bool:
    """Whether a recorded tool step was really executed (not refused by policy/approval)."""
    if step.policy_decision == "deny":
        return False
    if step.policy_decision == "require_approval":
        return (step.approval or {}).get("status") == "approved"
    return True


def tool_specs_from_trajectory(
    trajectory: Trajectory, *, servers: Collection[str] | None = None
) -> list[ToolSpec]:
    """The tools the recorded agent was offered (first LLM call's definitions, else the tools it
    called). ``servers``: keep only tools of these MCP servers (the current config's)."""
    server_of = {s.tool_name: s.mcp_server for s in trajectory.steps if s.kind == "tool"}
    specs: dict[str, ToolSpec] = {}
    for step in trajectory.steps:
        if step.kind == "llm" and step.tool_definitions:
            for definition in step.tool_definitions:
                tool = canonical_tool(definition)
                params = tool["parameters"] if isinstance(tool["parameters"], dict) else {}
                specs.setdefault(
                    tool["name"],
                    ToolSpec(
                        name=tool["name"],
                        description=tool["description"],
                        input_schema=params,
                        server=server_of.get(tool["name"], ""),
                    ),
                )
            break
    for step in trajectory.steps:
        if step.kind == "tool" and step.tool_name not in specs:
            specs[step.tool_name] = ToolSpec(
                name=step.tool_name, description="", input_schema={}, server=step.mcp_server
            )
    if servers is not None:
        allowed = set(servers)
        specs = {n: s for n, s in specs.items() if not s.server or s.server in allowed}
    return list(specs.values())


@dataclass
class _ToolCursor:
    used: set[int] = field(default_factory=set)


class RecordedToolExecutor:
    """A ``ToolExecutor`` serving recorded results where tool and arguments match.

    Unmatched calls go to ``live`` (when given and ``on_unmatched == "live"``), else raise
    :class:`UnanswerableRequest`. ``always_live`` sends every call from step ``live_from`` on to
    ``live`` (live-tools mode; a matched call before it is served from the recording).
    ``before_live(step)`` is where the replay restores the recorded workspace (the step's
    ``snapshot_before``): with ``always_live`` it runs before every live call with the recorded
    step the call stands for; otherwise before a live call that follows served recorded results
    which changed the recorded workspace (the live workspace never saw those changes), with the
    workspace the recording had after them.
    """

    def __init__(
        self,
        trajectory: Trajectory,
        *,
        tools: list[ToolSpec] | None = None,
        live: ToolExecutor | None = None,
        on_unmatched: OnUnmatched = "stop",
        always_live: bool = False,
        live_from: int = 0,
        before_live: Callable[[Step | None], Awaitable[None]] | None = None,
        config: DiffConfig = DEFAULT_CONFIG,
    ) -> None:
        self._steps = [s for s in trajectory.steps if s.kind == "tool" and _served(s)]
        self._tools = tools if tools is not None else tool_specs_from_trajectory(trajectory)
        self._live = live
        self._on_unmatched: OnUnmatched = on_unmatched
        self._always_live = always_live
        self._live_from = live_from
        self._before_live = before_live
        # The recorded step whose workspace (snapshot after it) the live one lacks: set when a
        # served recorded result changed the workspace, cleared once restored before a live call.
        self._stale: Step | None = None
        self._config = config
        self._args = [normalize(s.arguments, config) for s in self._steps]
        self._cursor = _ToolCursor()
        self.served = 0
        self.executed_live = 0

    async def list_tools(self) -> list[ToolSpec]:
        return list(self._tools)

    def _find(self, name: str, arguments: dict[str, Any]) -> int | None:
        wanted = normalize(arguments, self._config)
        for i, step in enumerate(self._steps):
            if i not in self._cursor.used and step.tool_name == name and self._args[i] == wanted:
                return i
        return None

    def _expected(self) -> Step | None:
        """The recorded call that comes next in order (for the diff of an unmatched call)."""
        for i, step in enumerate(self._steps):
            if i not in self._cursor.used:
                return step
        return None

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        offered = {t.name for t in self._tools}
        if name not in offered:
            raise UnanswerableRequest(
                Unanswered(
                    replayed_index=step_index,
                    step_kind="tool",
                    summary=f"replay step {step_index}: tool {name!r} is not offered any more",
                )
            )
        found = self._find(name, arguments)
        if found is not None:
            self._cursor.used.add(found)
        recorded = self._steps[found] if found is not None else None
        always_live = self._always_live and (step_index >= self._live_from or recorded is None)
        if always_live or (recorded is None and self._on_unmatched == "live"):
            if self._live is None:
                raise UnanswerableRequest(
                    Unanswered(
                        replayed_index=step_index,
                        step_kind="tool",
                        summary=f"replay step {step_index}: no live tool executor for {name!r}",
                    )
                )
            if self._before_live is not None:
                if self._always_live:
                    await self._before_live(recorded if recorded is not None else self._expected())
                elif self._stale is not None:
                    stale = self._stale
                    await self._before_live(
                        stale.model_copy(update={"snapshot_before": stale.snapshot_after})
                    )
            self._stale = None
            self.executed_live += 1
            return await self._live.call(name, arguments, step_index=step_index, call_id=call_id)
        if recorded is None:
            expected = self._expected()
            diff: list[DiffEntry] = []
            if expected is not None:
                diff = json_diff(
                    {"tool_name": expected.tool_name, "arguments": expected.arguments},
                    {"tool_name": name, "arguments": arguments},
                    self._config,
                )
            raise UnanswerableRequest(
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
        self.served += 1
        if recorded.snapshot_after and recorded.snapshot_after != recorded.snapshot_before:
            self._stale = recorded
        return _tool_result(recorded)


def _short(arguments: dict[str, Any], limit: int = 80) -> str:
    text = json.dumps(arguments, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_result(step: Step) -> ToolResult:
    if isinstance(step.result, str):
        content = step.result
    elif step.result is None:
        content = step.error or ""
    else:
        content = json.dumps(step.result, default=str)
    metadata: dict[str, Any] = {}
    if step.snapshot_before:
        metadata["snapshot_before"] = step.snapshot_before
    if step.snapshot_after:
        metadata["snapshot_after"] = step.snapshot_after
    if step.sandbox_backend:
        metadata["sandbox_backend"] = step.sandbox_backend
    if step.exit_code is not None:
        metadata["exit_code"] = step.exit_code
    if step.mcp_server:
        metadata["mcp_server"] = step.mcp_server
    return ToolResult(content=content, is_error=step.error is not None, metadata=metadata)


class RecordedRuntime:
    """A ``Runtime`` handing out the recorded clock values, random draws and ids, in order.

    Past the end of a recording it stays deterministic: the clock stays at its last value, random
    draws continue from a generator seeded by the trace, ids are derived from the trace id.
    """

    def __init__(self, trajectory: Trajectory) -> None:
        self._clock = list(trajectory.clock_values)
        self._random = list(trajectory.random_values)
        self._ids = list(trajectory.ids)
        self._seed = trajectory.trace_id
        self._rng = random.Random(f"{trajectory.trace_id}:{trajectory.seed}")
        self.clock_calls = self.random_calls = self.id_calls = 0
        self.beyond_recording = 0

    def now(self) -> float:
        n, self.clock_calls = self.clock_calls, self.clock_calls + 1
        if n < len(self._clock):
            return self._clock[n]
        self.beyond_recording += 1
        return self._clock[-1] if self._clock else 0.0

    def random(self) -> float:
        n, self.random_calls = self.random_calls, self.random_calls + 1
        if n < len(self._random):
            return self._random[n]
        self.beyond_recording += 1
        return self._rng.random()

    def new_id(self) -> str:
        n, self.id_calls = self.id_calls, self.id_calls + 1
        if n < len(self._ids):
            return self._ids[n]
        self.beyond_recording += 1
        return hashlib.sha256(f"{self._seed}:id:{n}".encode()).hexdigest()[:32]

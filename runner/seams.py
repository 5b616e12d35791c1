"""The seams between the agent's own code and the outside world (the temporalio idea).

Everything the agent may observe goes through one of these: the model, the tools, and the
runtime's clock, randomness and ids. A live run puts live providers behind them and records what
they returned; a replay puts recorded providers behind the *same* graph code. The graph never
knows which one it talks to. Model and tool seams are async: the graph runs on asyncio, like the
MCP client and LangChain's chat models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, BaseMessage


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it (name, description, JSON schema) and where it lives."""

    name: str
    description: str
    input_schema: dict[str, Any]
    server: str = ""


@dataclass
class ToolResult:
    """What a tool call returned to the agent. ``is_error`` results still go back to the model."""

    content: str
    is_error: bool = False
    structured: Any = None
    # Sandbox stats, snapshots, policy decision... recorded on the execute_tool span.
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelProvider(Protocol):
    """Answers one chat turn. Live: a LangChain chat model; offline: a scripted policy;
    recorded: the recording. ``step_index`` is the index of this step in the run."""

    name: str

    async def ainvoke(
        self,
        messages: list[BaseMessage],
        tools: list[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> AIMessage: ...


@runtime_checkable
class ToolExecutor(Protocol):
    """Executes one tool call (after policy). Live: MCP + sandbox; recorded: the recording."""

    async def list_tools(self) -> list[ToolSpec]: ...

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult: ...


@runtime_checkable
class Runtime(Protocol):
    """Clock, randomness and ids. Live: real values, recorded; replay: the recorded values."""

    def now(self) -> float: ...

    def random(self) -> float: ...

    def new_id(self) -> str: ...

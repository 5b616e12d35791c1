"""A small user project (written into a tmp dir by the tests): a LangGraph graph of *its own* —
a chat model class that is not Retrace's and answers from its input, two ``@tool`` tools, a
``ToolNode`` — recorded with ``instrument(graph, endpoint=...)``, and variants of its code
(prompt changed, a tool's result changed, a node added that calls a tool from graph code, a
no-op reformat, an unpinned non-determinism), each a module of the package ``weatherapp``.
"""

from __future__ import annotations

from pathlib import Path

MODEL = '''
"""The project's own chat model: answers from what it is asked, no network."""
from __future__ import annotations

from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool


class WeatherPlanner(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "weather-planner"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        task = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
        system = " ".join(str(m.content) for m in messages if isinstance(m, SystemMessage))
        results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        city = task.rstrip("?").split()[-1]
        if not results:
            calls = [{"name": "weather", "args": {"city": city}, "id": "w", "type": "tool_call"}]
            message = AIMessage("", tool_calls=calls)
        elif len(results) == 1:
            args = {"a": len(city), "b": len(results[0])}
            calls = [{"name": "add", "args": args, "id": "a", "type": "tool_call"}]
            message = AIMessage("", tool_calls=calls)
        else:
            style = "In detail: " if "verbose" in system else ""
            message = AIMessage(f"{style}{city}: {results[0]} (score {results[1]})")
        return ChatResult(generations=[ChatGeneration(message=message)])
'''

GRAPH = '''
"""The project's graph."""
from __future__ import annotations

import random
import secrets
import uuid
from typing import Any

from langchain_core.messages import SystemMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from weatherapp.model import WeatherPlanner

PROMPT = "You are a terse weather assistant."


@tool
ASYNCdef weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny, 21C in {city}"


@tool
ASYNCdef add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


model = WeatherPlanner().bind_tools([weather, add])


ASYNCdef agent(state: MessagesState) -> dict[str, Any]:
    # pinned by the replay: the global random and uuid.uuid4 draws
    ticket = f"ticket {uuid.uuid4().hex[:8]}, shard {random.randint(1, 1000)}"
    msgs = [SystemMessage(f"{PROMPT} ({ticket})"), *state["messages"]]
    return {"messages": [AWAITmodel.INVOKE(msgs)]}

EXTRA_NODE
builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([weather, add]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()
'''

PREFETCH = """
ASYNCdef prefetch(state: MessagesState) -> dict[str, Any]:
    AWAITadd.INVOKE({"a": 40, "b": 2})  # a tool called from graph code
    return {}

"""

RECORD = '''
"""Run a module's graph once, instrumented, into the collector; print the trace id."""
import asyncio
import importlib
import sys

from langchain_core.messages import HumanMessage

from runner.instrumentation import instrument

module, method, endpoint, ref = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
graph = instrument(
    importlib.import_module(module).graph,
    endpoint=endpoint,
    agent_name="weather-agent",
    graph_ref=ref or None,
)
payload = {"messages": [HumanMessage("What is the weather in Paris?")]}
config = {"configurable": {"user": "ada"}, "tags": ["demo"]}
if method == "invoke":
    graph.invoke(payload, config)
elif method == "ainvoke":
    asyncio.run(graph.ainvoke(payload, config))
else:

    async def consume() -> None:
        async for _ in graph.astream(payload, config, stream_mode="values"):
            pass

    asyncio.run(consume())
graph.shutdown()
print(graph.last_trace_id)
'''

VARIANTS = ("base", "reformat", "prompt", "tool", "node", "nondet")


def graph_source(variant: str, *, is_async: bool) -> str:
    """The graph module's code for one variant (sync or async nodes and tools)."""
    text = GRAPH
    if variant == "prompt":
        text = text.replace("You are a terse weather assistant.", "You are a verbose assistant.")
    elif variant == "tool":
        text = text.replace('return f"sunny, 21C in {city}"', 'return f"rain, 12C in {city}"')
    elif variant == "node":
        text = text.replace("EXTRA_NODE", PREFETCH)
        text = text.replace(
            'builder.add_edge(START, "agent")',
            'builder.add_node("prefetch", prefetch)\n'
            'builder.add_edge(START, "prefetch")\n'
            'builder.add_edge("prefetch", "agent")',
        )
    elif variant == "nondet":  # drawn from the OS: nothing a replay pins
        text = text.replace("random.randint(1, 1000)", "secrets.randbelow(1000)")
    elif variant == "reformat":  # same behaviour, other code
        text = (
            text.replace("msgs", "conversation")
            .replace(
                "    # pinned by the replay", "\n    # (reformatted)\n    # pinned by the replay"
            )
            .replace('"messages": [', '"messages": [\n        ')
        )
    text = text.replace("EXTRA_NODE", "")
    if is_async:
        return (
            text.replace("ASYNC", "async ").replace("AWAIT", "await ").replace("INVOKE", "ainvoke")
        )
    return text.replace("ASYNC", "").replace("AWAIT", "").replace("INVOKE", "invoke")


def write_project(root: Path) -> Path:
    """The project under ``root``: ``weatherapp/{model,<variant>,a<variant>}.py`` and
    ``record.py``."""
    package = root / "weatherapp"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(MODEL)
    for variant in VARIANTS:
        (package / f"{variant}.py").write_text(graph_source(variant, is_async=False))
        (package / f"a{variant}.py").write_text(graph_source(variant, is_async=True))
    (root / "record.py").write_text(RECORD)
    return root

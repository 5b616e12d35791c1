"""A user's own LangGraph agent with no Retrace code in it, for traces from other SDKs.

``StateGraph`` over ``MessagesState``: an ``agent`` node running ``prompt | model`` (a system
prompt, then a chat model with the tools bound: a ``RunnableSequence``, so the SDKs nest the
model call in chain spans), a ``ToolNode`` with two ``@tool`` tools, ``tools_condition`` between
them. The chat model is a real ``BaseChatModel`` whose answer depends on its input (no network):
it looks up the capital of the country named in the question, then adds the two numbers in it,
then answers with both tool results. ``graph`` is the compiled graph
(``tests.replay.langgraph_fixture:graph`` for ``retrace replay --graph``); :func:`build_graph`
makes a fresh one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

QUESTION = "What is the capital of France, and what is 2+3?"
UNKNOWN_QUESTION = "What is the capital of Atlantis, and what is 4+4?"
SYSTEM_PROMPT = "Answer with the tools: look capitals up, add numbers with add."
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Peru": "Lima"}


@tool
def lookup_capital(country: str) -> str:
    """The capital city of a country."""
    if country not in CAPITALS:
        raise ValueError(f"no capital known for {country}")
    return CAPITALS[country]


@tool
def add(a: int, b: int) -> int:
    """The sum of two integers."""
    return a + b


TOOLS = [lookup_capital, add]


class CapitalsModel(BaseChatModel):
    """A chat model that plans from its input: capital lookup, then a sum, then the answer."""

    @property
    def _llm_type(self) -> str:
        return "capitals-fake"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        question = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
        results = [m for m in messages if isinstance(m, ToolMessage)]
        country_match = re.search(r"capital of (\w+)", question)
        sum_match = re.search(r"(\d+)\s*\+\s*(\d+)", question)
        country = country_match.group(1) if country_match else "nowhere"
        a, b = (int(sum_match.group(1)), int(sum_match.group(2))) if sum_match else (0, 0)
        turn = len(results)
        if turn == 0:
            call = {"name": "lookup_capital", "args": {"country": country}, "id": "call_1"}
            return AIMessage(content="", tool_calls=[call])
        if turn == 1:
            call = {"name": "add", "args": {"a": a, "b": b}, "id": "call_2"}
            return AIMessage(content=f"Looked up {country}.", tool_calls=[call])
        capital = results[0]
        said = (
            f"I could not find the capital of {country}"
            if capital.status == "error"
            else f"The capital of {country} is {capital.content}"
        )
        return AIMessage(content=f"{said}, and {a}+{b}={results[1].content}.")


def build_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """The agent graph: agent -> (tools -> agent)* -> end."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM_PROMPT), MessagesPlaceholder("messages")]
    )
    model = prompt | CapitalsModel().bind_tools(TOOLS)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke({"messages": state["messages"]})]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(TOOLS, handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


graph = build_graph()

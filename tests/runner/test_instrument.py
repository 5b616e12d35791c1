"""``instrument``: a user's own LangGraph graph (fake chat model + ToolNode) emits Retrace spans."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runner.instrumentation import instrument
from schemas import attributes as A


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def _user_graph(calls: list[dict[str, Any]]) -> Any:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "multiply",
                            "args": {"a": 6, "b": 7},
                            "id": "t1",
                            "type": "tool_call",
                        }
                    ],
                ),
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "explode",
                            "args": {"reason": "nope"},
                            "id": "t2",
                            "type": "tool_call",
                        }
                    ],
                ),
                AIMessage(content="6 times 7 is 42"),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([multiply, explode], handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_user_graph_runs_become_agent_traces(mode: str) -> None:
    exporter = InMemorySpanExporter()
    graph = instrument(_user_graph([]), agent_name="my-agent", span_exporter=exporter)
    payload = {"messages": [HumanMessage("what is 6 times 7?")]}
    out = graph.invoke(payload) if mode == "invoke" else asyncio.run(graph.ainvoke(payload))
    assert out["messages"][-1].content == "6 times 7 is 42"
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    assert root.name == "invoke_agent my-agent"
    assert root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    assert root.attributes[A.RETRACE_RUN_INPUT] == "what is 6 times 7?"
    assert root.attributes[A.RETRACE_RUN_OUTPUT] == "6 times 7 is 42"
    assert format(root.context.trace_id, "032x") == graph.last_trace_id
    children = sorted(
        (s for s in spans if s.parent is not None), key=lambda s: s.attributes[A.RETRACE_STEP_INDEX]
    )
    assert [s.attributes[A.GEN_AI_OPERATION_NAME] for s in children] == [
        "chat",
        "execute_tool",
        "chat",
        "execute_tool",
        "chat",
    ]
    assert all(s.parent.span_id == root.context.span_id for s in children)
    first_chat, multiply_span, _, explode_span, last_chat = children
    assert (
        json.loads(first_chat.attributes[A.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]
        == "what is 6 times 7?"
    )
    assert json.loads(first_chat.attributes[A.RETRACE_MODEL_TOOL_CALLS])[0]["name"] == "multiply"
    assert multiply_span.name == "execute_tool multiply"
    assert multiply_span.attributes[A.GEN_AI_TOOL_CALL_ID] == "t1"
    assert json.loads(multiply_span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"a": 6, "b": 7}
    assert multiply_span.attributes[A.GEN_AI_TOOL_CALL_RESULT] == "42"
    assert explode_span.attributes[A.RETRACE_TOOL_ERROR] == "true"
    assert len(json.loads(last_chat.attributes[A.GEN_AI_INPUT_MESSAGES])) == 5


def test_a_failing_graph_marks_the_run_failed() -> None:
    def broken(state: MessagesState) -> dict[str, Any]:
        raise RuntimeError("graph bug")

    builder = StateGraph(MessagesState)
    builder.add_node("broken", broken)
    builder.add_edge(START, "broken")
    exporter = InMemorySpanExporter()
    graph = instrument(builder.compile(), agent_name="buggy", span_exporter=exporter)
    with pytest.raises(RuntimeError):
        graph.invoke({"messages": [HumanMessage("hi")]})
    (root,) = exporter.get_finished_spans()
    assert root.attributes[A.RETRACE_RUN_STATUS] == "failed"
    assert root.status.status_code.name == "ERROR"
    # everything else passes through to the wrapped graph
    assert "broken" in graph.get_graph().nodes


@pytest.mark.integration
def test_instrumented_graph_exports_to_the_collector(collector_server: Any) -> None:
    graph = instrument(_user_graph([]), endpoint=collector_server.url, agent_name="user-agent")
    graph.invoke({"messages": [HumanMessage("what is 6 times 7?")]})
    graph.shutdown()
    detail = collector_server.client.wait_for_trace(graph.last_trace_id, min_spans=6)
    assert detail.trace.agent_name == "user-agent"
    assert detail.trace.run_status == "completed"
    assert detail.trace.llm_calls == 3 and detail.trace.tool_calls == 2
    assert set(detail.trace.tools) == {"multiply", "explode"}


@pytest.mark.integration
def test_mcp_session_calls_inside_a_user_graph_become_tool_spans() -> None:
    from mcp import Client, StdioServerParameters

    from runner.instrumentation import trace_mcp_session

    async def scenario() -> tuple[Any, InMemorySpanExporter, str]:
        exporter = InMemorySpanExporter()
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "runner.mcp_servers.data_server"],
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        async with Client(server) as client:
            session = trace_mcp_session(client, server="data")

            async def ask_db(state: MessagesState) -> dict[str, Any]:
                result = await session.call_tool(
                    "query", {"sql": "SELECT COUNT(*) AS n FROM customers"}
                )
                return {"messages": [AIMessage(result.content[0].text)]}

            builder = StateGraph(MessagesState)
            builder.add_node("ask_db", ask_db)
            builder.add_edge(START, "ask_db")
            graph = instrument(builder.compile(), agent_name="db-agent", span_exporter=exporter)
            out = await graph.ainvoke({"messages": [HumanMessage("how many customers?")]})
            # outside a run the session is plain
            await session.call_tool("list_tables", {})
        return out, exporter, graph.last_trace_id

    out, exporter, trace_id = asyncio.run(scenario())
    assert out["messages"][-1].content == "n\n400\n"
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    tool = next(s for s in spans if s.name == "execute_tool query")
    assert format(tool.context.trace_id, "032x") == trace_id
    assert tool.attributes[A.RETRACE_MCP_SERVER] == "data"
    assert tool.attributes[A.GEN_AI_TOOL_CALL_RESULT] == "n\n400\n"


def test_session_user_and_metadata_are_recorded_on_the_run() -> None:
    exporter = InMemorySpanExporter()
    graph = instrument(
        _user_graph([]),
        agent_name="support",
        span_exporter=exporter,
        session_id="conv-9",
        user_id="customer-17",
        metadata={"ticket": "4711", "tier": 2},
    )
    graph.invoke({"messages": [HumanMessage("what is 6 times 7?")]})
    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(roots) == 1
    for root in roots:
        assert root.attributes[A.SESSION_ID] == "conv-9"
        assert root.attributes[A.GEN_AI_CONVERSATION_ID] == "conv-9"
        assert root.attributes[A.USER_ID] == "customer-17"
        assert root.attributes[A.RETRACE_METADATA_PREFIX + "ticket"] == "4711"
        assert root.attributes[A.RETRACE_METADATA_PREFIX + "tier"] == "2"
    # Without a session the run id is not passed off as a conversation.
    plain = InMemorySpanExporter()
    instrument(_user_graph([]), span_exporter=plain).invoke(
        {"messages": [HumanMessage("what is 6 times 7?")]}
    )
    root = next(s for s in plain.get_finished_spans() if s.parent is None)
    assert A.GEN_AI_CONVERSATION_ID not in root.attributes and A.SESSION_ID not in root.attributes

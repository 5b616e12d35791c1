"""The agent graph: ``model`` ↔ ``gate`` → ``tools``, a LangGraph StateGraph.

``model`` asks the model (through the ``ModelProvider`` seam); ``gate`` asks the policy about each
requested tool call and pauses (``interrupt``) for a human when a rule requires approval; ``tools``
executes allowed calls (through the ``ToolExecutor`` seam) with retries. Tracing, policy and
guardrails are passed in (``AgentDeps``); the graph only wires them.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from runner.guardrails import GuardrailHit, Guardrails, call_key
from runner.policy import Policy, PolicyContext, PriorCall
from runner.seams import ModelProvider, Runtime, ToolExecutor, ToolResult, ToolSpec
from runner.tracing import RunTracer
from schemas import attributes as A
from schemas.models import RunStatus


class AgentState(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    step: int  # index of the next step (LLM call or tool attempt)
    turns: int
    tokens: int
    calls: Annotated[list[str], operator.add]  # call keys made so far (loop detection)
    executed: Annotated[list[tuple[str, float]], operator.add]  # (tool, clock) for rate limits
    now: float  # runtime clock read before the last model call
    decisions: dict[str, dict[str, Any]]  # tool_call_id -> policy decision (+ approval)
    status: str  # a RunStatus value once the run is over
    answer: str


@dataclass
class AgentDeps:
    """Everything the graph talks to. The graph never builds any of it."""

    model: ModelProvider
    tools: ToolExecutor
    tool_specs: list[ToolSpec]
    tracer: RunTracer
    guardrails: Guardrails
    runtime: Runtime
    policy: Policy = field(default_factory=Policy.allow_all)
    parameters: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def build_graph(deps: AgentDeps) -> StateGraph[AgentState]:
    """The uncompiled graph; compile it with a checkpointer to allow approval pauses."""

    async def model(state: AgentState) -> dict[str, Any]:
        now = deps.runtime.now()
        hit = deps.guardrails.before_model(turns=state["turns"], tokens=state["tokens"], now=now)
        if hit is not None:
            return _stop(deps, hit)
        step = state["step"]
        with deps.tracer.chat_span(
            state["messages"], deps.tool_specs, step_index=step, parameters=deps.parameters
        ) as span:
            message = await deps.model.ainvoke(
                state["messages"], deps.tool_specs, step_index=step, parameters=deps.parameters
            )
            used_in, used_out = deps.tracer.record_chat(span, message)
        update: dict[str, Any] = {
            "messages": [message],
            "step": step + 1,
            "turns": state["turns"] + 1,
            "tokens": state["tokens"] + used_in + used_out,
            "now": now,
        }
        if not message.tool_calls:
            update |= {"status": RunStatus.COMPLETED.value, "answer": message.text}
        return update

    def gate(state: AgentState) -> dict[str, Any]:
        # Re-executed from the top when a paused run resumes: decisions must stay pure.
        decisions: dict[str, dict[str, Any]] = {}
        prior = [PriorCall(tool, at) for tool, at in state.get("executed", [])]
        for call in _last_ai(state).tool_calls:
            context = PolicyContext(
                run_id=deps.run_id,
                calls_so_far=tuple(prior),
                now=state["now"],
                server=_server(deps, call["name"]),
            )
            d = deps.policy.decide(call["name"], call["args"], context)
            decision = {"action": d.action, "rule": d.rule, "reason": d.reason}
            if d.action == "require_approval":
                decision["approval"] = interrupt(
                    {"tool": call["name"], "arguments": call["args"], "call_id": call["id"]}
                    | {"rule": d.rule, "reason": d.reason}
                )
            decisions[str(call["id"])] = decision
            prior.append(PriorCall(call["name"], state["now"]))
        return {"decisions": decisions}

    async def tools(state: AgentState) -> dict[str, Any]:
        step, calls, results = state["step"], list(state.get("calls", [])), []
        executed: list[tuple[str, float]] = []
        hit = None
        for call in _last_ai(state).tool_calls:
            key = call_key(call["name"], call["args"])
            calls.append(key)
            hit = deps.guardrails.check_loop({key: calls.count(key)}, key, call["name"])
            if hit is not None:
                break
            decision = state["decisions"].get(str(call["id"]), {"action": "allow"})
            message, step = await execute_call(deps, dict(call), decision, step)
            results.append(message)
            if _refusal(decision) is None:  # rate limits count calls that ran
                executed.append((call["name"], state["now"]))
        new_calls = calls[len(state["calls"]) :]
        update = {"messages": results, "step": step, "calls": new_calls, "executed": executed}
        return update | (_stop(deps, hit) if hit is not None else {})

    def after_model(state: AgentState) -> Literal["gate", "__end__"]:
        return "__end__" if state.get("status") else "gate"

    def after_tools(state: AgentState) -> Literal["model", "__end__"]:
        return "__end__" if state.get("status") else "model"

    graph = StateGraph(AgentState)
    graph.add_node("model", model)
    graph.add_node("gate", gate)
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", after_model)
    graph.add_edge("gate", "tools")
    graph.add_conditional_edges("tools", after_tools)
    return graph


def _server(deps: AgentDeps, tool: str) -> str:
    return next((s.server for s in deps.tool_specs if s.name == tool), "")


def _last_ai(state: AgentState) -> AIMessage:
    message = state["messages"][-1]
    assert isinstance(message, AIMessage)
    return message


def _stop(deps: AgentDeps, hit: GuardrailHit) -> dict[str, Any]:
    deps.tracer.root_event(
        A.EVENT_GUARDRAIL, {A.RETRACE_GUARDRAIL: hit.name, "message": hit.message}
    )
    return {"status": RunStatus.GUARDRAIL.value, "answer": hit.message}


async def execute_call(
    deps: AgentDeps, call: dict[str, Any], decision: dict[str, Any], step: int
) -> tuple[ToolMessage, int]:
    """Run one tool call as the policy decided: refuse it, or execute it with retries.

    Every attempt is a step with its own ``execute_tool`` span. Returns the message for the
    model and the next step index.
    """
    name, args, call_id = call["name"], call["args"], str(call["id"])
    server = _server(deps, name)
    approval = decision.get("approval")
    refusal = _refusal(decision)
    attempt, retries = 1, deps.guardrails.config.tool_retries
    while True:
        with deps.tracer.tool_span(
            name, call_id=call_id, arguments=args, step_index=step, server=server, attempt=attempt
        ) as span:
            span.set_attribute(A.RETRACE_POLICY_DECISION, decision["action"])
            span.set_attribute(A.RETRACE_POLICY_RULE, decision.get("rule", ""))
            span.set_attribute(A.RETRACE_POLICY_REASON, decision.get("reason", ""))
            if decision["action"] != "allow":
                span.add_event(A.EVENT_POLICY, {A.RETRACE_POLICY_DECISION: decision["action"]})
            if isinstance(approval, dict):
                _record_approval(span, approval)
            if refusal is not None:
                result = ToolResult(content=refusal, is_error=True)
            else:
                result = await _call_tool(deps, name, args, step, call_id)
            deps.tracer.record_tool_result(span, result)
            step += 1
            if not result.is_error or refusal is not None or attempt > retries:
                break
            delay = deps.guardrails.backoff_s(attempt)
            span.add_event(A.EVENT_RETRY, {A.RETRACE_TOOL_ATTEMPT: attempt, "delay_s": delay})
        await deps.sleep(delay)
        attempt += 1
    status: Literal["success", "error"] = "error" if result.is_error else "success"
    return ToolMessage(content=result.content, tool_call_id=call_id, name=name, status=status), step


async def _call_tool(
    deps: AgentDeps, name: str, args: dict[str, Any], step: int, call_id: str
) -> ToolResult:
    try:
        return await deps.tools.call(name, args, step_index=step, call_id=call_id)
    except Exception as exc:  # a broken tool is a tool error for the model, not a crash
        return ToolResult(content=f"tool {name} failed: {type(exc).__name__}: {exc}", is_error=True)


def _refusal(decision: dict[str, Any]) -> str | None:
    action = decision["action"]
    if action == "deny":
        return f"Denied by policy rule {decision.get('rule', '')!r}: {decision.get('reason', '')}"
    if action == "require_approval":
        approval = decision.get("approval") or {}
        verdict = approval.get("status", "rejected")
        if verdict != "approved":
            who = approval.get("decided_by") or "nobody"
            comment = approval.get("comment", "")
            return f"Not approved ({verdict} by {who}){': ' + comment if comment else ''}"
    return None


def _record_approval(span: Any, approval: dict[str, Any]) -> None:
    attrs = {
        A.RETRACE_APPROVAL_ID: str(approval.get("approval_id", "")),
        A.RETRACE_APPROVAL_STATUS: str(approval.get("status", "")),
        A.RETRACE_APPROVAL_DECIDED_BY: str(approval.get("decided_by", "")),
    }
    for key, value in attrs.items():
        span.set_attribute(key, value)
    span.add_event(A.EVENT_APPROVAL, attrs | {"comment": str(approval.get("comment", ""))})

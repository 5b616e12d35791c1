"""Turn a stored trace into a ``Trajectory`` (ordered steps) and check what a replay mode needs.

Pure functions over the shared models: no I/O, and nothing but ``schemas``, pydantic and the
standard library, so the collector (which serves ``GET /api/v1/traces/{id}/trajectory`` with
:func:`trajectory_from_detail`) imports it without the runner. The replay engine reads the same
trajectory (from the API or from a golden file via :func:`load_trajectory`). Public through
``replay``'s ``__init__``.

Traces written by other SDKs (OpenInference, OpenLLMetry, plain GenAI conventions; no ``retrace.*``
keys) give the same trajectory where their spans carry the data (``replay._other_sdks`` reads
their shapes): model answers with their tool calls, tool results, the graph's input. Whatever a
replay mode then lacks is named by :func:`missing_for_mode`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from replay._other_sdks import (
    OUTPUT_MESSAGE_KEYS,
    TOOL_RESULT_KEYS,
    graph_input_value,
    graph_output_value,
    is_hidden,
    other_input_messages,
    other_output_message,
    other_tool_arguments,
    other_tool_definitions,
    other_tool_output,
    run_text,
)
from schemas import attributes as A
from schemas.errors import InvalidInputError, TrajectoryIncompleteError
from schemas.models import (
    TRAJECTORY_FORMAT_VERSION,
    ReplayMode,
    SpanView,
    StatusCode,
    Step,
    TraceDetail,
    Trajectory,
)

__all__ = [
    "dump_trajectory",
    "load_trajectory",
    "missing_for_mode",
    "require_for_mode",
    "step_label",
    "trajectory_from_detail",
]

# OpenInference / OpenLLMetry span kinds that mean "an LLM call" or "a tool call".
_LLM_KINDS = frozenset({"llm", "chat", "chat_model"})
_TOOL_KINDS = frozenset({"tool", "execute_tool"})
_AGENT_KINDS = frozenset({"agent", "chain", "workflow"})


def _parse_json(value: str | None) -> Any:
    """A JSON attribute value parsed, or the raw string when it is not JSON."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


def _as_messages(value: Any) -> list[dict[str, Any]]:
    """Coerce a recorded messages payload into a list of message dicts."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        inner = value.get("messages")
        if isinstance(inner, list):
            return _as_messages(inner)
        return [dict(value)]
    if isinstance(value, list):
        out: list[dict[str, Any]] = []
        for item in value:
            if isinstance(item, Mapping):
                out.append(dict(item))
            elif isinstance(item, list):
                out.extend(_as_messages(item))
            else:
                out.append({"role": "user", "content": str(item)})
        return out
    return [{"role": "user", "content": str(value)}]


def _as_float_list(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    out: list[float] = []
    for item in value:
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float):
            out.append(float(item))
    return out


def _as_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _operation(span: SpanView) -> str:
    """``invoke_agent`` / ``chat`` / ``execute_tool`` / "" for one span, whatever its convention."""
    attrs = span.attributes
    op = span.operation or attrs.get(A.GEN_AI_OPERATION_NAME, "")
    if op in (A.OP_INVOKE_AGENT, A.OP_CHAT, A.OP_EXECUTE_TOOL):
        return op
    if op in ("text_completion", "generate_content", "completion", "embeddings"):
        return A.OP_CHAT if op != "embeddings" else ""
    if op in ("create_agent",):
        return A.OP_INVOKE_AGENT
    kind = (attrs.get(A.OI_SPAN_KIND) or attrs.get(A.TL_SPAN_KIND) or "").lower()
    if kind in _LLM_KINDS:
        return A.OP_CHAT
    if kind in _TOOL_KINDS:
        return A.OP_EXECUTE_TOOL
    if kind in _AGENT_KINDS:
        return A.OP_INVOKE_AGENT
    if A.GEN_AI_TOOL_NAME in attrs or A.OI_TOOL_NAME in attrs:
        return A.OP_EXECUTE_TOOL
    if A.GEN_AI_REQUEST_MODEL in attrs or A.OI_LLM_MODEL_NAME in attrs:
        return A.OP_CHAT
    return ""


def _find_root(spans: Sequence[SpanView], ops: Mapping[str, str]) -> SpanView | None:
    """The run's root: the earliest parentless ``invoke_agent`` span, else any agent span, else
    the earliest parentless span."""
    ids = {s.span_id for s in spans}
    agents = [s for s in spans if ops[s.span_id] == A.OP_INVOKE_AGENT]
    top_agents = [s for s in agents if not s.parent_span_id or s.parent_span_id not in ids]
    for group in (top_agents, agents):
        if group:
            return min(group, key=lambda s: s.start_time_unix_nano)
    parentless = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    if parentless:
        return min(parentless, key=lambda s: s.start_time_unix_nano)
    return None


def _segments(
    spans: Sequence[SpanView], ops: Mapping[str, str], root: SpanView | None
) -> list[SpanView]:
    """Every top-level ``invoke_agent`` span of the root's run, in start order."""
    if root is None or ops[root.span_id] != A.OP_INVOKE_AGENT:
        return []
    ids = {s.span_id for s in spans}
    run_id = root.attributes.get(A.RETRACE_RUN_ID)
    return sorted(
        (
            s
            for s in spans
            if ops[s.span_id] == A.OP_INVOKE_AGENT
            and (not s.parent_span_id or s.parent_span_id not in ids)
            and s.attributes.get(A.RETRACE_RUN_ID) == run_id
        ),
        key=lambda s: (s.start_time_unix_nano, s.span_id),
    )


def _error_of(span: SpanView) -> str | None:
    attrs = span.attributes
    failed = span.status == StatusCode.ERROR.value or attrs.get(A.RETRACE_TOOL_ERROR) == "true"
    if not failed:
        return None
    raised = ""
    for event in span.events:
        if event.name == A.EVENT_EXCEPTION:
            message = event.attributes.get(A.EXCEPTION_MESSAGE, "")
            kind = event.attributes.get(A.EXCEPTION_TYPE, "")
            raised = f"{kind}: {message}" if kind and message else message or kind
            if raised:
                break
    status = span.status_message.strip()
    # The exception event names the type the status message may leave out (OpenLLMetry: just the
    # message) and says in one line what OpenInference's status spells as a whole traceback; a
    # replay re-raises it by that type.
    if status and "\n" not in status and (not raised or raised.partition(": ")[2] != status):
        return span.status_message
    if raised:
        return raised
    return span.status_message or attrs.get(A.ERROR_TYPE) or "error"


def _policy_and_approval(span: SpanView) -> tuple[str, str, dict[str, Any] | None]:
    attrs = span.attributes
    decision = attrs.get(A.RETRACE_POLICY_DECISION, "")
    rule = attrs.get(A.RETRACE_POLICY_RULE, "")
    approval: dict[str, Any] | None = None
    if A.RETRACE_APPROVAL_ID in attrs or A.RETRACE_APPROVAL_STATUS in attrs:
        approval = {
            "approval_id": attrs.get(A.RETRACE_APPROVAL_ID, ""),
            "status": attrs.get(A.RETRACE_APPROVAL_STATUS, ""),
            "decided_by": attrs.get(A.RETRACE_APPROVAL_DECIDED_BY, ""),
        }
    for event in span.events:
        ev = event.attributes
        if event.name == A.EVENT_POLICY:
            decision = ev.get(A.RETRACE_POLICY_DECISION, decision)
            rule = ev.get(A.RETRACE_POLICY_RULE, rule)
        elif event.name == A.EVENT_APPROVAL:
            approval = {
                "approval_id": ev.get(
                    A.RETRACE_APPROVAL_ID, (approval or {}).get("approval_id", "")
                ),
                "status": ev.get(A.RETRACE_APPROVAL_STATUS, (approval or {}).get("status", "")),
                "decided_by": ev.get(
                    A.RETRACE_APPROVAL_DECIDED_BY, (approval or {}).get("decided_by", "")
                ),
            }
    return decision, rule, approval


def _common(span: SpanView, index: int, kind: str) -> dict[str, Any]:
    """The Step fields every kind of step reads the same way."""
    attrs = span.attributes
    decision, rule, approval = _policy_and_approval(span)
    return {
        "index": index,
        "kind": kind,
        "span_id": span.span_id,
        "name": span.name,
        "start_time_unix_nano": span.start_time_unix_nano,
        "duration_ns": span.duration_ns,
        "status": span.status,
        "error": _error_of(span),
        "policy_decision": decision,
        "policy_rule": rule,
        "approval": approval,
        "events": list(span.events),
        "clock_values": _as_float_list(_parse_json(attrs.get(A.RETRACE_CLOCK_VALUES))),
        "random_values": _as_float_list(_parse_json(attrs.get(A.RETRACE_RANDOM_VALUES))),
    }


def _llm_step(span: SpanView, index: int) -> Step:
    attrs = span.attributes
    model = (
        span.model
        or attrs.get(A.GEN_AI_REQUEST_MODEL)
        or attrs.get(A.GEN_AI_RESPONSE_MODEL)
        or attrs.get(A.OI_LLM_MODEL_NAME)
        or ""
    )
    if model == A.TL_UNKNOWN_MODEL:
        model = ""
    raw_input = attrs.get(A.GEN_AI_INPUT_MESSAGES)
    input_messages = [] if raw_input is not None else other_input_messages(attrs)
    if not input_messages:
        if raw_input is None:
            raw_input = attrs.get(A.OI_INPUT_VALUE) or attrs.get(A.TL_ENTITY_INPUT)
        if not is_hidden(raw_input):
            input_messages = _as_messages(_parse_json(raw_input))
    system = _parse_json(attrs.get(A.GEN_AI_SYSTEM_INSTRUCTIONS))
    if system is not None and not any(m.get("role") == "system" for m in input_messages):
        input_messages.insert(0, {"role": "system", "content": system})

    output_message: dict[str, Any] | None = None
    response = _parse_json(attrs.get(A.RETRACE_MODEL_RESPONSE))
    if isinstance(response, Mapping):
        output_message = dict(response)
    else:
        output_message = other_output_message(attrs)
    if output_message is None:
        raw_out = attrs.get(A.GEN_AI_OUTPUT_MESSAGES)
        if raw_out is None:
            raw_out = attrs.get(A.OI_OUTPUT_VALUE) or attrs.get(A.TL_ENTITY_OUTPUT)
        outputs = [] if is_hidden(raw_out) else _as_messages(_parse_json(raw_out))
        if outputs:
            output_message = outputs[-1]
            if output_message.get("role") == "user":
                output_message["role"] = "assistant"

    tool_calls_value = _parse_json(attrs.get(A.RETRACE_MODEL_TOOL_CALLS))
    tool_calls: list[dict[str, Any]] = []
    if isinstance(tool_calls_value, list):
        tool_calls = [dict(c) for c in tool_calls_value if isinstance(c, Mapping)]
    elif output_message is not None:
        data = output_message.get("data")  # LangChain's message_to_dict form
        holder = data if isinstance(data, Mapping) else output_message
        if isinstance(holder.get("tool_calls"), list):
            tool_calls = [dict(c) for c in holder["tool_calls"] if isinstance(c, Mapping)]

    definitions_value = _parse_json(attrs.get(A.GEN_AI_TOOL_DEFINITIONS))
    tool_definitions = (
        [dict(d) for d in definitions_value if isinstance(d, Mapping)]
        if isinstance(definitions_value, list)
        else other_tool_definitions(attrs)
    )
    parameters_value = _parse_json(attrs.get(A.RETRACE_MODEL_PARAMETERS))
    parameters = dict(parameters_value) if isinstance(parameters_value, Mapping) else {}
    for key in (
        A.GEN_AI_REQUEST_TEMPERATURE,
        A.GEN_AI_REQUEST_TOP_P,
        A.GEN_AI_REQUEST_MAX_TOKENS,
        A.GEN_AI_REQUEST_SEED,
    ):
        if key in attrs and not parameters_value:
            parameters[key.rsplit(".", 1)[-1]] = _parse_json(attrs[key])

    input_tokens = span.input_tokens or (
        _as_int(
            attrs.get(A.GEN_AI_USAGE_INPUT_TOKENS)
            or attrs.get(A.GEN_AI_USAGE_PROMPT_TOKENS)
            or attrs.get(A.OI_LLM_TOKEN_PROMPT)
            or attrs.get(A.LLM_USAGE_PROMPT_TOKENS)
        )
        or 0
    )
    output_tokens = span.output_tokens or (
        _as_int(
            attrs.get(A.GEN_AI_USAGE_OUTPUT_TOKENS)
            or attrs.get(A.GEN_AI_USAGE_COMPLETION_TOKENS)
            or attrs.get(A.OI_LLM_TOKEN_COMPLETION)
            or attrs.get(A.LLM_USAGE_COMPLETION_TOKENS)
        )
        or 0
    )
    return Step(
        **_common(span, index, "llm"),
        model=model,
        input_messages=input_messages,
        output_message=output_message,
        tool_calls=tool_calls,
        parameters=parameters,
        tool_definitions=tool_definitions,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def _tool_step(span: SpanView, index: int) -> Step:
    attrs = span.attributes
    name = (
        span.tool_name
        or attrs.get(A.GEN_AI_TOOL_NAME)
        or attrs.get(A.OI_TOOL_NAME)
        or attrs.get(A.TL_ENTITY_NAME)
        or span.name.removeprefix(f"{A.OP_EXECUTE_TOOL} ")
    )
    call_id = attrs.get(A.GEN_AI_TOOL_CALL_ID, "")
    common = _common(span, index, "tool")
    if A.OI_SPAN_KIND in attrs or A.TL_SPAN_KIND in attrs:
        args_value, sdk_call_id = other_tool_arguments(attrs)
        output = other_tool_output(attrs)
        raw_result = output.content if output is not None else None
        call_id = call_id or sdk_call_id or (output.tool_call_id if output else "")
        if output is not None and output.failed and common["error"] is None:
            common["error"] = str(output.content)
        if raw_result is None and common["error"] is not None:
            # A tool that raised returned nothing: its result is the error, "Type: message", as
            # Retrace's own instrument() records it (and a replay raises it again).
            raw_result = common["error"]
    else:
        raw_args = attrs.get(A.GEN_AI_TOOL_CALL_ARGUMENTS)
        if raw_args is None:
            raw_args = attrs.get(A.OI_INPUT_VALUE) or attrs.get(A.TL_ENTITY_INPUT)
        args_value = _parse_json(raw_args)
        raw_result = attrs.get(A.GEN_AI_TOOL_CALL_RESULT)
        if raw_result is None:
            raw_result = attrs.get(A.OI_OUTPUT_VALUE) or attrs.get(A.TL_ENTITY_OUTPUT)
    if isinstance(args_value, Mapping):
        arguments = dict(args_value)
    elif args_value is None:
        arguments = {}
    else:
        arguments = {"input": args_value}
    return Step(
        **common,
        tool_name=name,
        tool_call_id=call_id,
        arguments=arguments,
        # kept verbatim: replay serves it back byte for byte (diffs parse it when it is JSON)
        result=raw_result,
        mcp_server=attrs.get(A.RETRACE_MCP_SERVER, ""),
        sandbox_backend=attrs.get(A.RETRACE_SANDBOX_BACKEND, ""),
        exit_code=_as_int(attrs.get(A.RETRACE_SANDBOX_EXIT_CODE)),
        snapshot_before=attrs.get(A.RETRACE_WORKSPACE_BEFORE, ""),
        snapshot_after=attrs.get(A.RETRACE_WORKSPACE_AFTER, ""),
    )


def _has_step_ancestor(
    span: SpanView, by_id: Mapping[str, SpanView], ops: Mapping[str, str]
) -> bool:
    """Whether a chat/tool span sits inside another one (e.g. spans made inside an MCP server)."""
    seen: set[str] = set()
    parent = by_id.get(span.parent_span_id)
    while parent is not None and parent.span_id not in seen:
        seen.add(parent.span_id)
        if ops[parent.span_id] in (A.OP_CHAT, A.OP_EXECUTE_TOOL):
            return True
        parent = by_id.get(parent.parent_span_id)
    return False


def _link_tool_calls(steps: Sequence[Step]) -> None:
    """Give each tool step the model's call it answers: its id, and its arguments where the
    span kept only the tool's input string (OpenInference's ``France`` for ``{"country": ...}``).

    A step is matched by its call id when it has one, else by name to the earliest call not
    answered yet; calls come from the model answers before it, in order.
    """
    pending: list[dict[str, Any]] = []
    for step in steps:
        if step.kind == "llm":
            pending += [c for c in step.tool_calls if isinstance(c.get("name"), str)]
            continue
        if step.tool_call_id:
            match = next((c for c in pending if c.get("id") == step.tool_call_id), None)
        else:
            match = next((c for c in pending if c.get("name") == step.tool_name), None)
        if match is None:
            continue
        pending.remove(match)
        if not step.tool_call_id and match.get("id"):
            step.tool_call_id = str(match["id"])
        args = match.get("args")
        bare = not step.arguments or (
            set(step.arguments) == {"input"} and isinstance(args, dict) and "input" not in args
        )
        if bare and isinstance(args, dict):
            step.arguments = dict(args)


def _other_graph_span(
    root: SpanView, spans: Sequence[SpanView], ops: Mapping[str, str]
) -> SpanView | None:
    """The span another SDK recorded the graph's input and output on: the root chain span, or
    (OpenLLMetry, whose root ``invoke_agent`` span carries neither) the one agent span right
    under it. None when the root is not another SDK's."""
    span: SpanView | None = root
    seen: set[str] = set()
    while span is not None and span.span_id not in seen:
        seen.add(span.span_id)
        if A.OI_SPAN_KIND in span.attributes or A.TL_SPAN_KIND in span.attributes:
            return span
        children = [
            s
            for s in spans
            if s.parent_span_id == span.span_id and ops[s.span_id] == A.OP_INVOKE_AGENT
        ]
        span = children[0] if len(children) == 1 else None
    return None


def trajectory_from_detail(detail: TraceDetail) -> Trajectory:
    """Build the ordered trajectory of one stored trace.

    The root is the ``invoke_agent`` span; every ``chat`` and ``execute_tool`` span that is not
    nested inside another step becomes a ``Step``, ordered by ``retrace.step.index`` when every
    step has one, else by start time. Payload attributes (JSON) are parsed; unparsable values are
    kept as strings. A missing ``snapshot_before`` is filled from the previous tool step's
    ``snapshot_after`` (only tools change the workspace). Never raises on odd data: what is
    missing is reported later by :func:`missing_for_mode`.
    """
    spans = list(detail.spans)
    ops = {s.span_id: _operation(s) for s in spans}
    by_id = {s.span_id: s for s in spans}
    root = _find_root(spans, ops)
    step_spans = [
        s
        for s in spans
        if ops[s.span_id] in (A.OP_CHAT, A.OP_EXECUTE_TOOL)
        and not _has_step_ancestor(s, by_id, ops)
    ]

    def recorded_index(span: SpanView) -> int:
        if span.step_index >= 0:
            return span.step_index
        value = _as_int(span.attributes.get(A.RETRACE_STEP_INDEX))
        return -1 if value is None else value

    if step_spans and all(recorded_index(s) >= 0 for s in step_spans):
        step_spans.sort(key=lambda s: (recorded_index(s), s.start_time_unix_nano, s.span_id))
    else:
        step_spans.sort(key=lambda s: (s.start_time_unix_nano, s.span_id))

    steps: list[Step] = []
    last_after = ""
    for position, span in enumerate(step_spans):
        if ops[span.span_id] == A.OP_CHAT:
            steps.append(_llm_step(span, position))
        else:
            step = _tool_step(span, position)
            if not step.snapshot_before and last_after:
                step.snapshot_before = last_after
            if step.snapshot_after:
                last_after = step.snapshot_after
            steps.append(step)
    _link_tool_calls(steps)

    attrs = root.attributes if root is not None else {}
    resource = root.resource_attributes if root is not None else {}
    # A run paused for approval and resumed later is several root segments in one trace: the
    # first says what was asked, the last how it ended; pinned values accumulate in order.
    segments = _segments(spans, ops, root)
    last = segments[-1].attributes if segments else attrs
    clock: list[float] = []
    draws: list[float] = []
    ids: list[str] = []
    for segment in segments or ([root] if root is not None else []):
        clock += _as_float_list(_parse_json(segment.attributes.get(A.RETRACE_CLOCK_VALUES)))
        draws += _as_float_list(_parse_json(segment.attributes.get(A.RETRACE_RANDOM_VALUES)))
        seg_ids = _parse_json(segment.attributes.get(A.RETRACE_IDS))
        ids += [str(i) for i in seg_ids] if isinstance(seg_ids, list) else []
    config_value = _parse_json(attrs.get(A.RETRACE_AGENT_CONFIG))
    graph_input = _parse_json(attrs.get(A.RETRACE_GRAPH_INPUT))
    run_input = attrs.get(A.RETRACE_RUN_INPUT)
    run_output = last.get(A.RETRACE_RUN_OUTPUT)
    # Another SDK's graph: input and output as instrument() records them (the last message's
    # text), from the span that carries them.
    other = _other_graph_span(root, spans, ops) if root is not None else None
    if other is not None:
        if graph_input is None:
            graph_input = graph_input_value(other.attributes)
        if run_input is None:
            run_input = "" if graph_input is None else run_text(graph_input)
        if run_output is None:
            output_value = graph_output_value(other.attributes)
            run_output = "" if output_value is None else run_text(output_value)
    if run_input is None:
        run_input = attrs.get(A.OI_INPUT_VALUE) or attrs.get(A.TL_ENTITY_INPUT) or ""
    if run_output is None:
        run_output = last.get(A.OI_OUTPUT_VALUE) or last.get(A.TL_ENTITY_OUTPUT) or ""
    models = [s.model for s in steps if s.kind == "llm" and s.model]
    graph_config = _parse_json(attrs.get(A.RETRACE_GRAPH_CONFIG))
    graph_kwargs = _parse_json(attrs.get(A.RETRACE_GRAPH_KWARGS))
    summary = detail.trace
    return Trajectory(
        trace_id=summary.trace_id,
        project_id=resource.get(A.RETRACE_PROJECT, ""),
        run_id=attrs.get(A.RETRACE_RUN_ID, ""),
        agent_name=(
            (root.agent_name if root is not None else "")
            or attrs.get(A.GEN_AI_AGENT_NAME)
            or attrs.get(A.OI_AGENT_NAME)
            or attrs.get(A.TL_WORKFLOW_NAME)
            or summary.agent_name
        ),
        service_name=(root.service_name if root is not None else "") or summary.service_name,
        input=run_input,
        output=run_output,
        run_status=last.get(A.RETRACE_RUN_STATUS, "") or summary.run_status,
        model=attrs.get(A.GEN_AI_REQUEST_MODEL) or (models[0] if models else ""),
        seed=_as_int(attrs.get(A.RETRACE_SEED)),
        code_version=attrs.get(A.RETRACE_CODE_VERSION, ""),
        agent_config=dict(config_value) if isinstance(config_value, Mapping) else {},
        clock_values=clock,
        random_values=draws,
        ids=ids,
        graph_ref=attrs.get(A.RETRACE_GRAPH_REF, ""),
        graph_input=graph_input,
        graph_config=dict(graph_config) if isinstance(graph_config, Mapping) else {},
        graph_method=attrs.get(A.RETRACE_GRAPH_METHOD, ""),
        graph_kwargs=dict(graph_kwargs) if isinstance(graph_kwargs, Mapping) else {},
        random_state=attrs.get(A.RETRACE_RANDOM_STATE, ""),
        replay_of=attrs.get(A.RETRACE_REPLAY_OF, "") or summary.replay_of,
        steps=steps,
    )


def step_label(step: Step) -> str:
    """A human label such as ``step 3 (execute_tool query)`` used in every message about a step.

    A model call names its model, else its span (other SDKs' spans often carry no model name).
    """
    if step.kind == "llm":
        return f"step {step.index} ({A.OP_CHAT} {step.model or step.name or '?'})"
    return f"step {step.index} ({A.OP_EXECUTE_TOOL} {step.tool_name or '?'})"


def _gaps(
    trajectory: Trajectory, mode: ReplayMode, *, config_supplied: bool, graph: bool
) -> tuple[list[str], list[str]]:
    """What the run as a whole lacks, and what each step lacks (in step order)."""
    run: list[str] = []
    if graph:
        if trajectory.graph_input is None:
            run.append(
                f"the graph's input ({A.RETRACE_GRAPH_INPUT}, or {A.OI_INPUT_VALUE} / "
                f"{A.TL_ENTITY_INPUT} on the graph's root chain span)"
            )
    else:
        if not trajectory.input:
            run.append(f"the run's input task ({A.RETRACE_RUN_INPUT} on the root span)")
        if not config_supplied and not trajectory.agent_config:
            run.append(f"the agent config ({A.RETRACE_AGENT_CONFIG} on the root span)")
    if not trajectory.steps and mode is not ReplayMode.LIVE_MODEL:
        run.append("any recorded step (no chat or execute_tool spans)")
    steps: list[str] = []
    # Servers that snapshot their workspace (the sandbox): their calls after the first need the
    # workspace they ran in. Other tools (a read-only SQL server) have none and need none.
    workspace_servers = {
        s.mcp_server
        for s in trajectory.steps
        if s.kind == "tool" and (s.snapshot_before or s.snapshot_after)
    }
    seen_servers: set[str] = set()
    for step in trajectory.steps:
        label = step_label(step)
        if step.kind == "llm":
            if mode is not ReplayMode.LIVE_MODEL and step.output_message is None:
                steps.append(f"{label}: no recorded model response")
            continue
        if mode is ReplayMode.RECORDED and step.result is None and step.error is None:
            steps.append(f"{label}: no recorded result")
        if (
            mode is ReplayMode.LIVE_TOOLS
            and step.mcp_server in workspace_servers
            and step.mcp_server in seen_servers
            and not step.snapshot_before
        ):
            steps.append(f"{label}: no workspace snapshot before the call")
        seen_servers.add(step.mcp_server)
    return run, steps


def missing_for_mode(
    trajectory: Trajectory,
    mode: ReplayMode | str,
    *,
    config_supplied: bool = False,
    graph: bool = False,
) -> list[str]:
    """Name exactly what ``mode`` needs but the trajectory lacks; empty when it can be replayed.

    Every mode re-drives the agent, so it needs the run's input and (unless the caller supplies
    one) the agent config; re-driving a user's own graph (``graph``) needs the graph's input
    instead. ``recorded`` needs every model response and every tool result; ``live-tools``
    needs every model response and the workspace snapshot before each call of a workspace
    (sandbox) server after its first; ``live-model`` needs nothing more (tool results are used
    where present).
    """
    run, steps = _gaps(trajectory, ReplayMode(mode), config_supplied=config_supplied, graph=graph)
    return run + steps


def require_for_mode(
    trajectory: Trajectory,
    mode: ReplayMode | str,
    *,
    config_supplied: bool = False,
    graph: bool = False,
) -> None:
    """Raise ``TrajectoryIncompleteError`` naming what the run lacks and the first step that lacks
    what ``mode`` needs (with how many later steps lack it too).

    Where a missing answer or result would have been read from is named, so a trace recorded
    with its outputs hidden (OpenInference ``TraceConfig(hide_outputs=True)``, OpenLLMetry
    ``TRACELOOP_TRACE_CONTENT=false``) says so.
    """
    mode = ReplayMode(mode)
    run, steps = _gaps(trajectory, mode, config_supplied=config_supplied, graph=graph)
    if not run and not steps:
        return
    message = (
        f"trace {trajectory.trace_id} cannot be replayed in mode {mode.value}: "
        f"missing {'; '.join(run + steps[:1])}"
    )
    if steps:
        first = steps[0]
        sources = (
            OUTPUT_MESSAGE_KEYS
            if first.endswith("no recorded model response")
            else TOOL_RESULT_KEYS
            if first.endswith("no recorded result")
            else ()
        )
        if sources:
            message += f" (read from {', '.join(sources)})"
        if len(steps) > 1:
            message += f"; {len(steps) - 1} later step(s) lack theirs too"
        if sources:
            message += (
                "; an instrumentation that hides outputs (OpenInference hide_outputs, "
                "TRACELOOP_TRACE_CONTENT=false) records none"
            )
    raise TrajectoryIncompleteError(message)


def load_trajectory(data: str | bytes | Mapping[str, Any], *, source: str = "") -> Trajectory:
    """Parse a golden trajectory (JSON text or a dict), checking its format version first.

    A newer ``format_version`` than this code knows raises ``TrajectoryIncompleteError`` saying
    so (instead of a wall of validation errors); malformed input raises ``InvalidInputError``.
    """
    where = f" in {source}" if source else ""
    if isinstance(data, str | bytes):
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise InvalidInputError(f"trajectory{where} is not valid JSON: {exc}") from exc
    else:
        value = dict(data)
    if not isinstance(value, dict):
        raise InvalidInputError(f"trajectory{where} must be a JSON object")
    version = value.get("format_version", TRAJECTORY_FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidInputError(f"trajectory{where} has a non-integer format_version {version!r}")
    if version > TRAJECTORY_FORMAT_VERSION:
        raise TrajectoryIncompleteError(
            f"trajectory{where} has format_version {version}, newer than the "
            f"{TRAJECTORY_FORMAT_VERSION} this Retrace understands: upgrade Retrace to replay it"
        )
    try:
        return Trajectory.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = "/".join(str(p) for p in first["loc"])
        raise InvalidInputError(
            f"trajectory{where} is invalid at {path or '/'}: {first['msg']}"
        ) from exc


def dump_trajectory(trajectory: Trajectory) -> str:
    """The stable on-disk JSON of a golden trajectory (sorted keys, 2-space indent, newline)."""
    return json.dumps(trajectory.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

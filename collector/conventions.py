"""Map well-known agent span conventions onto Retrace's derived columns.

Spans may follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``, span names such as
``chat gpt-4o`` / ``execute_tool search`` / ``invoke_agent planner``), OpenInference
(``openinference.span.kind``, ``llm.*``, ``tool.*``) or OpenLLMetry (``traceloop.*``,
``llm.usage.*`` plus the ``gen_ai.*`` keys it also emits). Whichever was used, the store gets the
same ``operation``, ``agent_name``, ``model``, ``tool_name``, token counts and step index, so one
query finds LLM calls from any instrumentation. Pure: no I/O, no state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, NamedTuple

from schemas.attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    LLM_REQUEST_TYPE,
    LLM_USAGE_COMPLETION_TOKENS,
    LLM_USAGE_PROMPT_TOKENS,
    OI_AGENT_NAME,
    OI_LLM_MODEL_NAME,
    OI_LLM_TOKEN_COMPLETION,
    OI_LLM_TOKEN_PROMPT,
    OI_SPAN_KIND,
    OI_TOOL_NAME,
    OP_CHAT,
    OP_EXECUTE_TOOL,
    OP_INVOKE_AGENT,
    RETRACE_RUN_ID,
    RETRACE_STEP_INDEX,
    SESSION_ID_KEYS,
    TL_ENTITY_NAME,
    TL_SPAN_KIND,
    USER_ID_KEYS,
)

__all__ = ["DerivedColumns", "derive_columns", "parse_count"]

_UINT64_MAX: Final = 2**64 - 1
_INT32_MAX: Final = 2**31 - 1

# gen_ai.operation.name values that are one LLM call: counted as "chat" so every LLM call is
# found (and counted in trace summaries) the same way.
_GEN_AI_OPERATIONS: Final[dict[str, str]] = {
    "chat": OP_CHAT,
    "text_completion": OP_CHAT,
    "generate_content": OP_CHAT,
    "execute_tool": OP_EXECUTE_TOOL,
    "invoke_agent": OP_INVOKE_AGENT,
}
# Span names "<operation> <target>" per the GenAI conventions.
_NAME_OPERATIONS: Final[frozenset[str]] = frozenset(
    {*_GEN_AI_OPERATIONS, "create_agent", "embeddings"}
)
# openinference.span.kind values (upper case in the spec).
_OPENINFERENCE_KINDS: Final[dict[str, str]] = {
    "LLM": OP_CHAT,
    "TOOL": OP_EXECUTE_TOOL,
    "AGENT": OP_INVOKE_AGENT,
    "CHAIN": "chain",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embeddings",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluate",
}
# traceloop.span.kind values.
_TRACELOOP_KINDS: Final[dict[str, str]] = {
    "agent": OP_INVOKE_AGENT,
    "tool": OP_EXECUTE_TOOL,
    "workflow": "workflow",
    "task": "task",
}
# llm.request.type values on OpenLLMetry LLM spans.
_LLM_REQUEST_TYPES: Final[dict[str, str]] = {
    "chat": OP_CHAT,
    "completion": OP_CHAT,
    "embedding": "embeddings",
    "rerank": "rerank",
}
_INPUT_TOKEN_KEYS: Final = (
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    OI_LLM_TOKEN_PROMPT,
    LLM_USAGE_PROMPT_TOKENS,
)
_OUTPUT_TOKEN_KEYS: Final = (
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    OI_LLM_TOKEN_COMPLETION,
    LLM_USAGE_COMPLETION_TOKENS,
)


class DerivedColumns(NamedTuple):
    """The Retrace columns derived from a span's name and attributes.

    Its fields and defaults are those of the derived columns of ``schemas.tables.SPANS``
    (``tests/schemas/test_tables.py`` checks; a NamedTuple stays written out for typing).
    """

    operation: str = ""
    agent_name: str = ""
    model: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    step_index: int = -1
    session_id: str = ""
    user_id: str = ""


def parse_count(value: str | None, *, maximum: int = _UINT64_MAX) -> int | None:
    """Parse a non-negative integer attribute (``"12"``, ``"12.0"``); None when it is not one.

    Values above ``maximum`` are clamped to it, negative values count as absent.
    """
    if not value:
        return None
    if value.isdigit() and value.isascii() and len(value) < 20:
        number = int(value)
        return number if number <= maximum else maximum
    try:
        as_float = float(value)
    except ValueError:
        return None
    if not math.isfinite(as_float) or as_float < 0:
        return None
    return min(int(as_float), maximum)


def _first_count(attributes: Mapping[str, str], keys: tuple[str, ...]) -> int:
    for key in keys:
        value = attributes.get(key)
        if value:
            count = parse_count(value)
            if count is not None:
                return count
    return 0


def _first_text(
    keys: tuple[str, ...],
    attributes: Mapping[str, str],
    resource: Mapping[str, str] | None,
    run_id: str = "",
) -> str:
    """The first non-empty value among ``keys``: on the span, then on its resource.

    A ``gen_ai.conversation.id`` equal to the span's ``retrace.run.id`` is skipped: Retrace's
    runner before schema 6 stamped each run's id there, which is no session."""
    for source in (attributes, resource or {}):
        for key in keys:
            value = source.get(key)
            if value and not (key == GEN_AI_CONVERSATION_ID and value == run_id):
                return value if type(value) is str else str(value)
    return ""


def derive_columns(
    name: str,
    attributes: Mapping[str, str],
    resource_attributes: Mapping[str, str] | None = None,
) -> DerivedColumns:
    """Derive operation, agent, model, tool, token counts, step index, session and end user.

    Explicit attributes win over what the span name implies; the GenAI conventions win over
    OpenInference, which wins over OpenLLMetry. Session and user come from the span's
    attributes, else its resource's (``schemas.attributes.SESSION_ID_KEYS``/``USER_ID_KEYS``:
    OpenTelemetry and OpenInference ``session.id``/``user.id``, GenAI
    ``gen_ai.conversation.id``, OpenLLMetry association properties, Langfuse).
    """
    get = attributes.get
    operation = ""
    agent = get(GEN_AI_AGENT_NAME) or get(OI_AGENT_NAME) or ""
    tool = get(GEN_AI_TOOL_NAME) or get(OI_TOOL_NAME) or ""
    model = get(GEN_AI_REQUEST_MODEL) or get(GEN_AI_RESPONSE_MODEL) or get(OI_LLM_MODEL_NAME) or ""

    gen_ai_op = get(GEN_AI_OPERATION_NAME)
    if gen_ai_op:
        operation = _GEN_AI_OPERATIONS.get(gen_ai_op, gen_ai_op)
    else:
        oi_kind = get(OI_SPAN_KIND)
        if oi_kind:
            operation = _OPENINFERENCE_KINDS.get(oi_kind.upper(), oi_kind.lower())
            if operation == OP_INVOKE_AGENT and not agent:
                agent = name
            elif operation == OP_EXECUTE_TOOL and not tool:
                tool = name
        else:
            tl_kind = get(TL_SPAN_KIND)
            if tl_kind:
                operation = _TRACELOOP_KINDS.get(tl_kind, tl_kind)
                entity = get(TL_ENTITY_NAME) or ""
                if operation == OP_INVOKE_AGENT and not agent:
                    agent = entity or name
                elif operation == OP_EXECUTE_TOOL and not tool:
                    tool = entity or name
            else:
                request_type = get(LLM_REQUEST_TYPE)
                if request_type:
                    operation = _LLM_REQUEST_TYPES.get(request_type, request_type)

    # "chat gpt-4o", "execute_tool search", "invoke_agent planner": the name says what the
    # attributes may not.
    head, _, target = name.partition(" ")
    if head in _NAME_OPERATIONS:
        if not operation:
            operation = _GEN_AI_OPERATIONS.get(head, head)
        if target:
            if operation == OP_CHAT and not model:
                model = target
            elif operation == OP_EXECUTE_TOOL and not tool:
                tool = target
            elif operation == OP_INVOKE_AGENT and not agent:
                agent = target

    step = get(RETRACE_STEP_INDEX)
    step_index = -1
    if step:
        parsed = parse_count(step, maximum=_INT32_MAX)
        if parsed is not None:
            step_index = parsed
    return DerivedColumns(
        operation,
        agent,
        model,
        tool,
        _first_count(attributes, _INPUT_TOKEN_KEYS),
        _first_count(attributes, _OUTPUT_TOKEN_KEYS),
        step_index,
        _first_text(SESSION_ID_KEYS, attributes, resource_attributes, get(RETRACE_RUN_ID) or ""),
        _first_text(USER_ID_KEYS, attributes, resource_attributes),
    )

"""Read model calls, tool calls and the graph's input from spans other SDKs wrote.

OpenInference (``LangChainInstrumentor``) and OpenLLMetry (``LangchainInstrumentor``) trace a
LangGraph app without any Retrace code in it. What replay needs is on their spans in their own
shapes: OpenInference flattens messages into ``llm.output_messages.0.message.tool_calls.0...``
keys and puts LangChain's serialized objects in ``input.value``/``output.value``; OpenLLMetry
writes GenAI ``parts`` messages (``gen_ai.output.messages``), wraps tool inputs and outputs in
``{"inputs": ..., "kwargs": ...}`` / ``{"output": ...}`` and, in older releases, flattens
``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``. Everything here turns those into the shapes
Retrace's own spans give: a model answer as LangChain's ``message_to_dict`` form (so replay
rebuilds the exact ``AIMessage``, tool-call ids included), a tool result as the text the tool
returned. Pure functions over attribute maps; a value an instrumentation hid (OpenInference's
``__REDACTED__``) counts as absent.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import attributes as A

__all__ = [
    "ToolOutput",
    "graph_input_value",
    "graph_output_value",
    "is_hidden",
    "other_input_messages",
    "other_output_message",
    "other_tool_arguments",
    "other_tool_definitions",
    "other_tool_output",
    "run_text",
]

# Where a recorded model answer / tool result may be, named in "what is missing" messages.
OUTPUT_MESSAGE_KEYS = (
    A.RETRACE_MODEL_RESPONSE,
    A.GEN_AI_OUTPUT_MESSAGES,
    f"{A.OI_LLM_OUTPUT_MESSAGES}.*",
    A.OI_OUTPUT_VALUE,
    f"{A.TL_COMPLETION}.*",
)
TOOL_RESULT_KEYS = (A.GEN_AI_TOOL_CALL_RESULT, A.OI_OUTPUT_VALUE, A.TL_ENTITY_OUTPUT)


def is_hidden(value: str | None) -> bool:
    """Whether an attribute is absent or was hidden by the instrumentation's privacy settings."""
    return value is None or value == "" or value == A.OI_REDACTED


def _get(attrs: Mapping[str, str], key: str) -> str | None:
    value = attrs.get(key)
    return None if is_hidden(value) else value


def _json(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _listify(node: Any) -> Any:
    """Dicts keyed ``"0"``, ``"1"``... become lists in index order, at any depth."""
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def unflatten(attrs: Mapping[str, str], prefix: str) -> list[Any]:
    """The list flattened under ``prefix`` (``prefix.0.message.role`` ...), or [] if none.

    Hidden values are left out, so a list whose every leaf was hidden comes back empty.
    """
    root: dict[str, Any] = {}
    head = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(head) or is_hidden(value):
            continue
        node = root
        parts = key[len(head) :].split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a leaf and a branch at one key: keep the leaf
                break
            node = child
        else:
            node[parts[-1]] = value
    listed = _listify(root)
    return listed if isinstance(listed, list) else []


def _lc_message(value: Any) -> tuple[str, dict[str, Any]] | None:
    """``(type, fields)`` of a LangChain message in ``message_to_dict`` or ``dumpd`` form."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("data"), Mapping) and isinstance(value.get("type"), str):
        return value["type"], dict(value["data"])
    if value.get("lc") == 1 and isinstance(value.get("kwargs"), Mapping):
        ident = value.get("id") or []
        name = str(ident[-1]) if isinstance(ident, list) and ident else ""
        kind = str(value["kwargs"].get("type") or name.removesuffix("Message").lower())
        return kind, dict(value["kwargs"])
    return None


def _ai_dict(content: Any, calls: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """An AI message in ``message_to_dict`` form: what ``messages_from_dict`` rebuilds exactly."""
    data: dict[str, Any] = {"content": content if content is not None else "", **extra}
    data["tool_calls"] = calls
    data["type"] = "ai"
    return {"type": "ai", "data": data}


def _args(value: Any) -> Any:
    """Tool-call arguments as the model gave them: JSON text decoded, else kept as is."""
    if isinstance(value, str):
        decoded = _json(value)
        return decoded if isinstance(decoded, dict) else value
    return value


def _call(call_id: Any, name: Any, args: Any) -> dict[str, Any]:
    parsed = _args(args if args is not None else {})
    return {
        "name": str(name or ""),
        "args": parsed if isinstance(parsed, dict) else {"input": parsed},
        "id": str(call_id) if call_id else None,
        "type": "tool_call",
    }


def _from_generations(value: Any) -> dict[str, Any] | None:
    """The first generation of a LangChain ``LLMResult`` (OpenInference's ``output.value``)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("generations"), list):
        return None
    for batch in value["generations"]:
        for generation in batch if isinstance(batch, list) else [batch]:
            if not isinstance(generation, Mapping):
                continue
            message = _lc_message(generation.get("message"))
            if message is not None and message[0] == "ai":
                return {"type": "ai", "data": {**message[1], "type": "ai"}}
            if isinstance(generation.get("text"), str):
                return _ai_dict(generation["text"], [])
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _oi_calls(message: Mapping[str, Any]) -> list[tuple[Any, Any, Any]]:
    """``(id, name, arguments)`` of each ``tool_calls.N.tool_call`` of a flattened message."""
    calls = []
    for entry in _list(message.get("tool_calls")):
        call = entry.get("tool_call") if isinstance(entry, Mapping) else None
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(call, Mapping) and isinstance(function, Mapping) and function.get("name"):
            calls.append((call.get("id"), function["name"], function.get("arguments")))
    return calls


def _oi_content(message: Mapping[str, Any]) -> Any:
    """``content``, else the text of its ``contents.N.message_content`` parts."""
    if isinstance(message.get("content"), str):
        return message["content"]
    texts = [
        str(part["message_content"].get("text", ""))
        for part in _list(message.get("contents"))
        if isinstance(part, Mapping) and isinstance(part.get("message_content"), Mapping)
    ]
    return "".join(texts) if texts else None


def _from_oi_message(message: Mapping[str, Any]) -> dict[str, Any]:
    calls = [_call(*call) for call in _oi_calls(message)]
    return _ai_dict(_oi_content(message), calls)


def _from_parts(message: Mapping[str, Any]) -> dict[str, Any]:
    """A GenAI-conventions ``{"role", "parts": [...]}`` answer (OpenLLMetry)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in _list(message.get("parts")):
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("content", "")))
        elif part.get("type") == "tool_call":
            calls.append(_call(part.get("id"), part.get("name"), part.get("arguments")))
    return _ai_dict("".join(texts), calls)


def _from_legacy_completion(message: Mapping[str, Any]) -> dict[str, Any]:
    calls = [
        _call(c.get("id"), c.get("name"), c.get("arguments"))
        for c in _list(message.get("tool_calls"))
        if isinstance(c, Mapping) and c.get("name")
    ]
    content = message.get("content")
    return _ai_dict(content if isinstance(content, str) else None, calls)


def other_output_message(attrs: Mapping[str, str]) -> dict[str, Any] | None:
    """A model answer recorded by another SDK, as ``message_to_dict``; None when none was kept.

    Tried in order: GenAI ``parts`` output messages, OpenInference's serialized ``LLMResult`` in
    ``output.value`` (the exact message, ids included), its flattened ``llm.output_messages``,
    older OpenLLMetry's ``gen_ai.completion.N``.
    """
    outputs = _json(_get(attrs, A.GEN_AI_OUTPUT_MESSAGES))
    if isinstance(outputs, list):
        answers = [
            m for m in outputs if isinstance(m, Mapping) and isinstance(m.get("parts"), list)
        ]
        if answers:
            return _from_parts(answers[-1])
    from_result = _from_generations(_json(_get(attrs, A.OI_OUTPUT_VALUE)))
    if from_result is not None:
        return from_result
    flattened = [
        m.get("message")
        for m in unflatten(attrs, A.OI_LLM_OUTPUT_MESSAGES)
        if isinstance(m, Mapping)
    ]
    oi_messages = [m for m in flattened if isinstance(m, Mapping)]
    if oi_messages:
        return _from_oi_message(oi_messages[0])
    legacy = [m for m in unflatten(attrs, A.TL_COMPLETION) if isinstance(m, Mapping)]
    if legacy:
        return _from_legacy_completion(legacy[0])
    return None


def _oi_input_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """One flattened OpenInference input message as an OpenAI-style dict."""
    out: dict[str, Any] = {"role": message.get("role", ""), "content": _oi_content(message)}
    calls = [
        {
            "id": call_id or "",
            "type": "function",
            "function": {"name": name, "arguments": arguments or "{}"},
        }
        for call_id, name, arguments in _oi_calls(message)
    ]
    if calls:
        out["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        if key in message:
            out[key] = message[key]
    return out


def other_input_messages(attrs: Mapping[str, str]) -> list[dict[str, Any]]:
    """The request messages of a model call another SDK recorded; [] when none were kept.

    OpenInference's ``input.value`` (``{"messages": [[<dumpd message>, ...]]}``) first, then its
    flattened ``llm.input_messages``, then older OpenLLMetry's ``gen_ai.prompt.N``.
    """
    value = _json(_get(attrs, A.OI_INPUT_VALUE))
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        flat: list[dict[str, Any]] = []
        for item in value["messages"]:
            for message in item if isinstance(item, list) else [item]:
                if isinstance(message, Mapping):
                    flat.append(dict(message))
        if flat:
            return flat
    flattened = [
        m.get("message")
        for m in unflatten(attrs, A.OI_LLM_INPUT_MESSAGES)
        if isinstance(m, Mapping)
    ]
    oi_messages = [_oi_input_message(m) for m in flattened if isinstance(m, Mapping)]
    if oi_messages:
        return oi_messages
    return [dict(m) for m in unflatten(attrs, A.TL_PROMPT) if isinstance(m, Mapping)]


def _unwrap_traceloop(value: Any, key: str) -> Any:
    """OpenLLMetry's ``{"inputs": X, "tags", "metadata", "kwargs"}`` (or ``outputs``/``output``)
    wrapper around a LangChain callback's value: X."""
    if isinstance(value, Mapping) and key in value:
        return value[key]
    return value


def other_tool_arguments(attrs: Mapping[str, str]) -> tuple[Any, str]:
    """``(arguments, tool_call_id)`` of a tool span another SDK wrote; arguments None if hidden.

    OpenLLMetry records ``{"input_str", "inputs": {...}, "kwargs": {"tool_call_id"}}``;
    OpenInference records the tool's input string (a JSON object, or the bare value of a
    one-argument tool such as ``France``).
    """
    traceloop = A.TL_SPAN_KIND in attrs
    raw = _get(attrs, A.GEN_AI_TOOL_CALL_ARGUMENTS) if traceloop else None
    raw = raw or _get(attrs, A.TL_ENTITY_INPUT) or _get(attrs, A.OI_INPUT_VALUE)
    value = _json(raw)
    call_id = ""
    if traceloop and isinstance(value, Mapping) and ("inputs" in value or "input_str" in value):
        kwargs = value.get("kwargs")
        if isinstance(kwargs, Mapping) and kwargs.get("tool_call_id"):
            call_id = str(kwargs["tool_call_id"])
        inputs = value.get("inputs")
        if not isinstance(inputs, Mapping) and isinstance(value.get("input_str"), str):
            try:  # the tool input as Python's repr of a dict
                inputs = ast.literal_eval(value["input_str"])
            except (ValueError, SyntaxError):
                inputs = value["input_str"]
        value = inputs
    return value, call_id


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool returned as another SDK recorded it."""

    content: Any  # the text the tool gave the model (a ToolMessage's content)
    tool_call_id: str = ""
    failed: bool = False  # a ToolMessage with status "error"


def other_tool_output(attrs: Mapping[str, str]) -> ToolOutput | None:
    """A tool's result from another SDK's span; None when it recorded none (or hid it).

    A LangChain ``ToolMessage`` (OpenInference: ``message_to_dict`` JSON in ``output.value``;
    OpenLLMetry: ``dumpd`` inside ``{"output": ...}``) gives its content, call id and status;
    any other value is the result as recorded.
    """
    traceloop = A.TL_SPAN_KIND in attrs
    raw = _get(attrs, A.GEN_AI_TOOL_CALL_RESULT) if traceloop else None
    raw = raw or _get(attrs, A.TL_ENTITY_OUTPUT) or _get(attrs, A.OI_OUTPUT_VALUE)
    if raw is None:
        return None
    value = _json(raw)
    if traceloop:
        value = _unwrap_traceloop(value, "output")
    message = _lc_message(value)
    if message is not None and message[0] == "tool":
        fields = message[1]
        content = fields.get("content")
        return ToolOutput(
            content if isinstance(content, str) else json.dumps(content),
            str(fields.get("tool_call_id") or ""),
            fields.get("status") == "error",
        )
    if traceloop:
        return ToolOutput(value if isinstance(value, str) else json.dumps(value))
    return ToolOutput(raw)


def other_tool_definitions(attrs: Mapping[str, str]) -> list[dict[str, Any]]:
    """The tools offered to a model, from OpenInference's ``llm.tools.N.tool.json_schema``."""
    out: list[dict[str, Any]] = []
    for entry in unflatten(attrs, A.OI_LLM_TOOLS):
        tool = entry.get("tool") if isinstance(entry, Mapping) else None
        schema = _json(tool.get("json_schema")) if isinstance(tool, Mapping) else None
        if isinstance(schema, Mapping):
            out.append(dict(schema))
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: their text
        return "".join(
            str(b.get("text", "")) if isinstance(b, Mapping) else str(b) for b in content
        )
    return json.dumps(content, default=str)


def run_text(value: Any) -> str:
    """A readable input/output of a graph run, as Retrace's ``instrument`` records one: the last
    message's text when the value is a ``{"messages": [...]}`` state, else its JSON."""
    messages = value.get("messages") if isinstance(value, Mapping) else None
    if isinstance(messages, list) and messages:
        last = messages[-1]
        parsed = _lc_message(last)
        if parsed is not None:
            return _text(parsed[1].get("content", ""))
        if isinstance(last, list) and len(last) == 2:
            return _text(last[1])
        if isinstance(last, Mapping):
            return _text(last.get("content", ""))
        return _text(last)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def graph_output_value(attrs: Mapping[str, str]) -> Any:
    """What the graph returned, from its root chain span; None when not recorded."""
    if A.TL_SPAN_KIND in attrs:
        raw = _get(attrs, A.TL_ENTITY_OUTPUT)
        return None if raw is None else _unwrap_traceloop(_json(raw), "outputs")
    raw = _get(attrs, A.OI_OUTPUT_VALUE)
    return None if raw is None else _json(raw)


def graph_input_value(attrs: Mapping[str, str]) -> Any:
    """The input a graph was invoked with, from its root chain span; None when not recorded.

    OpenInference: ``input.value`` is the JSON of the input (``{"messages": [["user", "..."]]}``);
    OpenLLMetry: ``traceloop.entity.input`` wraps it as ``{"inputs": ...}``.
    """
    if A.TL_SPAN_KIND in attrs:
        raw = _get(attrs, A.TL_ENTITY_INPUT)
        return None if raw is None else _unwrap_traceloop(_json(raw), "inputs")
    raw = _get(attrs, A.OI_INPUT_VALUE)
    return None if raw is None else _json(raw)

"""Short human-readable previews of a span's input and output, for trace lists.

A root span's or chat span's payloads (run input/output, GenAI messages, OpenInference and
OpenLLMetry values) become at most ``PREVIEW_CHARS`` characters of text on one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    OI_INPUT_VALUE,
    OI_OUTPUT_VALUE,
    RETRACE_RUN_INPUT,
    RETRACE_RUN_OUTPUT,
    TL_ENTITY_INPUT,
    TL_ENTITY_OUTPUT,
)

PREVIEW_CHARS: Final = 300

_INPUT_KEYS: Final = (RETRACE_RUN_INPUT, GEN_AI_INPUT_MESSAGES, OI_INPUT_VALUE, TL_ENTITY_INPUT)
_OUTPUT_KEYS: Final = (
    RETRACE_RUN_OUTPUT,
    GEN_AI_OUTPUT_MESSAGES,
    OI_OUTPUT_VALUE,
    TL_ENTITY_OUTPUT,
)
_MESSAGE_KEYS: Final = frozenset({GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES})


def previews(texts: Mapping[str, str]) -> tuple[str, str]:
    """The input and output previews of a span, from its payload texts by attribute key."""
    input_preview = output_preview = ""
    for key in _INPUT_KEYS:
        text = texts.get(key)
        if text:
            input_preview = message_preview(text, role="user" if key in _MESSAGE_KEYS else None)
            if input_preview:
                break
    for key in _OUTPUT_KEYS:
        text = texts.get(key)
        if text:
            output_preview = message_preview(text, role=None)
            if output_preview:
                break
    return input_preview, output_preview


def message_preview(text: str, *, role: str | None) -> str:
    """A short human-readable preview of a message list or a plain/JSON text payload.

    For a GenAI message list (``[{"role", "parts"|"content"}]``) it is the text of the last
    message with ``role`` (or the last message when ``role`` is None); JSON strings are unquoted;
    anything else is the text itself. At most ``PREVIEW_CHARS`` characters, whitespace collapsed.
    """
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{", '"'):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            value = None
        else:
            extracted = _preview_from_json(value, role)
            if extracted is not None:
                return _shorten(extracted)
    return _shorten(text)


def _preview_from_json(value: Any, role: str | None) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "role" in value or "parts" in value or "content" in value:
            return _message_text(value)
        for key in ("input", "output", "text", "content", "answer", "result", "query", "task"):
            inner = value.get(key)
            if isinstance(inner, str):
                return inner
        return None
    if isinstance(value, list):
        # The last message with the wanted role, else the last message.
        fallback: dict[str, Any] | None = None
        for message in reversed(value):
            if isinstance(message, dict):
                if role is None or message.get("role") == role:
                    return _message_text(message)
                if fallback is None:
                    fallback = message
        return _message_text(fallback) if fallback is not None else None
    return None


def _message_text(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    pieces: list[str] = []
    parts = message.get("parts")
    if not isinstance(parts, list):
        parts = content if isinstance(content, list) else []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict):
            part_text = part.get("content", part.get("text"))
            if isinstance(part_text, str):
                pieces.append(part_text)
            elif part.get("type") == "tool_call" and isinstance(part.get("name"), str):
                pieces.append(f"[tool call: {part['name']}]")
    if not pieces:
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                if isinstance(call, dict):
                    name = call.get("name")
                    function = call.get("function")
                    if not isinstance(name, str) and isinstance(function, dict):
                        name = function.get("name")
                    if isinstance(name, str):
                        pieces.append(f"[tool call: {name}]")
    return " ".join(pieces) if pieces else None


def _shorten(text: str) -> str:
    """At most ``PREVIEW_CHARS`` characters on one line, runs of whitespace as one space."""
    head = text[: PREVIEW_CHARS + 64]
    if "\n" in head or "\r" in head or "\t" in head:
        head = head.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if "  " in head:
        head = " ".join(head.split())
    head = head.strip()
    if len(head) > PREVIEW_CHARS:
        return head[: PREVIEW_CHARS - 1] + "…"
    return head

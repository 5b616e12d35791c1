"""Turn span payloads into things people read: conversations, JSON values, workspace listings.

Pure. Accepts the GenAI semantic-convention message shape (``role`` + ``parts``), the OpenAI
chat shape (``role`` + ``content`` + ``tool_calls``) and LangChain message dumps, because spans
come from any OpenTelemetry SDK, not only Retrace's runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Beyond this, a payload is cut and the page offers "show all".
PREVIEW_CHARS = 4_000

_ROLE_ALIASES = {"human": "user", "ai": "assistant", "AIMessage": "assistant"}


@dataclass(frozen=True)
class ChatPart:
    kind: str  # text | tool_call | tool_result | other
    text: str = ""
    name: str = ""
    call_id: str = ""
    data: Any = None


@dataclass(frozen=True)
class ChatTurn:
    role: str
    parts: list[ChatPart] = field(default_factory=list)
    finish_reason: str = ""


def parse_json(text: str) -> Any:
    """The JSON value of ``text``, or ``text`` itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def truncate(text: str, limit: int = PREVIEW_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        texts = [
            str(item.get("text", item.get("content", "")))
            for item in value
            if isinstance(item, dict)
        ]
        if texts:
            return "\n".join(texts)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _arguments(value: Any) -> Any:
    return parse_json(value) if isinstance(value, str) else value


def _turn(message: dict[str, Any]) -> ChatTurn:
    if "data" in message and isinstance(message["data"], dict) and "type" in message:
        # LangChain dumpd(): {"type": "human", "data": {"content": ...}}
        inner = dict(message["data"])
        inner.setdefault("role", message["type"])
        message = inner
    role = str(message.get("role") or message.get("type") or "unknown")
    role = _ROLE_ALIASES.get(role, role)
    parts: list[ChatPart] = []
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            parts.append(ChatPart("text", text=str(part)))
            continue
        kind = part.get("type", "")
        if kind == "text":
            parts.append(ChatPart("text", text=_as_text(part.get("content", ""))))
        elif kind == "tool_call":
            parts.append(
                ChatPart(
                    "tool_call",
                    name=str(part.get("name", "")),
                    call_id=str(part.get("id", "")),
                    data=_arguments(part.get("arguments")),
                )
            )
        elif kind == "tool_call_response":
            parts.append(
                ChatPart(
                    "tool_result",
                    call_id=str(part.get("id", "")),
                    data=_arguments(part.get("response", part.get("result"))),
                )
            )
        else:
            parts.append(ChatPart("other", name=str(kind), data=part))
    content = message.get("content")
    if content not in (None, "", []):
        if role == "tool":
            parts.append(
                ChatPart(
                    "tool_result",
                    call_id=str(message.get("tool_call_id", "")),
                    data=_arguments(content) if isinstance(content, str) else content,
                )
            )
        else:
            parts.append(ChatPart("text", text=_as_text(content)))
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        nested = call.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else call
        parts.append(
            ChatPart(
                "tool_call",
                name=str(function.get("name", "")),
                call_id=str(call.get("id", "")),
                data=_arguments(function.get("arguments", function.get("args"))),
            )
        )
    return ChatTurn(role=role, parts=parts, finish_reason=str(message.get("finish_reason", "")))


def parse_messages(raw: str) -> list[ChatTurn] | None:
    """The conversation in a messages payload, or None when it is not a message list."""
    value = parse_json(raw)
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            value = value["messages"]
        elif "role" in value or "parts" in value or "content" in value:
            value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return None
    return [_turn(item) for item in value]


@dataclass(frozen=True)
class WorkspaceFile:
    path: str
    sha256: str  # empty for directories and symlinks
    size: int
    kind: str = "file"  # file | dir | link
    target: str = ""  # for symlinks


def parse_manifest(raw: bytes) -> list[WorkspaceFile]:
    """Entries of a workspace snapshot manifest, by path.

    The manifest (runner.sandbox.WorkspaceSnapshots) maps each relative path to
    ``{"hash", "mode", "size"}`` for a file, ``{"link": target}`` or ``{"dir": true}``.
    Anything else (not JSON, not an object) lists nothing.
    """
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    if not isinstance(value, dict):
        return []
    result: list[WorkspaceFile] = []
    for path, entry in value.items():
        if not isinstance(entry, dict):
            continue
        if "hash" in entry:
            size = entry.get("size", -1)
            result.append(
                WorkspaceFile(str(path), str(entry["hash"]), size if isinstance(size, int) else -1)
            )
        elif "link" in entry:
            result.append(WorkspaceFile(str(path), "", -1, "link", str(entry["link"])))
        elif entry.get("dir") is True:
            result.append(WorkspaceFile(str(path), "", -1, "dir"))
    return sorted(result, key=lambda f: f.path)


def looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < 8190  # a cut multibyte char at the very end is not binary
    return False

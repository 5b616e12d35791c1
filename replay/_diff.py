"""Structured JSON diffs of messages and arguments, with volatile fields ignored.

Pure functions over plain JSON values. Paths are JSON-pointer-like (``/messages/2/content``).
Volatile fields — ids, timestamps, durations, token usage, provider metadata — are dropped by
default, wherever they appear; users add their own rules (path globs, path regexes, and value
regexes whose matches are masked) through :class:`DiffConfig`, loadable from a YAML/JSON file.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from schemas.errors import ConfigError
from schemas.models import DiffEntry, Step

# Keys whose values change between two runs of the same code and mean nothing for behaviour.
DEFAULT_VOLATILE_KEYS: frozenset[str] = frozenset(
    {
        "id",
        "ids",
        "tool_call_id",
        "call_id",
        "run_id",
        "trace_id",
        "span_id",
        "timestamp",
        "timestamps",
        "time",
        "created",
        "created_at",
        "updated_at",
        "start_time",
        "end_time",
        "duration",
        "duration_ms",
        "duration_ns",
        "latency",
        "latency_ms",
        "elapsed",
        "usage_metadata",
        "response_metadata",
        "system_fingerprint",
    }
)
MASK = "<masked>"


@dataclass(frozen=True)
class DiffConfig:
    """What to ignore when comparing two runs.

    ``volatile_keys``: object keys dropped at any depth. ``ignore_paths``: globs over paths
    (``/arguments/*/seed``, ``**`` allowed as ``*``). ``ignore_path_regexes``: regexes searched in
    paths. ``mask_patterns``: regexes whose matches inside string values are replaced by
    ``<masked>`` before comparing (e.g. a timestamp a tool prints).
    """

    volatile_keys: frozenset[str] = DEFAULT_VOLATILE_KEYS
    ignore_paths: tuple[str, ...] = ()
    ignore_path_regexes: tuple[str, ...] = ()
    mask_patterns: tuple[str, ...] = ()
    _compiled_paths: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _compiled_masks: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            paths = tuple(re.compile(p) for p in self.ignore_path_regexes)
            masks = tuple(re.compile(p) for p in self.mask_patterns)
        except re.error as exc:
            raise ConfigError(f"invalid ignore regex {exc.pattern!r}: {exc}") from None
        object.__setattr__(self, "_compiled_paths", paths)
        object.__setattr__(self, "_compiled_masks", masks)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "ignore rules") -> DiffConfig:
        """Build from ``{ignore_keys, keep_keys, ignore_paths, ignore_path_regexes, mask}``."""
        known = {"ignore_keys", "keep_keys", "ignore_paths", "ignore_path_regexes", "mask"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: '{key}' must be a list of strings")
            return tuple(value)

        keys = (DEFAULT_VOLATILE_KEYS | set(strings("ignore_keys"))) - set(strings("keep_keys"))
        return cls(
            volatile_keys=frozenset(keys),
            ignore_paths=strings("ignore_paths"),
            ignore_path_regexes=strings("ignore_path_regexes"),
            mask_patterns=strings("mask"),
        )

    @classmethod
    def load(cls, path: Path | str) -> DiffConfig:
        """Load ignore rules from a YAML or JSON file; ``ConfigError`` names what is wrong."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read ignore rules {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"ignore rules {path} are not valid YAML/JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"ignore rules {path}: expected a mapping at the top level")
        return cls.from_mapping(data, source=str(path))

    def ignores(self, path: str) -> bool:
        """Whether a path is ignored by a user glob or regex rule."""
        if any(fnmatch.fnmatchcase(path, glob) for glob in self.ignore_paths):
            return True
        return any(p.search(path) for p in self._compiled_paths)

    def mask(self, text: str) -> str:
        for pattern in self._compiled_masks:
            text = pattern.sub(MASK, text)
        return text


DEFAULT_CONFIG = DiffConfig()


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _normalize_fast(value: Any, volatile: frozenset[str], config: DiffConfig) -> Any:
    """:func:`normalize` when no path rule exists: no path strings to build."""
    if isinstance(value, Mapping):
        return {
            str(k): _normalize_fast(value[k], volatile, config)
            for k in sorted(value, key=str)
            if str(k) not in volatile
        }
    if isinstance(value, list | tuple):
        return [_normalize_fast(item, volatile, config) for item in value]
    if isinstance(value, str):
        return config.mask(value) if config.mask_patterns else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalize(value: Any, config: DiffConfig = DEFAULT_CONFIG, path: str = "") -> Any:
    """A copy of a JSON value with volatile keys and ignored paths dropped and masks applied."""
    if not config.ignore_paths and not config.ignore_path_regexes:
        return _normalize_fast(value, config.volatile_keys, config)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            skey = str(key)
            child = f"{path}/{_escape(skey)}"
            if skey in config.volatile_keys or config.ignores(child):
                continue
            out[skey] = normalize(value[key], config, child)
        return out
    if isinstance(value, list | tuple):
        return [
            normalize(item, config, f"{path}/{i}")
            for i, item in enumerate(value)
            if not config.ignores(f"{path}/{i}")
        ]
    if isinstance(value, str):
        return config.mask(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_diff(
    recorded: Any, replayed: Any, config: DiffConfig = DEFAULT_CONFIG, path: str = ""
) -> list[DiffEntry]:
    """Differences between two JSON values, in path order; empty when equal after normalizing."""
    return _diff(normalize(recorded, config, path), normalize(replayed, config, path), path)


def _diff(a: Any, b: Any, path: str) -> list[DiffEntry]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[DiffEntry] = []
        for key in sorted(set(a) | set(b)):
            child = f"{path}/{_escape(key)}"
            if key not in b:
                out.append(DiffEntry(path=child, op="remove", recorded=a[key]))
            elif key not in a:
                out.append(DiffEntry(path=child, op="add", replayed=b[key]))
            else:
                out.extend(_diff(a[key], b[key], child))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            child = f"{path}/{i}"
            if i >= len(b):
                out.append(DiffEntry(path=child, op="remove", recorded=a[i]))
            elif i >= len(a):
                out.append(DiffEntry(path=child, op="add", replayed=b[i]))
            else:
                out.extend(_diff(a[i], b[i], child))
        return out
    if a == b and type(a) is type(b):  # strict: false != 0, 1 != "1"
        return []
    return [DiffEntry(path=path or "/", op="change", recorded=a, replayed=b)]


# --- messages ---------------------------------------------------------------------------------

_ROLE_OF_TYPE = {
    "ai": "assistant",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "human": "user",
    "HumanMessage": "user",
    "system": "system",
    "SystemMessage": "system",
    "tool": "tool",
    "ToolMessage": "tool",
    "function": "tool",
}


def loads_maybe(value: Any) -> Any:
    """A JSON string parsed (for structured diffs); anything else unchanged."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _content_text(content: Any) -> Any:
    """Text content blocks joined into one string; other content kept as is."""
    if isinstance(content, list):
        texts: list[str] = []
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, Mapping) and block.get("type") in ("text", None):
                texts.append(str(block.get("text", block.get("content", ""))))
            else:
                return content
        return "".join(texts)
    return "" if content is None else content


def _canonical_call(call: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(call.get("function"), Mapping):  # OpenAI wire format
        function = call["function"]
        return {
            "name": str(function.get("name", "")),
            "args": loads_maybe(function.get("arguments", {})),
        }
    args = call.get("args", call.get("arguments", {}))
    return {"name": str(call.get("name", "")), "args": loads_maybe(args)}


def canonical_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """One message in a single comparable shape: ``{role, content, tool_calls}``.

    Accepts LangChain ``message_to_dict`` / ``dumpd`` / ``model_dump`` shapes, OpenAI wire format
    and the GenAI semantic-convention ``parts`` shape, so a recording and a replay serialized by
    different code still compare by meaning.
    """
    msg: Mapping[str, Any] = message
    if isinstance(msg.get("data"), Mapping) and "type" in msg:  # message_to_dict
        msg = {**msg["data"], "type": msg["type"]}
    elif msg.get("lc") == 1 and isinstance(msg.get("kwargs"), Mapping):  # dumpd
        ident = msg.get("id") or []
        msg = {**msg["kwargs"], "type": ident[-1] if ident else ""}
    role = str(msg.get("role") or _ROLE_OF_TYPE.get(str(msg.get("type", "")), msg.get("type", "")))
    if role in ("human",):
        role = "user"
    if role in ("ai", "model"):
        role = "assistant"
    content: Any = msg.get("content")
    calls: list[dict[str, Any]] = []
    if isinstance(msg.get("parts"), list):  # GenAI conventions
        texts: list[str] = []
        for part in msg["parts"]:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                calls.append(_canonical_call(part))
            elif kind == "tool_call_response":
                response = part.get("response", part.get("result"))
                texts.append(response if isinstance(response, str) else json.dumps(response))
        content = "".join(texts) if content is None else content
    for call in msg.get("tool_calls") or []:
        if isinstance(call, Mapping):
            calls.append(_canonical_call(call))
    # ``name`` is left out: some shapes carry it on tool messages and others do not.
    return {"role": role, "content": _content_text(content), "tool_calls": calls}


def canonical_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [canonical_message(m) for m in messages]


def canonical_tool(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A tool definition as ``{name, description, parameters}`` whatever its wire shape."""
    spec: Mapping[str, Any] = definition
    if isinstance(spec.get("function"), Mapping):
        spec = spec["function"]
    return {
        "name": str(spec.get("name", "")),
        "description": str(spec.get("description", "")),
        "parameters": spec.get("parameters", spec.get("input_schema", spec.get("inputSchema", {}))),
    }


# --- message histories, canonicalized once per distinct message ------------------------------


@dataclass(frozen=True)
class NormalizedMessage:
    """One message, canonical and normalized, with its canonical JSON (``strict``: that JSON is
    exact, no ``default=str`` stand-ins nor NaN, so equal JSON means no difference)."""

    value: Any
    key: str
    strict: bool


class MessageMemo:
    """Canonical normalized messages, computed once per distinct message.

    A run's history repeats in every later request (request N carries the N-1 messages before
    it), so canonicalizing whole histories per request is quadratic over a run. This memo
    keys each raw message by its exact JSON and keeps its normalized form; comparing two
    histories is then message by message, and only messages whose canonical JSON differs are
    diffed. Results are those of ``json_diff(canonical_messages(a), canonical_messages(b))``.
    Path rules (``ignore_paths``/``ignore_path_regexes``) depend on a message's position:
    with them the memo is bypassed.
    """

    def __init__(self, config: DiffConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.usable = not config.ignore_paths and not config.ignore_path_regexes
        self._memo: dict[str, NormalizedMessage] = {}
        # id(owner) -> (owner, its history): a recorded step's request is checked during the
        # replay and again by the report (the owner is kept, so its id is not reused)
        self._owned: dict[int, tuple[Any, list[NormalizedMessage]]] = {}

    def _compute(self, raw: Mapping[str, Any]) -> NormalizedMessage:
        value = _normalize_fast(canonical_message(raw), self.config.volatile_keys, self.config)
        try:
            key = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
            strict = True
        except (TypeError, ValueError):
            key = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
            strict = False
        return NormalizedMessage(value, key, strict)

    def message(self, raw: Mapping[str, Any]) -> NormalizedMessage:
        """``raw`` canonical and normalized (path rules aside: see :attr:`usable`)."""
        try:  # NaN may share a key: normalizing it is a pure function of the raw JSON anyway
            memo_key = json.dumps(raw)
        except (TypeError, ValueError):  # not plain JSON: no exact key, computed every time
            return self._compute(raw)
        found = self._memo.get(memo_key)
        if found is None:
            found = self._memo[memo_key] = self._compute(raw)
        return found

    def history(self, messages: Iterable[Mapping[str, Any]]) -> list[NormalizedMessage]:
        return [self.message(m) for m in messages]

    def owned_history(
        self, owner: Any, messages: Iterable[Mapping[str, Any]]
    ) -> list[NormalizedMessage]:
        """:meth:`history` of messages that belong to ``owner`` (a recorded step: not changed
        while this memo lives), computed once per owner."""
        found = self._owned.get(id(owner))
        if found is None or found[0] is not owner:
            found = self._owned[id(owner)] = (owner, self.history(messages))
        return found[1]

    def diff(
        self,
        recorded: Iterable[Mapping[str, Any]],
        replayed: Iterable[Mapping[str, Any]],
        path: str = "",
    ) -> list[DiffEntry]:
        """``json_diff(canonical_messages(recorded), canonical_messages(replayed), config,
        path)``, message by message."""
        if not self.usable:
            return json_diff(
                canonical_messages(recorded), canonical_messages(replayed), self.config, path
            )
        return self.diff_normalized(self.history(recorded), self.history(replayed), path)

    def diff_request(
        self, step: Step, replayed: Iterable[Mapping[str, Any]], path: str = "/input_messages"
    ) -> list[DiffEntry]:
        """A replayed request's history against recorded ``step``'s (whose history is
        canonicalized once per step, as the report reads it again)."""
        if not self.usable:
            return self.diff(step.input_messages, replayed, path)
        return self.diff_normalized(
            self.owned_history(step, step.input_messages), self.history(replayed), path
        )

    @staticmethod
    def diff_normalized(
        a: list[NormalizedMessage], b: list[NormalizedMessage], path: str = ""
    ) -> list[DiffEntry]:
        out: list[DiffEntry] = []
        for i in range(max(len(a), len(b))):
            child = f"{path}/{i}"
            if i >= len(b):
                out.append(DiffEntry(path=child, op="remove", recorded=a[i].value))
            elif i >= len(a):
                out.append(DiffEntry(path=child, op="add", replayed=b[i].value))
            elif not (a[i].strict and b[i].strict and a[i].key == b[i].key):
                out.extend(_diff(a[i].value, b[i].value, child))
        return out

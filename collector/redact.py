"""Secret redaction applied to span attributes and payloads before anything is stored.

Secrets in free text (API keys, cloud credentials, tokens, passwords in URLs, private keys, JWTs,
``password=...`` style fields) are replaced by ``[REDACTED:<kind>]``; attributes whose *key* names a
secret (``api_key``, ``password``, ``authorization``...) lose their whole value. Token *counts*
(``gen_ai.usage.input_tokens``, ``llm.token_count.prompt``) are not secrets and are kept.
Replacements never contain quotes or backslashes, so redacting inside JSON text keeps it JSON.

This runs on the ingest hot path. ``may_contain_secret`` answers for a whole request body at once
with one Hyperscan pass (all rules compiled into one automaton, well under a nanosecond per byte);
a clean body, the usual case, needs no per-value work at all. Each rule's regular expression then
only runs on text that contains one of its candidate substrings. On platforms without Hyperscan
the same answers come from plain substring checks, only slower.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

# Hyperscan ships wheels for x86-64 only; elsewhere the pure-Python path gives the same answers.
_hyperscan: ModuleType | None
try:
    import hyperscan as _hyperscan_module

    _hyperscan = _hyperscan_module
except ImportError:  # pragma: no cover - exercised on non-x86 platforms only
    _hyperscan = None

__all__ = [
    "SCANNER",
    "is_secret_key",
    "may_contain_secret",
    "redact_attributes",
    "redact_text",
    "redact_value",
    "redaction_marker",
]

_TOKEN_CHARS: Final = r"A-Za-z0-9_\-"
_FLAGS: Final = re.ASCII


def redaction_marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    # Lower-case substrings: the rule's regex runs only if one occurs in the lower-cased text.
    candidates: tuple[str, ...]
    pattern: re.Pattern[str]
    # A Hyperscan expression matching (at least) wherever ``pattern`` matches; kept loose where
    # that is cheaper to compile.
    prefilter: str
    prefilter_caseless: bool = False
    # Group whose span is replaced; 0 = the whole match, -1 = whichever group matched.
    group: int = 0


_SECRET_FIELD_WORDS: Final = (
    r"api[_-]?key|apikey|password|passwd|pwd|secret|private[_-]?key"
    r"|(?:access|auth|refresh|id|session)[_-]?token"
)
_SECRET_FIELD_PREFIX: Final = rf"(?:{_SECRET_FIELD_WORDS})(?:[_-][A-Za-z0-9_-]*)?\\?[\"']?\s*[:=]"
# The prefilter also allows JSON escapes between the name and the colon, however deeply nested.
_SECRET_FIELD_PREFILTER: Final = (
    rf"(?:{_SECRET_FIELD_WORDS})([_-][A-Za-z0-9_-]*)?[\\\"']*(\s|\\[nrt])*[:=]"
)

# Order matters: more specific rules first (an Anthropic key also looks like an OpenAI key; a
# bearer JWT is reported as a bearer token).
_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private_key",
        ("-----begin",),
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
            r"(?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
            _FLAGS | re.DOTALL,
        ),
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----",
    ),
    _Rule(
        "bearer_token",
        ("bearer",),
        re.compile(
            r"(?i:\bbearer)(?:\s|\\[nrt])+"
            r"((?=[A-Za-z0-9\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{8,}=*)",
            _FLAGS,
        ),
        r"bearer(\s|\\[nrt])+[A-Za-z0-9\-._~+/]{8}",
        prefilter_caseless=True,
        group=1,
    ),
    _Rule(
        "basic_auth",
        ("authorization",),
        re.compile(
            r"(?i:authorization)\\?[\"']?\s*[:=]\s*\\?[\"']?(?i:basic)\s+([A-Za-z0-9+/]{6,}={0,2})",
            _FLAGS,
        ),
        r"authorization",
        prefilter_caseless=True,
        group=1,
    ),
    _Rule(
        "anthropic_key",
        ("sk-ant-",),
        re.compile(rf"\bsk-ant-[{_TOKEN_CHARS}]{{16,}}", _FLAGS),
        rf"sk-ant-[{_TOKEN_CHARS}]{{8}}",
    ),
    _Rule(
        "openai_key",
        ("sk-",),
        re.compile(rf"\bsk-(?=[{_TOKEN_CHARS}]*[0-9])[{_TOKEN_CHARS}]{{20,}}", _FLAGS),
        rf"sk-[{_TOKEN_CHARS}]{{8}}",
    ),
    _Rule(
        "aws_access_key",
        ("akia", "asia"),
        re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", _FLAGS),
        r"(AKIA|ASIA)[0-9A-Z]{16}",
    ),
    _Rule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", _FLAGS),
        r"gh[pousr]_[A-Za-z0-9]{8}|github_pat_[A-Za-z0-9_]{8}",
    ),
    _Rule(
        "slack_token",
        ("xox",),
        re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _FLAGS),
        r"xox[abposr]-[A-Za-z0-9-]{10}",
    ),
    _Rule(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{10,}", _FLAGS),
        r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{10}",
    ),
    _Rule(
        "jwt",
        ("eyj",),
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _FLAGS),
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ",
    ),
    _Rule(
        "url_password",
        ("://",),
        re.compile(
            r"\b[a-zA-Z][a-zA-Z0-9+.\-]{0,30}://[^\s:@/\"'\\]*:(?!\[REDACTED:)([^\s@/\"'\\]+)@",
            _FLAGS,
        ),
        r"://[^\s:@/\"'\\]*:[^\s@/\"'\\]+@",
        group=1,
    ),
    _Rule(
        "secret_field",
        (
            "key",
            "pass",
            "pwd",
            "secret",
            "token",
        ),
        re.compile(
            rf"(?i:{_SECRET_FIELD_PREFIX})\s*(?!\\?[\"']?\[REDACTED:)"
            r"(?:\\\"((?:[^\"\\]|\\\\)+)\\\"|\"((?:[^\"\\]|\\.)+)\"|'([^'\\\n]+)'"
            r"|(?!(?:true|false|null)\b)(?=[^\s\"',;}&\\\]]*[A-Za-z_])([^\s\"',;}&\\\]]+))",
            _FLAGS,
        ),
        _SECRET_FIELD_PREFILTER,
        prefilter_caseless=True,
        group=-1,
    ),
)


def _replacer(rule: _Rule) -> Callable[[re.Match[str]], str]:
    marker = redaction_marker(rule.kind)
    if rule.group == 0:
        return lambda m: marker

    def replace(m: re.Match[str]) -> str:
        group = rule.group if rule.group > 0 else (m.lastindex or 0)
        start, end = m.span(group)
        base = m.start()
        whole = m.group(0)
        return whole[: start - base] + marker + whole[end - base :]

    return replace


_COMPILED: Final = tuple((rule, _replacer(rule)) for rule in _RULES)
# Texts at least this long are checked with one Hyperscan pass before the per-rule checks.
_SCAN_FIRST_CHARS: Final = 256


# --- whole-text prefilter -----------------------------------------------------------------------

# In JSON text a secret can hide behind escapes ("sk\u002d...", "https:\/\/"): such text is
# always looked at value by value after decoding.
_JSON_ESCAPES: Final = (r"\\u", r"\\/")


class _Scanner:
    """One automaton for every rule's prefilter; a scratch space per thread."""

    def __init__(self, json_escapes: bool) -> None:
        assert _hyperscan is not None
        expressions = [rule.prefilter.encode() for rule in _RULES]
        flags = [
            _hyperscan.HS_FLAG_SINGLEMATCH
            | (_hyperscan.HS_FLAG_CASELESS if rule.prefilter_caseless else 0)
            for rule in _RULES
        ]
        if json_escapes:
            expressions += [escape.encode() for escape in _JSON_ESCAPES]
            flags += [_hyperscan.HS_FLAG_SINGLEMATCH] * len(_JSON_ESCAPES)
        self._database = _hyperscan.Database(mode=_hyperscan.HS_MODE_BLOCK)
        self._database.compile(
            expressions=expressions,
            ids=list(range(len(expressions))),
            elements=len(expressions),
            flags=flags,
        )
        self._local = threading.local()

    def hit(self, data: bytes) -> bool:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = _hyperscan.Scratch(self._database)  # type: ignore[union-attr]
            self._local.scratch = scratch
        try:
            self._database.scan(data, match_event_handler=_stop, scratch=scratch)
        except _hyperscan.ScanTerminated:  # type: ignore[union-attr]
            return True
        return False


def _stop(*_: Any) -> bool:
    return True  # first match is enough: stop the scan


_CANDIDATE_BYTES: Final = tuple(
    sorted({c.encode() for rule in _RULES for c in rule.candidates}, key=len, reverse=True)
)
_JSON_ESCAPE_BYTES: Final = (b"\\u", b"\\/")

# Which prefilter runs: "hyperscan" or "python".
SCANNER: Final = "hyperscan" if _hyperscan is not None else "python"
# Compiled on first use (a few tens of milliseconds), not at import.
_scanners: dict[bool, _Scanner] = {}
_scanners_lock = threading.Lock()


def _scanner(json_escapes: bool) -> _Scanner:
    scanner = _scanners.get(json_escapes)
    if scanner is None:
        with _scanners_lock:
            scanner = _scanners.get(json_escapes)
            if scanner is None:
                scanner = _scanners[json_escapes] = _Scanner(json_escapes)
    return scanner


def _python_hit(data: bytes, json_escapes: bool) -> bool:
    lowered = data.lower()
    if any(candidate in lowered for candidate in _CANDIDATE_BYTES):
        return True
    return json_escapes and any(escape in data for escape in _JSON_ESCAPE_BYTES)


def may_contain_secret(
    data: bytes, *, json_escapes: bool = False, force_python: bool = False
) -> bool:
    """Whether ``redact_text`` could change any text contained verbatim in ``data``.

    False is a guarantee: text cut out of a clean body (a protobuf string field, say) needs no
    redaction. With ``json_escapes`` the body is JSON and escapes make it unclean, since decoding
    could turn them into a secret. ``force_python`` skips Hyperscan (for tests and comparison).
    """
    if _hyperscan is not None and not force_python:
        return _scanner(json_escapes).hit(data)
    return _python_hit(data, json_escapes)


def redact_text(text: str) -> tuple[str, int]:
    """Return ``text`` with secrets replaced by ``[REDACTED:<kind>]`` and how many were replaced."""
    if not text:
        return text, 0
    if (
        _hyperscan is not None
        and len(text) >= _SCAN_FIRST_CHARS
        and not _scanner(False).hit(text.encode("utf-8", "surrogatepass"))
    ):
        return text, 0
    lowered = text.lower()
    total = 0
    for rule, replace in _COMPILED:
        for candidate in rule.candidates:
            if candidate in lowered:
                break
        else:
            continue
        text, count = rule.pattern.subn(replace, text)
        total += count
    return text, total


# --- attribute keys that name secrets ----------------------------------------------------------

_SECRET_KEY: Final = re.compile(
    r"(?:api[_-]?key|apikey|password|passwd|secret|authorization|credential|private[_-]?key"
    r"|cookie|(?:^|[._-])(?:access|auth|refresh|id|session|bearer|api|oauth)?[_-]?token$"
    r"|(?:^|[._-])pwd$)",
    re.IGNORECASE | re.ASCII,
)
# Keys that contain a secret-looking word but hold counts, limits or flags.
_NOT_SECRET_KEY: Final = re.compile(r"(?:tokens|token_count|_count|_length|\.count)(?:\.|$)")
_KEY_HINTS: Final = ("key", "pass", "secret", "token", "auth", "credential", "cookie", "pwd")

_KEY_CACHE: dict[str, bool] = {}
_KEY_CACHE_MAX: Final = 8192


def is_secret_key(key: str) -> bool:
    """Whether an attribute named ``key`` holds a secret (``api_key``, ``db.password``...)."""
    hit = _KEY_CACHE.get(key)
    if hit is None:
        lowered = key.lower()
        hit = (
            any(hint in lowered for hint in _KEY_HINTS)
            and bool(_SECRET_KEY.search(lowered))
            and not _NOT_SECRET_KEY.search(lowered)
        )
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = hit
    return hit


_SECRET_ATTRIBUTE_MARKER: Final = redaction_marker("secret_attribute")


def redact_value(key: str, value: str, *, scan_text: bool = True) -> tuple[str, int]:
    """Redact one attribute value: all of it if ``key`` names a secret, else secrets in its text.

    ``scan_text=False`` skips the text rules (the caller knows the text is clean).
    """
    if not value:
        return value, 0
    if is_secret_key(key):
        if value.startswith("[REDACTED:"):
            return value, 0
        return _SECRET_ATTRIBUTE_MARKER, 1
    if not scan_text:
        return value, 0
    return redact_text(value)


def redact_attributes(attributes: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """Return a copy of ``attributes`` with secret values redacted, and the number redacted."""
    out: dict[str, str] = {}
    total = 0
    for key, value in attributes.items():
        redacted, count = redact_value(key, value)
        out[key] = redacted
        total += count
    return out, total

"""Secret redaction applied to span attributes and payloads before anything is stored.

Secrets in free text (API keys, cloud credentials, tokens, passwords in URLs, private keys, JWTs,
``password=...`` style fields) are replaced by ``[REDACTED:<kind>]``; attributes whose *key* names a
secret (``api_key``, ``password``, ``authorization``...) lose their whole value. Token *counts*
(``gen_ai.usage.input_tokens``, ``llm.token_count.prompt``) are not secrets and are kept.

This runs on the ingest hot path, so each rule is gated by cheap substring checks and the regular
expressions only run on text that contains a candidate. Replacements never contain quotes or
backslashes, so redacting inside JSON text keeps it valid JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["is_secret_key", "redact_attributes", "redact_text", "redaction_marker"]

_TOKEN_CHARS: Final = r"A-Za-z0-9_\-"


def redaction_marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    # The rule runs only if one of these substrings occurs in the text.
    candidates: tuple[str, ...]
    pattern: re.Pattern[str]
    # Group whose span is replaced; 0 = the whole match.
    group: int = 0


_SECRET_FIELD_WORDS: Final = (
    r"api[_-]?key|apikey|password|passwd|pwd|secret[_-]?key|client[_-]?secret|secret"
    r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token"
    r"|private[_-]?key|x-api-key"
)

# Order matters: more specific rules first (an Anthropic key also looks like an OpenAI key; a
# bearer JWT is reported as a bearer token).
_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private_key",
        ("-----BEGIN",),
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
            r"(?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
            re.DOTALL,
        ),
    ),
    _Rule(
        "bearer_token",
        ("earer", "EARER"),
        re.compile(
            r"(?i:\bbearer)(?:\s|\\[nrt])+"
            r"((?=[A-Za-z0-9\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{8,}=*)"
        ),
        group=1,
    ),
    _Rule(
        "basic_auth",
        ("uthorization", "UTHORIZATION"),
        re.compile(
            r"(?i:authorization)\\?[\"']?\s*[:=]\s*\\?[\"']?(?i:basic)\s+([A-Za-z0-9+/]{6,}={0,2})"
        ),
        group=1,
    ),
    _Rule(
        "anthropic_key",
        ("sk-ant-",),
        re.compile(rf"\bsk-ant-[{_TOKEN_CHARS}]{{16,}}"),
    ),
    _Rule(
        "openai_key",
        ("sk-",),
        re.compile(rf"\bsk-(?=[{_TOKEN_CHARS}]*[0-9])[{_TOKEN_CHARS}]{{20,}}"),
    ),
    _Rule(
        "aws_access_key",
        ("AKIA", "ASIA"),
        re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ),
    _Rule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ),
    _Rule(
        "slack_token",
        ("xox",),
        re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ),
    _Rule(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{10,}"),
    ),
    _Rule(
        "jwt",
        ("eyJ",),
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    _Rule(
        "url_password",
        ("://",),
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{0,30}://[^\s:@/\"'\\]*:([^\s@/\"'\\]+)@"),
        group=1,
    ),
    _Rule(
        "secret_field",
        (
            "api_key",
            "apikey",
            "api-key",
            "API_KEY",
            "APIKEY",
            "Api-Key",
            "ApiKey",
            "apiKey",
            "password",
            "Password",
            "PASSWORD",
            "passwd",
            "PASSWD",
            "pwd",
            "PWD",
            "secret",
            "Secret",
            "SECRET",
            "_token",
            "-token",
            "Token",
            "_TOKEN",
        ),
        re.compile(
            rf"(?i:{_SECRET_FIELD_WORDS})(?:[_-][A-Za-z0-9_-]*)?\\?[\"']?\s*[:=]\s*(?!\\?[\"']?\[REDACTED:)"
            r"(?:\\\"((?:[^\"\\]|\\\\)+)\\\"|\"((?:[^\"\\]|\\.)+)\"|'([^'\\\n]+)'"
            r"|(?!(?:true|false|null)\b)(?=[^\s\"',;}&\\\]]*[A-Za-z_])([^\s\"',;}&\\\]]+))"
        ),
        group=-1,  # whichever value group matched
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


def redact_text(text: str) -> tuple[str, int]:
    """Return ``text`` with secrets replaced by ``[REDACTED:<kind>]`` and how many were replaced."""
    total = 0
    for rule, replace in _COMPILED:
        for candidate in rule.candidates:
            if candidate in text:
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
    re.IGNORECASE,
)
# Keys that contain a secret-looking word but hold counts, limits or flags.
_NOT_SECRET_KEY: Final = re.compile(r"(?:tokens|token_count|_count|_length|\.count)(?:\.|$)")

_KEY_CACHE: dict[str, bool] = {}
_KEY_CACHE_MAX: Final = 8192


def is_secret_key(key: str) -> bool:
    """Whether an attribute named ``key`` holds a secret (``api_key``, ``db.password``...)."""
    hit = _KEY_CACHE.get(key)
    if hit is None:
        lowered = key.lower()
        hit = bool(_SECRET_KEY.search(lowered)) and not _NOT_SECRET_KEY.search(lowered)
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = hit
    return hit


_SECRET_ATTRIBUTE_MARKER: Final = redaction_marker("secret_attribute")


def redact_value(key: str, value: str) -> tuple[str, int]:
    """Redact one attribute value, by its key first and then by its text."""
    if not value:
        return value, 0
    if is_secret_key(key):
        if value.startswith("[REDACTED:"):
            return value, 0
        return _SECRET_ATTRIBUTE_MARKER, 1
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

"""Secret redaction applied to span attributes and payloads before anything is stored.

Secrets in free text (API keys, cloud credentials, tokens, passwords in URLs, private keys, JWTs,
``password=...`` style fields) are replaced by ``[REDACTED:<kind>]``; attributes whose *key* names a
secret (``api_key``, ``password``, ``authorization``...) lose their whole value. Token *counts*
(``gen_ai.usage.input_tokens``, ``llm.token_count.prompt``) are not secrets and are kept.
Replacements never contain quotes or backslashes, so redacting inside JSON text keeps it JSON.

This runs on the ingest hot path:

* ``may_contain_secret`` answers for a whole request body with one Hyperscan pass (every rule's
  prefilter in one automaton, well under a nanosecond per byte); a clean body, the usual case,
  needs no per-value work at all. Without Hyperscan (non-x86 platforms) plain substring checks
  give the same guarantee, only slower.
* In text that may hold a secret, only the rules whose prefilter matched run, and every rule's
  regular expression starts with a literal (case-insensitive rules run on the lower-cased text),
  so Python's ``re`` jumps between candidates instead of trying every position.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
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


def redaction_marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class _Rule:
    kind: str
    # Regex source. It starts with a literal; caseless rules are written in lower case and run
    # on the lower-cased text.
    source: str
    # Lower-case substrings: without a Hyperscan answer the rule runs only if one occurs.
    candidates: tuple[str, ...]
    # A Hyperscan expression matching (at least) wherever ``source`` matches; kept loose where
    # that is cheaper to compile.
    prefilter: str
    caseless: bool = False
    # The match must not follow a word character (a ``\b`` kept out of the regex, where it
    # would stop ``re`` from searching for the literal prefix).
    word_start: bool = False
    # Group whose span is replaced; 0 = the whole match, -1 = whichever group matched.
    group: int = 0
    # ``name: value`` fields: redact only when the whole field name names a secret.
    field_name: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    pattern_ignorecase: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.ASCII | re.DOTALL
        object.__setattr__(self, "pattern", re.compile(self.source, flags))
        object.__setattr__(
            self, "pattern_ignorecase", re.compile(self.source, flags | re.IGNORECASE)
        )


_TOKEN: Final = r"A-Za-z0-9_\-"
_NAME_CHARS: Final = r"a-z0-9_.\-"
# After a field name: optional closing quote (possibly escaped), then ":" or "=".
_FIELD_SEPARATOR: Final = r"\\?[\"']?\s*[:=]\s*"
# The value of a ``name: value`` field: a JSON string (possibly escaped inside another JSON
# string), a quoted string, or a bare word that is not a JSON literal or a number.
_FIELD_VALUE: Final = (
    r"(?!\\?[\"']?\[redacted:)"  # runs on lower-cased text
    r"(?:\\\"((?:[^\"\\]|\\\\)+)\\\"|\"((?:[^\"\\]|\\.)+)\"|'([^'\\\n]+)'"
    r"|(?!(?:true|false|null)\b)(?=[^\s\"',;}&\\\]]*[A-Za-z_])([^\s\"',;}&\\\]]+))"
)
_FIELD_PREFILTER_SEPARATOR: Final = r"[\\\"']*(\s|\\[nrt])*[:=]"


def _field_rule(name: str, candidate: str) -> _Rule:
    return _Rule(
        "secret_field",
        rf"(?P<name>{name}){_FIELD_SEPARATOR}{_FIELD_VALUE}",
        (candidate,),
        rf"{name}{_FIELD_PREFILTER_SEPARATOR}",
        caseless=True,
        group=-1,
        field_name=True,
    )


# Order matters: rules apply in this order, each to the text the earlier ones left (an Anthropic
# key also looks like an OpenAI key; a JWT in a bearer header is reported as a bearer token).
_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
        r"(?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
        ("-----begin",),
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----",
    ),
    _Rule(
        "bearer_token",
        r"bearer(?:\s|\\[nrt])+((?=[a-z0-9\-._~+/]*[0-9])[a-z0-9\-._~+/]{8,}=*)",
        ("bearer",),
        r"bearer(\s|\\[nrt])+[A-Za-z0-9\-._~+/]{8}",
        caseless=True,
        word_start=True,
        group=1,
    ),
    _Rule(
        "basic_auth",
        r"authorization\\?[\"']?\s*[:=]\s*\\?[\"']?basic\s+([a-z0-9+/]{6,}={0,2})",
        ("authorization",),
        r"authorization",
        caseless=True,
        group=1,
    ),
    _Rule(
        "anthropic_key",
        rf"sk-ant-[{_TOKEN}]{{16,}}",
        ("sk-ant-",),
        rf"sk-ant-[{_TOKEN}]{{8}}",
        word_start=True,
    ),
    _Rule(
        "openai_key",
        rf"sk-(?=[{_TOKEN}]*[0-9])[{_TOKEN}]{{20,}}",
        ("sk-",),
        rf"sk-[{_TOKEN}]{{8}}",
        word_start=True,
    ),
    _Rule(
        "aws_access_key",
        r"A(?:KIA|SIA)[0-9A-Z]{16}\b",
        ("akia", "asia"),
        r"(AKIA|ASIA)[0-9A-Z]{16}",
        word_start=True,
    ),
    _Rule(
        "github_token",
        r"g(?:h[pousr]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{30,})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"gh[pousr]_[A-Za-z0-9]{8}|github_pat_[A-Za-z0-9_]{8}",
        word_start=True,
    ),
    _Rule(
        "slack_token",
        r"xox[abposr]-[A-Za-z0-9-]{10,}",
        ("xox",),
        r"xox[abposr]-[A-Za-z0-9-]{10}",
        word_start=True,
    ),
    _Rule(
        "slack_webhook",
        r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{10,}",
        ("hooks.slack.com",),
        r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{10}",
    ),
    _Rule(
        "jwt",
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ("eyj",),
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ",
        word_start=True,
    ),
    _Rule(
        "url_password",
        r"://[^\s:@/\"'\\]*:(?!\[REDACTED:)([^\s@/\"'\\]+)@",
        ("://",),
        r"://[^\s:@/\"'\\]*:[^\s@/\"'\\]+@",
        group=1,
    ),
    _field_rule(rf"api[_-]?key[{_NAME_CHARS}]*", "api"),
    _field_rule(rf"passw(?:or)?d[{_NAME_CHARS}]*", "passw"),
    _field_rule(rf"pwd[{_NAME_CHARS}]*", "pwd"),
    _field_rule(rf"secret[{_NAME_CHARS}]*", "secret"),
    _field_rule(rf"private[_-]?key[{_NAME_CHARS}]*", "private"),
    # "token" but not "tokens" (max_tokens, input_tokens are counts).
    _field_rule(rf"token(?:[_.\-][{_NAME_CHARS}]*)?", "token"),
)
_MARKERS: Final = tuple(redaction_marker(rule.kind) for rule in _RULES)
# Texts at least this long are checked with one Hyperscan pass before the per-rule checks.
_SCAN_FIRST_CHARS: Final = 256


# --- prefilter ----------------------------------------------------------------------------------

# In JSON text a secret can hide behind escapes ("sk\u002d...", "https:\/\/"): such text is
# always looked at value by value after decoding.
_JSON_ESCAPES: Final = (r"\\u", r"\\/")
_ALL_RULES: Final = frozenset(range(len(_RULES)))


class _Scanner:
    """One automaton for every rule's prefilter; a scratch space per thread."""

    def __init__(self, json_escapes: bool) -> None:
        assert _hyperscan is not None
        hs = _hyperscan
        expressions = [rule.prefilter.encode() for rule in _RULES]
        flags = [
            hs.HS_FLAG_SINGLEMATCH | (hs.HS_FLAG_CASELESS if rule.caseless else 0)
            for rule in _RULES
        ]
        if json_escapes:
            expressions += [escape.encode() for escape in _JSON_ESCAPES]
            flags += [hs.HS_FLAG_SINGLEMATCH] * len(_JSON_ESCAPES)
        self._database = hs.Database(mode=hs.HS_MODE_BLOCK)
        self._database.compile(
            expressions=expressions,
            ids=list(range(len(expressions))),
            elements=len(expressions),
            flags=flags,
        )
        self._local = threading.local()

    def _scratch(self) -> Any:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = _hyperscan.Scratch(self._database)  # type: ignore[union-attr]
            self._local.scratch = scratch
        return scratch

    def hit(self, data: bytes) -> bool:
        try:
            self._database.scan(data, match_event_handler=_stop, scratch=self._scratch())
        except _hyperscan.ScanTerminated:  # type: ignore[union-attr]
            return True
        return False

    def rules(self, data: bytes) -> set[int]:
        """Indexes of the rules whose prefilter matches somewhere in ``data``."""
        found: set[int] = set()
        self._database.scan(
            data, match_event_handler=_collect, context=found, scratch=self._scratch()
        )
        return found


def _stop(*_: Any) -> bool:
    return True  # first match is enough: stop the scan


def _collect(rule: int, _start: int, _end: int, _flags: int, found: set[int]) -> None:
    found.add(rule)


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


_CANDIDATE_BYTES: Final = tuple(
    sorted({c.encode() for rule in _RULES for c in rule.candidates}, key=len, reverse=True)
)
_JSON_ESCAPE_BYTES: Final = (b"\\u", b"\\/")


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


# --- redaction ----------------------------------------------------------------------------------


def _word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _field_name(subject: str, start: int, name_end: int) -> str:
    """The whole field name ending at ``name_end``: the rule matched from a word inside it."""
    begin = start
    while begin > 0 and (subject[begin - 1].isalnum() or subject[begin - 1] in "_.-"):
        begin -= 1
    return subject[begin:name_end]


def redact_text(text: str, *, force_python: bool = False) -> tuple[str, int]:
    """Return ``text`` with secrets replaced by ``[REDACTED:<kind>]`` and how many were replaced.

    ``force_python`` skips the Hyperscan prefilter (for tests and comparison).
    """
    if not text:
        return text, 0
    lowered: str | None = None
    if _hyperscan is not None and not force_python and len(text) >= _SCAN_FIRST_CHARS:
        wanted = _scanner(False).rules(text.encode("utf-8", "surrogatepass"))
        if not wanted:
            return text, 0
    else:
        lowered_text = lowered = text.lower()
        wanted = {
            index
            for index, rule in enumerate(_RULES)
            if any(candidate in lowered_text for candidate in rule.candidates)
        }
        if not wanted:
            return text, 0
    # Lower-casing can change the length of some non-ASCII text; then offsets in ``lowered``
    # would not be offsets in ``text``, and caseless rules run case-insensitively instead.
    total = 0
    # Rules apply one after the other, each to the text the previous ones left, so a secret
    # next to an already redacted one is still found.
    for index in sorted(wanted):
        rule = _RULES[index]
        if rule.caseless:
            if lowered is None:
                lowered = text.lower()
            # Lower-casing can change the length of some non-ASCII text; then offsets in
            # ``lowered`` are not offsets in ``text`` and the rule runs case-insensitively.
            if len(lowered) == len(text):
                subject, pattern = lowered, rule.pattern
            else:
                subject, pattern = text, rule.pattern_ignorecase
        else:
            subject, pattern = text, rule.pattern
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(subject):
            start = match.start()
            if rule.word_start and start > 0 and _word_char(subject[start - 1]):
                continue
            if rule.field_name and not is_secret_key(
                _field_name(subject, start, match.end("name"))
            ):
                continue
            if "[REDACTED:" in text[start : match.end()]:
                continue  # already redacted: redaction is idempotent
            spans.append(match.span(rule.group if rule.group >= 0 else (match.lastindex or 0)))
        if spans:
            text = _replace_spans(text, spans, _MARKERS[index])
            lowered = None
            total += len(spans)
    return text, total


def _replace_spans(text: str, spans: list[tuple[int, int]], marker: str) -> str:
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append(marker)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


# --- attribute keys that name secrets ----------------------------------------------------------

_SECRET_KEY: Final = re.compile(
    r"(?:api[_-]?key|apikey|password|passwd|secret|authorization|credential|private[_-]?key"
    r"|cookie|(?:^|[._-])(?:access|auth|refresh|id|session|bearer|api|oauth)?[_-]?token$"
    r"|(?:^|[._-])pwd$)",
    re.IGNORECASE | re.ASCII,
)
# Keys that contain a secret-looking word but hold counts, limits or flags.
_NOT_SECRET_KEY: Final = re.compile(
    r"(?:tokens|token_count|_count|_length|\.count)(?:\.|$)|secretar(?:y|ies|iat)"
)
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


def redact_value(key: str, value: str) -> tuple[str, int]:
    """Redact one attribute value: all of it if ``key`` names a secret, else secrets in its text."""
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

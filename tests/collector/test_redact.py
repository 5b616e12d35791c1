"""Secret redaction: every kind of secret, JSON stays JSON, counts are not secrets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.redact import (
    SCANNER,
    is_secret_key,
    may_contain_secret,
    redact_attributes,
    redact_text,
    redact_value,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n-----END RSA PRIVATE KEY-----"
)

CASES = [
    ("key sk-proj-Abc123Def456Ghi789Jkl012Mno345 end", "key [REDACTED:openai_key] end"),
    ("sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2", "[REDACTED:anthropic_key]"),
    ("id AKIAIOSFODNN7EXAMPLE.", "id [REDACTED:aws_access_key]."),
    ("ghp_" + "A1b2" * 9, "[REDACTED:github_token]"),
    ("github_pat_" + "11ABCDEFG0" * 4, "[REDACTED:github_token]"),
    ("xoxb-123456789012-abcdefghijkl", "[REDACTED:slack_token]"),
    (
        "post to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX now",
        "post to https://[REDACTED:slack_webhook] now",
    ),
    ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer [REDACTED:bearer_token]"),
    ("authorization: bearer " + JWT, "authorization: bearer [REDACTED:bearer_token]"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED:basic_auth]"),
    (
        "redis://:s3cr3t@cache:6379/0 and postgres://app:hunter2@db/x",
        "redis://:[REDACTED:url_password]@cache:6379/0 and "
        "postgres://app:[REDACTED:url_password]@db/x",
    ),
    (f"before\n{PEM}\nafter", "before\n[REDACTED:private_key]\nafter"),
    (f"token is {JWT}!", "token is [REDACTED:jwt]!"),
    ("password=hunter2&user=bob", "password=[REDACTED:secret_field]&user=bob"),
    ("DB_PASSWORD: 'correct horse'", "DB_PASSWORD: '[REDACTED:secret_field]'"),
    ("Server=db;Uid=app;Pwd=Sup3rS3cret;", "Server=db;Uid=app;Pwd=[REDACTED:secret_field];"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_kind_of_secret(text: str, expected: str) -> None:
    redacted, count = redact_text(text)
    assert redacted == expected
    assert count == expected.count("[REDACTED:")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The bearer of bad news arrived.",
        "risk-assessment-framework-document is in Asia",
        "see https://example.com/a@b and mailto:me@example.com",
        "passwords must be long; the secret is practice",
        '{"max_tokens": 100, "input_tokens": 5, "token": null, "api_key": true}',
        "use sk-learn style estimators",
        "gen_ai.usage.input_tokens=1200",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == (text, 0)


def test_secrets_inside_json_keep_it_valid_json() -> None:
    document = {
        "password": "hunter2",
        "api_key": 'abc"def\\ghi',
        "max_tokens": 100,
        "secret": 5,
        "headers": {"Authorization": "Bearer abc123def456ghi"},
        "args": json.dumps({"access_token": "tok123", "url": "https://u:p4ss@host/x"}),
        "note": "call with sk-proj-Abc123Def456Ghi789Jkl012Mno345",
    }
    redacted, count = redact_text(json.dumps(document))
    parsed = json.loads(redacted)
    assert parsed["password"] == "[REDACTED:secret_field]"
    assert parsed["api_key"] == "[REDACTED:secret_field]"
    assert parsed["max_tokens"] == 100 and parsed["secret"] == 5
    assert parsed["headers"]["Authorization"] == "Bearer [REDACTED:bearer_token]"
    inner = json.loads(parsed["args"])
    assert inner == {
        "access_token": "[REDACTED:secret_field]",
        "url": "https://u:[REDACTED:url_password]@host/x",
    }
    assert parsed["note"] == "call with [REDACTED:openai_key]"
    assert count == 6


def test_redaction_is_idempotent() -> None:
    for text, _ in CASES:
        once, _ = redact_text(text)
        assert redact_text(once) == (once, 0)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "openai.api_key",
        "x-api-key",
        "db.password",
        "http.request.header.authorization",
        "client_secret",
        "access_token",
        "auth.token",
        "token",
        "github_token",
        "aws.credentials",
        "session.cookie",
        "private_key",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)
    assert redact_value(key, "anything at all") == ("[REDACTED:secret_attribute]", 1)


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.request.max_tokens",
        "llm.token_count.prompt",
        "llm.token_count.total",
        "llm.usage.total_tokens",
        "gen_ai.tool.name",
        "tokenizer",
        "keyboard.layout",
        "retrace.sandbox.limits",
    ],
)
def test_count_and_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)
    assert redact_value(key, "1200") == ("1200", 0)


def test_redact_attributes_counts_every_redaction() -> None:
    attributes = {
        "gen_ai.usage.input_tokens": "1200",
        "api_key": "abc",
        "note": "AKIAIOSFODNN7EXAMPLE and ghp_" + "x1" * 18,
        "empty_password": "",
    }
    redacted, count = redact_attributes(attributes)
    assert redacted == {
        "gen_ai.usage.input_tokens": "1200",
        "api_key": "[REDACTED:secret_attribute]",
        "note": "[REDACTED:aws_access_key] and [REDACTED:github_token]",
        "empty_password": "",
    }
    assert count == 3
    assert attributes["api_key"] == "abc"  # the input is not modified


def test_long_text_goes_through_the_prefilter() -> None:
    filler = "plain words without anything sensitive in them. " * 50
    assert redact_text(filler) == (filler, 0)
    text = filler + " AKIAIOSFODNN7EXAMPLE " + filler
    redacted, count = redact_text(text)
    assert count == 1 and "AKIA" not in redacted


def test_the_scanner_in_use() -> None:
    # On x86-64 the Hyperscan prefilter must be active: the pure-Python path is the fallback.
    import platform

    if platform.machine() == "x86_64":
        assert SCANNER == "hyperscan"


@pytest.mark.parametrize("force_python", [False, True])
def test_body_prefilter(force_python: bool) -> None:
    for text, _ in CASES:
        assert may_contain_secret(text.encode(), force_python=force_python), text
    clean = b'{"input_tokens": 5, "text": "nothing to see"}'
    if not force_python:  # the pure-Python check is coarser: it only looks for substrings
        assert not may_contain_secret(clean)
    assert may_contain_secret(b'"sk\\u002dproj"', json_escapes=True, force_python=force_python)
    assert may_contain_secret(b'"https:\\/\\/x"', json_escapes=True, force_python=force_python)


_FRAGMENTS = st.sampled_from(
    [text for text, _ in CASES]
    + [
        " ",
        "\n",
        "\\n",
        '"',
        "'",
        "\\",
        ":",
        "=",
        "@",
        "://",
        "sk-",
        "Bearer ",
        "password",
        "api_key",
        "AKIA",
        "eyJ",
        "-----BEGIN ",
        "PRIVATE KEY-----",
        "é",
        "token",
        "abc123DEF456ghi789",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=12)), max_size=12))
def test_prefilter_never_misses_and_redaction_is_idempotent(parts: list[str]) -> None:
    text = "".join(parts)
    redacted, count = redact_text(text)
    assert redact_text(redacted) == (redacted, 0)  # idempotent
    if count:
        data = text.encode("utf-8", "surrogatepass")
        assert may_contain_secret(data)
        assert may_contain_secret(data, force_python=True)
    else:
        assert redacted == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=12)), max_size=30))
def test_hyperscan_and_python_paths_redact_the_same(parts: list[str]) -> None:
    text = "".join(parts) * 3  # long enough for the Hyperscan path
    assert redact_text(text) == redact_text(text, force_python=True)


def test_secret_next_to_a_redacted_one_is_still_found() -> None:
    text = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2-----BEGIN PRIVATE KEY-----abc"
    assert redact_text(text) == ("[REDACTED:anthropic_key][REDACTED:private_key]", 2)


def test_field_names_are_judged_whole() -> None:
    text = "max_tokens: 50, token_count: 7, session_token: abc123, secretary: Jane"
    assert redact_text(text) == (
        "max_tokens: 50, token_count: 7, session_token: [REDACTED:secret_field], secretary: Jane",
        1,
    )

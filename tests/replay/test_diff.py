"""Structured JSON diff, volatile fields, user ignore rules, message canonicalization."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage, message_to_dict

from replay._diff import (
    DiffConfig,
    MessageMemo,
    canonical_message,
    canonical_messages,
    json_diff,
    normalize,
)
from schemas.errors import ConfigError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text("abc", max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xyz", max_size=2), inner),
    max_leaves=8,
)


def test_paths_and_ops() -> None:
    diff = json_diff(
        {"sql": "select 1", "limit": 5, "tags": ["a", "b"]},
        {"sql": "select 2", "tags": ["a"], "new": True},
    )
    assert [(d.path, d.op, d.recorded, d.replayed) for d in diff] == [
        ("/limit", "remove", 5, None),
        ("/new", "add", None, True),
        ("/sql", "change", "select 1", "select 2"),
        ("/tags/1", "remove", "b", None),
    ]


def test_volatile_fields_ignored_by_default() -> None:
    a = {"id": "run-1", "content": "x", "usage_metadata": {"input_tokens": 3}, "timestamp": 1}
    b = {"id": "run-2", "content": "x", "usage_metadata": {"input_tokens": 9}, "timestamp": 2}
    assert json_diff(a, b) == []
    assert json_diff(a, b, DiffConfig(volatile_keys=frozenset())) != []


def test_user_rules_globs_regexes_and_masks(tmp_path: Path) -> None:
    rules = tmp_path / "ignore.yaml"
    rules.write_text(
        "ignore_paths: ['/rows/*/seen_at']\n"
        "ignore_path_regexes: ['/debug$']\n"
        "mask: ['\\d{4}-\\d{2}-\\d{2}']\n"
        "keep_keys: ['id']\n"
    )
    config = DiffConfig.load(rules)
    a = {"rows": [{"seen_at": 1, "v": 1}], "debug": "x", "msg": "on 2024-01-01", "id": 1}
    b = {"rows": [{"seen_at": 2, "v": 1}], "debug": "y", "msg": "on 2025-06-30", "id": 1}
    assert json_diff(a, b, config) == []
    b["id"] = 2
    assert [d.path for d in json_diff(a, b, config)] == ["/id"]


def test_bad_rules_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        DiffConfig.from_mapping({"ignore": []})
    with pytest.raises(ConfigError, match="invalid ignore regex"):
        DiffConfig.from_mapping({"mask": ["("]})
    with pytest.raises(ConfigError, match="cannot read"):
        DiffConfig.load(tmp_path / "missing.yaml")


def test_message_shapes_compare_by_meaning() -> None:
    ai = AIMessage(
        content="",
        tool_calls=[
            {"name": "query", "args": {"sql": "select 1"}, "id": "c1", "type": "tool_call"}
        ],
    )
    genai = {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "zz", "name": "query", "arguments": {"sql": "select 1"}}
        ],
    }
    openai = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "x",
                "type": "function",
                "function": {"name": "query", "arguments": '{"sql": "select 1"}'},
            }
        ],
    }
    expected = canonical_message(message_to_dict(ai))
    assert canonical_message(genai) == expected
    assert canonical_message(openai) == expected
    tool = ToolMessage(content="42", tool_call_id="c1", name="query")
    tool_genai = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}],
    }
    assert canonical_message(message_to_dict(tool)) == canonical_message(tool_genai)
    human = canonical_message(message_to_dict(HumanMessage("hi")))
    assert human == {"role": "user", "content": "hi", "tool_calls": []}


@settings(max_examples=200, deadline=None)
@given(a=json_values, b=json_values)
def test_diff_empty_iff_normalized_equal(a: Any, b: Any) -> None:
    diff = json_diff(a, b)
    key = {"sort_keys": True}
    assert (diff == []) == (json.dumps(normalize(a), **key) == json.dumps(normalize(b), **key))
    assert json_diff(a, a) == []


@settings(max_examples=200, deadline=None)
@given(a=json_values, b=json_values)
def test_diff_is_antisymmetric_and_serializable(a: Any, b: Any) -> None:
    forward = [(d.path, d.op) for d in json_diff(a, b)]
    flip = {"add": "remove", "remove": "add", "change": "change"}
    backward = [(d.path, flip[d.op]) for d in json_diff(b, a)]
    assert forward == backward
    json.dumps([d.model_dump(mode="json") for d in json_diff(a, b)])


messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "tool"]),
        "content": st.text("ab1", max_size=3) | st.floats(allow_infinity=True) | st.booleans(),
    },
    optional={
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["f", "g"]), "args": json_values, "id": st.text("c")}
            ),
            max_size=2,
        )
    },
)
histories = st.lists(messages, max_size=4)
configs = st.sampled_from(
    [DiffConfig(), DiffConfig(mask_patterns=("1",)), DiffConfig(ignore_paths=("/m/0/content",))]
)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(histories, histories), min_size=1, max_size=4), config=configs)
def test_the_message_memo_diffs_histories_as_json_diff_does(
    pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]], config: DiffConfig
) -> None:
    memo = MessageMemo(config)  # one memo across requests, as a replay run uses it
    for recorded, replayed in pairs:
        expected = json_diff(
            canonical_messages(recorded), canonical_messages(replayed), config, "/m"
        )
        got = memo.diff(recorded, replayed, "/m")
        assert [d.model_dump(mode="json") for d in got] == [
            d.model_dump(mode="json") for d in expected
        ]

"""The other SDKs' span shapes read by ``replay._other_sdks``, as pure functions.

The real instrumentors are driven end to end in ``test_other_sdks.py``; these cover shapes the
installed releases no longer emit (older OpenLLMetry's ``gen_ai.prompt.N`` and
``gen_ai.completion.N``) and odd attribute maps, which must never make a trace unreadable.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, messages_from_dict

from replay import missing_for_mode, trajectory_from_detail
from replay._diff import canonical_messages
from replay._other_sdks import (
    graph_input_value,
    other_input_messages,
    other_output_message,
    other_tool_arguments,
    other_tool_output,
    unflatten,
)
from schemas import attributes as A
from tests.replay.test_trajectory import detail, span


def test_older_openllmetry_flattened_completion_gives_the_answer() -> None:
    attrs = {
        f"{A.TL_PROMPT}.0.role": "user",
        f"{A.TL_PROMPT}.0.content": "capital of Peru?",
        f"{A.TL_COMPLETION}.0.role": "assistant",
        f"{A.TL_COMPLETION}.0.content": "Looking it up.",
        f"{A.TL_COMPLETION}.0.tool_calls.0.id": "call_9",
        f"{A.TL_COMPLETION}.0.tool_calls.0.name": "lookup_capital",
        f"{A.TL_COMPLETION}.0.tool_calls.0.arguments": '{"country": "Peru"}',
    }
    answer = other_output_message(attrs)
    assert answer is not None
    (message,) = messages_from_dict([answer])
    assert isinstance(message, AIMessage)
    assert message.content == "Looking it up."
    assert message.tool_calls == [
        {"name": "lookup_capital", "args": {"country": "Peru"}, "id": "call_9", "type": "tool_call"}
    ]
    assert canonical_messages(other_input_messages(attrs)) == [
        {"role": "user", "content": "capital of Peru?", "tool_calls": []}
    ]


def test_openinference_flattened_messages_when_output_value_is_hidden() -> None:
    attrs = {
        A.OI_OUTPUT_VALUE: A.OI_REDACTED,
        f"{A.OI_LLM_OUTPUT_MESSAGES}.0.message.role": "assistant",
        f"{A.OI_LLM_OUTPUT_MESSAGES}.0.message.contents.0.message_content.type": "text",
        f"{A.OI_LLM_OUTPUT_MESSAGES}.0.message.contents.0.message_content.text": "Lima",
        f"{A.OI_LLM_INPUT_MESSAGES}.0.message.role": "user",
        f"{A.OI_LLM_INPUT_MESSAGES}.0.message.content": "capital of Peru?",
        f"{A.OI_LLM_INPUT_MESSAGES}.1.message.role": "assistant",
        f"{A.OI_LLM_INPUT_MESSAGES}.1.message.tool_calls.0.tool_call.id": "c1",
        f"{A.OI_LLM_INPUT_MESSAGES}.1.message.tool_calls.0.tool_call.function.name": "f",
        f"{A.OI_LLM_INPUT_MESSAGES}.1.message.tool_calls.0.tool_call.function.arguments": "{}",
    }
    assert other_output_message(attrs) == {
        "type": "ai",
        "data": {"content": "Lima", "tool_calls": [], "type": "ai"},
    }
    assert canonical_messages(other_input_messages(attrs)) == [
        {"role": "user", "content": "capital of Peru?", "tool_calls": []},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "args": {}}]},
    ]


def test_redacted_values_count_as_absent() -> None:
    hidden = {A.OI_SPAN_KIND: "TOOL", A.OI_INPUT_VALUE: "x", A.OI_OUTPUT_VALUE: A.OI_REDACTED}
    assert other_tool_output(hidden) is None
    assert other_output_message({A.OI_OUTPUT_VALUE: A.OI_REDACTED}) is None
    assert graph_input_value({A.OI_INPUT_VALUE: A.OI_REDACTED}) is None
    assert unflatten({f"{A.OI_LLM_OUTPUT_MESSAGES}.0.message.content": A.OI_REDACTED}, "x") == []


def test_a_tool_message_with_error_status_is_a_failed_result() -> None:
    message = {"type": "tool", "data": {"content": "boom", "tool_call_id": "c", "status": "error"}}
    output = other_tool_output({A.OI_SPAN_KIND: "TOOL", A.OI_OUTPUT_VALUE: json.dumps(message)})
    assert output is not None
    assert (output.content, output.tool_call_id, output.failed) == ("boom", "c", True)


def test_openllmetry_tool_input_given_only_as_a_python_repr() -> None:
    attrs = {
        A.TL_SPAN_KIND: "tool",
        A.TL_ENTITY_INPUT: json.dumps({"input_str": "{'a': 1}", "kwargs": {"tool_call_id": "k"}}),
    }
    assert other_tool_arguments(attrs) == ({"a": 1}, "k")


def test_tool_steps_take_the_call_they_answer() -> None:
    """OpenInference keeps a one-argument tool's bare input: the model's call gives the rest."""
    call = {"name": "lookup_capital", "args": {"country": "Peru"}, "id": "c7", "type": "tool_call"}
    answer = {"lc": 1, "id": ["AIMessage"], "kwargs": {"content": "", "tool_calls": [call]}}
    spans = [
        span("root", attrs={A.OI_SPAN_KIND: "CHAIN", A.OI_INPUT_VALUE: {"messages": []}}),
        span(
            "llm",
            parent="root",
            start=1,
            attrs={
                A.OI_SPAN_KIND: "LLM",
                A.OI_OUTPUT_VALUE: {"generations": [[{"text": "", "message": answer}]]},
            },
        ),
        span(
            "tool",
            parent="root",
            start=2,
            attrs={
                A.OI_SPAN_KIND: "TOOL",
                A.OI_TOOL_NAME: "lookup_capital",
                A.OI_INPUT_VALUE: "Peru",
            },
        ),
    ]
    trajectory = trajectory_from_detail(detail(spans))
    assert trajectory.steps[0].tool_calls == [call]
    tool = trajectory.steps[1]
    assert (tool.tool_call_id, tool.arguments) == ("c7", {"country": "Peru"})
    assert trajectory.graph_input == {"messages": []}
    assert missing_for_mode(trajectory, "recorded", graph=True) == [
        "step 1 (execute_tool lookup_capital): no recorded result"
    ]


_SEGMENTS = ["0", "1", "message", "tool_calls", "tool_call", "function", "name", "arguments"]
_SEGMENTS += ["content", "contents", "message_content", "text", "role", ""]
_PREFIXES = [A.OI_LLM_OUTPUT_MESSAGES, A.OI_LLM_INPUT_MESSAGES, A.TL_COMPLETION, A.TL_PROMPT]
_KEYS = st.sampled_from(
    [
        A.OI_SPAN_KIND,
        A.OI_INPUT_VALUE,
        A.OI_OUTPUT_VALUE,
        A.TL_SPAN_KIND,
        A.TL_ENTITY_INPUT,
        A.TL_ENTITY_OUTPUT,
        A.GEN_AI_OUTPUT_MESSAGES,
        A.GEN_AI_TOOL_CALL_ARGUMENTS,
        A.GEN_AI_TOOL_CALL_RESULT,
    ]
) | st.builds(
    "{}.{}".format,
    st.sampled_from(_PREFIXES),
    st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=6).map(".".join),
)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_VALUES = st.text(max_size=12) | st.just(A.OI_REDACTED) | _JSONISH.map(json.dumps)


@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_any_attribute_map_reads_without_raising(attrs: dict[str, str]) -> None:
    other_output_message(attrs)
    other_input_messages(attrs)
    other_tool_arguments(attrs)
    other_tool_output(attrs)
    graph_input_value(attrs)
    for kind in ("LLM", "TOOL", "CHAIN"):
        root = span("root", attrs={**attrs, A.OI_SPAN_KIND: "CHAIN"})
        child = span("s", parent="root", start=1, attrs={**attrs, A.OI_SPAN_KIND: kind})
        trajectory = trajectory_from_detail(detail([root, child]))
        missing_for_mode(trajectory, "recorded", graph=True)

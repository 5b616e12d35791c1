"""Convention mapping: GenAI semconv, OpenInference and OpenLLMetry spans give the same columns."""

from __future__ import annotations

import pytest

from collector.conventions import DerivedColumns, derive_columns, parse_count
from schemas import attributes as A


def test_genai_chat_span() -> None:
    derived = derive_columns(
        "chat gpt-4o",
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            A.GEN_AI_AGENT_NAME: "analyst",
            A.GEN_AI_USAGE_INPUT_TOKENS: "1200",
            A.GEN_AI_USAGE_OUTPUT_TOKENS: "85",
            A.RETRACE_STEP_INDEX: "4",
        },
    )
    assert derived == DerivedColumns(
        operation=A.OP_CHAT,
        agent_name="analyst",
        model="gpt-4o",
        tool_name="",
        input_tokens=1200,
        output_tokens=85,
        step_index=4,
    )


def test_response_model_when_no_request_model() -> None:
    derived = derive_columns("chat", {A.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4"})
    assert (derived.operation, derived.model) == (A.OP_CHAT, "claude-sonnet-4")


def test_deprecated_genai_token_keys() -> None:
    derived = derive_columns(
        "chat x",
        {A.GEN_AI_USAGE_PROMPT_TOKENS: "30", A.GEN_AI_USAGE_COMPLETION_TOKENS: "4"},
    )
    assert (derived.input_tokens, derived.output_tokens) == (30, 4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chat gpt-4o", (A.OP_CHAT, "", "gpt-4o", "")),
        ("text_completion davinci", (A.OP_CHAT, "", "davinci", "")),
        ("execute_tool run_python", (A.OP_EXECUTE_TOOL, "", "", "run_python")),
        ("invoke_agent planner", (A.OP_INVOKE_AGENT, "planner", "", "")),
        ("embeddings text-embedding-3", ("embeddings", "", "", "")),
        ("HTTP GET", ("", "", "", "")),
        ("chat", (A.OP_CHAT, "", "", "")),
    ],
)
def test_span_names_imply_operation_and_target(
    name: str, expected: tuple[str, str, str, str]
) -> None:
    derived = derive_columns(name, {})
    assert (derived.operation, derived.agent_name, derived.model, derived.tool_name) == expected


def test_attributes_win_over_the_span_name() -> None:
    derived = derive_columns(
        "execute_tool guessed",
        {A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_TOOL_NAME: "real_tool"},
    )
    assert derived.tool_name == "real_tool"


def test_genai_operation_values_for_llm_calls_count_as_chat() -> None:
    for value in ("chat", "text_completion", "generate_content"):
        assert derive_columns("x", {A.GEN_AI_OPERATION_NAME: value}).operation == A.OP_CHAT
    assert derive_columns("x", {A.GEN_AI_OPERATION_NAME: "create_agent"}).operation == (
        "create_agent"
    )


@pytest.mark.parametrize(
    ("kind", "operation"),
    [
        ("LLM", A.OP_CHAT),
        ("TOOL", A.OP_EXECUTE_TOOL),
        ("AGENT", A.OP_INVOKE_AGENT),
        ("CHAIN", "chain"),
        ("RETRIEVER", "retrieval"),
        ("llm", A.OP_CHAT),
        ("SOMETHING_NEW", "something_new"),
    ],
)
def test_openinference_span_kinds(kind: str, operation: str) -> None:
    assert derive_columns("n", {A.OI_SPAN_KIND: kind}).operation == operation


def test_openinference_llm_span() -> None:
    derived = derive_columns(
        "ChatOpenAI",
        {
            A.OI_SPAN_KIND: "LLM",
            A.OI_LLM_MODEL_NAME: "gpt-4o-mini",
            A.OI_LLM_TOKEN_PROMPT: "51",
            A.OI_LLM_TOKEN_COMPLETION: "9",
        },
    )
    assert (derived.operation, derived.model, derived.input_tokens, derived.output_tokens) == (
        A.OP_CHAT,
        "gpt-4o-mini",
        51,
        9,
    )


def test_openinference_tool_and_agent_names() -> None:
    assert derive_columns("lookup", {A.OI_SPAN_KIND: "TOOL", A.OI_TOOL_NAME: "search"}) == (
        DerivedColumns(operation=A.OP_EXECUTE_TOOL, tool_name="search")
    )
    # Without tool.name / agent.name the span name is the best name there is.
    assert derive_columns("lookup", {A.OI_SPAN_KIND: "TOOL"}).tool_name == "lookup"
    assert derive_columns("planner", {A.OI_SPAN_KIND: "AGENT"}).agent_name == "planner"
    assert derive_columns("x", {A.OI_SPAN_KIND: "AGENT", A.OI_AGENT_NAME: "boss"}).agent_name == (
        "boss"
    )


def test_openllmetry_spans() -> None:
    tool = derive_columns(
        "get_weather.tool", {A.TL_SPAN_KIND: "tool", A.TL_ENTITY_NAME: "get_weather"}
    )
    assert (tool.operation, tool.tool_name) == (A.OP_EXECUTE_TOOL, "get_weather")
    agent = derive_columns("a.agent", {A.TL_SPAN_KIND: "agent", A.TL_ENTITY_NAME: "travel"})
    assert (agent.operation, agent.agent_name) == (A.OP_INVOKE_AGENT, "travel")
    assert derive_columns("w", {A.TL_SPAN_KIND: "workflow"}).operation == "workflow"
    llm = derive_columns(
        "openai.chat",
        {
            A.LLM_REQUEST_TYPE: "chat",
            A.GEN_AI_SYSTEM: "openai",
            A.GEN_AI_REQUEST_MODEL: "gpt-4",
            A.GEN_AI_USAGE_PROMPT_TOKENS: "17",
            A.GEN_AI_USAGE_COMPLETION_TOKENS: "3",
        },
    )
    assert (llm.operation, llm.model, llm.input_tokens, llm.output_tokens) == (
        A.OP_CHAT,
        "gpt-4",
        17,
        3,
    )
    legacy = derive_columns(
        "openai.completion",
        {
            A.LLM_REQUEST_TYPE: "completion",
            A.LLM_USAGE_PROMPT_TOKENS: "8",
            A.LLM_USAGE_COMPLETION_TOKENS: "2",
        },
    )
    assert (legacy.operation, legacy.input_tokens, legacy.output_tokens) == (A.OP_CHAT, 8, 2)


def test_genai_wins_over_other_conventions() -> None:
    derived = derive_columns(
        "x",
        {
            A.GEN_AI_OPERATION_NAME: "execute_tool",
            A.OI_SPAN_KIND: "LLM",
            A.GEN_AI_USAGE_INPUT_TOKENS: "5",
            A.OI_LLM_TOKEN_PROMPT: "9",
        },
    )
    assert (derived.operation, derived.input_tokens) == (A.OP_EXECUTE_TOOL, 5)


def test_unknown_span_has_defaults() -> None:
    assert derive_columns("GET /health", {"http.method": "GET"}) == DerivedColumns()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        ("12.0", 12),
        ("0", 0),
        ("", None),
        (None, None),
        ("-3", None),
        ("abc", None),
        ("nan", None),
        ("1e400", None),
        ("99999999999999999999999", 2**64 - 1),
    ],
)
def test_parse_count(text: str | None, expected: int | None) -> None:
    assert parse_count(text) == expected


def test_bad_counts_and_step_index_fall_back() -> None:
    derived = derive_columns(
        "chat m",
        {
            A.GEN_AI_USAGE_INPUT_TOKENS: "lots",
            A.GEN_AI_USAGE_PROMPT_TOKENS: "7",
            A.RETRACE_STEP_INDEX: "-1",
        },
    )
    assert (derived.input_tokens, derived.step_index) == (7, -1)
    assert derive_columns("x", {A.RETRACE_STEP_INDEX: str(2**40)}).step_index == 2**31 - 1


@pytest.mark.parametrize(
    ("session_key", "user_key"),
    [
        (A.SESSION_ID, A.USER_ID),  # OpenTelemetry, OpenInference
        (A.GEN_AI_CONVERSATION_ID, A.ENDUSER_ID),  # GenAI; the older OpenTelemetry user key
        (A.TL_SESSION_ID, A.TL_USER_ID),  # OpenLLMetry association properties
        (A.LANGFUSE_SESSION_ID, A.LANGFUSE_USER_ID),
    ],
)
def test_session_and_user_come_from_span_then_resource(session_key: str, user_key: str) -> None:
    on_span = derive_columns("x", {session_key: "s1", user_key: "u1"})
    assert (on_span.session_id, on_span.user_id) == ("s1", "u1")
    on_resource = derive_columns("x", {}, {session_key: "s2", user_key: "u2"})
    assert (on_resource.session_id, on_resource.user_id) == ("s2", "u2")
    both = derive_columns("x", {session_key: "span"}, {session_key: "resource", user_key: "u"})
    assert (both.session_id, both.user_id) == ("span", "u")
    assert derive_columns("x", {session_key: ""}, {}).session_id == ""


def test_a_run_id_stamped_as_conversation_id_is_no_session() -> None:
    """Retrace's runner before schema 6 put each run's id in gen_ai.conversation.id."""
    old = {A.GEN_AI_CONVERSATION_ID: "run-1", A.RETRACE_RUN_ID: "run-1"}
    assert derive_columns("invoke_agent a", old).session_id == ""
    assert derive_columns("invoke_agent a", {**old, A.SESSION_ID: "s"}).session_id == "s"
    other = {A.GEN_AI_CONVERSATION_ID: "conv-7", A.RETRACE_RUN_ID: "run-1"}
    assert derive_columns("invoke_agent a", other).session_id == "conv-7"

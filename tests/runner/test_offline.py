"""The scripted offline model: matching, script position from the conversation, templates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from runner.offline import OfflineModel, OfflineScript, load_script, render, resolve_script
from schemas.errors import ConfigError

SCRIPT = OfflineScript.model_validate(
    {
        "name": "m",
        "fallback": "no idea",
        "tasks": [
            {
                "name": "t",
                "match": "sales",
                "steps": [
                    {
                        "thought": "query it",
                        "call": "query",
                        "args": {"sql": "SELECT 1"},
                        "on_error": "retry",
                        "max_retries": 1,
                        "alternative": {"call": "query", "args": {"sql": "SELECT 2"}},
                    },
                    {
                        "call": "python",
                        "args": {"code": "x = {{ last | json }}", "n": "{{ last.0.n }}"},
                    },
                    {"answer": "n={{ results.0.0.n }}, python said {{ last }}"},
                ],
            }
        ],
    }
)


def _ask(messages: list) -> AIMessage:
    return asyncio.run(
        OfflineModel(SCRIPT).ainvoke(messages, [], step_index=len(messages), parameters={})
    )


def _tool(content: str, status: str = "success", call_id: str = "c") -> ToolMessage:
    return ToolMessage(content=content, tool_call_id=call_id, status=status)


BASE = [SystemMessage("sys"), HumanMessage("Show me SALES please")]


def test_first_move_is_the_first_call_with_metadata() -> None:
    message = _ask(BASE)
    assert message.content == "query it"
    assert message.tool_calls[0]["name"] == "query"
    assert message.tool_calls[0]["args"] == {"sql": "SELECT 1"}
    assert message.tool_calls[0]["id"] == "call_2_0"
    assert message.usage_metadata is not None and message.usage_metadata["input_tokens"] == 5
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.response_metadata["model_name"] == "m"


def test_csv_results_feed_later_arguments_with_types_kept() -> None:
    message = _ask([*BASE, _tool("n,name\n7,x\n")])
    assert message.tool_calls[0]["args"] == {"code": 'x = [{"n": 7, "name": "x"}]', "n": 7}


def test_errors_retry_then_take_the_alternative_then_continue() -> None:
    assert _ask([*BASE, _tool("boom", "error")]).tool_calls[0]["args"] == {"sql": "SELECT 1"}
    two_errors = [*BASE, _tool("boom", "error"), _tool("boom", "error")]
    assert _ask(two_errors).tool_calls[0]["args"] == {"sql": "SELECT 2"}
    # the alternative gets its own retries, then the script moves on
    three = [*two_errors, _tool("boom", "error")]
    assert _ask(three).tool_calls[0]["args"] == {"sql": "SELECT 2"}
    assert _ask([*three, _tool("boom", "error")]).tool_calls[0]["name"] == "python"


def test_final_answer_templates_earlier_results() -> None:
    message = _ask([*BASE, _tool("n\n5\n"), _tool("ok")])
    assert message.content == "n=5, python said ok"
    assert message.tool_calls == []
    assert message.response_metadata["finish_reason"] == "stop"


def test_same_conversation_same_answer() -> None:
    assert _ask(BASE) == _ask(BASE)


def test_unmatched_task_gets_the_fallback() -> None:
    assert _ask([HumanMessage("hello")]).content == "no idea"


def test_missing_paths_render_visibly() -> None:
    assert render("{{ last.nope }}", {"last": {"a": 1}}) == "<last.nope: not found>"


@given(st.text())
def test_render_never_raises(text: str) -> None:
    render(text, {"last": "a,b\n1,2\n", "results": [], "task": text})


def test_bad_scripts_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: x\n    match: '('\n    steps: [{answer: hi}]\n")
    with pytest.raises(ConfigError, match="bad match regex"):
        load_script(bad)
    bad.write_text("tasks:\n  - name: x\n    match: a\n    steps: [{call: q, answer: hi}]\n")
    with pytest.raises(ConfigError, match="exactly one of 'call' or 'answer'"):
        load_script(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_script(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="no offline script named 'nope'"):
        resolve_script("nope")


def test_bundled_demo_script_loads() -> None:
    script = load_script(resolve_script("data-scientist"))
    assert len(script.tasks) >= 6

"""Spans in the real store: a run exported over OTLP/HTTP to a real collector, and crash paths."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from runner.config import AgentConfig
from runner.offline import OfflineModel, OfflineScript
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from runner.tracing import ai_message_from_json, messages_to_genai
from schemas import attributes as A

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


class EchoTools:
    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec("echo", "echo text", {"type": "object"}, server="echo-server")]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        return ToolResult(
            json.dumps({"echo": arguments["text"]}),
            metadata={A.RETRACE_SANDBOX_BACKEND: "process", A.RETRACE_SANDBOX_EXIT_CODE: 0},
        )


SCRIPT = OfflineScript.model_validate(
    {
        "name": "echo-model",
        "tasks": [
            {
                "name": "echo",
                "match": "echo",
                "steps": [
                    {"thought": "echoing", "call": "echo", "args": {"text": "hello"}},
                    {"answer": "It said {{ last.echo }}."},
                ],
            }
        ],
    }
)


def test_run_spans_land_in_the_store(collector_server: Any) -> None:
    config = AgentConfig(name="echoer", model="offline:echo-model", seed=3)
    result = asyncio.run(
        run_agent(
            "please echo",
            config,
            model=OfflineModel(SCRIPT),
            tools=EchoTools(),
            runtime=LiveRuntime(seed=3),
            endpoint=collector_server.url,
        )
    )
    assert result.answer == "It said hello."
    detail = collector_server.client.wait_for_trace(result.trace_id, min_spans=4)
    by_name = {s.name: s for s in detail.spans}
    assert set(by_name) == {"invoke_agent echoer", "chat echo-model", "execute_tool echo"}
    root = by_name["invoke_agent echoer"]
    assert root.parent_span_id == ""
    assert root.attributes[A.RETRACE_RUN_STATUS] == "completed"
    assert root.attributes[A.RETRACE_RUN_INPUT] == "please echo"
    assert root.attributes[A.RETRACE_RUN_OUTPUT] == "It said hello."
    assert root.attributes[A.RETRACE_SEED] == "3"
    assert json.loads(root.attributes[A.RETRACE_AGENT_CONFIG])["name"] == "echoer"
    assert root.attributes[A.RETRACE_CODE_VERSION]
    assert root.resource_attributes[A.SERVICE_NAME] == "retrace-runner"
    tool = by_name["execute_tool echo"]
    assert tool.attributes[A.GEN_AI_TOOL_CALL_RESULT] == '{"echo": "hello"}'
    assert json.loads(tool.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"text": "hello"}
    assert tool.attributes[A.RETRACE_SANDBOX_BACKEND] == "process"
    assert tool.attributes[A.RETRACE_MCP_SERVER] == "echo-server"
    chats = sorted(
        (s for s in detail.spans if s.name == "chat echo-model"),
        key=lambda s: int(s.attributes[A.RETRACE_STEP_INDEX]),
    )
    first = chats[0]
    assert first.input_tokens > 0
    assert json.loads(first.attributes[A.GEN_AI_INPUT_MESSAGES])[1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "please echo"}],
    }
    replayed = ai_message_from_json(first.attributes[A.RETRACE_MODEL_RESPONSE])
    assert replayed.tool_calls[0]["args"] == {"text": "hello"}
    assert messages_to_genai([replayed])[0]["parts"][1]["name"] == "echo"
    summary = detail.trace
    assert summary.run_status == "completed"
    assert summary.llm_calls == 2 and summary.tool_calls == 1


CRASH_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from runner.config import AgentConfig
    from runner.offline import OfflineModel, OfflineScript
    from runner.run import run_agent
    from runner.runtime import LiveRuntime
    from runner.seams import ToolResult, ToolSpec

    class SlowTools:
        async def list_tools(self):
            return [ToolSpec("slow", "takes long", {"type": "object"})]

        async def call(self, name, arguments, *, step_index, call_id):
            print("TOOL-STARTED", flush=True)
            await asyncio.sleep(60)
            return ToolResult("done")

    script = OfflineScript.model_validate({"tasks": [{"name": "s", "match": "slow", "steps": [
        {"call": "slow", "args": {}}, {"answer": "finished"}]}]})
    asyncio.run(run_agent("do the slow thing", AgentConfig(name="victim", model="offline:s"),
        model=OfflineModel(script), tools=SlowTools(), runtime=LiveRuntime(),
        endpoint=sys.argv[1], run_id=sys.argv[2]))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_run_leaves_a_trace_marked_incomplete(
    collector_server: Any, tmp_path: Path, signum: int
) -> None:
    program = tmp_path / "victim.py"
    program.write_text(CRASH_PROGRAM)
    run_id = f"crash-{signum}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(program), collector_server.url, run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert b"TOOL-STARTED" in line, proc.stderr.read() if proc.stderr else b""
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    deadline = time.monotonic() + 30
    while True:
        page = collector_server.client.list_traces(attributes={A.RETRACE_RUN_ID: run_id})
        if page.traces or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert page.traces, "no trace for the killed run"
    detail = collector_server.client.wait_for_trace(page.traces[0].trace_id, min_spans=3)
    root = next(s for s in detail.spans if s.parent_span_id == "")
    assert root.attributes[A.RETRACE_RUN_STATUS] == "incomplete"
    assert root.status == "Error"
    assert any(s.name == "execute_tool slow" for s in detail.spans)
    assert detail.trace.run_status == "incomplete"

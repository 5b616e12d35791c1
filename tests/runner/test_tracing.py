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


SLOW_SCRIPT = """
name: sleeper
tasks:
  - name: slow
    match: slow
    steps:
      - call: run_shell
        args: {command: "sleep 60"}
      - answer: "slept"
  - name: quick
    match: quick
    steps:
      - answer: "quick answer"
"""


def _cli(*args: str, data_dir: Path, **kwargs: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *args, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=data_dir.parent,
        **kwargs,
    )


def test_sigkilled_run_gets_its_root_back_from_the_journal(
    collector_server: Any, tmp_path: Path
) -> None:
    (tmp_path / "sleeper.yaml").write_text(SLOW_SCRIPT)
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "name: sleepy\nmodel: offline:sleeper\noffline_script: sleeper.yaml\n"
        'mcp_servers:\n  - name: sandbox\n    command: "{python}"\n'
        '    args: ["-m", "runner.mcp_servers.sandbox_server"]\n'
    )
    data_dir = tmp_path / "data"
    journal_dir = data_dir / "runner" / "journal"
    common = ["--agent", str(agent), "--endpoint", collector_server.url]
    common += ["--backend", "process", "--insecure"]
    proc = _cli("run", "do the slow thing", *common, data_dir=data_dir, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(journal_dir.glob("*.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no journal entry"
            time.sleep(0.1)
        (entry_path,) = journal_dir.glob("*.json")
        entry = json.loads(entry_path.read_text())
        trace_id = entry["trace_id"]
        assert entry["pid"] == proc.pid
        # The chat span (ended before the tool started) is exported; then the tool sleeps.
        detail = collector_server.client.wait_for_trace(trace_id, min_spans=1)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    detail = collector_server.client.get_trace(trace_id)
    assert detail.spans and all(s.parent_span_id for s in detail.spans), "a root already?"
    assert entry_path.exists()

    after = _cli("run", "a quick one", *common, data_dir=data_dir)
    out, err = after.communicate(timeout=180)
    assert after.returncode == 0, out + err
    assert not list(journal_dir.glob("*.json*")), "journal entries left behind"

    deadline = time.monotonic() + 30
    while True:
        detail = collector_server.client.get_trace(trace_id)
        roots = [s for s in detail.spans if s.parent_span_id == ""]
        if roots or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (root,) = roots
    assert root.trace_id == trace_id
    assert root.span_id == entry["span_id"]
    assert root.name == "invoke_agent sleepy"
    assert root.status == "Error"
    assert root.attributes[A.RETRACE_RUN_STATUS] == "incomplete"
    assert root.attributes[A.RETRACE_RUN_INPUT] == "do the slow thing"
    assert root.attributes[A.RETRACE_RUN_ID] == entry["run_id"]
    events = json.dumps([e.model_dump(mode="json") for e in root.events])
    assert f"process {proc.pid} died without ending the run" in events
    assert any(s.name == "chat sleeper" for s in detail.spans)
    assert detail.trace.run_status == "incomplete"
    page = collector_server.client.list_traces(attributes={A.RETRACE_RUN_ID: entry["run_id"]})
    assert [t.run_status for t in page.traces] == ["incomplete"]


def test_journal_of_a_live_process_is_not_recovered(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runner import journal

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        paths = {}
        for name, proc in (("live", live), ("dead", dead)):
            path = journal.write_entry(
                tmp_path,
                run_id=name,
                trace_id=f"{proc.pid:032x}",
                span_id=f"{proc.pid:016x}",
                start_ns=time.time_ns(),
                name=f"invoke_agent {name}",
                attributes={A.RETRACE_RUN_ID: name},
                links=[],
                endpoint="http://127.0.0.1:9",
                project="default",
                api_key=None,
            )
            entry = json.loads(path.read_text())
            entry["pid"] = proc.pid  # as if that process had written it
            entry["process_start"] = journal.process_start(live.pid) if name == "live" else 1
            path.write_text(json.dumps(entry))
            paths[name] = path
        sink = InMemorySpanExporter()
        recovered = journal.recover(tmp_path, "http://127.0.0.1:9", None, exporter=sink)
        assert recovered == [f"{dead.pid:032x}"]
        (span,) = sink.get_finished_spans()
        assert span.attributes is not None
        assert span.attributes[A.RETRACE_RUN_STATUS] == "incomplete"
        assert paths["live"].exists() and not paths["dead"].exists()
    finally:
        live.kill()
        live.wait()

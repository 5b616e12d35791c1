"""A small real agent to record and replay: the offline model + a file/query tool plane.

The tools are a real ``ToolExecutor`` (files in a real directory, a deterministic query), so the
recording is a real ``runner.run_agent`` run; its spans are captured in process and read back
with ``trajectory_from_detail``, exactly as the replay engine reads its own run.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

from replay import trajectory_from_detail
from replay._capture import CaptureExporter, detail_from_spans
from runner.config import AgentConfig, McpServerConfig
from runner.offline import OfflineModel
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from schemas.models import Trajectory

TASK = "Build the sales report"

SCRIPT = """
name: test-ds
tasks:
  - name: report
    match: sales report
    steps:
      - thought: look at the sales
        call: query
        args: {sql: "select region, total from sales"}
      - call: write_file
        args: {path: report.csv, content: "region,total\\nnorth,10\\nsouth,32\\n"}
      - call: read_file
        args: {path: report.csv}
      - answer: "Report written: {{ last }}"
"""

ROWS = [["north", 10], ["south", 32]]


class FileTools:
    """``query`` (deterministic rows) on server ``data``; ``write_file``/``read_file`` on server
    ``files``, over a real directory."""

    def __init__(self, workspace: Path, rows: list[list[Any]] | None = None) -> None:
        self.workspace = workspace
        self.rows = ROWS if rows is None else rows
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(self) -> list[ToolSpec]:
        path = {"type": "object", "properties": {"path": {"type": "string"}}}
        return [
            ToolSpec(
                "query",
                "Run read-only SQL",
                {"type": "object", "properties": {"sql": {"type": "string"}}},
                "data",
            ),
            ToolSpec("write_file", "Write a file", path, "files"),
            ToolSpec("read_file", "Read a file", path, "files"),
        ]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        self.calls.append((name, arguments))
        if name == "query":
            return ToolResult(json.dumps({"rows": self.rows}))
        target = self.workspace / str(arguments.get("path", ""))
        if name == "write_file":
            target.write_text(str(arguments.get("content", "")))
            return ToolResult(f"wrote {target.name}")
        if name == "read_file":
            if not target.is_file():
                return ToolResult(f"no such file: {target.name}", is_error=True)
            return ToolResult(target.read_text())
        return ToolResult(f"unknown tool {name}", is_error=True)


def write_script(directory: Path, text: str = SCRIPT, name: str = "script.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def agent_config(script: Path, **changes: Any) -> AgentConfig:
    config = AgentConfig(
        name="ds-test",
        model="offline:test-ds",
        offline_script=str(script),
        system_prompt="You are a careful data scientist.",
        mcp_servers=[
            McpServerConfig(name="data", command="data-server"),
            McpServerConfig(name="files", command="files-server"),
        ],
        seed=3,
    )
    return config.model_copy(update=changes)


def record(
    config: AgentConfig, workspace: Path, task: str = TASK, tools: FileTools | None = None
) -> Trajectory:
    """Run the agent for real and return its trajectory (as the collector would serve it)."""
    workspace.mkdir(parents=True, exist_ok=True)
    capture = CaptureExporter()
    assert config.offline_script is not None
    model = OfflineModel.from_file(config.offline_script, name=config.model_name)
    result = asyncio.run(
        run_agent(
            task,
            config,
            model=model,
            tools=tools or FileTools(workspace),
            runtime=LiveRuntime(config.seed),
            span_exporter=capture,
        )
    )
    trajectory = trajectory_from_detail(detail_from_spans(capture.spans, result.trace_id))
    assert trajectory.trace_id == result.trace_id
    return trajectory

"""live-tools over the real sandbox server (gVisor): each tool call runs in the workspace restored
to that step's recorded snapshot — a CSV written in step 1 is there to be read in step 5."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from replay import Replayer, trajectory_from_detail
from replay._capture import CaptureExporter, detail_from_spans
from runner.assembly import live_tools
from runner.config import AgentConfig, McpServerConfig
from runner.offline import OfflineModel
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.sandbox import WorkspaceSnapshots
from schemas.models import DivergenceKind, Trajectory
from schemas.settings import Settings

pytestmark = pytest.mark.integration

TASK = "Save the numbers to a CSV and read it back"
CSV = "a,b\n1,2\n3,4\n"
SCRIPT = f"""
name: csv
tasks:
  - name: csv
    match: save the numbers
    steps:
      - call: write_file
        args: {{path: data.csv, content: {CSV!r}}}
      - call: list_files
      - call: read_file
        args: {{path: data.csv}}
      - answer: "Read back: {{{{ last }}}}"
"""


def config_for(tmp: Path, **changes: object) -> AgentConfig:
    script = tmp / "csv.yaml"
    script.write_text(SCRIPT.replace("'", '"'))
    config = AgentConfig(
        name="csv",
        model="offline:csv",
        offline_script=str(script),
        mcp_servers=[
            McpServerConfig(
                name="sandbox", command="{python}", args=["-m", "runner.mcp_servers.sandbox_server"]
            )
        ],
    )
    return config.model_copy(update=changes)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trajectory, Settings]:
    tmp = tmp_path_factory.mktemp("csv")
    settings = Settings(data_dir=tmp / "data", endpoint="", sandbox_backend="gvisor")
    config = config_for(tmp)
    capture = CaptureExporter()

    async def run() -> str:
        async with live_tools(config, settings, tmp / "ws", None) as tools:
            assert config.offline_script is not None
            result = await run_agent(
                TASK,
                config,
                model=OfflineModel.from_file(config.offline_script, name="csv"),
                tools=tools,
                runtime=LiveRuntime(2),
                span_exporter=capture,
            )
        return result.trace_id

    trace_id = asyncio.run(run())
    return trajectory_from_detail(detail_from_spans(capture.spans, trace_id)), settings


def test_snapshots_are_recorded(recorded: tuple[Trajectory, Settings]) -> None:
    trajectory, settings = recorded
    tools = [s for s in trajectory.steps if s.kind == "tool"]
    assert [(s.index, s.tool_name) for s in tools] == [
        (1, "write_file"),
        (3, "list_files"),
        (5, "read_file"),
    ]
    assert all(s.error is None and s.sandbox_backend == "gvisor" for s in tools), tools
    assert tools[2].result == CSV
    assert all(s.snapshot_before and s.snapshot_after for s in tools)
    # the workspace before step 5 holds the CSV step 1 wrote
    restored = settings.data_dir / "restored"
    WorkspaceSnapshots(settings.data_dir / "runner" / "cas").restore(
        tools[2].snapshot_before, restored
    )
    assert (restored / "data.csv").read_text() == CSV


def test_live_tools_restores_each_steps_workspace(
    recorded: tuple[Trajectory, Settings], tmp_path: Path
) -> None:
    trajectory, settings = recorded
    outcome = Replayer.from_settings(settings).replay(trajectory, "live-tools")
    assert outcome.error == ""
    report = outcome.report
    assert report is not None and not report.diverged, report.divergences

    # Now the write is refused by policy in the replay, so step 1 writes nothing: step 5 still
    # reads the CSV, because its workspace is restored from the recording before the call.
    config = config_for(tmp_path, policy={"version": 1, "tools": {"deny": ["write_file"]}})
    outcome = Replayer.from_settings(settings).replay(trajectory, "live-tools", config=config)
    report = outcome.report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index) == (DivergenceKind.POLICY, 1)
    assert not [d for d in report.divergences if d.recorded_index == 5], report.divergences

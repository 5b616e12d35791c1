"""Replay against a real collector (``retrace serve`` subprocess, chDB on disk): record a run over
OTLP, export it, replay it by trace id, and find the replay (a trace of its own) and its report."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from replay import load_trajectory, trajectory_from_detail
from retrace.cli import cli
from runner.offline import OfflineModel
from runner.run import run_agent
from runner.runtime import LiveRuntime
from schemas import attributes as A
from schemas.models import ReplayMode, ReplayRecord
from tests.replay.agent_fixture import TASK, FileTools, agent_config, write_script

pytestmark = pytest.mark.integration


def record_into(collector: Any, tmp_path: Path) -> str:
    config = agent_config(write_script(tmp_path))
    assert config.offline_script is not None
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = asyncio.run(
        run_agent(
            TASK,
            config,
            model=OfflineModel.from_file(config.offline_script, name=config.model_name),
            tools=FileTools(workspace),
            runtime=LiveRuntime(config.seed),
            endpoint=collector.url,
        )
    )
    collector.client.wait_for_trace(result.trace_id, min_spans=8)
    return result.trace_id


def test_record_export_replay_through_the_collector(collector_server: Any, tmp_path: Path) -> None:
    client = collector_server.client
    trace_id = record_into(collector_server, tmp_path)
    local = trajectory_from_detail(client.get_trace(trace_id))
    assert len(local.steps) == 7 and local.agent_config
    # the collector serves the same trajectory (it runs the same function)
    assert client.get_trajectory(trace_id) == local

    runner = CliRunner()
    golden_dir = tmp_path / "golden"
    result = runner.invoke(
        cli, ["export", trace_id, "--to", str(golden_dir), "--endpoint", collector_server.url]
    )
    assert result.exit_code == 0, result.output
    golden = load_trajectory((golden_dir / f"{trace_id}.json").read_text())
    assert golden == local

    # a replay by trace id: no divergence; the report is stored; the replay is a trace
    result = runner.invoke(cli, ["replay", trace_id, "--endpoint", collector_server.url, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["report"]["diverged"] is False
    replays = client.list_replays(trace_id)
    assert [r.replay_id for r in replays] == [body["replay_id"]]
    stored = replays[0]
    assert stored.status == "completed" and not stored.diverged
    assert stored.replay_trace_id == body["replay_trace_id"]
    assert stored.report is not None and stored.report.metrics.steps_matched == 7
    replay_trace = client.wait_for_trace(stored.replay_trace_id, min_spans=8)
    root = next(s for s in replay_trace.spans if s.operation == A.OP_INVOKE_AGENT)
    assert root.attributes[A.RETRACE_REPLAY_OF] == trace_id
    assert root.attributes[A.RETRACE_REPLAY_MODE] == "recorded"
    assert root.attributes[A.RETRACE_REPLAY_ID] == body["replay_id"]
    assert root.attributes.get(A.RETRACE_CODE_VERSION)
    listed = client.list_traces(replay_of=trace_id)
    assert [t.trace_id for t in listed.traces] == [stored.replay_trace_id]

    # a diverging replay, launched the way the collector launches one (a pre-created record)
    now = datetime.now(tz=UTC)
    client.save_replay(
        ReplayRecord(
            replay_id="rp-1",
            original_trace_id=trace_id,
            mode=ReplayMode.RECORDED,
            created_at=now,
            updated_at=now,
        )
    )
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are a hasty data scientist.")
    result = runner.invoke(
        cli,
        [
            "replay",
            trace_id,
            "--endpoint",
            collector_server.url,
            "--replay-id",
            "rp-1",
            "--prompt-file",
            str(prompt),
        ],
    )
    assert result.exit_code == 1, result.output
    record = client.get_replay("rp-1")
    assert record.status == "completed" and record.diverged
    assert (record.first_divergence_step, record.first_divergence_kind) == (0, "other_messages")
    assert record.created_at == now

    # unknown trace: exit 2, and a pre-created record is marked failed
    client.save_replay(
        ReplayRecord(
            replay_id="rp-2",
            original_trace_id="f" * 32,
            mode=ReplayMode.RECORDED,
            created_at=now,
            updated_at=now,
        )
    )
    result = runner.invoke(
        cli, ["replay", "f" * 32, "--endpoint", collector_server.url, "--replay-id", "rp-2"]
    )
    assert result.exit_code == 2
    assert "unknown trace" in result.output
    failed = client.get_replay("rp-2")
    assert failed.status == "failed" and "unknown trace" in failed.error


def test_ci_over_a_trace_query(collector_server: Any, tmp_path: Path) -> None:
    trace_id = record_into(collector_server, tmp_path)
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(
        cli,
        [
            "ci",
            "agent=ds-test&limit=10",
            "--endpoint",
            collector_server.url,
            "--junit",
            str(junit),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1/1 trajectories replayed without divergence" in result.output
    assert trace_id in junit.read_text()
    assert len(collector_server.client.list_replays(trace_id)) == 1


def test_a_trace_from_another_sdk_names_what_replay_lacks(collector_server: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector_server.url}/v1/traces"))
    )
    tracer = provider.get_tracer("openinference-like")
    with tracer.start_as_current_span(
        "agent", attributes={A.OI_SPAN_KIND: "AGENT", A.OI_INPUT_VALUE: "hi"}
    ) as root:
        with tracer.start_as_current_span(
            "search",
            attributes={A.OI_SPAN_KIND: "TOOL", A.OI_TOOL_NAME: "search", A.OI_INPUT_VALUE: "x"},
        ):
            pass
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    collector_server.client.wait_for_trace(trace_id, min_spans=2)
    result = CliRunner().invoke(cli, ["replay", trace_id, "--endpoint", collector_server.url])
    assert result.exit_code == 2, result.output
    assert f"the agent config ({A.RETRACE_AGENT_CONFIG} on the root span)" in result.output
    assert "step 0 (execute_tool search): no recorded result" in result.output


def test_a_replay_launched_through_the_api_can_change_the_prompt(
    collector_server: Any, tmp_path: Path
) -> None:
    """The UI's path: POST /traces/{id}/replay with another system prompt."""
    client = collector_server.client
    trace_id = record_into(collector_server, tmp_path)
    record = client.start_replay(trace_id, "recorded", prompt="You are a hasty data scientist.")
    deadline = time.monotonic() + 120
    while (record := client.get_replay(record.replay_id)).status == "running":
        assert time.monotonic() < deadline, "the replay never finished"
        time.sleep(0.5)
    assert record.status == "completed", record.error
    assert record.diverged
    assert (record.first_divergence_step, record.first_divergence_kind) == (0, "other_messages")

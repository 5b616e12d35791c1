"""Record a real run, change the agent in controlled ways, check where the replay diverges."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replay import Replayer, report_fingerprint
from runner.config import AgentConfig
from runner.providers import offline_model
from runner.seams import ModelProvider, ToolExecutor
from schemas.errors import (
    ConfigError,
    InvalidInputError,
    ReplayError,
    TrajectoryIncompleteError,
)
from schemas.models import DivergenceKind, ReplayMode, Trajectory
from schemas.settings import Settings
from tests.replay.agent_fixture import SCRIPT, FileTools, agent_config, record, write_script


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path)


@pytest.fixture
def golden(tmp_path: Path, script: Path) -> Trajectory:
    return record(agent_config(script), tmp_path / "recorded-ws")


def live_file_tools(rows: list[list[object]] | None = None) -> object:
    @contextlib.asynccontextmanager
    async def factory(config: AgentConfig, workspace: Path) -> AsyncIterator[ToolExecutor]:
        yield FileTools(workspace, rows=rows)

    return factory


def test_recording_has_the_expected_shape(golden: Trajectory) -> None:
    assert [s.kind for s in golden.steps] == ["llm", "tool"] * 3 + ["llm"]
    assert [s.tool_name for s in golden.steps if s.kind == "tool"] == [
        "query",
        "write_file",
        "read_file",
    ]
    assert golden.run_status == "completed"
    assert golden.clock_values and golden.ids


def test_unchanged_code_gives_zero_divergences(golden: Trajectory) -> None:
    outcome = Replayer().replay(golden, ReplayMode.RECORDED)
    assert outcome.error == ""
    report = outcome.report
    assert report is not None
    assert not report.diverged and report.divergences == []
    assert report.metrics.steps_matched == report.metrics.steps_recorded == 7
    assert report.metrics.final_answer_changed is False
    assert outcome.replay_trace_id and outcome.replay_trace_id != golden.trace_id
    assert outcome.mismatches == []
    assert outcome.run_status == "completed"


def test_prompt_edit_diverges_at_the_first_llm_call(golden: Trajectory) -> None:
    outcome = Replayer().replay(golden, "recorded", prompt="You are a sloppy data scientist.")
    report = outcome.report
    assert report is not None and report.diverged
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index, first.step_kind) == (
        DivergenceKind.OTHER_MESSAGES,
        0,
        "llm",
    )
    assert [(d.path, d.recorded, d.replayed) for d in first.diff] == [
        (
            "/input_messages/0/content",
            "You are a careful data scientist.",
            "You are a sloppy data scientist.",
        )
    ]
    # every LLM call saw the edited prompt; every tool call still matched
    assert {d.kind for d in report.divergences} == {DivergenceKind.OTHER_MESSAGES}
    assert [d.recorded_index for d in report.divergences] == [0, 2, 4, 6]
    assert outcome.mismatches and outcome.mismatches[0].recorded_index == 0


def test_removed_tool_shows_in_the_tools_offered(golden: Trajectory, script: Path) -> None:
    config = agent_config(script)
    config.mcp_servers = [s for s in config.mcp_servers if s.name != "files"]
    outcome = Replayer().replay(golden, "recorded", config=config)
    report = outcome.report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index) == (DivergenceKind.OTHER_MESSAGES, 0)
    removed = {(d.path, d.op) for d in first.diff}
    assert ("/tool_definitions/2", "remove") in removed or any(
        d.op == "remove" and d.path.startswith("/tool_definitions") for d in first.diff
    )
    # the recorded model still asks for write_file, which no longer exists: unanswerable
    kinds = [d.kind for d in report.divergences]
    assert DivergenceKind.UNANSWERABLE in kinds
    unanswerable = next(d for d in report.divergences if d.kind is DivergenceKind.UNANSWERABLE)
    assert "write_file" in unanswerable.summary and unanswerable.replayed_index == 3
    assert outcome.run_status == "incomplete"
    assert report.metrics.final_answer_changed


def test_policy_change_is_a_policy_divergence(golden: Trajectory, script: Path) -> None:
    config = agent_config(script, policy={"version": 1, "tools": {"deny": ["write_file"]}})
    report = Replayer().replay(golden, "recorded", config=config).report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index) == (DivergenceKind.POLICY, 3)
    assert any(d.path == "/policy/decision" and d.replayed == "deny" for d in first.diff)
    assert DivergenceKind.ERROR_STATUS in {
        d.kind for d in report.divergences if d.recorded_index == 3
    }


def test_different_model_policy_in_live_model_mode(golden: Trajectory, tmp_path: Path) -> None:
    # the new script skips reading the file back and answers right after writing it
    shorter = write_script(
        tmp_path,
        SCRIPT.replace(
            "      - call: read_file\n        args: {path: report.csv}\n",
            "",
        ),
        name="shorter.yaml",
    )
    outcome = Replayer().replay(golden, "live-model", script=str(shorter))
    report = outcome.report
    assert report is not None and report.diverged
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index, first.step_kind) == (
        DivergenceKind.OTHER_OUTPUT,
        4,
        "llm",
    )
    assert any(d.path.startswith("/output_message") for d in first.diff)
    missing = [
        d.recorded_index for d in report.divergences if d.kind is DivergenceKind.MISSING_STEP
    ]
    assert missing == [5, 6]
    assert report.metrics.final_answer_changed
    assert report.metrics.steps_replayed == 5


def test_tool_argument_change_live_model(golden: Trajectory, tmp_path: Path) -> None:
    changed = write_script(
        tmp_path, SCRIPT.replace("select region, total from sales", "select * from sales"), "b.yaml"
    )
    replayer = Replayer(live_tools=live_file_tools())  # type: ignore[arg-type]
    # unmatched tool calls executed live
    report = replayer.replay(golden, "live-model", script=str(changed)).report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index) == (DivergenceKind.OTHER_OUTPUT, 0)
    args = next(d for d in report.divergences if d.kind is DivergenceKind.OTHER_ARGUMENTS)
    assert args.recorded_index == 1
    assert [(d.path, d.recorded, d.replayed) for d in args.diff] == [
        ("/arguments/sql", "select region, total from sales", "select * from sales")
    ]
    # ... or stopped: an unanswerable request at the tool call
    stopped = replayer.replay(golden, "live-model", script=str(changed), on_unmatched="stop").report
    assert stopped is not None
    kinds = [(d.kind, d.replayed_index) for d in stopped.divergences]
    assert (DivergenceKind.UNANSWERABLE, 1) in kinds
    unanswerable = next(d for d in stopped.divergences if d.kind is DivergenceKind.UNANSWERABLE)
    assert any(d.path == "/arguments/sql" for d in unanswerable.diff)


def test_tool_whose_output_changed_live_tools(golden: Trajectory) -> None:
    replayer = Replayer(live_tools=live_file_tools(rows=[["north", 11]]))  # type: ignore[arg-type]
    report = replayer.replay(golden, "live-tools").report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index, first.step_kind) == (
        DivergenceKind.OTHER_OUTPUT,
        1,
        "tool",
    )
    assert [(d.path, d.op) for d in first.diff] == [
        ("/result/rows/0/1", "change"),
        ("/result/rows/1", "remove"),
    ]
    # the same tools as recorded: live-tools replays cleanly
    same = Replayer(live_tools=live_file_tools()).replay(golden, "live-tools")  # type: ignore[arg-type]
    assert same.report is not None and not same.report.diverged, same.report.divergences


def test_more_llm_calls_than_recorded_is_unanswerable(golden: Trajectory) -> None:
    truncated = golden.model_copy(deep=True)
    truncated.steps = truncated.steps[:-1]
    outcome = Replayer().replay(truncated, "recorded")
    report = outcome.report
    assert report is not None
    first = report.first_divergence
    assert first is not None
    assert first.kind is DivergenceKind.UNANSWERABLE
    assert first.replayed_index == 6 and "LLM call #4" in first.summary
    assert outcome.error == ""


def test_replays_are_deterministic(golden: Trajectory) -> None:
    replayer = Replayer()
    reports = [replayer.replay(golden, "recorded").report for _ in range(100)]
    prints = {json.dumps(report_fingerprint(r), sort_keys=True) for r in reports if r}
    assert len(prints) == 1
    changed = [replayer.replay(golden, "recorded", prompt="other").report for _ in range(5)]
    assert len({json.dumps(report_fingerprint(r), sort_keys=True) for r in changed if r}) == 1


def test_missing_data_is_a_clear_error(golden: Trajectory) -> None:
    broken = golden.model_copy(deep=True)
    broken.steps[3].result = None
    with pytest.raises(TrajectoryIncompleteError, match=r"step 3 \(execute_tool write_file\)"):
        Replayer().replay(broken, "recorded")
    with pytest.raises(ReplayError, match="no collector endpoint"):
        Replayer().replay("0123456789abcdef", "recorded")


def test_replay_sees_the_recorded_approval_decision(tmp_path: Path, script: Path) -> None:
    import asyncio

    from replay import trajectory_from_detail
    from replay._capture import CaptureExporter, detail_from_spans
    from runner.offline import OfflineModel
    from runner.run import run_agent
    from runner.runtime import LiveRuntime
    from tests.replay.agent_fixture import TASK

    policy = {"version": 1, "require_approval": [{"name": "writes", "tools": ["write_file"]}]}
    config = agent_config(script, policy=policy)
    decisions: list[dict[str, object]] = []

    async def alice_approves(request: dict[str, object]) -> dict[str, object]:
        decisions.append(request)
        return {"approval_id": "ap-1", "status": "approved", "decided_by": "alice", "comment": ""}

    workspace = tmp_path / "ws-approval"
    workspace.mkdir()
    capture = CaptureExporter()
    assert config.offline_script is not None
    result = asyncio.run(
        run_agent(
            TASK,
            config,
            model=OfflineModel.from_file(config.offline_script, name=config.model_name),
            tools=FileTools(workspace),
            runtime=LiveRuntime(1),
            approval_resolver=alice_approves,
            span_exporter=capture,
        )
    )
    assert len(decisions) == 1 and (workspace / "report.csv").is_file()
    recorded = trajectory_from_detail(detail_from_spans(capture.spans, result.trace_id))
    write = recorded.steps[3]
    assert write.policy_decision == "require_approval"
    assert write.approval is not None and write.approval["status"] == "approved"

    # the replay asks nobody: the recorded decision answers, and nothing diverges
    clean = Replayer().replay(recorded, "recorded").report
    assert clean is not None and not clean.diverged, clean.divergences
    # without the approval rule the call is simply allowed: a policy divergence at that step
    relaxed = Replayer().replay(recorded, "recorded", config=agent_config(script)).report
    assert relaxed is not None
    first = relaxed.first_divergence
    assert first is not None
    assert (first.kind, first.recorded_index) == (DivergenceKind.POLICY, 3)
    assert {(d.path, d.recorded, d.replayed) for d in first.diff} >= {
        ("/policy/decision", "require_approval", "allow")
    }


def test_a_run_paused_for_approval_replays_to_the_same_pause(tmp_path: Path, script: Path) -> None:
    import asyncio

    from replay import trajectory_from_detail
    from replay._capture import CaptureExporter, detail_from_spans
    from runner.offline import OfflineModel
    from runner.run import run_agent
    from runner.runtime import LiveRuntime
    from tests.replay.agent_fixture import TASK

    policy = {"version": 1, "require_approval": [{"name": "writes", "tools": ["write_file"]}]}
    config = agent_config(script, policy=policy)
    capture = CaptureExporter()
    assert config.offline_script is not None
    workspace = tmp_path / "ws-paused"
    workspace.mkdir()
    result = asyncio.run(
        run_agent(
            TASK,
            config,
            model=OfflineModel.from_file(config.offline_script, name=config.model_name),
            tools=FileTools(workspace),
            runtime=LiveRuntime(4),
            data_dir=tmp_path / "runner-data",
            span_exporter=capture,
        )
    )
    assert result.status.value == "pending_approval"
    recorded = trajectory_from_detail(detail_from_spans(capture.spans, result.trace_id))
    outcome = Replayer().replay(recorded, "recorded")
    assert outcome.run_status == "pending_approval"
    assert outcome.report is not None and not outcome.report.diverged, outcome.report.divergences
    # the approval id is minted by the pinned runtime: the same waiting message
    assert outcome.report.metrics.replayed_answer == recorded.output


def test_a_replay_that_cannot_run_carries_the_failure(golden: Trajectory) -> None:
    outcome = Replayer().replay(golden, "live-model", model="offline:no-such-script")
    assert outcome.report is None and not outcome.ok
    assert "no offline script named 'no-such-script'" in outcome.error


# --- collaborators are passed in -------------------------------------------------------------


def test_the_injected_loader_supplies_the_trajectory(golden: Trajectory) -> None:
    asked: list[object] = []

    def loader(source: object) -> Trajectory:
        asked.append(source)
        return golden

    outcome = Replayer(loader=loader).replay("any-name", "recorded")
    assert asked == ["any-name"]
    assert outcome.report is not None and not outcome.report.diverged


def test_without_live_tools_a_live_tools_replay_is_refused(golden: Trajectory) -> None:
    with pytest.raises(ConfigError, match="live-tools replay needs live tools"):
        Replayer().replay(golden, "live-tools")


def test_without_a_model_factory_live_model_runs_offline_models_only(
    golden: Trajectory, script: Path
) -> None:
    outcome = Replayer().replay(golden, "live-model", model="openai:gpt-4o-mini")
    assert "not an offline model" in outcome.error
    calls: list[str] = []

    def live_model(config: AgentConfig) -> ModelProvider:
        calls.append(config.model)
        recorded = {"model": str(golden.agent_config["model"]), "offline_script": str(script)}
        return offline_model(config.model_copy(update=recorded))

    outcome = Replayer(live_model=live_model).replay(golden, "live-model", model="openai:x")
    assert calls == ["openai:x"] and outcome.error == "", outcome.error
    assert outcome.report is not None and not outcome.report.diverged


def test_from_settings_wires_the_clis_collaborators(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, endpoint="http://127.0.0.1:1", project="p1")
    offline = Replayer.from_settings(settings, connect=False)
    assert offline.client is None and offline.endpoint is None
    assert offline.live_tools is not None and offline.live_model is not None
    assert (offline.project, offline.cas_dir) == ("p1", tmp_path / "runner" / "cas")
    connected = Replayer.from_settings(settings)
    assert connected.client is not None and connected.endpoint == "http://127.0.0.1:1"


def test_several_workers_need_a_replayer_from_settings(golden: Trajectory) -> None:
    with pytest.raises(ConfigError, match=r"Replayer\.from_settings"):
        Replayer().replay_many([golden, golden], "recorded", workers=2)


def test_the_policy_file_option_is_a_deprecated_name_for_script(
    golden: Trajectory, script: Path
) -> None:
    with pytest.warns(DeprecationWarning, match="'policy_file' is deprecated; use 'script'"):
        old = Replayer().replay(golden, "live-model", policy_file=str(script))
    new = Replayer().replay(golden, "live-model", script=str(script))
    assert old.report is not None and new.report is not None
    assert report_fingerprint(old.report) == report_fingerprint(new.report)


def test_from_a_step_the_steps_before_it_are_the_recordings(
    golden: Trajectory, tmp_path: Path
) -> None:
    # the new script asks another query at step 1 (its first LLM answer, step 0)
    changed = write_script(
        tmp_path, SCRIPT.replace("select region, total from sales", "select * from sales"), "c.yaml"
    )
    replayer = Replayer(live_tools=live_file_tools())  # type: ignore[arg-type]
    whole = replayer.replay(golden, "live-model", script=str(changed)).report
    assert whole is not None and whole.first_divergence is not None
    assert whole.first_divergence.recorded_index == 0 and whole.from_step is None
    # from step 2 on: steps 0-1 are served from the recording (the recorded query), and the new
    # script's later moves are the recorded ones: nothing diverges
    outcome = replayer.replay(golden, "live-model", script=str(changed), from_step=2)
    report = outcome.report
    assert outcome.error == "" and report is not None
    assert not report.diverged, report.divergences
    assert report.from_step == outcome.from_step == 2
    assert [a.recorded_index for a in report.alignment] == [2, 3, 4, 5, 6]
    assert report.metrics.steps_recorded == report.metrics.steps_matched == 5

    # a script that skips the read: from step 4 the first divergence is at 4, none before
    shorter = write_script(
        tmp_path,
        SCRIPT.replace("      - call: read_file\n        args: {path: report.csv}\n", ""),
        name="shorter.yaml",
    )
    report = replayer.replay(golden, "live-model", script=str(shorter), from_step=4).report
    assert report is not None and report.first_divergence is not None
    assert (report.first_divergence.kind, report.first_divergence.recorded_index) == (
        DivergenceKind.OTHER_OUTPUT,
        4,
    )
    assert min(d.recorded_index for d in report.divergences if d.recorded_index is not None) == 4


def test_a_step_the_recording_does_not_have_is_an_input_error(golden: Trajectory) -> None:
    for bad in (7, -1):
        with pytest.raises(InvalidInputError, match=rf"--from-step {bad} is out of range.*0\.\.6"):
            Replayer().replay(golden, "recorded", from_step=bad)

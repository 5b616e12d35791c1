"""Replay fidelity of the bundled runner, end to end on the demo data scientist: real ``retrace
run`` / ``retrace approve`` / ``retrace replay`` processes against a real collector, the offline
model, the bundled MCP servers and real sandboxes (bubblewrap for the recordings).

* ``--from-step K``: steps before K are served from the recording, the change applies from K on,
  the report compares from K on (never a divergence before K); K out of range is exit 2.
* live-model: a tool call run live after recorded results sees the recorded workspace.
* live tools run in the sandbox backend the run recorded (``--backend`` overrides it).
* a run paused for approval and resumed after more than its time budget replays cleanly.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replay import trajectory_from_detail
from runner.assembly import DEMO_DIR
from schemas import attributes as A
from schemas.errors import InvalidInputError
from tests.fixtures.collector import REPO_ROOT, RunningCollector, launch_collector

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CSV_TASK = (
    "Save revenue by sales channel to a CSV file, then read it back and tell me the top channel."
)
CLEANUP_TASK = "Create a scratch file in the workspace, then clean it up (remove it)."
SCRIPT = DEMO_DIR / "offline" / "data-scientist.yaml"
# The channel-csv steps: 0 chat, 1 query, 2 chat, 3 run_python (writes the CSV), 4 chat,
# 5 read_file, 6 chat (the answer).
CSV_STEPS = 7
BUDGET_S = 10  # the paused run's time budget; its pause lasts longer


class Env:
    def __init__(self, collector: RunningCollector, root: Path) -> None:
        self.collector = collector
        self.root = root
        self.runs = root / "runs"  # the data dir of the recorded runs (paused runs live there)
        self.replays = root / "replays"  # the replays' own: blobs come from the collector

    def retrace(self, *args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        env |= {
            "PYTHONPATH": str(REPO_ROOT),
            "RETRACE_ENDPOINT": self.collector.url,
            "RETRACE_DATA_DIR": str(data_dir or self.replays),
        }
        return subprocess.run(
            [sys.executable, "-m", "retrace", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=600,
        )

    def run(self, task: str, *args: str) -> tuple[str, str, str]:
        """``retrace run`` (bubblewrap sandbox): (trace id, run id, its output)."""
        proc = self.retrace("run", "--backend", "bwrap", *args, task, data_dir=self.runs)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        trace_id = re.search(r"trace:\s+([0-9a-f]{32})", proc.stdout)
        run_id = re.search(r"run:\s+([0-9a-f]{32})", proc.stdout)
        assert trace_id and run_id, proc.stdout
        return trace_id.group(1), run_id.group(1), proc.stdout

    def replay(self, trace_id: str, *args: str) -> tuple[int, dict[str, Any], str]:
        """``retrace replay --json``: (exit code, the JSON body or {}, stderr)."""
        proc = self.retrace("replay", trace_id, "--json", *args)
        body = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
        return proc.returncode, body, proc.stderr

    def replay_spans(self, body: dict[str, Any], min_spans: int) -> list[Any]:
        detail = self.collector.client.wait_for_trace(body["replay_trace_id"], min_spans=min_spans)
        steps = [s for s in detail.spans if A.RETRACE_STEP_INDEX in s.attributes]  # the runner's
        return sorted(steps, key=lambda s: int(s.attributes[A.RETRACE_STEP_INDEX]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("fidelity")
    # Decisions are resumed by `retrace approve` here, not by the collector.
    collector = launch_collector(root / "collector", env={"RETRACE_RESUME_ON_DECISION": "false"})
    try:
        yield Env(collector, root)
    finally:
        collector.kill()


@pytest.fixture(scope="module")
def csv_trace(env: Env) -> str:
    trace_id, _, out = env.run(CSV_TASK)
    assert "status: completed" in out, out
    env.collector.client.wait_for_trace(trace_id, min_spans=CSV_STEPS + 1)
    return trace_id


def _script(root: Path, name: str, *edits: tuple[str, str]) -> Path:
    """The bundled offline script with ``edits`` (old, new) applied, as a file of its own."""
    text = SCRIPT.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def _at(body: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(d["kind"], d["recorded_index"]) for d in body["report"]["divergences"]]


# A script that changes the first query (step 1) and the final answer (step 6).
OTHER_QUERY = (
    "WHERE o.status IN ('delivered', 'shipped') GROUP BY o.channel ORDER BY revenue DESC",
    "WHERE o.status IN ('delivered', 'shipped') GROUP BY o.channel ORDER BY revenue DESC LIMIT 9",
)
OTHER_ANSWER = (
    "Saved channel_revenue.csv ({{ results.1 }}). Reading it back, the top channel is",
    "Wrote channel_revenue.csv ({{ results.1 }}); the best channel is",
)


def test_replay_from_a_step_changes_nothing_before_it(env: Env, csv_trace: str) -> None:
    other = _script(env.root, "other.yaml", OTHER_QUERY, OTHER_ANSWER)

    # The whole run replayed with the other script diverges at its first step ...
    code, body, err = env.replay(csv_trace, "--mode", "live-model", "--script", str(other))
    assert code == 1, err
    assert body["report"]["first_divergence"]["recorded_index"] == 0, _at(body)

    # ... from step 4 on, steps 0-3 are the recording's (the other query is never asked):
    # the first divergence is the other answer at step 6, and nothing before 4 is compared.
    code, body, err = env.replay(
        csv_trace, "--mode", "live-model", "--script", str(other), "--from-step", "4"
    )
    assert code == 1, err
    report = body["report"]
    assert report["from_step"] == 4 and body["from_step"] == 4
    assert _at(body) == [("other_output", 6)], _at(body)
    assert [(a["recorded_index"], a["status"]) for a in report["alignment"]] == [
        (4, "match"),
        (5, "match"),
        (6, "diverged"),
    ]
    assert "the best channel is web" in report["metrics"]["replayed_answer"]
    stored = env.collector.client.get_replay(body["replay_id"])
    assert stored.from_step == 4 and stored.report is not None and stored.report.from_step == 4
    # the replayed run really asked the recorded query at step 1 (served before step 4)
    query = next(s for s in env.replay_spans(body, CSV_STEPS + 1) if s.tool_name == "query")
    assert "LIMIT 9" not in query.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]

    # A prompt changed from step 2: the first divergence is the prompt at step 2, none before.
    prompt = env.root / "prompt.txt"
    prompt.write_text("You are a hasty data scientist.", encoding="utf-8")
    code, body, err = env.replay(
        csv_trace, "--mode", "live-model", "--prompt-file", str(prompt), "--from-step", "2"
    )
    assert code == 1, err
    assert body["report"]["first_divergence"]["kind"] == "other_messages"
    assert min(i for _, i in _at(body) if i is not None) == 2, _at(body)

    # Recorded mode from a step, nothing changed: no divergence.
    code, body, err = env.replay(csv_trace, "--mode", "recorded", "--from-step", "3")
    assert code == 0, (err, body.get("report"))
    assert body["report"]["from_step"] == 3 and not body["report"]["diverged"]

    # A step the trace does not have: exit 2, naming the range.
    for bad in ("7", "-1"):
        code, body, err = env.replay(csv_trace, "--mode", "recorded", "--from-step", bad)
        assert code == 2 and body == {}
        assert f"--from-step {bad} is out of range" in err and "valid: 0..6" in err, err


def test_a_replay_launched_through_the_api_from_a_step(env: Env, csv_trace: str) -> None:
    client = env.collector.client
    with pytest.raises(InvalidInputError, match=r"from_step 7 is out of range.*valid: 0\.\.6"):
        client.start_replay(csv_trace, "recorded", from_step=7)
    record = client.start_replay(csv_trace, "live-tools", from_step=5)
    assert record.from_step == 5
    deadline = time.monotonic() + 300
    while record.status == "running" and time.monotonic() < deadline:
        time.sleep(1)
        record = client.get_replay(record.replay_id)
    assert record.status == "completed", record.error
    assert record.report is not None and record.report.from_step == 5
    assert not record.diverged, record.report.divergences


def test_a_live_tool_call_in_live_model_sees_the_recorded_workspace(
    env: Env, csv_trace: str
) -> None:
    # The new script reads the CSV as ./channel_revenue.csv: no recorded counterpart, so it runs
    # live, after the recorded run_python that wrote the file was answered from the recording.
    dotted = _script(
        env.root,
        "dotted.yaml",
        ("          path: channel_revenue.csv", "          path: ./channel_revenue.csv"),
    )
    code, body, err = env.replay(csv_trace, "--mode", "live-model", "--script", str(dotted))
    assert code == 1, err  # the read's arguments differ ...
    report = body["report"]
    assert ("other_arguments", 5) in _at(body)
    # ... but it found the file the recording had written: same content, same answer
    assert not [k for k, _ in _at(body) if k in ("error_status", "extra_step")], _at(body)
    assert not report["metrics"]["final_answer_changed"], report["metrics"]["replayed_answer"]
    spans = env.replay_spans(body, CSV_STEPS + 1)
    (read,) = [s for s in spans if s.tool_name == "read_file"]
    assert read.attributes[A.GEN_AI_TOOL_CALL_RESULT].startswith("channel,orders,revenue")
    assert read.attributes.get(A.RETRACE_TOOL_ERROR) != "true"


def test_live_tools_run_in_the_recorded_sandbox_backend(env: Env, csv_trace: str) -> None:
    recorded = trajectory_from_detail(env.collector.client.get_trace(csv_trace))
    sandboxed = [s for s in recorded.steps if s.kind == "tool" and s.mcp_server == "sandbox"]
    assert [s.sandbox_backend for s in sandboxed] == ["bwrap", "bwrap"]

    # The replaying machine's default is gVisor (RETRACE_SANDBOX_BACKEND unset): the recorded
    # backend wins ...
    code, body, err = env.replay(csv_trace, "--mode", "live-tools")
    assert code == 0, (err, body.get("report"))
    spans = env.replay_spans(body, CSV_STEPS + 1)
    backends = [s.attributes.get(A.RETRACE_SANDBOX_BACKEND) for s in spans if s.tool_name]
    # query (the data server, in its own sandbox of the run's backend), run_python, read_file
    assert backends == ["bwrap", "bwrap", "bwrap"]

    # ... and --backend overrides it.
    code, body, err = env.replay(csv_trace, "--mode", "live-tools", "--backend", "gvisor")
    assert code == 0, (err, body.get("report"))
    spans = env.replay_spans(body, CSV_STEPS + 1)
    backends = [s.attributes.get(A.RETRACE_SANDBOX_BACKEND) for s in spans if s.tool_name]
    assert backends == ["gvisor", "gvisor", "gvisor"]

    code, body, err = env.replay(csv_trace, "--mode", "recorded", "--backend", "gvisor")
    assert code == 2 and "only applies to modes that run tools live" in err, err


def test_a_run_paused_longer_than_its_budget_replays_without_divergence(env: Env) -> None:
    agent_dir = env.root / "agent"
    agent_dir.mkdir()
    (agent_dir / "policy.yaml").write_text((DEMO_DIR / "policy.yaml").read_text())
    agent = (DEMO_DIR / "agent.yaml").read_text()
    assert agent.count("wall_time_s: 300") == 1
    (agent_dir / "agent.yaml").write_text(
        agent.replace("wall_time_s: 300", f"wall_time_s: {BUDGET_S}")
    )
    trace_id, run_id, out = env.run(CLEANUP_TASK, "--agent", str(agent_dir / "agent.yaml"))
    assert "status: pending_approval" in out, out
    time.sleep(BUDGET_S + 1)  # a human takes longer than the run's whole time budget
    proc = env.retrace("approve", run_id, "--by", "tester", data_dir=env.runs)
    assert proc.returncode == 0 and "status: completed" in proc.stdout, proc.stdout + proc.stderr

    detail = env.collector.client.wait_for_trace(trace_id, min_spans=9)
    recorded = trajectory_from_detail(detail)
    assert recorded.run_status == "completed"
    clock = recorded.clock_values
    assert max(b - a for a, b in itertools.pairwise(clock)) > BUDGET_S, clock

    for mode in ("recorded", "live-tools"):
        code, body, err = env.replay(trace_id, "--mode", mode)
        assert code == 0, (mode, err, body.get("report"))
        report = body["report"]
        assert not report["diverged"] and report["metrics"]["replayed_answer"].startswith(
            "Cleanup finished"
        ), report

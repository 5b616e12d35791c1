"""The UI's "Replay from step K": a link on each step of a trace opens the Replay page with the
step chosen, and launching there starts a replay job from that step (real collector, a run
recorded by ``retrace run``, Streamlit's AppTest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from schemas import attributes as A
from tests.fixtures.collector import REPO_ROOT, RunningCollector, launch_collector

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "ui" / "app.py"
TASK = "Which product categories bring in the most revenue?"  # chat, query, chat


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, str]]:
    root = tmp_path_factory.mktemp("ui-from-step")
    collector = launch_collector(root / "collector")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
        env |= {
            "PYTHONPATH": str(REPO_ROOT),
            "RETRACE_ENDPOINT": collector.url,
            "RETRACE_DATA_DIR": str(root / "runs"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "retrace", "run", "--backend", "bwrap", TASK],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        found = re.search(r"trace:\s+([0-9a-f]{32})", proc.stdout)
        assert proc.returncode == 0 and found, proc.stdout + proc.stderr
        collector.client.wait_for_trace(found.group(1), min_spans=4)
        yield collector, found.group(1)
    finally:
        collector.kill()


def _open(monkeypatch: pytest.MonkeyPatch, endpoint: str, page: str, **params: str) -> AppTest:
    monkeypatch.setenv("RETRACE_ENDPOINT", endpoint)
    monkeypatch.delenv("RETRACE_API_KEY", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()  # registers the pages
    at.query_params.clear()
    at.query_params.update(params)
    return at.switch_page(f"views/{page}.py").run()


def test_replay_from_a_chosen_step(
    recorded: tuple[RunningCollector, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    collector, trace_id = recorded
    client = collector.client
    query = next(
        s for s in client.get_trace(trace_id).spans if s.attributes.get(A.RETRACE_STEP_INDEX) == "1"
    )
    assert query.tool_name == "query"

    # The Trace page offers "Replay from step 1" on that step ...
    at = _open(monkeypatch, collector.url, "trace", trace=trace_id, span=query.span_id)
    assert not at.exception, [e.value for e in at.exception]
    (link,) = [
        link for link in at.get("page_link") if link.proto.label.startswith("Replay from step")
    ]
    assert link.proto.label == "Replay from step 1"
    assert link.proto.page.endswith("replay")
    params = parse_qs(link.proto.query_string)
    assert params == {"trace": [trace_id], "from_step": ["1"]}

    # ... which opens the Replay page with step 1 chosen; launching starts a job from step 1.
    at = _open(monkeypatch, collector.url, "replay", trace=trace_id, from_step="1")
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="replay-from-step").value == 1
    at.button[0].click().run()  # "Launch replay" (recorded mode)
    assert not at.exception, [e.value for e in at.exception]
    replay_id = at.query_params["replay"]
    replay_id = replay_id[0] if isinstance(replay_id, list) else replay_id
    record = client.get_replay(replay_id)
    assert record.from_step == 1 and record.original_trace_id == trace_id
    deadline = time.monotonic() + 300
    while record.status == "running" and time.monotonic() < deadline:
        time.sleep(1)
        record = client.get_replay(replay_id)
    assert record.status == "completed", record.error
    assert record.report is not None and record.report.from_step == 1
    assert not record.diverged
    assert [a.recorded_index for a in record.report.alignment] == [1, 2]

    # A trace opened without a chosen step leaves the field empty (every step replayed).
    at = _open(monkeypatch, collector.url, "replay", trace=trace_id)
    assert at.number_input(key="replay-from-step").value is None

"""A replay request cannot make the collector read host files: an offline model (``offline:X``)
or script it names must be a bundled script or a file under the collector's data dir, checked by
the API (400 before anything is launched) and again by the replay process the collector starts
(for names that come from the recorded trace itself). No error shows a file's contents."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import httpx
import pytest

from runner.offline import BUNDLED_SCRIPTS
from schemas import attributes as A
from schemas.models import ReplayRecord
from tests.fixtures.collector import RunningCollector

pytestmark = pytest.mark.integration

SECRET = "hunter2-do-not-show"
# Invalid as YAML and as a script: whatever the parser says about it must not quote it.
SECRET_TEXT = f"api_token: {SECRET}\n  {SECRET}_key: [\n"
SCRIPT = """
name: mine
tasks:
  - name: anything
    match: .
    steps:
      - answer: done
"""


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.yaml"
    path.write_text(SECRET_TEXT)
    return path


def _trace(server: RunningCollector, config: dict[str, object] | None = None) -> str:
    """A stored trace: a root span with an input and (optionally) a recorded agent config."""
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    attributes = [{"key": A.RETRACE_RUN_INPUT, "value": {"stringValue": "do the thing"}}]
    if config is not None:
        value = {"stringValue": json.dumps(config)}
        attributes.append({"key": A.RETRACE_AGENT_CONFIG, "value": value})
    span = {
        "traceId": trace_id,
        "spanId": secrets.token_hex(8),
        "name": "invoke_agent a",
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1_000_000),
        "attributes": attributes,
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    r = httpx.post(
        server.url + "/v1/traces",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    server.client.wait_for_trace(trace_id)
    return trace_id


def _replay(server: RunningCollector, trace_id: str, **body: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/traces/{trace_id}/replay", json=body, timeout=30)


def _finished(server: RunningCollector, replay_id: str) -> ReplayRecord:
    deadline = time.monotonic() + 120
    while (record := server.client.get_replay(replay_id)).status == "running":
        assert time.monotonic() < deadline, "the replay process never finished"
        time.sleep(0.5)
    return record


def test_a_replay_model_cannot_name_a_file_outside_the_allowed_dirs(
    collector_server: RunningCollector, secret_file: Path
) -> None:
    server = collector_server
    trace_id = _trace(server)
    link = server.data_dir / "innocent.yaml"
    link.symlink_to(secret_file)
    stem = secret_file.with_suffix("")  # offline:NAME used to read NAME + ".yaml"
    models = [
        f"offline:{secret_file}",
        f"offline:{stem}",
        "offline:" + os.path.relpath(stem, BUNDLED_SCRIPTS),
        "offline:../../../../../../../../etc/passwd",
        "offline:/etc/passwd",
        f"offline:{link}",  # inside the data dir, but a link to a file outside it
        f"offline:{server.data_dir}/../outside/secret.yaml",
    ]
    for model in models:
        r = _replay(server, trace_id, mode="live-model", model=model)
        assert r.status_code == 400, (model, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        assert "model" in error["message"], error["message"]
        assert SECRET not in error["message"]
    # nothing was launched or recorded
    assert server.client.list_replays(trace_id) == []
    assert list(server.data_dir.glob("logs/replay-*")) == []


@pytest.mark.parametrize("model", ["gpt-4o", "offline:", ":x", "offline:no-such-script"])
def test_a_replay_model_that_cannot_work_is_400(
    collector_server: RunningCollector, model: str
) -> None:
    trace_id = _trace(collector_server)
    r = _replay(collector_server, trace_id, mode="live-model", model=model)
    assert r.status_code == 400, r.text
    assert "model" in r.json()["error"]["message"]
    assert collector_server.client.list_replays(trace_id) == []


def test_a_replay_model_may_name_a_bundled_script_or_one_in_the_data_dir(
    collector_server: RunningCollector,
) -> None:
    server = collector_server
    mine = server.data_dir / "scripts" / "mine.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text(SCRIPT)
    config = {"name": "a", "model": "offline:data-scientist"}
    for model in ("offline:data-scientist", f"offline:{mine}"):
        trace_id = _trace(server, config)
        r = _replay(server, trace_id, mode="live-model", model=model)
        assert r.status_code == 200, (model, r.text)
        record = _finished(server, r.json()["replay_id"])
        assert record.status == "completed", (model, record.error)


def test_a_recorded_agent_config_cannot_make_the_replay_read_outside_files(
    collector_server: RunningCollector, secret_file: Path
) -> None:
    # The recorded config is whatever a client sent with the trace: the replay process the
    # collector starts checks the files it names exactly as the API checks a request's.
    server = collector_server
    configs = [
        {"name": "a", "model": "offline:x", "offline_script": str(secret_file)},
        {"name": "a", "model": f"offline:{secret_file.with_suffix('')}"},
    ]
    for config in configs:
        trace_id = _trace(server, config)
        r = _replay(server, trace_id, mode="live-model")
        assert r.status_code == 200, r.text
        record = _finished(server, r.json()["replay_id"])
        assert record.status == "failed", record
        assert SECRET not in (record.error or ""), record.error
        assert "must be an existing file under" in (record.error or ""), record.error

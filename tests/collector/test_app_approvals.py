"""Approvals and background jobs over a real socket: ids checked before anything is saved,
decisions final under concurrency (one 200, the rest 409), and at most ``RETRACE_MAX_JOBS``
replay/resume processes per collector (429 with Retry-After beyond), each owned by a project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.errors import ConflictError, NotFoundError
from schemas.models import Approval, ApprovalStatus
from tests.fixtures.collector import REPO_ROOT, RunningCollector

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"


def _approval(approval_id: str, run_id: str, **extra: Any) -> dict[str, Any]:
    body = Approval(
        approval_id="placeholder",
        run_id="placeholder",
        tool_name="write_file",
        requested_at=datetime.now(UTC),
        **extra,
    ).model_dump(mode="json")
    return body | {"approval_id": approval_id, "run_id": run_id}


# --- ids ----------------------------------------------------------------------------------------


def test_bad_ids_are_refused_before_anything_is_saved(collector_server: RunningCollector) -> None:
    url = collector_server.url + "/api/v1/approvals"
    bad = [
        ("ap-1", "a/b", "run_id"),
        ("ap-2", "../../logs/x", "run_id"),
        ("ap-3", "-h", "run_id"),
        ("ap-4", "--endpoint=http://evil", "run_id"),
        ("ap-5", "", "run_id"),
        ("ap-6", "run\n1", "run_id"),
        ("a/b", "run-1", "approval_id"),
        ("-x", "run-1", "approval_id"),
    ]
    for approval_id, run_id, field in bad:
        r = httpx.post(url, json=_approval(approval_id, run_id))
        assert r.status_code == 400, (approval_id, run_id, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_input" and field in error["message"]
        assert "Traceback" not in r.text and str(collector_server.data_dir) not in r.text
    assert collector_server.client.list_approvals() == []
    for approval_id, _, _ in bad:
        r = httpx.get(f"{url}/{approval_id}")
        assert r.status_code in (404, 400), r.text
    # a good id still works, and its decision launches a resume
    ok = httpx.post(url, json=_approval("ap-ok", "run-ok.1_x"))
    assert ok.status_code == 200, ok.text
    decided = httpx.post(f"{url}/ap-ok/decision", json={"decision": "reject"})
    assert decided.status_code == 200, decided.text


# --- decisions ----------------------------------------------------------------------------------


def test_concurrent_decisions_have_exactly_one_winner(collector_server: RunningCollector) -> None:
    url = collector_server.url + "/api/v1/approvals"
    assert httpx.post(url, json=_approval("ap-race", "run-race")).status_code == 200
    n = 8
    barrier = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def decide(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            body = {"decision": "approve" if i % 2 else "reject", "decided_by": f"user-{i}"}
            barrier.wait()
            r = http.post(f"{url}/ap-race/decision", json=body)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [409] * (n - 1), [r.text for r in results]
    (winner,) = [r.json() for r in results if r.status_code == 200]
    for r in results:
        if r.status_code == 409:
            error = r.json()["error"]
            assert error["code"] == "conflict" and "ap-race" in error["message"]
    stored = collector_server.client.get_approval("ap-race")
    assert stored.status.value == winner["status"] and stored.decided_by == winner["decided_by"]
    # one decision, one resume
    resumes = collector_server.client.list_jobs(kind="resume", subject="run-race")
    assert len(resumes) == 1

    # final for later requests too: another decision, or re-posting the approval as pending
    again = httpx.post(f"{url}/ap-race/decision", json={"decision": "approve"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    repost = httpx.post(url, json=_approval("ap-race", "run-race"))
    assert repost.status_code == 409, repost.text
    assert collector_server.client.get_approval("ap-race") == stored
    with pytest.raises(ConflictError, match=f"already {stored.status.value}"):
        collector_server.client.decide_approval("ap-race", "reject")


def test_expiry_is_a_decision_only_past_the_deadline(collector_server: RunningCollector) -> None:
    """The runner records an expired approval by posting it again with status ``expired``."""
    client = collector_server.client
    past = datetime.now(UTC) - timedelta(minutes=5)
    future = datetime.now(UTC) + timedelta(hours=1)
    client.save_approval(
        Approval(
            approval_id="ap-old",
            run_id="run-old",
            tool_name="rm",
            requested_at=past,
            expires_at=past + timedelta(minutes=1),
        )
    )
    client.save_approval(
        Approval(
            approval_id="ap-new",
            run_id="run-new",
            tool_name="rm",
            requested_at=past,
            expires_at=future,
        )
    )
    expire = {"status": ApprovalStatus.EXPIRED, "decided_by": "timeout", "decided_at": past}
    expired = client.save_approval(client.get_approval("ap-old").model_copy(update=expire))
    assert expired.status == ApprovalStatus.EXPIRED and expired.decided_by == "timeout"
    with pytest.raises(ConflictError):
        client.decide_approval("ap-old", "approve")
    r = httpx.post(
        collector_server.url + "/api/v1/approvals",
        content=client.get_approval("ap-new").model_copy(update=expire).model_dump_json(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "ap-new" in r.json()["error"]["message"]
    assert client.get_approval("ap-new").status == ApprovalStatus.PENDING
    # a brand-new approval must be pending: decisions go through .../decision
    r = httpx.post(
        collector_server.url + "/api/v1/approvals",
        json=_approval("ap-pre", "run-pre", status="approved"),
    )
    assert r.status_code == 400, r.text
    with pytest.raises(NotFoundError):
        client.get_approval("ap-pre")


# --- background jobs ----------------------------------------------------------------------------


class _GateServer(ThreadingHTTPServer):
    """An OpenAI-compatible chat endpoint that holds every request until ``release`` is set."""

    release: threading.Event
    arrived: list[str]
    lock: threading.Lock


class _GateHandler(BaseHTTPRequestHandler):
    server: _GateServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.arrived.append(self.path)
        self.server.release.wait(timeout=300)
        payload = {
            "id": "chatcmpl-gate",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gate",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "released"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def gate() -> Iterator[_GateServer]:
    server = _GateServer(("127.0.0.1", 0), _GateHandler)
    server.release, server.arrived, server.lock = threading.Event(), [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _recorded_run(tmp_path: Path, collector: RunningCollector, api_key: str) -> str:
    """A real (offline, tool-less) agent run recorded into ``collector``; its trace id."""
    (tmp_path / "hello.yaml").write_text(
        "name: hello\ntasks:\n  - name: hi\n    match: hello\n    steps:\n      - answer: hi\n"
    )
    agent = tmp_path / "agent.yaml"
    agent.write_text("name: gate-agent\nmodel: offline:hello\noffline_script: hello.yaml\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "runner.cli", "run", "say hello", "--agent", str(agent)),
            *("--endpoint", collector.url, "--api-key", api_key),
            *("--data-dir", str(tmp_path / "runner-data")),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trace_id = next(
        line.split()[1] for line in proc.stdout.splitlines() if line.startswith("trace:")
    )
    collector.client_for(api_key).wait_for_trace(trace_id)
    return trace_id


def test_replay_jobs_are_capped_and_belong_to_a_project(
    start_collector: Callable[..., RunningCollector], gate: _GateServer, tmp_path: Path
) -> None:
    port = gate.server_address[1]
    server = start_collector(
        api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"],
        env={
            "RETRACE_MAX_JOBS": "2",
            "RETRACE_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "RETRACE_OPENAI_API_KEY": "sk-gate",
        },
    )
    alpha, beta = server.client_for(ALPHA), server.client_for(BETA)
    trace_id = _recorded_run(tmp_path, server, ALPHA)
    url = f"{server.url}/api/v1/traces/{trace_id}/replay"
    headers = {"Authorization": f"Bearer {ALPHA}"}
    body = {"mode": "live-model", "model": "openai:gate"}

    started = [httpx.post(url, json=body, headers=headers, timeout=60) for _ in range(2)]
    assert [r.status_code for r in started] == [200, 200], [r.text for r in started]
    # both replays are alive, each held in its first model call
    deadline = time.monotonic() + 120
    while len(gate.arrived) < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)

    refused = [httpx.post(url, json=body, headers=headers, timeout=60) for _ in range(13)]
    assert [r.status_code for r in refused] == [429] * 13, [r.text for r in refused]
    for r in refused:
        assert r.json()["error"]["code"] == "too_many_jobs"
        assert int(r.headers["Retry-After"]) >= 1
    # a refused replay left nothing behind
    assert sorted(r.replay_id for r in alpha.list_replays(trace_id)) == sorted(
        r.json()["replay_id"] for r in started
    )
    # jobs belong to the project that started them
    running = alpha.list_jobs()
    assert [j.kind for j in running] == ["replay", "replay"]
    assert {j.status for j in running} == {"running"}
    assert beta.list_jobs() == []
    with pytest.raises(NotFoundError):
        beta.get_job(running[0].job_id)
    assert len(gate.arrived) == 2  # no third process ever reached the model

    gate.release.set()
    deadline = time.monotonic() + 180
    while any(j.status == "running" for j in alpha.list_jobs()):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.3)
    assert all(j.exit_code is not None for j in alpha.list_jobs())
    again = httpx.post(url, json=body, headers=headers, timeout=60)
    assert again.status_code == 200, again.text
    for c in (alpha, beta):
        c.close()

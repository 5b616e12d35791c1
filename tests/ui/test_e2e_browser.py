"""End to end in a real browser: `retrace ui` (a real subprocess) against a real collector.

Debian's Chromium, driven by Playwright: list, filter, open a trace by its link, see the timeline
and a tool span's payload, launch a `recorded` replay of a real runner trace and read the
divergence page, approve a pending request. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from schemas.models import ApprovalStatus
from tests.fixtures.collector import RunningCollector, launch_collector
from tests.ui.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    TIMEOUT_MS,
    child_env,
    choose,
    fresh_page,
    no_traceback,
    start_ui,
    stop_ui,
    wait_idle,
)
from tests.ui.seed import SeededTraces, seed_agent_traces
from ui._tree import latest_run_status

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
TASK = "Which product categories bring in the most revenue?"
# Its run_shell `rm` needs a human's approval under the demo policy: the run pauses.
NEEDS_APPROVAL = "Create a scratch file in the workspace, then clean it up (remove it)."
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Stack:
    collector: RunningCollector
    ui_url: str
    traces: SeededTraces
    agent_trace: str  # a completed real run
    paused_trace: str  # a real run waiting for approval
    paused_run: str
    other_model: Path  # an offline model script that writes other SQL


def _run_agent(data_dir: Path, endpoint: str, task: str) -> tuple[str, str]:
    """One real run of the demo data scientist (tools in gVisor) into the collector.

    Returns (trace id, run id).
    """
    argv = [sys.executable, "-m", "runner.cli", "run", task]
    argv += ["--endpoint", endpoint, "--data-dir", str(data_dir)]
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=240
    )
    trace = re.search(r"trace:\s+([0-9a-f]{32})", done.stdout)
    run = re.search(r"run:\s+([0-9a-f]+)", done.stdout)
    assert done.returncode == 0 and trace and run, done.stdout + done.stderr
    return trace.group(1), run.group(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui-e2e")
    data_dir = tmp / "data"
    # The collector's `resume` child inherits this env and must find the runner's paused runs.
    collector = launch_collector(data_dir, env={"RETRACE_DATA_DIR": str(data_dir)})
    ui_process: subprocess.Popen[bytes] | None = None
    try:
        client = collector.client
        traces = seed_agent_traces(collector.url, client.put_payload)
        agent_trace, _ = _run_agent(data_dir, collector.url, TASK)
        paused_trace, paused_run = _run_agent(data_dir, collector.url, NEEDS_APPROVAL)
        for trace_id in (traces.ok, traces.failed, traces.denied, agent_trace, paused_trace):
            client.wait_for_trace(trace_id, min_spans=3)
        # The collector only runs scripts kept under its data dir (or the bundled demo ones).
        other_model = data_dir / "other-model.yaml"
        script = (REPO_ROOT / "runner" / "demo" / "offline" / "data-scientist.yaml").read_text()
        changed = script.replace("ORDER BY revenue DESC\n", "ORDER BY revenue DESC LIMIT 3\n", 1)
        assert changed != script
        other_model.write_text(changed)
        ui_process, ui_url = start_ui(collector.url, tmp / "ui.log")
        yield Stack(collector, ui_url, traces, agent_trace, paused_trace, paused_run, other_model)
    finally:
        if ui_process is not None:
            stop_ui(ui_process)
        collector.kill()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # let Streamlit finish painting (animations) before the picture
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _trace_link(page: Page, trace_id: str) -> Locator:
    return page.locator(f'a[href="trace?trace={trace_id}"]')


def _list_filter_open_trace_and_tool_payload(stack: Stack, page: Page) -> None:
    page.goto(stack.ui_url)
    links = page.locator('a[href*="trace?trace="]')
    # The list streams in: wait for the fifth row's link rather than counting the first paint.
    expect(links.nth(4)).to_be_visible()
    expect(page.locator("table.retrace-traces")).to_be_visible()  # one element, every row
    _shot(page, "01-traces")

    page.get_by_label("Agent").fill("sql-analyst")
    wait_idle(page)
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"agent=sql-analyst"))
    expect(links).to_have_count(1)
    expect(_trace_link(page, stack.traces.denied)).to_be_visible()
    _shot(page, "02-traces-filtered")

    # The filtered list is a shareable link: a new page with the same URL shows the same rows.
    shared = page.context.new_page()
    shared.goto(page.url)
    expect(_trace_link(shared, stack.traces.denied)).to_be_visible()
    expect(shared.locator('a[href*="trace?trace="]')).to_have_count(1)
    shared.close()

    # A real run: the sandboxed run_python call, its gVisor stats and the workspace it left.
    page.goto(stack.ui_url)
    _trace_link(page, stack.paused_trace).click()
    expect(page).to_have_url(re.compile(rf"/trace\?trace={stack.paused_trace}"))
    expect(page.get_by_text("Span tree")).to_be_visible()
    expect(page.locator("table.retrace-spans td.timeline div").first).to_be_visible()
    choose(page, "Selected span", re.compile("execute_tool run_python"))
    expect(page.get_by_text("of run_python")).to_be_visible()
    # (the span tree's sandbox column says gvisor too)
    expect(page.locator("text=gvisor >> visible=true").first).to_be_visible()
    expect(page.get_by_text("scratch.txt").first).to_be_visible()
    expect(page.get_by_text("temporary notes").first).to_be_visible()  # the file, at this step
    expect(page).to_have_url(re.compile(r"span=[0-9a-f]{16}"))
    no_traceback(page)
    _shot(page, "03-trace-tool-span")

    choose(page, "Selected span", re.compile(r"chat data-scientist"))
    expect(page.get_by_test_id("stChatMessage").first).to_be_visible()
    chat = page.get_by_test_id("stChatMessage")
    expect(chat.filter(has_text=NEEDS_APPROVAL).first).to_be_visible()
    _shot(page, "04-trace-chat-span")

    # A span's name in the tree selects it, inside the running app (no page reload).
    page.evaluate("window.__sameDocument = true")
    page.locator("table.retrace-spans a", has_text="execute_tool run_python").first.click()
    expect(page.locator("table.retrace-spans tr.selected")).to_contain_text("run_python")
    expect(page.get_by_text("of run_python")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True


def _bad_input_is_a_message_in_the_page(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.ui_url}/trace?trace={'0' * 32}")
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("not found")
    no_traceback(page)
    _shot(page, "05-unknown-trace")

    stack.collector.client.delete_trace(stack.traces.failed)
    page.goto(f"{stack.ui_url}/?trace={stack.traces.failed}")  # the /?trace= form of a link
    expect(page).to_have_url(re.compile(rf"/trace\?trace={stack.traces.failed}"))
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("not found")
    no_traceback(page)


def _replay_then_divergence(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.ui_url}/trace?trace={stack.agent_trace}")
    expect(page.get_by_text("Span tree")).to_be_visible()
    page.get_by_role("link", name="Replay this trace").click()
    expect(page).to_have_url(re.compile(rf"/replay\?trace={stack.agent_trace}"))
    page.get_by_role("radiogroup").get_by_text(re.compile("^recorded")).click()
    wait_idle(page)  # the choice reruns the page; a click during that rerun can be dropped
    page.get_by_role("button", name="Launch replay").click()
    expect(page.get_by_text(re.compile(r"completed: matched the recording"))).to_be_visible(
        timeout=120_000
    )
    no_traceback(page)
    _shot(page, "06-replay")

    page.get_by_role("link", name="Open the divergence report").click()
    expect(page).to_have_url(re.compile(r"/divergence\?"))
    expect(page.get_by_text("Steps matched")).to_be_visible()
    expect(page.get_by_text("No divergence")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ matching steps"))).to_be_visible()
    no_traceback(page)
    _shot(page, "07-divergence")

    # live-model with another (offline, scripted) model whose SQL differs: a real divergence.
    page.goto(f"{stack.ui_url}/replay?trace={stack.agent_trace}")
    page.get_by_role("radiogroup").get_by_text(re.compile("^live-model")).click()
    page.get_by_label("Offline model script for live-model (optional)").fill(str(stack.other_model))
    wait_idle(page)
    page.get_by_role("button", name="Launch replay").click()
    expect(page.get_by_text(re.compile(r"completed: diverged at step"))).to_be_visible(
        timeout=120_000
    )
    page.get_by_role("link", name="Open the divergence report").click()
    expect(page.get_by_text(re.compile(r"First divergence · "))).to_be_visible()
    changed_sql = page.get_by_test_id("stCode").filter(has_text="ORDER BY revenue DESC LIMIT 3")
    expect(changed_sql.first).to_be_visible()
    no_traceback(page)
    _shot(page, "07b-divergence-live-model")


def _approve_a_pending_request_resumes_the_run(stack: Stack, page: Page) -> None:
    client = stack.collector.client
    (approval,) = client.list_approvals(status=ApprovalStatus.PENDING, run_id=stack.paused_run)
    page.goto(f"{stack.ui_url}/approvals")
    expect(page.locator("h3", has_text="run_shell")).to_contain_text("wants approval")
    expect(page.get_by_text("would delete files").first).to_be_visible()
    expect(page.get_by_text("rm -f scratch.txt").first).to_be_visible()
    _shot(page, "08-approvals-pending")
    page.locator(f".st-key-approve-{approval.approval_id} button").click()
    expect(page.get_by_text(re.compile(r"approved by ui"))).to_be_visible()
    assert client.get_approval(approval.approval_id).status == ApprovalStatus.APPROVED
    _shot(page, "09-approvals-decided")

    # The collector resumed the paused run: it finishes, and its trace page says so.
    deadline = time.monotonic() + 180
    while latest_run_status(client.get_trace(stack.paused_trace).spans) != "completed":
        assert time.monotonic() < deadline, "the approved run did not complete in 180 s"
        time.sleep(1)
    page.goto(f"{stack.ui_url}/trace?trace={stack.paused_trace}")
    expect(page.get_by_text("completed", exact=True).first).to_be_visible()
    no_traceback(page)


def _overview_charts(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.ui_url}/overview")
    expect(page.get_by_text("Error rate").first).to_be_visible()  # also a chart title
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    no_traceback(page)
    _shot(page, "10-overview")


def test_browser_journey(stack: Stack) -> None:
    """One journey (one stack: the real runs are costly), each step in a fresh browser page."""
    steps = [
        _list_filter_open_trace_and_tool_payload,
        _bad_input_is_a_message_in_the_page,
        _replay_then_divergence,
        _approve_a_pending_request_resumes_the_run,
        _overview_charts,
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for step in steps:
                with fresh_page(browser) as page:
                    step(stack, page)
        finally:
            browser.close()

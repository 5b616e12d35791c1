"""The compare view in a real browser: two real runs of the demo agent side by side.

`retrace ui` (a real subprocess) against a real collector holding two `retrace run`s of the same
task, the second one's SQL ending in ``LIMIT 3``. From the first trace's page, "Compare with…"
picks the second; the page shows both traces as links, the first divergence highlighted with
the changed part of the long SQL, and the aligned steps. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.fixtures.demo_runs import two_runs
from tests.ui.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    TIMEOUT_MS,
    choose,
    fresh_page,
    no_traceback,
    start_ui,
    stop_ui,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Stack:
    collector: RunningCollector
    ui_url: str
    good: str
    limited: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui-compare")
    collector = launch_collector(tmp / "collector")
    ui_process: subprocess.Popen[bytes] | None = None
    try:
        good, limited = two_runs(collector.url, tmp)
        for trace_id in (good, limited):
            collector.client.wait_for_trace(trace_id, min_spans=4)
        ui_process, ui_url = start_ui(collector.url, tmp / "ui.log")
        yield Stack(collector, ui_url, good, limited)
    finally:
        if ui_process is not None:
            stop_ui(ui_process)
        collector.kill()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # let Streamlit finish painting before the picture
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _pick_b_from_the_trace_page(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.ui_url}/trace?trace={stack.good}")
    expect(page.get_by_text("Span tree")).to_be_visible()
    # The trace page writes the open span into its URL while it runs; a click before that lands
    # on the compare page and the late write would replace its query string (seen on a loaded box).
    expect(page).to_have_url(re.compile(r"span=[0-9a-f]{16}"))
    page.get_by_role("link", name="Compare with…").click()
    expect(page).to_have_url(re.compile(rf"/compare\?a={stack.good}$"))
    expect(page.locator(f'a[href="trace?trace={stack.good}"]').first).to_be_visible()
    # B from the runs of the same agent, newest first
    choose(page, "Trace B", re.compile(stack.limited))
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(rf"a={stack.good}&b={stack.limited}"))
    _check_the_comparison(stack, page)
    _shot(page, "11-compare")


def _check_the_comparison(stack: Stack, page: Page) -> None:
    # both traces are real links to their pages
    expect(page.locator(f'a[href="trace?trace={stack.good}"]').first).to_be_visible()
    expect(page.locator(f'a[href="trace?trace={stack.limited}"]').first).to_be_visible()
    first = page.locator(".st-key-first-divergence")
    expect(first).to_contain_text("First divergence · other_output · A step 0 vs B step 0")
    expect(first).to_contain_text("the model answered something else")
    # the long SQL's change is spelled out, not hidden behind the common start
    expect(first).to_contain_text('/output_message/tool_calls/0/args/sql: inserted " LIMIT 3"')
    changed = first.get_by_test_id("stCode").filter(has_text="ORDER BY revenue DESC LIMIT 3")
    expect(changed.first).to_be_visible()
    # the aligned steps, the first divergence's row highlighted
    expect(page.get_by_text("Aligned steps")).to_be_visible()
    row = page.locator(".st-key-first-divergence-row")
    expect(row).to_contain_text("diverged — first divergence")
    expect(row).to_contain_text("#0 llm")
    no_traceback(page)


def _same_run_and_bad_ids(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.ui_url}/compare?a={stack.good}&b={stack.good}")
    expect(page.get_by_text("No divergence: B took the same steps as A")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ matching steps"))).to_be_visible()
    no_traceback(page)

    unknown = "0" * 32
    page.goto(f"{stack.ui_url}/compare?a={stack.good}&b={unknown}")
    expect(page.get_by_text(f"trace {unknown} not found")).to_be_visible()
    no_traceback(page)

    hostile = '<img src=x onerror="document.title=1">'
    page.goto(f"{stack.ui_url}/compare?a={stack.good}&b=" + hostile.replace(" ", "%20"))
    expect(page.get_by_text("invalid trace id b").first).to_be_visible()
    expect(page.locator('img[src="x"]')).to_have_count(0)
    no_traceback(page)

    # a link on the compare page opens B's trace
    page.goto(f"{stack.ui_url}/compare?a={stack.good}&b={stack.limited}")
    page.locator(f'a[href="trace?trace={stack.limited}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/trace\?trace={stack.limited}"))
    expect(page.get_by_text("Span tree")).to_be_visible()


def test_compare_two_real_runs_in_the_browser(stack: Stack) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for step in (_pick_b_from_the_trace_page, _same_run_and_bad_ids):
                with fresh_page(browser) as page:
                    step(stack, page)
        finally:
            browser.close()

"""The overview and the replay toggle in a real browser (Debian's Chromium via Playwright), over
`retrace ui` and a real collector seeded through OTLP: runs that waited for approval, one still
waiting, a replay. Cards show whole values, one time bucket draws as a bar on an axis of hours,
and replays are listed only when asked for, each linked to its original."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.ui.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    no_traceback,
    start_ui,
    stop_ui,
    wait_idle,
)
from tests.ui.seed import OverviewTraces, seed_overview_runs

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
expect.set_options(timeout=TIMEOUT_MS)

# For every element of a metric card: is its text cut (an ellipsis drawn by CSS, or "…" in it)?
_CUT_CARDS = """
() => [...document.querySelectorAll('[data-testid="stMetric"]')].flatMap(card =>
    [card, ...card.querySelectorAll('*')]
        .filter(el => (getComputedStyle(el).textOverflow === 'ellipsis'
                       && el.scrollWidth > el.clientWidth)
                      || (el.children.length === 0 && el.textContent.trim().endsWith('…')))
        .map(el => card.innerText.replace(/\\s+/g, ' ')))
"""


@dataclass
class Stack:
    collector: RunningCollector
    ui_url: str
    runs: OverviewTraces


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui-overview")
    collector = launch_collector(tmp / "collector")
    ui_process: subprocess.Popen[bytes] | None = None
    try:
        runs = seed_overview_runs(collector.url, collector.client)
        ui_process, ui_url = start_ui(collector.url, tmp / "ui.log")
        yield Stack(collector, ui_url, runs)
    finally:
        if ui_process is not None:
            stop_ui(ui_process)
        collector.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def _page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _card(page: Page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))
    return card.get_by_test_id("stMetricValue").inner_text().strip()


# Playwright's default window, and the wider one the other browser tests use.
@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1500, 1100)])
def test_overview_tells_the_truth(stack: Stack, browser: Browser, width: int, height: int) -> None:
    with _page(browser, width, height) as page:
        page.goto(f"{stack.ui_url}/overview")
        expect(page.get_by_test_id("stMetric")).to_have_count(8)
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        no_traceback(page)
        # Six runs (not the replay); durations without the hour spent waiting for approval.
        assert _card(page, "Runs") == "6"
        assert _card(page, "p90 duration") == "5.0 s"
        assert _card(page, "p99 duration") == "5.0 s"
        assert _card(page, "Waiting for approval") == "1.0 h"
        expect(page.get_by_text("1 run waited · median wait 1.0 h · 1 waiting now")).to_be_visible()
        assert page.evaluate(_CUT_CARDS) == []

        # One bucket (every run started in the same hour): a bar of visible width, on an axis
        # whose ticks are times of day, not fractions of a millisecond.
        runs_chart = page.get_by_test_id("stPlotlyChart").first
        expect(runs_chart.locator(".xtick text")).not_to_have_count(0)
        ticks = runs_chart.locator(".xtick text").all_text_contents()
        assert len(ticks) >= 2, ticks
        assert not [t for t in ticks if re.search(r"\d:\d\d:\d\d|\.\d", t)], ticks
        bars = runs_chart.locator(".trace.bars .point path")
        expect(bars).not_to_have_count(0)
        widths = [box["width"] for box in (b.bounding_box() for b in bars.all()) if box]
        assert widths and min(widths) >= 20, widths


def test_replays_listed_only_when_asked_each_linked_to_its_original(
    stack: Stack, browser: Browser
) -> None:
    runs = stack.runs
    with _page(browser, 1500, 1100) as page:
        page.goto(stack.ui_url)
        listed = page.locator('a[href^="trace?trace="]')
        expect(page.locator(f'a[href="trace?trace={runs.paused}"]')).to_be_visible()
        expect(page.locator(f'a[href="trace?trace={runs.replay}"]')).to_have_count(0)
        wait_idle(page)  # count the finished list, not its first paint
        assert page.get_by_text("replay of").count() == 0
        count_without = listed.count()

        page.get_by_text("Show replays").click()
        expect(page).to_have_url(re.compile(r"replays=1"))
        replay = page.locator(f'a[href="trace?trace={runs.replay}"]')
        expect(replay).to_be_visible()
        expect(replay).to_contain_text("replay")
        original = page.locator(f'a[href="trace?trace={runs.waited}"]').filter(has_text="replay of")
        expect(original).to_be_visible()
        expect(original).to_contain_text(runs.waited)
        no_traceback(page)
        expect(listed).to_have_count(count_without + 2)  # the replay, and its link to the original

        # The link is a real one: it opens the original run.
        original.click()
        expect(page).to_have_url(re.compile(rf"trace\?trace={runs.waited}"))
        expect(page.get_by_text(runs.waited).first).to_be_visible()
        no_traceback(page)

""" "Add to suite" on the trace page, in a real browser: `retrace ui` (a real subprocess) against a
real collector. A new suite is made from one trace's page, a second trace is added to it by
picking it, and bad input is a message on the page, never a traceback; the collector then holds
the suite in that order, added by the UI."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from playwright.sync_api import Page, expect, sync_playwright

from schemas.models import SuiteSource
from tests.collector.test_app_ingest import make_agent_spans
from tests.fixtures.collector import RunningCollector, launch_collector
from tests.ui.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    choose,
    click_until,
    fresh_page,
    no_traceback,
    start_ui,
    stop_ui,
    wait_idle,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Stack:
    collector: RunningCollector
    ui_url: str
    first: str
    second: str


def _send(url: str) -> str:
    spans = make_agent_spans(1)
    assert OTLPSpanExporter(endpoint=url + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    assert spans[0].context is not None
    return format(spans[0].context.trace_id, "032x")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui-suites")
    collector = launch_collector(tmp / "collector")
    ui_process: subprocess.Popen[bytes] | None = None
    try:
        first, second = _send(collector.url), _send(collector.url)
        for trace_id in (first, second):
            collector.client.wait_for_trace(trace_id, min_spans=3)
        ui_process, ui_url = start_ui(collector.url, tmp / "ui.log")
        yield Stack(collector, ui_url, first, second)
    finally:
        if ui_process is not None:
            stop_ui(ui_process)
        collector.kill()


def _open(stack: Stack, page: Page, trace_id: str, suites: int) -> None:
    page.goto(f"{stack.ui_url}/trace?trace={trace_id}")
    expect(page.get_by_text("Span tree")).to_be_visible()
    # the page writes the open span into its URL while it runs: wait for that before acting
    expect(page).to_have_url(re.compile(r"span=[0-9a-f]{16}"))
    wait_idle(page)
    page.get_by_text(f"Suites ({suites})").click()


def test_add_traces_to_a_suite_from_the_trace_page(stack: Stack) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            with fresh_page(browser) as page:
                add = page.get_by_role("button", name="Add to suite")
                # a new suite from the first trace's page
                _open(stack, page, stack.first, 0)
                page.get_by_label("…or a new suite").fill("checkout")
                page.get_by_label("Note").fill("refund shown twice")
                click_until(page, add, page.get_by_text("Added to suite checkout."))
                page.get_by_text("Suites (1)").click()
                expect(page.get_by_text("In checkout")).to_be_visible()
                no_traceback(page)

                # the second trace: bad input first (messages on the page, nothing added)
                _open(stack, page, stack.second, 0)
                needs_a_name = page.get_by_text("Pick a suite or type the name of a new one.")
                click_until(page, add, needs_a_name)
                wait_idle(page)
                page.get_by_label("…or a new suite").fill("no spaces allowed")
                click_until(page, add, page.get_by_text(re.compile("invalid suite name")).first)
                no_traceback(page)
                wait_idle(page)

                # then pick the existing suite
                choose(page, "Suite", "checkout")
                click_until(page, add, page.get_by_text("Added to suite checkout."))
                page.get_by_text("Suites (1)").click()
                expect(page.get_by_text("In checkout")).to_be_visible()
                no_traceback(page)
        finally:
            browser.close()
    suite = stack.collector.client.get_suite("checkout")
    assert [t.trace_id for t in suite.traces] == [stack.first, stack.second]
    assert {t.source for t in suite.traces} == {SuiteSource.UI}
    assert suite.traces[0].note == "refund shown twice"
    assert [s.name for s in stack.collector.client.list_suites()] == ["checkout"]

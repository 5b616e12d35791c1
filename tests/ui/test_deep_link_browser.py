"""A deep link opened right after `retrace ui` starts shows the trace, never Streamlit's
"Page not found" (not even for a moment), in Debian's Chromium."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.fixtures.collector import free_port, launch_collector
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, TIMEOUT_MS, child_env, stop_ui
from tests.ui.seed import seed_wide_trace

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# Collects the page's text on every animation frame, from before the app's first paint.
_WATCH = """
window.__texts = [];
const watch = () => {
    if (document.body) window.__texts.push(document.body.innerText);
    requestAnimationFrame(watch);
};
watch();
"""


@pytest.mark.parametrize("path", ["/trace?trace={trace}", "/?trace={trace}"])
def test_deep_link_right_after_start_never_says_page_not_found(tmp_path: Path, path: str) -> None:
    collector = launch_collector(tmp_path / "data")
    ui: subprocess.Popen[bytes] | None = None
    try:
        trace_id = seed_wide_trace(collector.url, 5)
        collector.client.wait_for_trace(trace_id, min_spans=5)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "ui.log"
        with open(log, "wb") as out:
            ui = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "retrace",
                    "ui",
                    "--api",
                    collector.url,
                    "--port",
                    str(port),
                ],
                cwd=REPO_ROOT,
                env=child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Open the link the moment the server answers (as a person clicking the printed URL).
        deadline = time.monotonic() + 60
        while True:
            assert ui.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.add_init_script(_WATCH)
            page.goto(url + path.format(trace=trace_id))
            page.wait_for_function(
                f"() => document.body.innerText.includes({trace_id!r})"
                " && document.body.innerText.includes('Span tree')"
                " && document.querySelector('[data-testid=stApp]')"
                "      .getAttribute('data-test-script-state') === 'notRunning'",
                timeout=TIMEOUT_MS,
            )
            time.sleep(1)  # a late error would show now
            texts: list[str] = page.evaluate("window.__texts")
            browser.close()
        assert texts, "no page text was collected"
        flashed = [t for t in texts if "Page not found" in t or "does not seem to exist" in t]
        assert not flashed, flashed[0][:500]
        assert trace_id in texts[-1]
    finally:
        if ui is not None:
            stop_ui(ui)
        collector.kill()

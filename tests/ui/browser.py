"""What the UI's browser tests share: `retrace ui` as a real subprocess, and Debian's Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.fixtures.collector import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 90_000  # the box is shared: be patient (waits, not timing assertions)


def child_env() -> dict[str, str]:
    """This environment without ``RETRACE_*`` settings, with the worktree importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def start_ui(endpoint: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``retrace ui --api endpoint`` on a free loopback port; returns the process and its URL."""
    port = free_port()
    argv = [sys.executable, "-m", "runner.cli", "ui", "--api", endpoint, "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"retrace ui did not start:\n{log.read_text()}")


def stop_ui(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def fresh_page(browser: Browser) -> Iterator[Page]:
    """A page in a new browser context (no cookies or session shared with other steps)."""
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def no_traceback(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def wait_idle(page: Page) -> None:
    """Wait until the app's script run has finished (Streamlit marks it on the app element).

    A form submitted while the page's script is still running can be dropped by Streamlit (seen
    in Chromium on the trace page: the click lands, no rerun follows); a person clicks again,
    a test waits for the run to end first.
    """
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def choose(page: Page, label: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` in the selectbox labelled ``label``, as a person would.

    A rerun that starts while the dropdown is open repaints the selectbox and closes it (seen in
    CI on the trace page: the option never appeared); a person opens it again, so does this.
    """
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    wanted = page.get_by_role("option", name=option).first
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        wait_idle(page)
        box.click()
        try:
            wanted.wait_for(state="visible", timeout=5_000)
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
            continue
        wanted.click()
        return


def click_until(page: Page, target: Locator, shows: Locator, *, attempts: int = 5) -> None:
    """Click ``target`` until ``shows`` is visible; only for a click that may safely repeat.

    Streamlit can drop a form submit that lands while the page's script reruns (seen in CI:
    "Add to suite" clicked, no message ever came); a person clicks again, so does this.
    """
    for attempt in range(attempts):
        wait_idle(page)
        target.click()
        try:
            shows.wait_for(state="visible", timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise

"""Span data, approvals and replays are attacker-controlled: in a real browser they stay text.

A real collector is seeded over OTLP (protobuf from the SDK, and JSON) with spans whose every
free-text field is a ``hostile_text`` value: a code-span breakout, an ``<iframe srcdoc>`` script,
``<img onerror>``, HTML and markdown links and images pointing at a loopback listener this test
opens, ``<script>``, Streamlit directives and LaTeX. Hostile approvals and replay records are saved
through the collector's API. `retrace ui` then serves every page to Debian's Chromium.

What must hold on every page: no JavaScript dialog opens, the browser fetches nothing from the
listener, no element carries an attacker URL, script or handler, and the values read as the
literal text that was sent. Problems are collected page by page and reported together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, expect, sync_playwright

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, fresh_page, start_ui, stop_ui
from tests.ui.seed import (
    HOSTILE_APPROVAL,
    HOSTILE_DIVERGED_REPLAY,
    HOSTILE_FAILED_REPLAY,
    HostileTraces,
    hostile_text,
    save_hostile_records,
    seed_hostile_traces,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# A page is first waited for (TIMEOUT_MS) until the last thing its script draws is shown; a check
# after that which is going to fail then waits only this long. A check that passes returns at
# once; on a loaded 2-core box Streamlit can still be drawing the last elements for seconds.
SOFT_TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)

# Every element attribute through which a value could make the browser fetch or run something.
# A link is allowed only as what GitHub-flavoured markdown makes of a URL in plain text: an
# anchor whose text is its own address (the viewer sees where it goes, and nothing is fetched).
_FINDINGS_JS = """
([host]) => {
  const found = [];
  const urlAttrs = new Set(["src", "href", "xlink:href", "srcset", "action", "formaction",
                            "poster", "data", "background", "style"]);
  const literalUrl = (el, url) =>
    el.tagName.toLowerCase() === "a" && decodeURI(url) === el.textContent.trim();
  for (const el of document.querySelectorAll("*")) {
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      if (urlAttrs.has(name) && a.value.includes(host) && !literalUrl(el, a.value))
        found.push(`${el.tagName} ${name}=${a.value}`);
      if (name.startsWith("on") && a.value.includes("alert(")) found.push(`${el.tagName} ${name}`);
    }
    if (el.tagName === "IFRAME" && el.hasAttribute("srcdoc")) found.push("IFRAME srcdoc");
    if (el.tagName === "SCRIPT" && el.textContent.includes("alert(")) found.push("SCRIPT alert");
    if (el.tagName === "IMG" && el.getAttribute("src") === "x") found.push("IMG src=x");
  }
  return found;
}
"""


class _LeakListener:
    """A loopback HTTP server that records every request a rendered value makes the browser send."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"leaked")

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class HostileStack:
    collector: RunningCollector
    ui_url: str
    leak: _LeakListener
    hostile: Callable[[str], str]
    traces: HostileTraces


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileStack]:
    tmp = tmp_path_factory.mktemp("ui-hostile")
    leak = _LeakListener()
    collector = launch_collector(tmp / "data", env={"RETRACE_RESUME_ON_DECISION": "false"})
    ui_process = None
    try:
        h = partial(hostile_text, leak.url)
        traces = seed_hostile_traces(collector.url, collector.client.put_payload, h)
        collector.client.wait_for_trace(traces.trace, min_spans=3)
        collector.client.wait_for_trace(traces.json_trace, min_spans=1)
        save_hostile_records(collector.client, traces, h)
        ui_process, ui_url = start_ui(collector.url, tmp / "ui.log")
        yield HostileStack(collector, ui_url, leak, h, traces)
    finally:
        if ui_process is not None:
            stop_ui(ui_process)
        collector.kill()
        leak.close()


@dataclass
class _Audit:
    """Checks that record a problem and go on, so one run names every render site at fault."""

    stack: HostileStack
    page: Page
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    where: str = ""

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{self.where}: {dialog.type} {dialog.message!r}")
        dialog.dismiss()

    def open(self, path: str, ready: str) -> None:
        """Go to ``path`` and wait until ``ready``, the last thing the page draws, is shown."""
        self.where = path
        self.page.goto(self.stack.ui_url + path)
        expect(self.page.get_by_text(ready, exact=False).first).to_be_visible()
        expect(self.page.get_by_test_id("stException")).to_have_count(0)

    def literal(self, text: str, what: str) -> None:
        """``text`` is on the page, visible, exactly as sent."""
        try:
            shown = self.page.get_by_text(text, exact=False).filter(visible=True)
            expect(shown.first).to_be_visible(timeout=SOFT_TIMEOUT_MS)
        except AssertionError:
            self.problems.append(f"{self.where}: {what} is not shown as literal text")

    def value(self, tag: str, what: str, prefix: str = "", suffix: str = "") -> None:
        self.literal(prefix + self.stack.hostile(tag) + suffix, what)

    def expand(self, label: str) -> None:
        self.page.get_by_test_id("stExpander").get_by_text(label, exact=False).first.click()

    def nothing_active(self) -> None:
        """No element on the page points at the listener or carries a script or handler."""
        found = self.page.evaluate(_FINDINGS_JS, [self.stack.leak.host])
        self.problems += [f"{self.where}: {item}" for item in dict.fromkeys(found)]


def _traces_list(audit: _Audit) -> None:
    h = audit.stack.hostile
    # The hostile run is a replay: listed, and marked with its original, when replays are shown.
    audit.open("/?replays=1", "Page 1 ·")
    audit.literal(h("input")[:80], "the run input preview in a trace link")
    audit.value("replayof", "the original a listed replay names", prefix="replay of ")
    audit.literal(h("jsonspan")[:80], "the root span name of an OTLP/JSON trace in a trace link")
    audit.nothing_active()


def _trace_root(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(f"/trace?trace={t.trace}&span={t.root_span}", "All attributes (")
    audit.value("agent", "the agent name in the trace header")
    audit.value("runstat", "the run status badge")
    audit.value("replayof", "the trace this run replays", prefix="This run is a replay of ")
    audit.value("agent", "the span name heading", prefix="invoke_agent ")
    audit.value("rootstat", "the span's status message", prefix="Error: ")
    audit.value("guardrl", "the guardrail attribute", prefix="Guardrail fired: ")
    audit.value("guardev", "a guardrail event attribute", prefix="retrace.guardrail=")
    audit.value("answer", "the run answer")
    audit.expand("Input and answer")
    audit.value("input", "the input preview", prefix="Input: ")
    audit.value("answer", "the answer preview", prefix="Answer: ")
    audit.nothing_active()


def _trace_chat(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(f"/trace?trace={t.trace}&span={t.chat_span}", "All attributes (")
    audit.value("model", "the chat span heading", prefix="chat ")
    audit.value("model", "the model name in the span facts", prefix="model ")
    audit.value("role", "a message role")
    audit.value("usertext", "a message text")
    audit.value("finish", "a finish reason", prefix="finish: ")
    audit.value("callname", "a requested tool call's name", prefix="Tool call ")
    audit.value("callid", "a requested tool call's id", prefix="id ")
    audit.nothing_active()


def _trace_tool(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(f"/trace?trace={t.trace}&span={t.tool_span}", "All attributes (")
    audit.value("tool", "the tool span heading", prefix="execute_tool ")
    audit.value("tool", "the tool name in the span facts", prefix="tool ")
    audit.value("statmsg", "the span's status message", prefix="Error: ")
    audit.value("exctype", "an exception event's type")
    audit.value("excmsg", "an exception event's message")
    audit.value("tool", "the tool name over its arguments", prefix="Arguments of ")
    audit.value("argname", "an argument name")
    audit.value("result", "the tool result")
    audit.value("backend", "the sandbox backend metric")
    audit.value("exitcode", "the sandbox exit code metric")
    audit.value("mcp", "the MCP server", prefix="MCP server: ")
    audit.value("decision", "the policy decision", prefix="Policy decision: ")
    audit.value("rule", "the policy rule")
    audit.value("reason", "the policy reason")
    audit.value("apprid", "the approval id attribute")
    audit.value("apprstat", "the approval status attribute")
    audit.value("decider", "who decided the approval", prefix="by ")
    audit.value("polevent", "a policy event attribute", prefix="retrace.policy.rule=")
    audit.value("filepath", "a workspace file's name", prefix="Download out/")
    audit.value("filepath", "a binary file's name", prefix="out/", suffix=" is binary")
    audit.expand("Events (1)")
    audit.value("evname", "an event name")
    audit.value("evvalue", "an event attribute", prefix=audit.stack.hostile("evkey") + "=")
    audit.nothing_active()


def _replay_pages(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(f"/replay?trace={t.trace}&replay={HOSTILE_FAILED_REPLAY}", "Earlier replays")
    audit.value("agent", "the agent name in the replay header")
    audit.value("rperror", "a failed replay's error", prefix="failed: ")
    audit.page.get_by_test_id("stTooltipIcon").first.hover()
    audit.value(
        "model", "the recorded models in the model field's help", prefix="Recorded models: "
    )
    audit.nothing_active()
    audit.open(f"/replay?trace={t.trace}&replay={HOSTILE_DIVERGED_REPLAY}", "Earlier replays")
    audit.value("kind", "the first divergence kind of a replay")
    audit.nothing_active()
    audit.open(f"/replay?trace={t.json_trace}", "Earlier replays")
    audit.value("jsonsvc", "the service name of an OTLP/JSON trace")
    audit.nothing_active()


def _divergence_pages(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(
        f"/divergence?trace={t.trace}&replay={HOSTILE_DIVERGED_REPLAY}",
        "diverged — first divergence",
    )
    audit.value("summary", "the first divergence's summary")
    audit.value("diffpath", "a diff entry's path")
    audit.value("tool", "a step title (tool name)", prefix="tool ")
    audit.expand("1 matching steps")
    audit.value("model", "a step title (model) in a run of matches", prefix="llm ")
    audit.nothing_active()
    audit.open(
        f"/divergence?trace={t.trace}&replay={HOSTILE_FAILED_REPLAY}", "before producing a report"
    )
    audit.value("rperror", "a failed replay's error", prefix="before producing a report: ")
    audit.nothing_active()


def _compare_pages(audit: _Audit) -> None:
    t = audit.stack.traces
    audit.open(f"/compare?a={t.trace}&b={t.json_trace}", "Aligned steps")
    audit.value("tool", "a step title (tool name)", prefix="tool ")
    audit.nothing_active()
    audit.open(f"/compare?a={t.trace}", "Pick two traces")
    audit.value("agent", "the agent name of trace A")
    audit.nothing_active()


def _approvals_page(audit: _Audit) -> None:
    audit.open("/approvals", "Recently decided")
    audit.value("apprtool", "the tool name in the approval heading")
    audit.value("apprwhy", "the approval reason", prefix="Why: ")
    audit.value("apprrule", "the approval rule")
    audit.nothing_active()
    audit.page.locator(f".st-key-reject-{HOSTILE_APPROVAL} button").click()
    expect(audit.page.get_by_text("rejected by ui", exact=False)).to_be_visible()
    audit.value("apprtool", "the tool name in the decision notice")
    audit.nothing_active()


def _overview_page(audit: _Audit) -> None:
    audit.open("/overview", "Top failing tools")
    expect(audit.page.get_by_test_id("stPlotlyChart").last).to_be_visible()
    audit.nothing_active()


def _values_from_the_link(audit: _Audit) -> None:
    # A shared link carries its own values: the page must show them as text too.
    h = audit.stack.hostile
    shown = f"![i]({audit.stack.leak.url}/md/"
    audit.open(f"/trace?trace={quote(h('urltrace'))}", "Could not load trace")
    audit.literal(shown + "urltrace)", "a trace id from the link in an error")
    audit.nothing_active()
    audit.open(f"/divergence?trace={quote(h('urldiv'))}", "Divergence")
    audit.literal(shown + "urldiv)", "a trace id from the link in a message")
    audit.nothing_active()
    audit.open(f"/compare?a={quote(h('urlcmpa'))}&b={quote(h('urlcmpb'))}", "Could not compare")
    audit.literal(shown + "urlcmpa)", "a trace id from the link in an error")
    audit.nothing_active()


def test_hostile_values_render_as_text_and_fetch_nothing(hostile_stack: HostileStack) -> None:
    """Every page, every hostile field: no dialog, no fetch, no active element, literal text."""
    steps = [
        _traces_list,
        _trace_root,
        _trace_chat,
        _trace_tool,
        _replay_pages,
        _divergence_pages,
        _compare_pages,
        _approvals_page,
        _overview_page,
        _values_from_the_link,
    ]
    problems: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for step in steps:
                with fresh_page(browser) as page:
                    audit = _Audit(hostile_stack, page)
                    page.on("dialog", audit.on_dialog)
                    step(audit)
                    page.wait_for_load_state("networkidle")
                    problems += audit.problems
                    dialogs += audit.dialogs
        finally:
            browser.close()
    fetched = list(hostile_stack.leak.requests)
    assert not (problems or dialogs or fetched), "\n".join(
        [*problems, *(f"dialog: {d}" for d in dialogs), *(f"fetched: {f}" for f in fetched)]
    )

"""Every page under AppTest, over hostile span data: all markdown the page sends is inert.

The fast companion of test_hostile_browser.py (which is the real check, in Chromium): each page
runs against a real collector seeded with ``hostile_text`` values, and every string the page hands
Streamlit as markdown (bodies, captions, alerts, headings, metric labels and values, expander,
button and link labels, help texts) is rendered by a CommonMark renderer with raw HTML enabled:
no image, link, iframe or script may come out, and chosen values must come out as literal text.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from streamlit.testing.v1 import AppTest

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.ui.seed import (
    HOSTILE_DIVERGED_REPLAY,
    HOSTILE_FAILED_REPLAY,
    HostileTraces,
    hostile_text,
    save_hostile_records,
    seed_hostile_traces,
)
from tests.ui.tables import TableParser, parse_table

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
LEAK = "http://127.0.0.1:9"  # never contacted: these tests render no HTML
_MD = MarkdownIt("commonmark")  # html=True: unescaped HTML comes out as HTML
# Anything that fetches, runs or links; the pages' own same-tab links point at other pages.
_ACTIVE = re.compile(r'<(img|iframe|script)\b|<a (?!href="(trace|replay|divergence)\?)')
h = partial(hostile_text, LEAK)


@dataclass
class Seeded:
    collector: RunningCollector
    traces: HostileTraces


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("ui-hostile-apptest") / "data"
    collector = launch_collector(data_dir, env={"RETRACE_RESUME_ON_DECISION": "false"})
    try:
        traces = seed_hostile_traces(collector.url, collector.client.put_payload, h)
        collector.client.wait_for_trace(traces.trace, min_spans=3)
        collector.client.wait_for_trace(traces.json_trace, min_spans=1)
        save_hostile_records(collector.client, traces, h)
        yield Seeded(collector, traces)
    finally:
        collector.kill()


def _open(monkeypatch: pytest.MonkeyPatch, endpoint: str, page: str, **params: str) -> AppTest:
    monkeypatch.setenv("RETRACE_ENDPOINT", endpoint)
    monkeypatch.delenv("RETRACE_API_KEY", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()  # registers the pages
    at.query_params.clear()
    at.query_params.update(params)
    at = at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown_sources(at: AppTest) -> list[str]:
    """Every string of the page that Streamlit renders as markdown."""
    sources: list[Any] = []
    for group in (at.markdown, at.caption, at.error, at.info, at.warning, at.success):
        sources += [element.value for element in group]
    sources += [element.value for element in at.subheader]
    sources += [text for m in at.metric for text in (m.label, m.value)]
    sources += [e.label for e in at.expander]
    for kind in ("page_link", "button", "download_button", "toggle", "radio", "text_input"):
        for element in at.get(kind):
            sources += [element.proto.label, getattr(element.proto, "help", "")]
    return [str(source) for source in sources]


def _inert_and_literal(at: AppTest, *tags: str) -> None:
    rendered = [_MD.render(source) for source in _markdown_sources(at)]
    active = [shown for shown in rendered if _ACTIVE.search(shown)]
    assert not active, "\n\n".join(active)
    page = "\n".join(rendered)
    missing = [tag for tag in tags if escapeHtml(h(tag)) not in page]
    assert not missing, f"not shown as literal text: {missing}"


def _only_table_markup(body: str, href_prefix: str) -> TableParser:
    """``body`` holds table markup only; links only to ``href_prefix...``, no handlers."""
    parsed = parse_table(body)
    tags = {tag for tag, _ in parsed.tags}
    assert tags <= {"style", "div", "table", "thead", "tbody", "tr", "th", "td", "a", "code"}, tags
    for tag, attrs in parsed.tags:
        assert not [name for name, _ in attrs if name.startswith("on")], (tag, attrs)
        if tag == "a":
            assert (dict(attrs).get("href") or "").startswith(href_prefix), attrs
    return parsed


def test_traces_list(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    # The hostile run is a replay (of a hostile id): listed, and marked, when replays are shown.
    at = _open(monkeypatch, seeded.collector.url, "traces", replays="1")
    _inert_and_literal(at)  # the filters, toggles and captions around the list
    # The list itself is one HTML table (st.html): only table markup and links to trace pages,
    # every value its literal text.
    (body,) = [e.value for e in at.get("html") if "<table" in e.value]  # type: ignore[attr-defined]
    parsed = _only_table_markup(body, href_prefix="trace?trace=")
    cells = [text for row in parsed.rows for text, _ in row]
    assert h("input")[:80] in cells and h("jsonspan")[:80] in cells
    assert f"replay of {h('replayof')}" in cells


@pytest.mark.parametrize(
    ("span", "tags"),
    [
        ("root_span", ("agent", "replayof", "rootstat", "guardrl", "answer")),
        ("chat_span", ("model", "role", "usertext", "callname", "callid")),
        ("tool_span", ("tool", "statmsg", "exctype", "excmsg", "argname", "backend", "exitcode")),
        ("tool_span", ("mcp", "decision", "rule", "reason", "apprid", "apprstat", "decider")),
        ("tool_span", ("polevent", "evname", "evkey", "evvalue", "result")),
    ],
)
def test_trace_page(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, span: str, tags: tuple[str, ...]
) -> None:
    t = seeded.traces
    at = _open(monkeypatch, seeded.collector.url, "trace", trace=t.trace, span=getattr(t, span))
    _inert_and_literal(at, *tags)
    # The span tree and the span's attributes are HTML tables (st.html): table markup only, the
    # tree's links to this trace's spans, no link among the attributes.
    bodies = [e.value for e in at.get("html")]  # type: ignore[attr-defined]
    (tree,) = [b for b in bodies if '<table class="retrace-spans"' in b]
    _only_table_markup(tree, href_prefix=f"trace?trace={t.trace}&span=")
    (attributes,) = [b for b in bodies if '<table class="retrace-attributes"' in b]
    parsed = _only_table_markup(attributes, href_prefix="no link here")
    assert "a" not in {tag for tag, _ in parsed.tags}


def test_replay_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    t = seeded.traces
    url = seeded.collector.url
    at = _open(monkeypatch, url, "replay", trace=t.trace, replay=HOSTILE_FAILED_REPLAY)
    _inert_and_literal(at, "agent", "model", "rperror")
    at = _open(monkeypatch, url, "replay", trace=t.trace, replay=HOSTILE_DIVERGED_REPLAY)
    _inert_and_literal(at, "kind")
    _inert_and_literal(_open(monkeypatch, url, "replay", trace=t.json_trace), "jsonsvc")


def test_divergence_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    t = seeded.traces
    url = seeded.collector.url
    at = _open(monkeypatch, url, "divergence", trace=t.trace, replay=HOSTILE_DIVERGED_REPLAY)
    _inert_and_literal(at, "summary", "diffpath", "tool", "model")
    at = _open(monkeypatch, url, "divergence", trace=t.trace, replay=HOSTILE_FAILED_REPLAY)
    _inert_and_literal(at, "rperror")


def test_approvals_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(monkeypatch, seeded.collector.url, "approvals")
    _inert_and_literal(at, "apprtool", "apprwhy", "apprrule")


def test_overview_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(monkeypatch, seeded.collector.url, "overview")
    _inert_and_literal(at)
    # Plotly reads tags in axis labels: the failing tool's name is given to it HTML-escaped.
    labels = [
        x
        for chart in at.get("plotly_chart")
        for series in json.loads(chart.proto.spec)["data"]
        for x in series.get("x", [])
        if isinstance(x, str) and "/md/tool" in x
    ]
    assert labels and all("<" not in x and html.unescape(x) == h("tool") for x in labels)


def test_values_from_the_link(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    url = seeded.collector.url
    _inert_and_literal(_open(monkeypatch, url, "trace", trace=h("urltrace")), "urltrace")
    _inert_and_literal(_open(monkeypatch, url, "divergence", trace=h("urldiv")), "urldiv")


def test_compare_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    t = seeded.traces
    url = seeded.collector.url
    at = _open(monkeypatch, url, "compare", a=t.trace, b=t.json_trace)
    _inert_and_literal(at, "tool", "model")
    # choosing B: the other runs are listed by their (hostile) input
    _inert_and_literal(_open(monkeypatch, url, "compare", a=t.trace))
    at = _open(monkeypatch, url, "compare", a=t.trace, b=h("urlcmp"))
    _inert_and_literal(at, "urlcmp")

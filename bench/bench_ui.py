"""UI responsiveness in a real browser: the trace list over 10,000 runs, a 2,000-span trace page.

    .venv/bin/python bench/bench_ui.py [--runs 10000] [--spans 2000] [--repeat 5]

Starts a real ``retrace serve`` (embedded chDB in a temp dir) and seeds it over OTLP/HTTP with the
OpenTelemetry SDK (tests/ui/seed.py: ``--runs`` agent runs of 3 spans each, and one run with
``--spans`` spans), then starts ``retrace ui`` and drives Debian's Chromium with Playwright.
Each figure is the time from the browser action (navigation or click) until the element a person
waits for is visible, and until Streamlit reports the script run finished ("idle"):

* list: open ``/`` in a new tab until the trace table and its 50 trace links are visible;
* list, from the sidebar: with the app open on ``/approvals``, click "Traces" in the sidebar
  (in-app navigation, the app warm in the tab) until the table and its 50 links are visible;
* filter: click "Apply filters" (agent filter) until the filtered links are shown;
* next page: click "Next page" until the second page's links are shown;
* floor: open ``/approvals`` with nothing pending (Streamlit's own page start-up, for scale);
* detail, click in list: on ``/?agent=wide-agent`` click the big trace's link (in-app navigation,
  the way people arrive) until its span tree and timeline (a bar per span) are visible;
* detail, open: open ``/trace?trace=<id>`` of the big trace (a fresh browser page each time, so no
  session cache) until the span tree and the timeline are visible.

Targets (issue 6): list interactive <= 1 s, 2,000-span trace page rendered <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.fixtures.collector import free_port, launch_collector  # noqa: E402
from tests.ui.seed import seed_many_runs, seed_wide_trace  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# Conditions checked on every animation frame (Playwright's expect() polls with back-off, which
# would add up to a second of measurement error).
_LINKS = "Array.from(document.querySelectorAll('a[href*=\"trace=\"] code'))"
_TABLE = "document.querySelector('[data-testid=stDataFrame] canvas') !== null"
# The list's table: one HTML table (an st.dataframe canvas before; accepted to compare builds).
_LIST = "document.querySelector('table.retrace-traces, [data-testid=stDataFrame] canvas') !== null"
_TIMELINE = (
    "document.querySelector('[data-testid=stVegaLiteChart] svg.marks, "
    "[data-testid=stVegaLiteChart] canvas') !== null"
)
# A trace page is shown when its span tree and timeline are: one HTML table with a bar per row,
# or (older builds, accepted to compare) an st.dataframe tree and a Vega-Lite timeline.
_TRACE = (
    "(document.querySelector('table.retrace-spans td.timeline div') !== null"
    f" || ({_TABLE} && {_TIMELINE}))"
)


def _until(page: Page, condition: str) -> None:
    page.wait_for_function(f"() => {condition}", polling="raf", timeout=120_000)


def _idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def _measure(
    action: Callable[[], None], ready: Callable[[], None], page: Page
) -> tuple[float, float]:
    start = time.perf_counter()
    action()
    ready()
    visible = time.perf_counter() - start
    _idle(page)
    return visible, time.perf_counter() - start


def _report(name: str, samples: list[tuple[float, float]]) -> None:
    visible = [s[0] for s in samples]
    idle = [s[1] for s in samples]
    print(
        f"{name:<34} visible median {statistics.median(visible):6.3f} s  max {max(visible):6.3f} s"
        f"   | idle median {statistics.median(idle):6.3f} s  max {max(idle):6.3f} s"
        f"   (n={len(samples)})"
    )


def _tree_reads(url: str, trace_id: str, spans: int, repeat: int) -> None:
    """The trace page's tree read, whole and with only the tree's fields (``fields=``,
    ``ui._tree.TREE_FIELDS``): the collector's answer (HTTP on loopback: the store's read and
    the JSON), its size, and the client's parsing, alternated."""
    from collector.client import partial_tree_page
    from schemas.models import TraceTreePage
    from ui._tree import TREE_FIELDS

    path = f"{url}/api/v1/traces/{trace_id}/spans"
    variants = {
        "whole": ({"limit": 5000}, TraceTreePage.model_validate_json),
        "fields=TREE_FIELDS": (
            {"limit": 5000, "fields": ",".join(TREE_FIELDS)},
            partial_tree_page,
        ),
    }
    times: dict[str, tuple[list[float], list[float], int]] = {k: ([], [], 0) for k in variants}
    with httpx.Client(timeout=60) as http:
        for _ in range(repeat):
            for name, (params, parse) in variants.items():
                start = time.perf_counter()
                content = http.get(path, params=params).content
                got = time.perf_counter()
                page = parse(content)
                done = time.perf_counter()
                assert len(page.spans) == spans
                read, parsed, _ = times[name]
                read.append(got - start)
                parsed.append(done - got)
                times[name] = (read, parsed, len(content))
    for name, (read, parsed, size) in times.items():
        print(
            f"tree read {name:<20} collector median {statistics.median(read):6.3f} s"
            f"  min {min(read):6.3f} s | {size:,} bytes | parse median "
            f"{statistics.median(parsed):6.3f} s  min {min(parsed):6.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--skip-browser", action="store_true", help="only the API figures (no Chromium)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="retrace-bench-ui-") as tmp:
        collector = launch_collector(Path(tmp) / "data")
        ui: subprocess.Popen[bytes] | None = None
        try:
            client = collector.client
            t0 = time.perf_counter()
            seed_many_runs(collector.url, args.runs)
            wide = seed_wide_trace(collector.url, args.spans)
            client.wait_for_trace(wide, min_spans=args.spans, timeout=300)
            while client.stats().runs < args.runs + 1:
                time.sleep(0.5)
            print(
                f"seeded {args.runs:,} runs + one {args.spans:,}-span trace "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            api = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                client.list_traces(limit=50)
                api.append(time.perf_counter() - start)
            print(f"{'API list 50 newest':<34} median {statistics.median(api):6.3f} s")
            api = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                client.get_trace(wide)
                api.append(time.perf_counter() - start)
            print(
                f"{f'API get {args.spans:,}-span trace':<34} median {statistics.median(api):6.3f} s"
            )
            api = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                tree = client.get_trace_tree_all(wide)
                client.get_span(wide, tree.spans[-1].span_id)
                api.append(time.perf_counter() - start)
            print(
                f"{f'API tree + 1 span, {args.spans:,} spans':<34} "
                f"median {statistics.median(api):6.3f} s"
            )
            full_bytes = len(httpx.get(f"{collector.url}/api/v1/traces/{wide}").content)
            tree_bytes = len(
                httpx.get(f"{collector.url}/api/v1/traces/{wide}/spans?limit=5000").content
            )
            print(f"bytes: full GET {full_bytes:,}, span tree {tree_bytes:,}")
            _tree_reads(collector.url, wide, args.spans, max(args.repeat, 5))

            if args.skip_browser:
                return
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
            env["PYTHONPATH"] = str(ROOT)
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
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                # One browser context, as a person's browser: the static bundle is cached after
                # the first load; every measured page is still a fresh Streamlit session.
                context = browser.new_context(viewport={"width": 1500, "height": 1100})
                warm = context.new_page()
                warm.goto(url)  # first load compiles Streamlit's bundle caches; not measured
                _idle(warm)
                warm.close()

                lists, filters, nexts, details, floors, clicks = [], [], [], [], [], []
                warm_lists: list[tuple[float, float]] = []
                for _ in range(args.repeat):
                    bare = context.new_page()
                    floors.append(
                        _measure(
                            lambda bare=bare: bare.goto(f"{url}/approvals"),
                            lambda bare=bare: _until(
                                bare,
                                "document.body.innerText.includes('No pending approval requests.')",
                            ),
                            bare,
                        )
                    )
                    # The app open on another page (warm), the list chosen in the sidebar.
                    warm_lists.append(
                        _measure(
                            lambda bare=bare: (
                                bare.get_by_test_id("stSidebarNav")
                                .get_by_role("link", name="Traces", exact=True)
                                .click()
                            ),
                            lambda bare=bare: _until(bare, f"{_LIST} && {_LINKS}.length === 50"),
                            bare,
                        )
                    )
                    bare.close()

                    page = context.new_page()
                    lists.append(
                        _measure(
                            lambda page=page: page.goto(url),
                            lambda page=page: _until(page, f"{_LIST} && {_LINKS}.length === 50"),
                            page,
                        )
                    )
                    second = page.evaluate(f"{_LINKS}[1].innerText")
                    page.get_by_label("Agent").fill("agent-3")
                    filters.append(
                        _measure(
                            lambda page=page: page.get_by_role(
                                "button", name="Apply filters"
                            ).click(),
                            lambda page=page, second=second: _until(
                                page, f"{_LINKS}.length > 1 && {_LINKS}[1].innerText !== {second!r}"
                            ),
                            page,
                        )
                    )
                    first = page.evaluate(f"{_LINKS}[0].innerText")
                    nexts.append(
                        _measure(
                            lambda page=page: page.get_by_role("button", name="Next page").click(),
                            lambda page=page, first=first: _until(
                                page, f"{_LINKS}.length > 0 && {_LINKS}[0].innerText !== {first!r}"
                            ),
                            page,
                        )
                    )
                    page.close()

                    # In-app: from the list (filtered to the big run) click its link.
                    nav = context.new_page()
                    nav.goto(f"{url}/?agent=wide-agent")
                    link = nav.locator(f'a[href*="{wide}"]').last
                    link.wait_for()
                    _idle(nav)
                    clicks.append(
                        _measure(
                            link.click,
                            lambda nav=nav: _until(
                                nav, f"location.href.includes('/trace?') && {_TRACE}"
                            ),
                            nav,
                        )
                    )
                    nav.close()

                    detail = context.new_page()
                    details.append(
                        _measure(
                            lambda detail=detail: detail.goto(f"{url}/trace?trace={wide}"),
                            lambda detail=detail: _until(detail, _TRACE),
                            detail,
                        )
                    )
                    detail.close()
                browser.close()
            _report("floor: open a page with one message", floors)
            _report(f"trace list ({args.runs:,} runs), open", lists)
            _report("trace list, from the sidebar", warm_lists)
            _report("trace list, apply a filter", filters)
            _report("trace list, next page", nexts)
            _report(f"trace detail ({args.spans:,} spans), open", details)
            _report(f"trace detail ({args.spans:,}), click in list", clicks)
        finally:
            if ui is not None:
                ui.terminate()
                ui.wait(timeout=10)
            collector.kill()


if __name__ == "__main__":
    main()

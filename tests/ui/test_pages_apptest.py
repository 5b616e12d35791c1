"""Every page of the UI, run by Streamlit's AppTest against a real collector seeded over OTLP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from collector.client import CollectorClient
from schemas import attributes as A
from schemas.models import (
    AlignedPair,
    Approval,
    ApprovalStatus,
    DiffEntry,
    Divergence,
    DivergenceKind,
    DivergenceMetrics,
    DivergenceReport,
    ReplayMode,
    ReplayRecord,
)
from tests.fixtures.collector import RunningCollector, free_port, launch_collector
from tests.ui.seed import ANSWER, QUESTION, SeededTraces, seed_agent_traces, seed_wide_trace
from tests.ui.tables import span_tree, trace_list
from ui._tree import MAX_RENDERED_SPANS, page_count

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


@dataclass
class Seeded:
    collector: RunningCollector
    traces: SeededTraces
    approval_id: str
    replay_id: str

    @property
    def client(self) -> CollectorClient:
        return self.collector.client

    def span_id(self, trace_id: str, operation: str) -> str:
        detail = self.client.get_trace(trace_id)
        return next(s.span_id for s in detail.spans if s.operation == operation)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("ui-collector") / "data"
    collector = launch_collector(data_dir, env={"RETRACE_RESUME_ON_DECISION": "false"})
    try:
        client = collector.client
        traces = seed_agent_traces(collector.url, client.put_payload)
        for trace_id in (traces.ok, traces.failed, traces.denied):
            client.wait_for_trace(trace_id, min_spans=3)
        now = datetime.now(UTC)
        approval = client.save_approval(
            Approval(
                approval_id="appr-ui-1",
                run_id="run-needs-approval",
                trace_id=traces.ok,
                tool_name="write_file",
                arguments={"path": "report.md", "content": "# Revenue"},
                reason="writes to the workspace need a human",
                rule="approve-writes",
                requested_at=now,
            )
        )
        report = DivergenceReport(
            original_trace_id=traces.ok,
            replay_trace_id=traces.failed,
            mode=ReplayMode.LIVE_MODEL,
            diverged=True,
            first_divergence=Divergence(
                kind=DivergenceKind.OTHER_ARGUMENTS,
                recorded_index=1,
                replayed_index=1,
                step_kind="tool",
                summary="run_python called with other code",
                diff=[
                    DiffEntry(
                        path="/arguments/code", op="change", recorded="print(1)", replayed="1/0"
                    )
                ],
            ),
            alignment=[
                AlignedPair(recorded_index=0, replayed_index=0, status="match"),
                AlignedPair(recorded_index=1, replayed_index=1, status="diverged"),
                AlignedPair(recorded_index=2, replayed_index=None, status="missing"),
            ],
            metrics=DivergenceMetrics(
                steps_recorded=3,
                steps_replayed=2,
                steps_matched=1,
                final_answer_changed=True,
                recorded_answer=ANSWER,
                replayed_answer="",
            ),
        )
        replay = client.save_replay(
            ReplayRecord(
                replay_id="rp-ui-1",
                original_trace_id=traces.ok,
                replay_trace_id=traces.failed,
                mode=ReplayMode.LIVE_MODEL,
                status="completed",
                created_at=now,
                updated_at=now,
                diverged=True,
                first_divergence_step=1,
                first_divergence_kind=DivergenceKind.OTHER_ARGUMENTS.value,
                report=report,
            )
        )
        yield Seeded(collector, traces, approval.approval_id, replay.replay_id)
    finally:
        collector.kill()


def _app(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> AppTest:
    monkeypatch.setenv("RETRACE_ENDPOINT", endpoint)
    monkeypatch.delenv("RETRACE_API_KEY", raising=False)
    return AppTest.from_file(str(APP), default_timeout=60)


def _open(at: AppTest, page: str, **params: str) -> AppTest:
    at.run()  # registers the pages
    at.query_params.clear()
    at.query_params.update(params)
    return at.switch_page(f"views/{page}.py").run()


# Values in markdown are backslash-escaped (ui._escape); a renderer shows the character itself.
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def _shown(elements: Iterable[Any]) -> str:
    """The text of markdown elements as a reader sees it (escapes removed), one per line."""
    return "\n".join(_ESCAPED.sub(r"\1", str(element.value)) for element in elements)


def _texts(at: AppTest) -> str:
    shown = _shown([*at.markdown, *at.caption, *at.error, *at.info, *at.warning, *at.success])
    return "\n".join([shown, *(t.value for t in at.text), *(c.value for c in at.code)])


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --- traces ------------------------------------------------------------------------------------


def test_trace_list_shows_every_run_with_links(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(monkeypatch, seeded.collector.url).run()
    _no_exception(at)
    rows = trace_list(at)
    assert {
        "trace",
        "duration ms",
        "steps",
        "tokens",
        "cost $",
        "errors",
        "input",
        "answer",
    } <= set(rows[0])
    assert len(rows) >= 3
    links = {row["trace href"] for row in rows}
    for trace_id in (seeded.traces.ok, seeded.traces.failed, seeded.traces.denied):
        assert f"trace?trace={trace_id}" in links
    ok_row = next(row for row in rows if row["trace href"] == f"trace?trace={seeded.traces.ok}")
    assert ok_row["trace"] == seeded.traces.ok[:12]
    assert ok_row["steps"] == "3" and ok_row["tokens"] == f"{420 + 38 + 510 + 22:,}"
    assert float(ok_row["cost $"].lstrip("$")) > 0 and ok_row["answer"] == ANSWER


def test_filters_come_from_the_url(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded.collector.url)
    at.query_params["status"] = "error"
    at.run()
    _no_exception(at)
    links = {row["trace href"] for row in trace_list(at)}
    assert f"trace?trace={seeded.traces.failed}" in links
    assert f"trace?trace={seeded.traces.ok}" not in links

    at.query_params.clear()
    at.query_params["agent"] = "sql-analyst"
    at.run()
    assert [row["trace href"] for row in trace_list(at)] == [f"trace?trace={seeded.traces.denied}"]

    at.query_params.clear()
    at.query_params["q"] = "zzz-nothing-matches"
    at.run()
    assert "No traces match these filters." in _texts(at)


def test_filter_form_writes_the_url(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded.collector.url).run()
    agent_box = next(t for t in at.text_input if t.label == "Agent")
    agent_box.input("sql-analyst")
    next(s for s in at.selectbox if s.label == "Status").select("error")
    at.button[0].click().run()  # the form's "Apply filters"
    _no_exception(at)
    assert at.query_params.get("agent") == "sql-analyst"
    assert at.query_params.get("status") == "error"
    assert [row["trace href"] for row in trace_list(at)] == [f"trace?trace={seeded.traces.denied}"]


def test_bad_filter_in_the_link_is_a_message(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(monkeypatch, seeded.collector.url)
    at.query_params["min_ms"] = "fast"
    at.run()
    _no_exception(at)
    assert "min_ms='fast' is not a number" in _texts(at)


def test_unreachable_collector_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    at = _app(monkeypatch, endpoint).run()
    _no_exception(at)
    errors = _shown(at.error)
    assert "Could not list traces" in errors and "unreachable" in errors
    at = _open(at, "trace", trace="ab" * 16)
    _no_exception(at)
    assert "unreachable" in _shown(at.error)


# --- trace detail -------------------------------------------------------------------------------


def test_root_link_form_opens_the_trace(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded.collector.url)
    at.query_params["trace"] = seeded.traces.ok
    at.run()
    _no_exception(at)
    assert at.title[0].value == "Trace"
    assert QUESTION in _texts(at)
    # the root says where each MCP server ran
    servers = next(d.value for d in at.dataframe if "server" in d.value.columns)
    assert list(servers["server"]) == ["sandbox"] and list(servers["sandbox"]) == ["gvisor"]


def test_tool_span_shows_arguments_result_sandbox_and_workspace(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool_span = seeded.span_id(seeded.traces.ok, A.OP_EXECUTE_TOOL)
    at = _open(
        _app(monkeypatch, seeded.collector.url), "trace", trace=seeded.traces.ok, span=tool_span
    )
    _no_exception(at)
    tree = span_tree(at)
    assert len(tree) == 4 and tree[0]["span"].startswith("invoke_agent")
    # each span's name selects it; the selected one is the tool span of the link
    assert [row["span href"] for row in tree].count(
        f"trace?trace={seeded.traces.ok}&span={tool_span}"
    ) == 1
    # where each tool step ran, in the tree itself
    assert [row["sandbox"] for row in tree if "execute_tool" in row["span"]] == ["gvisor"]
    assert {row["sandbox"] for row in tree if "execute_tool" not in row["span"]} == {""}
    assert any(j.value and '"network"' in str(j.value) for j in at.json)  # the policy
    assert any(j.value and "csv.DictReader" in str(j.value) for j in at.json)
    text = _texts(at)
    assert "**Arguments** of `run_python`" in text and "**Result**" in text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Backend"] == "gvisor" and metrics["Exit code"] == "0"
    assert "EMEA,1250000" in text  # the workspace file's content at this step
    assert at.get("download_button")
    assert "Policy decision: **allow**" in text


def test_chat_span_is_a_conversation(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_span = seeded.span_id(seeded.traces.ok, A.OP_CHAT)
    at = _open(
        _app(monkeypatch, seeded.collector.url), "trace", trace=seeded.traces.ok, span=chat_span
    )
    _no_exception(at)
    roles = [m.name for m in at.chat_message]
    assert roles[:3] == ["system", "user", "assistant"]
    assert QUESTION in _texts(at) and "**Tool call** `run_python`" in _texts(at)


def test_error_span_is_selected_and_shows_the_stack(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "trace", trace=seeded.traces.failed)
    _no_exception(at)
    errors = _shown(at.error)
    assert "ZeroDivisionError: division by zero" in errors
    assert any("Traceback" in c.value for c in at.code)


def test_policy_denial_and_guardrail(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    root = seeded.span_id(seeded.traces.denied, A.OP_INVOKE_AGENT)
    at = _open(
        _app(monkeypatch, seeded.collector.url), "trace", trace=seeded.traces.denied, span=root
    )
    assert "Guardrail fired: max_turns" in _texts(at)
    tool = seeded.span_id(seeded.traces.denied, A.OP_EXECUTE_TOOL)
    at.query_params["span"] = tool
    at.run()
    _no_exception(at)
    assert "Policy decision: **deny** (rule `sql-read-only`)" in _texts(at)


def test_unknown_and_deleted_traces_are_messages(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "trace", trace="0" * 32)
    _no_exception(at)
    assert f"Could not load trace {'0' * 32}: not found" in _shown(at.error)
    doomed = seed_agent_traces(seeded.collector.url, seeded.client.put_payload).denied
    seeded.client.wait_for_trace(doomed, min_spans=3)
    seeded.client.delete_trace(doomed)
    at.query_params["trace"] = doomed
    at.run()
    _no_exception(at)
    assert "not found" in _shown(at.error)


# --- replay, divergence, approvals, overview ---------------------------------------------------


def test_replay_page_lists_earlier_replays_and_offers_every_mode(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "replay", trace=seeded.traces.ok)
    _no_exception(at)
    assert str(at.radio[0].options[0]).startswith("recorded")
    assert len(at.radio[0].options) == 3
    replays = at.dataframe[0].value
    assert list(replays["mode"]) == ["live-model"] and bool(replays["diverged"].iloc[0])
    assert f"divergence?trace={seeded.traces.ok}&amp;replay={seeded.replay_id}" in _texts(at)


def test_replay_of_unknown_trace_is_a_message(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "replay", trace="f" * 32)
    _no_exception(at)
    assert "not found" in _shown(at.error)


def test_divergence_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(
        _app(monkeypatch, seeded.collector.url),
        "divergence",
        trace=seeded.traces.ok,
        replay=seeded.replay_id,
    )
    _no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Verdict"] == "diverged" and metrics["Steps matched"] == "1"
    errors = _shown(at.error)
    assert "First divergence · other_arguments" in errors
    assert "run_python called with other code" in errors
    diff = at.dataframe[0].value
    assert list(diff["path"]) == ["/arguments/code"]
    labels = [e.label for e in at.expander]
    assert any("1 matching steps" in label for label in labels)
    assert "The final answer changed." in _texts(at)


def test_divergence_of_unknown_replay_is_a_message(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "divergence", replay="nope")
    _no_exception(at)
    assert "Could not load replay nope" in _shown(at.error)


def test_approve_a_pending_request(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "approvals")
    _no_exception(at)
    text = _texts(at)
    assert "`write_file` wants approval" in text
    assert "writes to the workspace need a human" in text
    assert any(j.value and "report.md" in str(j.value) for j in at.json)
    at.button(key=f"approve-{seeded.approval_id}").click().run()
    _no_exception(at)
    assert "approved by ui" in _shown(at.success)
    assert seeded.client.get_approval(seeded.approval_id).status == ApprovalStatus.APPROVED
    assert "No pending approval requests." in _texts(at)


def test_overview(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "overview")
    _no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Runs"].replace(",", "")) >= 3
    assert metrics["Error rate"].endswith("%")
    assert len(at.get("plotly_chart")) >= 5
    assert "run_python" in set(at.dataframe[0].value["tool"])


def test_ten_thousand_span_trace_is_windowed_with_a_note(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = seed_wide_trace(seeded.collector.url, 10_000)
    seeded.client.wait_for_trace(wide, min_spans=10_000, timeout=120)
    at = _open(_app(monkeypatch, seeded.collector.url), "trace", trace=wide)
    _no_exception(at)
    notes = _shown(at.info)
    assert (
        "This trace has 10,000 spans" in notes and f"{MAX_RENDERED_SPANS} spans at a time" in notes
    )
    assert len(span_tree(at)) == MAX_RENDERED_SPANS
    windows = page_count(10_000)
    at.number_input[0].set_value(windows).run()  # the last window: the newest spans
    _no_exception(at)
    assert len(span_tree(at)) == 10_000 - (windows - 1) * MAX_RENDERED_SPANS
    assert span_tree(at)[-1]["span"].startswith("└ ")


def test_trace_page_without_an_id_asks_for_one(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(_app(monkeypatch, seeded.collector.url), "trace")
    _no_exception(at)
    assert "No trace selected" in _texts(at)
    at.text_input[0].input(seeded.traces.ok).run()
    _no_exception(at)
    assert at.query_params.get("trace") == seeded.traces.ok
    assert QUESTION in _texts(at)


def test_a_replay_that_cannot_run_says_why(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    # The seeded run has no agent config recorded, so the real replay engine must refuse it.
    at = _open(_app(monkeypatch, seeded.collector.url), "replay", trace=seeded.traces.denied)
    at.button[0].click().run()  # "Launch replay" (recorded)
    _no_exception(at)
    replay_id = at.query_params.get("replay")
    assert replay_id
    deadline = time.monotonic() + 120
    while seeded.client.get_replay(replay_id).status == "running":
        assert time.monotonic() < deadline, "replay still running after 120 s"
        time.sleep(0.5)
    at.run()
    _no_exception(at)
    failure = _shown(at.error)
    assert f"Replay `{replay_id}` failed:" in failure
    assert seeded.client.get_replay(replay_id).error.split("\n")[0] in failure


def test_project_key_is_used_and_a_missing_one_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = launch_collector(tmp_path / "keyed", api_keys=["team-a:rt_ui_test_key_0123456789"])
    try:
        at = _app(monkeypatch, collector.url).run()
        _no_exception(at)
        assert "Could not list traces" in _shown(at.error)
        monkeypatch.setenv("RETRACE_API_KEY", "rt_ui_test_key_0123456789")
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        _no_exception(at)
        assert not at.error
        assert "No traces yet." in _texts(at)
    finally:
        collector.kill()

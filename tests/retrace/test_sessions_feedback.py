"""Sessions, end users and feedback end to end, over a real collector with two projects.

Traces come from the OpenTelemetry SDK (OTLP/HTTP exporter, one per convention's session/user
keys) and from a real ``retrace run --session-id --user-id``; they are found by session and user
through the API, the client and the ``retrace traces/show/sessions/feedback`` commands (real
subprocesses). One collector and one data set serve the whole module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.client import CollectorClient
from schemas import attributes as A
from schemas.errors import InvalidInputError, NotFoundError
from tests.fixtures.collector import RunningCollector, launch_collector
from tests.fixtures.demo_runs import TASK, _agent, child_env
from tests.ui.tables import trace_list

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-0123456789"
BETA = "beta-key-9876543210"

# convention -> (span attributes, resource attributes) naming session and user.
CONVENTIONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "otel": ({A.SESSION_ID: "s-otel", A.USER_ID: "u-otel"}, {}),
    "genai": ({A.GEN_AI_CONVERSATION_ID: "s-genai"}, {A.USER_ID: "u-genai"}),
    "openinference": (
        {A.OI_SPAN_KIND: "AGENT"},
        {A.SESSION_ID: "s-openinference", A.USER_ID: "u-openinference"},
    ),
    "openllmetry": (
        {A.TL_SESSION_ID: "s-openllmetry", A.TL_USER_ID: "u-openllmetry"},
        {},
    ),
    "langfuse": ({A.LANGFUSE_SESSION_ID: "s-langfuse", A.LANGFUSE_USER_ID: "u-langfuse"}, {}),
}


@dataclass
class World:
    server: RunningCollector
    alpha: CollectorClient
    beta: CollectorClient
    by_convention: dict[str, str] = field(default_factory=dict)
    alice: list[str] = field(default_factory=list)  # s-alice-1 (two traces), then s-alice-2
    run_trace: str = ""
    replay_trace: str = ""
    multilingual: str = ""
    odd_session: str = ""


def send_trace(
    url: str,
    key: str,
    span_attrs: dict[str, str],
    resource_attrs: dict[str, str],
    question: str = "Where is my refund?",
    answer: str = "Your refund was sent.",
) -> str:
    """One agent run (root plus a chat span) through the SDK's OTLP/HTTP exporter."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", **resource_attrs})
    )
    exporter = OTLPSpanExporter(
        endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {key}"}
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.sessions")
    root_attrs = {
        A.GEN_AI_OPERATION_NAME: "invoke_agent",
        A.GEN_AI_AGENT_NAME: "support",
        A.RETRACE_RUN_INPUT: question,
        A.RETRACE_RUN_OUTPUT: answer,
        **span_attrs,
    }
    chat_attrs = {A.GEN_AI_OPERATION_NAME: "chat"}
    with (
        tracer.start_as_current_span("invoke_agent support", attributes=root_attrs) as root,
        tracer.start_as_current_span("chat gpt-test", attributes=chat_attrs),
    ):
        pass
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def retrace_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retrace", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=240,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("sessions")
    server = launch_collector(base / "retrace", api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"])
    w = World(server, server.client_for(ALPHA), server.client_for(BETA))
    try:
        for name, (span_attrs, resource_attrs) in CONVENTIONS.items():
            w.by_convention[name] = send_trace(server.url, ALPHA, span_attrs, resource_attrs)
        for session in ("s-alice-1", "s-alice-1", "s-alice-2"):
            w.alice.append(
                send_trace(server.url, ALPHA, {A.SESSION_ID: session, A.USER_ID: "alice"}, {})
            )
        # Questions in Russian and Japanese; tool arguments JSON-escaped as json.dumps writes them.
        w.multilingual = send_trace(
            server.url,
            ALPHA,
            {
                A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps(
                    {"заказ": "注文番号 4711", "café": "Ñandú"}
                ),
                A.RETRACE_RUN_INPUT: "Где мой возврат? 返金はどこですか",
            },
            {},
        )
        # A session id with a slash and a non-ASCII letter (a path segment once quoted).
        w.odd_session = send_trace(server.url, ALPHA, {A.SESSION_ID: "conv/ü 1"}, {})
        # A real run of the demo agent in carol's session.
        run_dir = base / "run"
        run_dir.mkdir()
        done = retrace_cli(
            "run",
            TASK,
            "--agent",
            str(_agent(run_dir, None)),
            "--endpoint",
            server.url,
            "--api-key",
            ALPHA,
            "--data-dir",
            str(run_dir / "data"),
            "--session-id",
            "s-carol",
            "--user-id",
            "carol",
            "--metadata",
            "ticket=4711",
            cwd=run_dir,
        )
        match = re.search(r"^trace:\s+([0-9a-f]{32})", done.stdout, re.M)
        assert done.returncode == 0 and match, done.stdout + done.stderr
        w.run_trace = match.group(1)
        # A replay of it, in the same session (a replay re-runs the recorded root attributes).
        w.replay_trace = send_trace(
            server.url,
            ALPHA,
            {A.SESSION_ID: "s-carol", A.USER_ID: "carol", A.RETRACE_REPLAY_OF: w.run_trace},
            {},
        )
        for trace_id in [
            *w.by_convention.values(),
            *w.alice,
            w.replay_trace,
            w.multilingual,
            w.odd_session,
        ]:
            w.alpha.wait_for_trace(trace_id, min_spans=2)
        w.alpha.wait_for_trace(w.run_trace, min_spans=3)
        yield w
    finally:
        w.alpha.close()
        w.beta.close()
        server.kill()


def _ids(client: CollectorClient, **filters: Any) -> list[str]:
    return [t.trace_id for t in client.list_traces(**filters).traces]


# --- sessions and users ----------------------------------------------------------------------
@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_each_conventions_keys_find_the_trace_by_session_and_user(
    world: World, convention: str
) -> None:
    trace_id = world.by_convention[convention]
    session, user = f"s-{convention}", f"u-{convention}"
    assert _ids(world.alpha, session_id=session) == [trace_id]
    assert _ids(world.alpha, user_id=user) == [trace_id]
    summary = world.alpha.get_trace(trace_id).trace
    assert (summary.session_id, summary.user_id) == (session, user)
    spans = world.alpha.search_spans(session_id=session).spans
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.user_id for s in spans} == {user}


def test_sessions_list_per_user_and_one_sessions_traces_in_order(world: World) -> None:
    response = httpx.get(
        world.server.url + "/api/v1/sessions",
        params={"user_id": "alice"},
        headers={"Authorization": f"Bearer {ALPHA}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"sessions", "next_cursor"}
    sessions = {s["session_id"]: s for s in body["sessions"]}
    assert set(sessions) == {"s-alice-1", "s-alice-2"}
    assert sessions["s-alice-1"]["trace_count"] == 2
    assert sessions["s-alice-1"]["user_id"] == "alice"
    assert {"first_time", "last_time", "error_count"} <= set(sessions["s-alice-1"])

    detail = world.alpha.get_session("s-alice-1")
    assert [t.trace_id for t in detail.traces] == world.alice[:2]  # oldest first
    with pytest.raises(NotFoundError):
        world.alpha.get_session("s-nobody")
    odd = world.alpha.get_session("conv/ü 1")
    assert [t.trace_id for t in odd.traces] == [world.odd_session]
    # The replay is not part of carol's session; the run is.
    carol = world.alpha.get_session("s-carol")
    assert [t.trace_id for t in carol.traces] == [world.run_trace]


def test_the_runner_records_session_user_and_metadata(world: World) -> None:
    detail = world.alpha.get_trace(world.run_trace)
    assert (detail.trace.session_id, detail.trace.user_id) == ("s-carol", "carol")
    root = next(s for s in detail.spans if not s.parent_span_id)
    assert root.attributes[A.RETRACE_METADATA_PREFIX + "ticket"] == "4711"
    assert _ids(world.alpha, user_id="carol", include_replays=False) == [world.run_trace]
    sessions = world.alpha.list_sessions(user_id="carol").sessions
    assert [(s.session_id, s.trace_count) for s in sessions] == [("s-carol", 1)]


# --- feedback --------------------------------------------------------------------------------
def _post_feedback(world: World, trace_id: str, body: Any, key: str = ALPHA) -> httpx.Response:
    return httpx.post(
        f"{world.server.url}/api/v1/traces/{trace_id}/feedback",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )


def test_feedback_round_trip_through_the_api(world: World) -> None:
    trace_id = world.by_convention["otel"]
    created = _post_feedback(
        world, trace_id, {"name": "thumbs_down", "value": False, "source": "user"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["value"] is False and created.json()["trace_id"] == trace_id
    chat = next(s for s in world.alpha.get_trace(trace_id).spans if s.parent_span_id)
    scored = _post_feedback(
        world,
        trace_id,
        {"name": "score", "value": 0.5, "span_id": chat.span_id, "source": "reviewer"},
    )
    assert scored.status_code == 201, scored.text

    shown = httpx.get(
        f"{world.server.url}/api/v1/traces/{trace_id}",
        headers={"Authorization": f"Bearer {ALPHA}"},
    ).json()["feedback"]
    assert [(f["name"], f["value"], f["span_id"]) for f in shown] == [
        ("thumbs_down", False, ""),
        ("score", 0.5, chat.span_id),
    ]
    assert _ids(world.alpha, feedback="thumbs_down") == [trace_id]
    assert _ids(world.alpha, feedback="thumbs_down", user_id="alice") == []

    for body, field_name in (
        ({"value": 1}, "name"),
        ({"name": "", "value": 1}, "name"),
        ({"name": "x", "value": None}, "value"),
        ({"name": "x", "value": {"a": 1}}, "value"),
        ({"name": "x", "value": "y" * 10_001}, "value"),
        ({"name": "x", "value": 1, "comment": "y" * 10_001}, "comment"),
        ({"name": "x", "value": 1, "source": "boss"}, "source"),
        ({"name": "x", "value": 1, "span_id": "0123456789abcdef"}, "span_id"),
    ):
        bad = _post_feedback(world, trace_id, body)
        assert bad.status_code == 400, (body, bad.text)
        assert field_name in bad.json()["error"]["message"], bad.text
    missing = _post_feedback(world, "0" * 32, {"name": "x", "value": 1})
    assert missing.status_code == 404, missing.text
    with pytest.raises(InvalidInputError, match="name"):
        world.alpha.add_feedback(trace_id, "", 1)


def test_other_projects_see_no_sessions_or_feedback(world: World) -> None:
    trace_id = world.alice[2]
    world.alpha.add_feedback(trace_id, "complaint", "it was not sent", comment="isolation")
    assert world.beta.list_sessions().sessions == []
    assert world.beta.list_sessions(user_id="alice").sessions == []
    with pytest.raises(NotFoundError):
        world.beta.get_session("s-alice-1")
    assert _ids(world.beta, session_id="s-alice-2") == []
    assert _ids(world.beta, feedback="complaint") == []
    assert world.beta.search_spans(user_id="alice").spans == []
    # Neither read nor written through another project's key.
    assert _post_feedback(world, trace_id, {"name": "x", "value": 1}, key=BETA).status_code == 404
    with pytest.raises(NotFoundError):
        world.beta.list_feedback(trace_id)
    assert [f.name for f in world.alpha.list_feedback(trace_id)] == ["complaint"]


# --- the CLI ---------------------------------------------------------------------------------
def _cli(world: World, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return retrace_cli(*args, "--endpoint", world.server.url, "--api-key", ALPHA, cwd=tmp_path)


def test_retrace_traces_lists_filters_and_prints_the_api_json(world: World, tmp_path: Path) -> None:
    table = _cli(world, tmp_path, "traces", "--user", "alice")
    assert table.returncode == 0, table.stderr
    assert all(t in table.stdout for t in world.alice)
    assert world.by_convention["otel"] not in table.stdout
    assert "s-alice-1" in table.stdout

    as_json = _cli(world, tmp_path, "traces", "--session", "s-alice-1", "--json")
    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    api = httpx.get(
        world.server.url + "/api/v1/traces",
        params={"session_id": "s-alice-1", "include_replays": "false", "limit": 20},
        headers={"Authorization": f"Bearer {ALPHA}"},
    ).json()
    assert printed == api
    assert set(printed) == {"traces", "next_cursor"}
    assert [t["trace_id"] for t in printed["traces"]] == world.alice[1::-1]  # newest first

    # Replays: left out by default, listed and marked as replays of their original on request.
    plain = _cli(world, tmp_path, "traces", "--session", "s-carol")
    assert world.run_trace in plain.stdout and world.replay_trace not in plain.stdout
    shown = _cli(world, tmp_path, "traces", "--session", "s-carol", "--include-replays")
    line = next(x for x in shown.stdout.splitlines() if world.replay_trace in x)
    assert f"replay of {world.run_trace}" in line

    none = _cli(world, tmp_path, "traces", "--user", "nobody")
    assert none.returncode == 0 and "no traces match" in none.stdout
    bad = _cli(world, tmp_path, "traces", "--status", "sideways")
    assert bad.returncode == 2 and "status" in bad.stderr


def test_retrace_show_walks_the_run_step_by_step(world: World, tmp_path: Path) -> None:
    done = _cli(world, tmp_path, "show", world.run_trace)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"trace {world.run_trace}" in out
    assert "session: s-carol" in out and "user: carol" in out
    assert f"input: {TASK}" in out
    assert "LLM" in out and "tool query" in out and "arguments:" in out and "result:" in out
    assert "SELECT" in out  # the tool call's SQL argument
    trajectory = world.alpha.get_trajectory(world.run_trace)
    assert f"answer: {trajectory.output.split()[0]}" in out
    assert f"says: {trajectory.output.split()[0]}" in out  # the last LLM call's message

    as_json = _cli(world, tmp_path, "show", world.run_trace, "--json")
    body = json.loads(as_json.stdout)
    assert body["trace"]["trace_id"] == world.run_trace
    assert len(body["trajectory"]["steps"]) == len(trajectory.steps)

    missing = _cli(world, tmp_path, "show", "0" * 32)
    assert missing.returncode == 2 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_retrace_sessions_lists_and_shows_a_session(world: World, tmp_path: Path) -> None:
    listed = _cli(world, tmp_path, "sessions", "--user", "alice")
    assert listed.returncode == 0, listed.stderr
    assert "s-alice-1" in listed.stdout and "s-alice-2" in listed.stdout
    assert "s-otel" not in listed.stdout
    as_json = json.loads(_cli(world, tmp_path, "sessions", "--user", "alice", "--json").stdout)
    assert {s["session_id"] for s in as_json["sessions"]} == {"s-alice-1", "s-alice-2"}
    one = _cli(world, tmp_path, "sessions", "s-alice-1")
    assert one.returncode == 0, one.stderr
    assert one.stdout.index(world.alice[0]) < one.stdout.index(world.alice[1])
    assert "Where is my refund?" in one.stdout and "Your refund was sent." in one.stdout


def test_retrace_feedback_marks_the_complaint(world: World, tmp_path: Path) -> None:
    trace_id = world.by_convention["langfuse"]
    done = _cli(
        world,
        tmp_path,
        "feedback",
        trace_id,
        "--name",
        "complaint",
        "--value",
        "refund was not sent",
        "--comment",
        "ticket 4711",
    )
    assert done.returncode == 0, done.stderr
    assert "recorded complaint" in done.stdout
    stored = world.alpha.list_feedback(trace_id)
    assert [(f.name, f.value, f.comment, f.source.value) for f in stored] == [
        ("complaint", "refund was not sent", "ticket 4711", "reviewer")
    ]
    numeric = _cli(world, tmp_path, "feedback", trace_id, "--name", "score", "--value", "2")
    assert numeric.returncode == 0, numeric.stderr
    assert world.alpha.list_feedback(trace_id)[-1].value == 2
    listed = _cli(world, tmp_path, "traces", "--feedback", "complaint", "--json")
    assert trace_id in [t["trace_id"] for t in json.loads(listed.stdout)["traces"]]
    shown = _cli(world, tmp_path, "show", trace_id)
    assert "complaint" in shown.stdout and "ticket 4711" in shown.stdout

    unknown = _cli(world, tmp_path, "feedback", "0" * 32, "--name", "x", "--value", "1")
    assert unknown.returncode == 2 and "not found" in unknown.stderr
    empty = _cli(world, tmp_path, "feedback", trace_id, "--name", "", "--value", "1")
    assert empty.returncode == 2 and "name" in empty.stderr
    assert "Traceback" not in unknown.stderr + empty.stderr


# --- the UI ------------------------------------------------------------------------------------
APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
HOSTILE = "![x](http://127.0.0.1:9/x.png) <img src=x> [link](http://127.0.0.1:9) **bold**"


def _page(monkeypatch: pytest.MonkeyPatch, world: World, page: str, **params: str) -> Any:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RETRACE_ENDPOINT", world.server.url)
    monkeypatch.setenv("RETRACE_API_KEY", ALPHA)
    at = AppTest.from_file(str(APP), default_timeout=60).run()  # registers the pages
    at.query_params.clear()
    at.query_params.update(params)
    at = at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _inert(at: Any) -> None:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    sources = [e.value for group in (at.markdown, at.caption, at.error) for e in group]
    sources += [link.proto.label for link in at.get("page_link")]
    sources += [e.label for e in at.expander]
    for shown in map(md.render, map(str, sources)):
        assert "<img" not in shown and '<a href="http' not in shown, shown


def test_ui_session_page_and_feedback_on_the_trace_page(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = world.alice[:2]
    at = _page(monkeypatch, world, "session", session="s-alice-1")
    labels = [link.proto.label for link in at.get("page_link")]
    assert any(first in label for label in labels)
    order = [i for i, label in enumerate(labels) if first in label or second in label]
    assert len(order) == 2 and first in labels[order[0]]  # the conversation in order
    texts = [t.value for t in at.text]
    assert texts.count("Where is my refund?") == 2 and texts.count("Your refund was sent.") == 2
    assert at.metric[0].value == "2"
    _inert(at)

    world.alpha.add_feedback(second, "complaint", True, comment=HOSTILE, source="user")
    at = _page(monkeypatch, world, "trace", trace=second)
    assert any(e.label == "Feedback (1)" for e in at.expander)
    table = next(d.value for d in at.dataframe if "comment" in d.value.columns)
    assert list(table["comment"]) == [HOSTILE] and list(table["value"]) == ["true"]
    assert any("session?session=s-alice-1" in m.value for m in at.markdown)
    _inert(at)

    # Adding feedback from the page stores it.
    at.text_input(key="feedback-name").input("score")
    at.text_input(key="feedback-value").input("3")
    at.text_input(key="feedback-comment").input("reviewed")
    next(b for b in at.button if b.label == "Add feedback").click()
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    stored = [(f.name, f.value, f.comment) for f in world.alpha.list_feedback(second)]
    assert stored == [("complaint", True, HOSTILE), ("score", 3, "reviewed")]
    assert any(e.label == "Feedback (2)" for e in at.expander)


# --- search in any script ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["ВОЗВРАТ", "возврат", "返金", "ЗАКАЗ", "注文番号", "CAFÉ", "ñandú"],
)
def test_text_search_finds_any_script_in_any_case(world: World, text: str) -> None:
    response = httpx.get(
        world.server.url + "/api/v1/traces",
        params={"text": text},
        headers={"Authorization": f"Bearer {ALPHA}"},
    )
    assert response.status_code == 200, response.text
    assert [t["trace_id"] for t in response.json()["traces"]] == [world.multilingual]
    assert _ids(world.beta, text=text) == []


def test_retrace_traces_text_in_cyrillic(world: World, tmp_path: Path) -> None:
    done = _cli(world, tmp_path, "traces", "--text", "ЗаКаЗ", "--json")
    assert done.returncode == 0, done.stderr
    assert [t["trace_id"] for t in json.loads(done.stdout)["traces"]] == [world.multilingual]


def test_ui_trace_list_filters_by_session_user_and_feedback(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def listed(**params: str) -> set[str]:
        at = _page(monkeypatch, world, "traces", **params)
        # The list is one HTML table; each row links to its trace.
        links = " ".join(row["trace href"] for row in trace_list(at))
        return {t for t in [*world.alice, *world.by_convention.values()] if t in links}

    assert listed(user="alice") == set(world.alice)
    assert listed(session="s-alice-1") == set(world.alice[:2])
    world.alpha.add_feedback(world.by_convention["genai"], "ui_flag", 1)
    assert listed(feedback="ui_flag") == {world.by_convention["genai"]}

"""``retrace diff`` and ``GET /api/v1/diff`` on two real runs of the demo agent.

Two ``retrace run`` subprocesses answer the same task into a real collector (two projects, one key
each): one with the bundled offline script, one whose SQL gained `` LIMIT 3``. The diff finds
the changed query as the first divergence, shows the changed part of the long SQL string, is
clean for a run against itself, and is scoped to the caller's project.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.collector import RunningCollector, launch_collector
from tests.fixtures.demo_runs import retrace, two_runs

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ALPHA = "rt_alpha_diff_key_0123456789abcdef"
BETA = "rt_beta_diff_key_0123456789abcdef"


@dataclass
class Runs:
    collector: RunningCollector
    good: str  # trace id: the bundled script
    limited: str  # trace id: the same task, its SQL ends in LIMIT 3
    tmp: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    tmp = tmp_path_factory.mktemp("diff")
    collector = launch_collector(tmp / "collector", api_keys=[f"alpha:{ALPHA}", f"beta:{BETA}"])
    try:
        good, limited = two_runs(collector.url, tmp, ALPHA)
        alpha = collector.client_for(ALPHA)
        for trace_id in (good, limited):
            alpha.wait_for_trace(trace_id, min_spans=4)
        yield Runs(collector, good, limited, tmp)
    finally:
        collector.kill()


def _diff(runs: Runs, *args: str) -> subprocess.CompletedProcess[str]:
    return retrace(
        "diff", *args, "--endpoint", runs.collector.url, "--api-key", ALPHA, cwd=runs.tmp
    )


def test_two_runs_of_the_same_task_diverge_at_the_changed_query(runs: Runs) -> None:
    done = _diff(runs, runs.good, runs.limited, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert (body["a"], body["b"]) == (runs.good, runs.limited)
    report = body["report"]
    assert report["diverged"] is True and report["mode"] is None
    assert (report["original_trace_id"], report["replay_trace_id"]) == (runs.good, runs.limited)
    # the model (its offline script) asked for other SQL: step 0's answer is the first divergence
    first = report["first_divergence"]
    assert (first["kind"], first["recorded_index"], first["replayed_index"]) == (
        "other_output",
        0,
        0,
    )
    (entry,) = first["diff"]
    assert entry["path"] == "/output_message/tool_calls/0/args/sql"
    assert entry["replayed"] == entry["recorded"] + " LIMIT 3"
    # then the query tool ran with it, and returned fewer rows
    kinds = [(d["kind"], d["recorded_index"]) for d in report["divergences"]]
    assert kinds[1:3] == [("other_arguments", 1), ("other_output", 1)]
    assert report["divergences"][1]["diff"][0]["path"] == "/arguments/sql"
    assert [pair["status"] for pair in report["alignment"]] == ["diverged"] * 3
    assert len(entry["recorded"]) > 200  # long enough that its first 90 characters say nothing


def test_the_text_report_shows_the_changed_part_of_the_long_sql(runs: Runs) -> None:
    done = _diff(runs, runs.good, runs.limited)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert f"trace A {runs.good} vs trace B {runs.limited}" in out and "DIVERGED" in out
    assert "first divergence [other_output]" in out
    assert "…category ORDER BY revenue DESC LIMIT 3" in out  # B's side, around the change
    assert 'inserted " LIMIT 3"' in out
    assert "SELECT p.category" not in out  # the common start is cut, not the change


def test_a_run_against_itself_is_the_same(runs: Runs) -> None:
    done = _diff(runs, runs.good, runs.good, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)["report"]
    assert report["diverged"] is False and report["first_divergence"] is None
    assert {pair["status"] for pair in report["alignment"]} == {"match"}
    done = _diff(runs, runs.good, runs.good)
    assert done.returncode == 0 and "no divergence" in done.stdout


def test_bad_input_exits_2_with_a_message(runs: Runs) -> None:
    unknown = "0" * 32
    done = _diff(runs, runs.good, unknown)
    assert done.returncode == 2
    assert f"trace {unknown} not found at {runs.collector.url}" in done.stderr
    assert "Traceback" not in done.stderr
    done = _diff(runs, "../etc/passwd", runs.good)
    assert done.returncode == 2 and "invalid trace id a '../etc/passwd'" in done.stderr
    # another project's key does not see alpha's runs
    done = retrace(
        "diff", runs.good, runs.limited, "--endpoint", runs.collector.url, "--api-key", BETA,
        cwd=runs.tmp,
    )  # fmt: skip
    assert done.returncode == 2 and "not found" in done.stderr


def test_golden_files_compare_without_a_collector(runs: Runs) -> None:
    golden = runs.tmp / "golden"
    exported = retrace(
        "export", runs.good, runs.limited, "--to", str(golden),
        "--endpoint", runs.collector.url, "--api-key", ALPHA, cwd=runs.tmp,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    a, b = golden / f"{runs.good}.json", golden / f"{runs.limited}.json"
    done = retrace("diff", str(a), str(b), "--json", cwd=runs.tmp)
    assert done.returncode == 1, done.stderr
    # the same analysis as the collector's
    assert json.loads(done.stdout) == json.loads(
        _diff(runs, runs.good, runs.limited, "--json").stdout
    )
    ignore = runs.tmp / "ignore.yaml"
    ignore.write_text("ignore_paths: ['**/sql']\n")
    done = retrace("diff", str(a), str(b), "--ignore", str(ignore), "--json", cwd=runs.tmp)
    assert done.returncode == 1, done.stderr
    # with the SQL ignored, the first difference left is the rows the query returned
    first = json.loads(done.stdout)["report"]["first_divergence"]
    assert (first["kind"], first["recorded_index"], first["diff"][0]["path"]) == (
        "other_output",
        1,
        "/result",
    )


def test_the_api_is_scoped_to_the_callers_project(runs: Runs) -> None:
    url = f"{runs.collector.url}/api/v1/diff"
    params = {"a": runs.good, "b": runs.limited}

    def get(key: str, **query: str) -> httpx.Response:
        return httpx.get(url, params=query, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    ok = get(ALPHA, **params)
    assert ok.status_code == 200, ok.text
    assert ok.json()["report"]["first_divergence"]["kind"] == "other_output"
    other = get(BETA, **params)
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert runs.good in other.json()["error"]["message"]
    bad = get(ALPHA, a="x/../y", b=runs.good)
    assert bad.status_code == 400 and "invalid trace id a" in bad.json()["error"]["message"]
    missing = get(ALPHA, a=runs.good)
    assert missing.status_code == 400 and "b" in missing.json()["error"]["message"]
    assert httpx.get(url, params=params, timeout=60).status_code == 401

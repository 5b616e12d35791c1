"""Divergence cells show the changed part of long values; suite cases are named after the task."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replay import change_excerpts, change_note
from replay._replayer import ReplayOutcome
from replay._suite import case_name, describe, markdown_summary, outcome_name, task_slug
from schemas.models import (
    DiffEntry,
    Divergence,
    DivergenceKind,
    DivergenceMetrics,
    DivergenceReport,
    ReplayMode,
)

SQL = (
    "SELECT p.category, ROUND(SUM(oi.quantity * oi.unit_price * (1 - oi.discount)), 2) AS revenue "
    "FROM order_items oi JOIN products p ON p.product_id = oi.product_id JOIN orders o ON "
    "o.order_id = oi.order_id WHERE o.status IN ('delivered', 'shipped') GROUP BY p.category "
    "ORDER BY revenue DESC"
)


def test_an_appended_clause_is_shown_not_the_common_start() -> None:
    before, after = change_excerpts(SQL, SQL + " LIMIT 3", width=90)
    assert str(before) == "…category ORDER BY revenue DESC"
    assert str(after) == "…category ORDER BY revenue DESC LIMIT 3"
    assert (after.changed, before.changed) == (" LIMIT 3", "")
    assert change_note(SQL, SQL + " LIMIT 3") == 'inserted " LIMIT 3"'
    assert change_note(SQL + " LIMIT 3", SQL) == 'removed " LIMIT 3"'


def test_a_change_in_the_middle_is_windowed_on_both_sides() -> None:
    other = SQL.replace("'delivered'", "'returned'")
    before, after = change_excerpts(SQL, other, width=90)
    for excerpt in (before, after):
        assert excerpt.before.startswith("…") and excerpt.after.endswith("…")
        assert len(str(excerpt)) <= 90
    assert before.before == after.before  # both start the same distance before the change
    assert before.changed.startswith("deliver") and after.changed.startswith("return")
    assert change_note(SQL, other) == '"delivered" → "returned"'  # whole words


def test_short_and_structured_values() -> None:
    before, after = change_excerpts("select 1", "select 2")
    assert (str(before), str(after)) == ("select 1", "select 2")
    assert (before.before, before.changed, after.changed) == ("select ", "1", "2")
    before, after = change_excerpts({"rows": [1, 2]}, {"rows": [1, 3]})
    assert (str(before), str(after)) == ('{"rows": [1, 2]}', '{"rows": [1, 3]}')
    assert change_note({"rows": [1, 2]}, {"rows": [1, 3]}) == '"2" → "3"'
    assert change_note(None, "x") == "" and change_note("same", "same") == ""


@given(
    st.text("ab c", max_size=300),
    st.text("ab c", max_size=300),
    st.integers(min_value=30, max_value=150),
)
def test_windows_are_bounded_and_show_a_difference(a: str, b: str, width: int) -> None:
    before, after = change_excerpts(a, b, width=width)
    assert len(str(before)) <= width and len(str(after)) <= width
    if len(a) <= width:
        assert str(before) == a
    assert (str(before) == str(after)) == (a == b)


def test_task_slugs_and_case_names() -> None:
    task = "Which product categories bring in the most revenue?"
    assert task_slug(task) == "which-product-categories-bring-in-the-most"
    assert task_slug("  Délete *all* rows!\n") == "d-lete-all-rows"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert case_name(task, trace) == f"which-product-categories-bring-in-the-most[{trace}]"
    assert case_name("", trace) == trace
    assert case_name("", "", "case-9") == "case-9"


def _report(diff: list[DiffEntry]) -> DivergenceReport:
    first = Divergence(
        kind=DivergenceKind.OTHER_ARGUMENTS,
        recorded_index=1,
        replayed_index=1,
        step_kind="tool",
        summary="step 1 (execute_tool query): called with other arguments",
        diff=diff,
    )
    return DivergenceReport(
        original_trace_id="a" * 32,
        mode=ReplayMode.RECORDED,
        diverged=True,
        first_divergence=first,
        divergences=[first],
        metrics=DivergenceMetrics(steps_recorded=3, steps_replayed=3, steps_matched=2),
    )


def test_describe_and_the_markdown_summary() -> None:
    entry = DiffEntry(path="/arguments/sql", op="change", recorded=SQL, replayed=SQL + " LIMIT 3")
    text = describe(_report([entry]))
    assert (
        "  change /arguments/sql: …GROUP BY p.category ORDER BY revenue DESC -> "
        '…GROUP BY p.category ORDER BY revenue DESC LIMIT 3  (inserted " LIMIT 3")'
    ) in text
    diverged = ReplayOutcome(
        original_trace_id="a" * 32,
        mode=ReplayMode.RECORDED,
        report=_report([entry]),
        source="golden/a.json",
        task="Which product categories bring in the most revenue?",
    )
    failed = ReplayOutcome(
        original_trace_id="", mode=ReplayMode.RECORDED, error="boom", source="golden/b.json"
    )
    assert outcome_name(diverged) == f"which-product-categories-bring-in-the-most[{'a' * 32}]"
    assert outcome_name(failed) == "b"
    only_errors = markdown_summary([failed])
    assert "❌ 1 error" in only_errors and "divergence" not in only_errors.split("\n")[0]
    assert "| b | recorded | error | boom | – |" in only_errors
    both = markdown_summary([diverged, failed])
    assert both.startswith("## Retrace replay: ❌ 1 divergence, 1 error\n")
    assert (
        f"| which-product-categories-bring-in-the-most[{'a' * 32}] | recorded | divergence |"
        in both
    )

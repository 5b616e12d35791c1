"""Guardrail decisions: budgets, loops, seeded backoff."""

from __future__ import annotations

from runner.config import GuardrailsConfig
from runner.guardrails import LOOP, MAX_TURNS, TOKEN_BUDGET, WALL_TIME, Guardrails, call_key
from runner.runtime import LiveRuntime


def _guard(**kwargs: float) -> Guardrails:
    return Guardrails(GuardrailsConfig(**kwargs), LiveRuntime(seed=5), started_at=100.0)


def test_budgets_fire_in_order() -> None:
    g = _guard(max_turns=3, token_budget=100, wall_time_s=10)
    assert g.before_model(turns=2, tokens=99, now=109.0) is None
    hit = g.before_model(turns=3, tokens=0, now=100.0)
    assert hit is not None and hit.name == MAX_TURNS
    hit = g.before_model(turns=0, tokens=100, now=100.0)
    assert hit is not None and hit.name == TOKEN_BUDGET and "100 token budget" in hit.message
    hit = g.before_model(turns=0, tokens=0, now=111.0)
    assert hit is not None and hit.name == WALL_TIME


def test_loop_detection_counts_identical_calls() -> None:
    g = _guard(loop_threshold=3)
    key = call_key("query", {"b": 1, "a": 2})
    assert key == call_key("query", {"a": 2, "b": 1})
    assert g.check_loop({key: 2}, key, "query") is None
    hit = g.check_loop({key: 3}, key, "query")
    assert hit is not None and hit.name == LOOP


def test_backoff_is_exponential_capped_and_seeded() -> None:
    a = [_guard(backoff_base_s=0.1, backoff_max_s=0.5).backoff_s(n) for n in (1, 2, 3, 4, 5)]
    b = [_guard(backoff_base_s=0.1, backoff_max_s=0.5).backoff_s(n) for n in (1, 2, 3, 4, 5)]
    assert a == b  # same seed, same jitter
    assert 0.05 <= a[0] <= 0.15 and 0.1 <= a[1] <= 0.3
    assert max(a) <= 0.5

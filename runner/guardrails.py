"""Guardrails: turn, token and wall-time budgets, loop detection, retry backoff.

Pure decisions over the run's counters; the graph asks before each model call and each tool call
and ends the run with ``RunStatus.GUARDRAIL`` (and a span event) when one fires. Time and jitter
come from the ``Runtime``, so a replay sees the same decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runner.config import GuardrailsConfig
from runner.seams import Runtime

MAX_TURNS = "max_turns"
TOKEN_BUDGET = "token_budget"
WALL_TIME = "wall_time"
LOOP = "loop_detected"


@dataclass(frozen=True)
class GuardrailHit:
    """A guardrail that fired: its name and the answer the run ends with."""

    name: str
    message: str


class Guardrails:
    """Checks one run's budgets. ``started_at`` is the runtime clock when the run (or its
    resumed segment) began."""

    def __init__(self, config: GuardrailsConfig, runtime: Runtime, started_at: float) -> None:
        self.config = config
        self.runtime = runtime
        self.started_at = started_at

    def before_model(self, *, turns: int, tokens: int, now: float) -> GuardrailHit | None:
        """Checked before each model call; ``now`` is the runtime clock."""
        c = self.config
        if turns >= c.max_turns:
            return GuardrailHit(MAX_TURNS, f"Stopped: reached the limit of {c.max_turns} turns.")
        if tokens >= c.token_budget:
            return GuardrailHit(
                TOKEN_BUDGET, f"Stopped: used {tokens} tokens of a {c.token_budget} token budget."
            )
        elapsed = now - self.started_at
        if elapsed > c.wall_time_s:
            return GuardrailHit(
                WALL_TIME, f"Stopped: {elapsed:.1f}s exceeds the {c.wall_time_s:g}s time budget."
            )
        return None

    def check_loop(self, counts: dict[str, int], key: str, tool: str) -> GuardrailHit | None:
        """``counts[key]`` is how often this exact call was made before (including now)."""
        n = counts.get(key, 0)
        if n >= self.config.loop_threshold:
            return GuardrailHit(
                LOOP,
                f"Stopped: loop detected, {tool} was called {n} times with the same arguments.",
            )
        return None

    def backoff_s(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, with seeded jitter."""
        base: float = self.config.backoff_base_s * 2.0 ** (attempt - 1)
        return min(self.config.backoff_max_s, base * (0.5 + self.runtime.random()))


def call_key(tool: str, arguments: dict[str, Any]) -> str:
    """The identity of a tool call for loop detection."""
    return f"{tool}:{json.dumps(arguments, sort_keys=True, default=str)}"

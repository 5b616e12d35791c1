"""The live Runtime: real clock, seeded randomness, fresh ids — each value recorded.

Everything nondeterministic the agent observes goes through a ``Runtime`` (runner/seams.py). The
live one draws real values and remembers them; :class:`RecordingRuntime` wraps *any* runtime (live
or a replay's pinned one) so the run's root span can carry exactly the values the agent saw.
"""

from __future__ import annotations

import random
import time
import uuid

from runner.seams import Runtime


class LiveRuntime:
    """Wall clock, a ``random.Random(seed)`` and uuid4 ids."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def now(self) -> float:
        return time.time()

    def random(self) -> float:
        return self._rng.random()

    def new_id(self) -> str:
        return uuid.uuid4().hex


class RecordingRuntime:
    """Delegates to ``inner`` and records every clock value, random draw and id it hands out."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.clock_values: list[float] = []
        self.random_values: list[float] = []
        self.ids: list[str] = []

    def now(self) -> float:
        value = self.inner.now()
        self.clock_values.append(value)
        return value

    def random(self) -> float:
        value = self.inner.random()
        self.random_values.append(value)
        return value

    def new_id(self) -> str:
        value = self.inner.new_id()
        self.ids.append(value)
        return value

"""Alignment of recorded vs replayed step sequences (global alignment, Needleman-Wunsch style).

Pure. Steps are paired by similarity, not by index, so one inserted or missing step does not make
every later step "different": the alignment maximizes total similarity, where a gap (an extra or
a missing step) scores 0 and a pairing scores ``similarity(a, b)``. Pairs with a negative score
(e.g. an LLM call against a tool call) are never made. Ties break the same way every time
(prefer pairing, then a missing recorded step, then an extra replayed step), so the result is
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Pair = tuple[int | None, int | None]

_DIAG, _UP, _LEFT = 0, 1, 2


def align(
    recorded: Sequence[T], replayed: Sequence[T], similarity: Callable[[T, T], int]
) -> list[Pair]:
    """Pairs ``(recorded_index, replayed_index)``; ``None`` on one side marks a gap.

    Every index of each sequence appears exactly once, in increasing order.
    """
    n, m = len(recorded), len(replayed)
    # score[i][j]: best score aligning recorded[:i] with replayed[:j]
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[_LEFT] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        move[i][0] = _UP
    for i in range(1, n + 1):
        a = recorded[i - 1]
        row, prev = score[i], score[i - 1]
        for j in range(1, m + 1):
            best, how = prev[j], _UP
            if row[j - 1] > best:
                best, how = row[j - 1], _LEFT
            s = similarity(a, replayed[j - 1])
            if s >= 0 and prev[j - 1] + s >= best:
                best, how = prev[j - 1] + s, _DIAG
            row[j] = best
            move[i][j] = how
    pairs: list[Pair] = []
    i, j = n, m
    while i > 0 or j > 0:
        how = move[i][j] if i > 0 and j > 0 else (_UP if i > 0 else _LEFT)
        if how == _DIAG:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif how == _UP:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs

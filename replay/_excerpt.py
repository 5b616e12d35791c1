"""The changed part of two long values, for divergence cells that have room for a line only.

Pure. Cutting both values to their first N characters hides a change past N (a SQL string that
only gained `` LIMIT 3`` shows the same prefix twice). Here both values are split at their common
prefix and suffix, and each side is shown as a window around its first difference: a little
context before it (``…`` where cut), the changed part itself, a little context after.
``change_note`` says in a few words what was inserted, removed or replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ELLIPSIS = "…"
_WORD_SLACK = 12  # how far the context may reach back to start at a word's start


def as_text(value: Any) -> str:
    """A diff value as one string: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


@dataclass(frozen=True)
class Excerpt:
    """One side of a change, cut to a window: ``before`` + ``changed`` + ``after``.

    ``before`` starts and ``after`` ends with ``…`` where the value was cut; ``changed`` ends with
    ``…`` when the changed part alone was too long. ``changed`` is empty on the side where
    something was only inserted (or only removed on the other side).
    """

    before: str
    changed: str
    after: str

    def __str__(self) -> str:
        return f"{self.before}{self.changed}{self.after}"


def _split(a: str, b: str) -> tuple[int, int]:
    """Lengths of the common prefix and of the common suffix (not overlapping the prefix)."""
    limit = min(len(a), len(b))
    prefix = 0
    while prefix < limit and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and a[len(a) - 1 - suffix] == b[len(b) - 1 - suffix]:
        suffix += 1
    return prefix, suffix


def _to_word_bounds(a: str, b: str, prefix: int, suffix: int) -> tuple[int, int]:
    """Widen a change that starts or ends inside a word to the whole word ("delivered" →
    "returned", not "deliver" → "return"); a pure insertion at a word boundary stays as it is."""

    def inside(text: str, at: int) -> bool:
        return 0 < at < len(text) and text[at - 1].isalnum() and text[at].isalnum()

    while prefix > 0 and (inside(a, prefix) or inside(b, prefix)):
        prefix -= 1
    while suffix > 0 and (inside(a, len(a) - suffix) or inside(b, len(b) - suffix)):
        suffix -= 1
    return prefix, suffix


def _cut_end(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def _window(text: str, prefix: int, suffix: int, width: int, context: int) -> Excerpt:
    middle = text[prefix : len(text) - suffix]
    if len(text) <= width:
        return Excerpt(text[:prefix], middle, text[len(text) - suffix :])
    head_start = max(prefix - context, 0)
    word_start = max(head_start - _WORD_SLACK, 0)
    while head_start > word_start and text[head_start - 1].isalnum() and text[head_start].isalnum():
        head_start -= 1  # start the context at a word's start, not inside it
    before = text[head_start:prefix]
    if head_start > 0:
        before = ELLIPSIS + before
    changed = _cut_end(middle, max(width - len(before) - 1, 8))
    room = width - len(before) - len(changed)
    tail = text[len(text) - suffix :]
    after = tail if len(tail) <= room else _cut_end(tail, max(room, 1))
    return Excerpt(before, changed, after)


def change_excerpts(recorded: Any, replayed: Any, *, width: int = 90) -> tuple[Excerpt, Excerpt]:
    """Both values as windows of about ``width`` characters around their first difference.

    Values that fit are kept whole (still split, so a renderer can highlight the change). Both
    windows start the same distance before the change, so they line up when shown one above the
    other.
    """
    a, b = as_text(recorded), as_text(replayed)
    prefix, suffix = _split(a, b)
    context = max(width // 3, 8)
    return (
        _window(a, prefix, suffix, width, context),
        _window(b, prefix, suffix, width, context),
    )


def change_note(recorded: Any, replayed: Any, *, width: int = 60) -> str:
    """What changed, in a few words: ``inserted " LIMIT 3"``, ``removed "x"``, ``"a" → "b"``.

    Empty when the values are equal as text or one side is absent (``None``: an added or
    removed entry, which the op already says).
    """
    if recorded is None or replayed is None:
        return ""
    a, b = as_text(recorded), as_text(replayed)
    if a == b:
        return ""
    prefix, suffix = _to_word_bounds(a, b, *_split(a, b))
    old, new = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]

    def quoted(text: str) -> str:
        return json.dumps(_cut_end(text, width), ensure_ascii=False)

    if not old:
        return f"inserted {quoted(new)}"
    if not new:
        return f"removed {quoted(old)}"
    return f"{quoted(old)} → {quoted(new)}"

"""Alignment of step sequences: properties (hypothesis) and the cases replay relies on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from replay._align import align


def same(a: str, b: str) -> int:
    """Letters of one case pair; equal letters score higher."""
    if a.isupper() != b.isupper():
        return -1
    return 3 if a == b else 1


def test_identical_sequences_align_on_the_diagonal() -> None:
    assert align(list("aBcD"), list("aBcD"), same) == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_one_inserted_step_is_extra_not_a_cascade() -> None:
    pairs = align(list("abcd"), list("abXcd"), same)
    assert pairs == [(0, 0), (1, 1), (None, 2), (2, 3), (3, 4)]


def test_one_missing_step() -> None:
    assert align(list("abcd"), list("acd"), same) == [(0, 0), (1, None), (2, 1), (3, 2)]


def test_changed_step_pairs_rather_than_gaps() -> None:
    assert align(list("abc"), list("axc"), same) == [(0, 0), (1, 1), (2, 2)]


def test_incompatible_kinds_never_pair() -> None:
    pairs = align(["a"], ["B"], same)
    assert sorted(pairs, key=str) == sorted([(0, None), (None, 0)], key=str)


def test_empty_sides() -> None:
    assert align([], [], same) == []
    assert align(["a"], [], same) == [(0, None)]
    assert align([], ["a"], same) == [(None, 0)]


seqs = st.lists(st.sampled_from("abcAB"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(recorded=seqs, replayed=seqs)
def test_every_index_once_in_order(recorded: list[str], replayed: list[str]) -> None:
    pairs = align(recorded, replayed, same)
    left = [i for i, _ in pairs if i is not None]
    right = [j for _, j in pairs if j is not None]
    assert left == list(range(len(recorded)))
    assert right == list(range(len(replayed)))
    for i, j in pairs:
        assert i is not None or j is not None
        if i is not None and j is not None:
            assert same(recorded[i], replayed[j]) >= 0


@settings(max_examples=200, deadline=None)
@given(recorded=seqs)
def test_self_alignment_is_the_identity(recorded: list[str]) -> None:
    assert align(recorded, recorded, same) == [(i, i) for i in range(len(recorded))]


@settings(max_examples=200, deadline=None)
@given(recorded=seqs, position=st.integers(min_value=0, max_value=12), extra=st.sampled_from("xY"))
def test_single_insertion_leaves_exactly_one_gap(
    recorded: list[str], position: int, extra: str
) -> None:
    position = min(position, len(recorded))
    replayed = [*recorded[:position], extra, *recorded[position:]]
    pairs = align(recorded, replayed, same)
    gaps = [p for p in pairs if p[0] is None or p[1] is None]
    assert len(gaps) == 1 and gaps[0][0] is None
    assert replayed[gaps[0][1] or 0] == extra or extra in recorded


@settings(max_examples=100, deadline=None)
@given(recorded=seqs, replayed=seqs)
def test_deterministic(recorded: list[str], replayed: list[str]) -> None:
    assert align(recorded, replayed, same) == align(recorded, replayed, same)

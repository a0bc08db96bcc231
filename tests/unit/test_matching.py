"""Best-buddy matching against pure-Python brute force (paper Eq. 3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rosetta_core.matching import buddies as matching
from rosetta_core.matching.buddies import (
    best_buddies,
    best_buddies_from_topk,
    self_best_buddies,
    topk_indices,
    topk_lists,
)

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- brute-force oracles
def _ranked(values: dict[int, float]) -> list[int]:
    """Candidate indices by value descending, ties by lower index first."""
    return sorted(values, key=lambda i: (-values[i], i))


def brute_bb(table, k_a, k_b, exclude_diagonal=False):
    t = np.asarray(table, dtype=float).tolist()
    rows, cols = len(t), len(t[0]) if t else 0

    def skip(i, j):
        return exclude_diagonal and i == j

    live_r = {i for i in range(rows) if any(t[i][j] != 0 for j in range(cols) if not skip(i, j))}
    live_c = {j for j in range(cols) if any(t[i][j] != 0 for i in range(rows) if not skip(i, j))}
    pairs = []
    for i in range(rows):
        for j in range(cols):
            if i not in live_r or j not in live_c or skip(i, j):
                continue
            in_row = _ranked({c: t[i][c] for c in live_c if not skip(i, c)})[:k_a]
            in_col = _ranked({r: t[r][j] for r in live_r if not skip(r, j)})[:k_b]
            if j in in_row and i in in_col:
                pairs.append((i, j))
    return pairs


def _as_list(pairs):
    assert pairs.dtype == np.int64 and pairs.ndim == 2 and pairs.shape[1] == 2
    return [tuple(p) for p in pairs.tolist()]


def _tie_table(rng, shape, dead_rows=(), dead_cols=()):
    """Coarse values (many ties, some zeros) with chosen all-zero rows/cols."""
    t = rng.integers(-3, 4, size=shape) / 3.0
    t[list(dead_rows), :] = 0.0
    t[:, list(dead_cols)] = 0.0
    return t


SHAPES = [(1, 1), (1, 6), (6, 1), (5, 5), (7, 4), (4, 9), (12, 10)]
KS = [(1, 5), (5, 5), (3, 1), (1, 1), (2, 3)]


# ---------------------------------------------------------------- topk_indices
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (8, 2), (9, 9)])
@pytest.mark.parametrize("axis", [0, 1])
def test_topk_indices_matches_sort(shape, axis):
    rng = np.random.default_rng(sum(shape) + axis)
    t = _tie_table(rng, shape)
    t[0, 0] = -np.inf
    lines = t if axis == 1 else t.T
    for k in range(1, lines.shape[1] + 1):
        got = topk_indices(t, k, axis=axis)
        want = [_ranked(dict(enumerate(line.tolist())))[:k] for line in lines]
        assert got.shape == (lines.shape[0], k)
        assert got.tolist() == want


def test_topk_indices_blocks_and_ties(monkeypatch):
    monkeypatch.setattr(matching, "_BLOCK_ELEMS", 17)  # force many row blocks
    rng = np.random.default_rng(3)
    t = _tie_table(rng, (23, 11))
    t[4] = 0.0  # a fully tied row
    for axis in (0, 1):
        lines = t if axis == 1 else t.T
        want = [_ranked(dict(enumerate(line.tolist())))[:3] for line in lines]
        assert topk_indices(t, 3, axis=axis).tolist() == want


# ---------------------------------------------------------------- best buddies
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k_a,k_b", KS)
def test_best_buddies_matches_brute_force(shape, k_a, k_b):
    k_a, k_b = min(k_a, shape[1]), min(k_b, shape[0])
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    for t in (rng.standard_normal(shape), _tie_table(rng, shape)):
        assert _as_list(best_buddies(t, k_a, k_b)) == brute_bb(t, k_a, k_b)


def test_published_rule_is_subset_of_paper_rule():
    t = np.random.default_rng(0).standard_normal((30, 20))
    published = set(_as_list(best_buddies(t, 1, 5)))
    paper = set(_as_list(best_buddies(t, 5, 5)))
    assert published and published <= paper
    rows = [r for r, _ in published]
    assert len(rows) == len(set(rows))  # top-1: at most one buddy per row


@settings(max_examples=60, deadline=None)
@given(
    t=arrays(
        np.float64,
        st.tuples(st.integers(1, 7), st.integers(1, 7)),
        elements=st.sampled_from([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0]),
    ),
    k_a=st.integers(1, 7),
    k_b=st.integers(1, 7),
)
def test_best_buddies_hypothesis(t, k_a, k_b):
    k_a, k_b = min(k_a, t.shape[1]), min(k_b, t.shape[0])
    assert _as_list(best_buddies(t, k_a, k_b)) == brute_bb(t, k_a, k_b)
    if t.shape[0] == t.shape[1]:
        got = best_buddies(t, k_a, k_b, exclude_diagonal=True)
        assert _as_list(got) == brute_bb(t, k_a, k_b, exclude_diagonal=True)


def test_sweeping_k_from_stored_lists_equals_recomputing():
    rng = np.random.default_rng(7)
    for t in (rng.standard_normal((15, 11)), _tie_table(rng, (15, 11), [2], [5])):
        row_topk, col_topk = topk_lists(t, 5, 5)
        for k_a in range(1, 6):
            for k_b in range(1, 6):
                swept = best_buddies_from_topk(row_topk, col_topk, k_a, k_b)
                assert np.array_equal(swept, best_buddies(t, k_a, k_b))
    s = _tie_table(rng, (9, 9), [3], [3])
    row_topk, col_topk = topk_lists(s, 4, exclude_diagonal=True)
    for k in range(1, 5):
        swept = best_buddies_from_topk(row_topk, col_topk, k, k)
        assert np.array_equal(swept, best_buddies(s, k, k, exclude_diagonal=True))


def test_dead_units_never_appear_nor_take_slots():
    rng = np.random.default_rng(11)
    t = -rng.uniform(0.1, 1.0, size=(8, 6))  # all negative: a dead 0 would rank first
    t[[1, 5], :] = 0.0
    t[:, [0, 4]] = 0.0
    for k_a, k_b in KS:
        pairs = best_buddies(t, min(k_a, 6), k_b)
        assert not set(pairs[:, 0]) & {1, 5}
        assert not set(pairs[:, 1]) & {0, 4}
        assert _as_list(pairs) == brute_bb(t, min(k_a, 6), k_b)
    row_topk, col_topk = topk_lists(t, 6, 8)
    assert (row_topk[[1, 5]] == -1).all() and (col_topk[[0, 4]] == -1).all()
    assert (row_topk[0, 4:] == -1).all() and (row_topk[0, :4] >= 0).all()
    assert not np.isin(row_topk, [0, 4]).any() and not np.isin(col_topk, [1, 5]).any()
    assert best_buddies(np.zeros((3, 4)), 2, 2).shape == (0, 2)


@pytest.mark.parametrize("n", [1, 2, 6, 11])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_self_best_buddies(n, k):
    k = min(k, n)
    rng = np.random.default_rng(n * 10 + k)
    x = rng.standard_normal((n, 40))
    s = np.corrcoef(x) if n > 1 else np.ones((1, 1))
    if n > 3:
        s[2, :] = s[:, 2] = 0.0  # a dead unit
    got = self_best_buddies(s, k)
    assert not (got[:, 0] == got[:, 1]).any()
    assert not (got == 2).any() or n <= 3
    pairs = set(_as_list(got))
    assert pairs == {(j, i) for i, j in pairs}
    assert _as_list(got) == sorted(pairs)
    want = set(brute_bb(s, k, k, exclude_diagonal=True))
    assert pairs == want | {(j, i) for i, j in want}
    diag = best_buddies(s, k, k, exclude_diagonal=True)
    assert not (diag[:, 0] == diag[:, 1]).any()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call,needles",
    [
        (lambda: best_buddies(np.zeros(4)), ["table", "ndim=1"]),
        (lambda: best_buddies(np.ones((2, 3, 4))), ["table", "ndim=3"]),
        (lambda: best_buddies(np.ones((4, 5)), k_a=7, k_b=1), ["k_a=7", "5 columns", "1..5"]),
        (lambda: best_buddies(np.ones((4, 5)), k_a=1, k_b=6), ["k_b=6", "4 rows", "1..4"]),
        (lambda: best_buddies(np.ones((4, 5)), k_a=0, k_b=1), ["k_a=0", "1..5"]),
        (lambda: best_buddies(np.ones((4, 5)), k_a=1, k_b=-2), ["k_b=-2", "1..4"]),
        (lambda: best_buddies(np.array([[0.1, np.nan]]), 1, 1), ["non-finite", "nan", "(0, 1)"]),
        (lambda: best_buddies(np.array([[np.inf, 0.1]]), 1, 1), ["non-finite", "inf"]),
        (lambda: best_buddies(np.ones((3, 4)), 1, 1, exclude_diagonal=True),
         ["exclude_diagonal", "(3, 4)", "square"]),
        (lambda: self_best_buddies(np.ones((3, 4))), ["exclude_diagonal", "(3, 4)"]),
        (lambda: self_best_buddies(np.ones((3, 3)), k=4), ["k=4", "1..3"]),
        (lambda: topk_indices(np.ones((3, 4)), 5, axis=1), ["k=5", "1..4"]),
        (lambda: topk_indices(np.ones((3, 4)), 4, axis=0), ["k=4", "1..3"]),
        (lambda: topk_indices(np.ones((3, 4)), 1, axis=2), ["axis=2"]),
        (lambda: topk_lists(np.ones((3, 4)), 0), ["k_a=0"]),
        (lambda: best_buddies_from_topk(np.zeros((3, 2), int), np.zeros((4, 5), int), 3, 1),
         ["k_a=3", "1..2"]),
        (lambda: best_buddies_from_topk(np.zeros((3, 2), int), np.zeros((4, 5), int), 1, 6),
         ["k_b=6", "1..5"]),
        (lambda: best_buddies_from_topk(np.full((3, 2), 9), np.zeros((4, 5), int), 1, 1),
         ["row_topk", "9", "-1..3"]),
    ],
)
def test_bad_input_raises_value_error(call, needles):
    with pytest.raises(ValueError) as err:
        call()
    for needle in needles:
        assert needle in str(err.value)


def test_bad_k_type_raises_type_error():
    with pytest.raises(TypeError, match="k_a=2.5"):
        best_buddies(np.ones((3, 3)), 2.5, 1)

"""Property tests: any split of the images and any merge tree give the same co-moments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import activations

from rosetta_core import CoMoments

pytestmark = pytest.mark.unit


def _state(acc: CoMoments) -> dict[str, np.ndarray]:
    return {k: v for k, v in acc.state_dict().items() if v.dtype.kind == "f"}


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 14),
    cuts=st.lists(st.integers(1, 13), max_size=5),
    order_seed=st.integers(0, 2**16),
    center=st.sampled_from(["global", "position"]),
    symmetric=st.booleans(),
)
def test_any_split_and_merge_tree_gives_the_same_moments(n, cuts, order_seed, center, symmetric):
    rng = np.random.default_rng(n)
    a = [activations(rng, n, 3, 4, 4), activations(rng, n, 2, 9, 7)]
    b = None if symmetric else [activations(rng, n, 2, 6, 6)]
    whole = CoMoments.from_chunk(a, b, center)
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    parts = [
        CoMoments.from_chunk([x[s:e] for x in a], None if b is None else [x[s:e] for x in b], center)
        for s, e in zip(bounds[:-1], bounds[1:])
    ]
    order = np.random.default_rng(order_seed)
    while len(parts) > 1:  # merge two random parts, in a random argument order
        i, j = sorted(order.choice(len(parts), size=2, replace=False))
        left, right = (parts[i], parts[j]) if order.random() < 0.5 else (parts[j], parts[i])
        parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [left.merge(right)]
    merged = parts[0]
    assert merged.n_ == n
    for key, value in _state(whole).items():
        np.testing.assert_allclose(_state(merged)[key], value, rtol=1e-6, atol=1e-6 * (1 + np.abs(value).max()))
    np.testing.assert_allclose(merged.pearson(), whole.pearson(), atol=1e-5)


def test_merging_an_empty_accumulator_is_the_identity():
    rng = np.random.default_rng(0)
    acc = CoMoments.from_chunk([activations(rng, 4, 2, 3, 3)], [activations(rng, 4, 2, 5, 5)])
    empty = CoMoments([(2, 3, 3)], [(2, 5, 5)])
    np.testing.assert_array_equal(empty.merge(acc).pearson(), acc.pearson())
    np.testing.assert_array_equal(acc.merge(empty).pearson(), acc.pearson())


def test_merging_different_layouts_is_refused():
    rng = np.random.default_rng(0)
    acc = CoMoments.from_chunk([activations(rng, 4, 2, 3, 3)], [activations(rng, 4, 2, 5, 5)])
    other = CoMoments.from_chunk([activations(rng, 4, 2, 3, 3)], [activations(rng, 4, 2, 5, 5)], "position")
    with pytest.raises(ValueError, match="different layouts"):
        acc.merge(other)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 12),
    cuts=st.lists(st.integers(1, 11), max_size=4),
    center=st.sampled_from(["global", "position"]),
    symmetric=st.booleans(),
    device=st.sampled_from([None, "cpu"]),
)
def test_updating_in_place_equals_merging_chunks(n, cuts, center, symmetric, device):
    """``update`` (the running fold, with a reused workspace; or the torch engine on the CPU)
    gives the moments of ``merge`` (of the numpy engine's chunks)."""
    from rosetta_core.engine import Workspace

    rng = np.random.default_rng(100 + n)
    a = [activations(rng, n, 3, 4, 4), activations(rng, n, 2, 9, 7)]
    b = None if symmetric else [activations(rng, n, 2, 6, 6), activations(rng, n, 3, 2, 5)]
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    chunks = [([x[s:e] for x in a], None if b is None else [x[s:e] for x in b]) for s, e in zip(bounds[:-1], bounds[1:])]
    merged = CoMoments.from_chunk(*chunks[0], center)
    for part in chunks[1:]:
        merged = merged.merge(CoMoments.from_chunk(*part, center))
    folded = CoMoments([x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b], center)
    workspace = Workspace()
    for part in chunks:
        assert folded.update(*part, workspace=workspace, device=device) is folded
    assert folded.n_ == merged.n_ == n
    for key, value in _state(merged).items():
        np.testing.assert_allclose(_state(folded)[key], value, rtol=1e-6, atol=1e-6 * (1 + np.abs(value).max()))


@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_non_finite_chunk_is_refused_and_leaves_the_accumulator_unchanged(device):
    from rosetta_core import NonFiniteChunk

    rng = np.random.default_rng(1)
    acc = CoMoments.from_chunk([activations(rng, 4, 2, 3, 3)], [activations(rng, 4, 2, 5, 5)])
    before = _state(acc)
    bad = activations(rng, 3, 2, 5, 5)
    bad[2, 1, 4, 0] = np.inf
    with pytest.raises(NonFiniteChunk) as err:
        acc.update([activations(rng, 3, 2, 3, 3)], [bad], device=device)
    assert (err.value.side, err.value.layer, err.value.images) == ("b", 0, [2])
    for key, value in before.items():
        np.testing.assert_array_equal(_state(acc)[key], value)
    with pytest.raises(ValueError, match="does not fit"):
        acc.update([activations(rng, 3, 2, 4, 4)], [activations(rng, 3, 2, 5, 5)], device=device)


def test_tree_reduce_merges_neighbours_level_by_level():
    from rosetta_core.engine import tree_reduce

    assert tree_reduce(list("abcde"), lambda x, y: f"({x}{y})") == "(((ab)(cd))e)"
    assert tree_reduce(["a"], lambda x, y: x + y) == "a"
    with pytest.raises(ValueError, match="no parts"):
        tree_reduce([], lambda x, y: x + y)


@pytest.mark.parametrize("center", ["global", "position"])
def test_merge_delayed_and_fold_chunks_repeat_the_plain_reductions_bit_for_bit(center):
    """The shared reductions are the fold and the tree that callers wrote out before."""
    import dask

    from rosetta_core.engine import Workspace, fold_chunks, merge_delayed, tree_reduce

    rng = np.random.default_rng(3)
    a = [rng.standard_normal((9, 3, 5, 7)).astype(np.float32), rng.standard_normal((9, 2, 3, 3)).astype(np.float32)]
    b = [rng.standard_normal((9, 4, 6, 4)).astype(np.float32)]
    bounds = [0, 2, 5, 6, 9]
    chunks = [([x[s:e] for x in a], [x[s:e] for x in b]) for s, e in zip(bounds[:-1], bounds[1:])]
    by_hand = CoMoments([x.shape[1:] for x in a], [x.shape[1:] for x in b], center)
    workspace = Workspace()
    for part in chunks:
        by_hand.update(*part, workspace)
    folded = fold_chunks(iter(chunks), center)
    task = dask.delayed(CoMoments.from_chunk, pure=True)
    with dask.config.set(scheduler="synchronous"):
        delayed = merge_delayed([task(*part, center) for part in chunks])
    tree = tree_reduce([CoMoments.from_chunk(*part, center) for part in chunks], CoMoments.merge)
    for got, want in ((folded, by_hand), (delayed, tree)):
        state, expected = got.state_dict(), want.state_dict()
        assert state.keys() == expected.keys()
        assert all(np.array_equal(state[k], expected[k]) for k in state)


def test_fold_chunks_names_non_finite_chunks_the_callers_way():
    from rosetta_core import NonFiniteChunk
    from rosetta_core.engine import fold_chunks

    x = np.ones((4, 2, 3, 3), dtype=np.float32)
    y = x.copy()
    y[3, 1, 0, 0] = np.inf
    chunks = [([x[:2]], [y[:2]]), ([x[2:]], [y[2:]])]
    with pytest.raises(ValueError, match=r"^side b layer 0 chunk 1 images \[1\]$"):
        fold_chunks(chunks, where=lambda err, i: f"side {err.side} layer {err.layer} chunk {i} images {err.images}")
    with pytest.raises(NonFiniteChunk):
        fold_chunks(chunks)
    with pytest.raises(ValueError, match="no chunks"):
        fold_chunks([])

"""The exact streaming Pearson engine against float64 brute force (DESIGN §3.1-3.2)."""

from __future__ import annotations

import pickle
import re

import dask.array as da
import numpy as np
import pytest
import torch
from oracles import activations, brute_force_table

from rosetta_core import CoMoments, comoments, pearson_table, self_table

pytestmark = pytest.mark.unit

#: the numpy engine (None) and the torch engine on the CPU run every oracle test below
DEVICES = [None, "cpu"]

# (grid of a, grid of b): equal, 2x, 4x, 8x, non-integer ratios, rectangular, mixed axes
GRID_PAIRS = [
    ((8, 8), (8, 8)),
    ((8, 8), (16, 16)),
    ((4, 4), (16, 16)),
    ((32, 32), (4, 4)),
    ((7, 7), (16, 16)),
    ((14, 14), (56, 56)),
    ((3, 3), (64, 64)),
    ((5, 9), (12, 6)),
    ((2, 17), (7, 3)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center", ["global", "position"])
@pytest.mark.parametrize("grid_a,grid_b", GRID_PAIRS)
def test_matches_brute_force(grid_a, grid_b, center, device):
    rng = np.random.default_rng(hash((grid_a, grid_b)) % 2**32)
    a = [activations(rng, 6, 5, *grid_a)]
    b = [activations(rng, 6, 4, *grid_b)]
    got = pearson_table(a, b, center=center, device=device)
    assert got.dtype == np.float32 and got.shape == (5, 4)
    np.testing.assert_allclose(got, brute_force_table(a, b, center), atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center", ["global", "position"])
def test_several_layers_ordered_layer_by_layer(center, device):
    rng = np.random.default_rng(1)
    a = [activations(rng, 7, 3, 4, 4), activations(rng, 7, 2, 16, 16), activations(rng, 7, 4, 7, 5)]
    b = {"s1": activations(rng, 7, 5, 14, 14), "s2": activations(rng, 7, 2, 3, 3)}
    got = pearson_table(a, b, center=center, device=device)
    np.testing.assert_allclose(got, brute_force_table(a, list(b.values()), center), atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center", ["global", "position"])
def test_self_table_is_symmetric_with_unit_diagonal(center, device):
    rng = np.random.default_rng(2)
    a = [activations(rng, 6, 3, 8, 8), activations(rng, 6, 4, 3, 5)]
    got = self_table(a, center=center, chunk_size=4, device=device)
    np.testing.assert_allclose(got, brute_force_table(a, a, center), atol=1e-4)
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_array_equal(np.diag(got), np.ones(7, dtype=np.float32))
    np.testing.assert_allclose(got, pearson_table(a, a, center=center, device=device), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center", ["global", "position"])
def test_chunking_dask_torch_and_merge_order_agree(center, device):
    rng = np.random.default_rng(3)
    a = [activations(rng, 13, 4, 6, 6), activations(rng, 13, 3, 12, 12)]
    b = [activations(rng, 13, 5, 9, 9)]
    whole = pearson_table(a, b, center=center, chunk_size=13, device=device)
    chunked = pearson_table(a, b, center=center, chunk_size=3, device=device)
    dasked = pearson_table([da.from_array(x, chunks=(4, 2, -1, -1)) for x in a], b, center=center, device=device)
    torched = pearson_table([torch.from_numpy(x) for x in a], [torch.from_numpy(x) for x in b], center=center,
                            device=device)
    parts = [CoMoments.from_chunk([x[s : s + 2] for x in a], [x[s : s + 2] for x in b], center, device=device)
             for s in range(0, 13, 2)]
    forward, backward = parts[0], parts[-1]
    for p in parts[1:]:
        forward = forward.merge(p)
    for p in parts[-2::-1]:
        backward = p.merge(backward)
    for other in (chunked, dasked, torched, forward.pearson(), backward.pearson()):
        np.testing.assert_allclose(other, whole, atol=1e-5)
    np.testing.assert_allclose(whole, brute_force_table(a, b, center), atol=1e-4)


def test_state_dict_round_trip_and_unit_stats():
    rng = np.random.default_rng(4)
    a = [activations(rng, 5, 3, 4, 4)]
    b = [activations(rng, 5, 2, 8, 8)]
    acc = comoments(a, b)
    back = CoMoments.from_state_dict({k: np.array(v) for k, v in acc.state_dict().items()})
    np.testing.assert_array_equal(back.pearson(), acc.pearson())
    stats = acc.unit_stats(0, 0)
    from oracles import resized

    ra = resized(a[0], (8, 8))
    np.testing.assert_allclose(stats["mean_a"], ra.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats["var_a"], ra.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center", ["global", "position"])
def test_constant_units_give_zero_not_nan_and_are_counted(center, device):
    rng = np.random.default_rng(5)
    a0 = activations(rng, 8, 4, 6, 6)
    a0[:, 1] = 0.0
    a0[:, 2] = 2.5
    b0 = activations(rng, 8, 3, 12, 12)
    b0[:, 0] = 7.0
    acc = comoments([a0], [b0], center=center, chunk_size=3, device=device)
    table = acc.pearson()
    assert not np.isnan(table).any()
    assert np.all(table[[1, 2], :] == 0) and np.all(table[:, 0] == 0)
    dead_a, dead_b = acc.constant_units()
    assert dead_a.tolist() == [False, True, True, False] and dead_b.tolist() == [True, False, False]
    s = self_table([a0], center=center, device=device)
    assert not np.isnan(s).any() and s[1, 1] == 0 and s[0, 0] == 1


def test_position_centring_removes_shared_layout_prior():
    """Units sharing only a fixed spatial profile correlate globally but not per position."""
    rng = np.random.default_rng(6)
    yy, xx = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 8), indexing="ij")
    prior = np.exp(-(xx**2 + yy**2) * 3)
    a = (prior + 0.3 * rng.random((400, 1, 8, 8))).astype(np.float32)
    b = (prior + 0.3 * rng.random((400, 1, 8, 8))).astype(np.float32)
    assert pearson_table([a], [b], center="global")[0, 0] > 0.8
    assert abs(pearson_table([a], [b], center="position")[0, 0]) < 0.1


@pytest.mark.parametrize(
    "a,b,kwargs,match",
    [
        ([np.zeros((4, 2, 3, 3))], [np.zeros((5, 2, 3, 3))], {}, r"b\[0\] has n=5 .* n=4"),
        ([np.zeros((4, 2, 3))], [np.zeros((4, 2, 3, 3))], {}, r"a\[0\] must be a 4-d .* ndim=3"),
        ([np.zeros((1, 2, 3, 3))], [np.zeros((1, 2, 3, 3))], {}, r"n=1 .* n >= 2"),
        ([], [np.zeros((4, 2, 3, 3))], {}, r"a is an empty layer list"),
        ({"conv": np.zeros((4, 2, 3, 3))}, {}, {}, r"b is an empty layer list"),
        ([np.zeros((4, 2, 3, 3))], [np.zeros((4, 2, 3, 3))], {"center": "pixel"}, r"center='pixel' .* global, position"),
        ([np.zeros((4, 2, 3, 3))], [np.zeros((4, 2, 3, 3))], {"chunk_size": 0}, r"chunk_size=0"),
    ],
)
def test_bad_input_names_the_argument(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pearson_table(a, b, **kwargs)


def test_centrings_are_looked_up_once_by_name():
    """The names stay the API (``center=``, the stored ``"center"``); the engine holds objects."""
    from rosetta_core.engine import CENTERS, GlobalCentring, PositionCentring, get_centring

    assert CENTERS == ("global", "position")
    assert isinstance(get_centring("global"), GlobalCentring)
    assert isinstance(get_centring("position"), PositionCentring)
    for bad in ("pixel", None, ["global"]):
        with pytest.raises(ValueError, match=re.escape(f"center={bad!r} is not supported; valid: global, position")):
            get_centring(bad)
    with pytest.raises(ValueError, match=r"center='pixel' is not supported"):
        CoMoments([(2, 3, 3)], center="pixel")
    acc = CoMoments([(2, 3, 3)], center="position")
    assert acc.center == "position" and acc.centring is get_centring("position")
    assert str(acc.state_dict()["center"]) == "position"
    assert CoMoments.from_state_dict(acc.state_dict()).centring is get_centring("position")
    assert pickle.loads(pickle.dumps(acc)).centring is get_centring("position")  # as dask ships it


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_values_name_layer_and_images(device):
    x = np.ones((6, 2, 3, 3), dtype=np.float32)
    y = np.random.default_rng(0).random((6, 2, 4, 4)).astype(np.float32)
    y[4, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"b\['layer2'\] has non-finite .* \[4\]"):
        pearson_table([x], {"layer1": y[:, :1], "layer2": y}, chunk_size=2, device=device)


@pytest.mark.parametrize(
    "grid,larges",
    [((7, 7), [(7, 7), (8, 8), (16, 16), (256, 256)]), ((5, 9), [(12, 9), (5, 14), (13, 31)]),
     ((1, 6), [(1, 6), (4, 6), (3, 11)]), ((6, 1), [(9, 1), (6, 5)]), ((1, 1), [(3, 4)]),
     ((130, 130), [(130, 130)])],
)
def test_squared_sums_of_resized_maps_match_torch(grid, larges):
    """Sums of squares on larger grids (from neighbour products, tridiagonal Gram matrices)
    against float64 maps resized by torch, including 1-pixel axes and one axis unchanged."""
    from rosetta_core.engine.grid_sums import layer_sums
    from rosetta_core.engine.resize import gram, gram_bands

    rng = np.random.default_rng(7)
    x = activations(rng, 5, 3, *grid)
    center = x.mean(axis=0)
    _, sumsq = layer_sums(x, [], larges, center)
    for large in larges:
        resized = torch.nn.functional.interpolate(
            torch.from_numpy((x - center).astype(np.float64)), size=large, mode="bilinear", align_corners=False)
        np.testing.assert_allclose(sumsq[large], (resized**2).sum(dim=(0, 2, 3)).numpy(), rtol=1e-5)
    for n_in, n_out in [(7, 16), (5, 13), (1, 3), (9, 9), (16, 7)]:
        diag, off = gram_bands(n_in, n_out)
        np.testing.assert_array_equal(np.diag(diag) + np.diag(off, 1) + np.diag(off, -1), gram(n_in, n_out))


@pytest.mark.parametrize("device", DEVICES)
def test_dask_chunks_empty_or_not_agree_and_name_the_right_image(device):
    """A zero-length dask chunk adds nothing; a NaN is reported by its index in the whole input."""
    rng = np.random.default_rng(11)
    x, y = activations(rng, 6, 2, 3, 3), activations(rng, 6, 2, 5, 5)
    got = pearson_table([da.from_array(x, chunks=((0, 3, 3), 2, 3, 3))], [da.from_array(y, chunks=((0, 3, 3), 2, 5, 5))],
                        device=device)
    np.testing.assert_allclose(got, pearson_table([x], [y]), atol=1e-5)
    y[4, 1, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"has non-finite .* in images \[4\]"):
        pearson_table([da.from_array(x, chunks=(3, 2, 3, 3))], [da.from_array(y, chunks=(3, 2, 5, 5))], device=device)

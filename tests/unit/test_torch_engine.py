"""The torch engine (``device="cpu"``/``"cuda"``) against the numpy engine (``device=None``).

The oracle tests of ``test_correlation.py`` and ``test_merge_properties.py`` run both engines
against float64 brute force; these compare the two engines' co-moments directly (what is equal
in exact arithmetic, at float32-rounding tolerance), hand an accumulator from one engine to the
other mid-fold, and check devices, inputs and the float32 matmul precision. The CUDA tests run
where a GPU is present.
"""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import torch
from oracles import activations, brute_force_table

from rosetta_core import CoMoments, comoments, pearson_table, self_table
from rosetta_core.engine import fold_chunks

pytestmark = pytest.mark.unit

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def _layers(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = [activations(rng, n, 3, 4, 4), activations(rng, n, 2, 9, 7), activations(rng, n, 2, 1, 6)]
    b = [activations(rng, n, 2, 6, 6), activations(rng, n, 3, 2, 5), activations(rng, n, 2, 13, 3)]
    return a, b


def _assert_same_moments(got: CoMoments, want: CoMoments, rtol: float = 1e-6) -> None:
    got_state, want_state = got.state_dict(), want.state_dict()
    assert got_state.keys() == want_state.keys() and got.n_ == want.n_
    for key, value in want_state.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got_state[key], value, rtol=rtol, atol=rtol * (1 + np.abs(value).max()),
                                       err_msg=key)
        else:
            np.testing.assert_array_equal(got_state[key], value, err_msg=key)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("center", ["global", "position"])
def test_torch_engine_gives_the_numpy_engines_moments(center, symmetric, device):
    """A fold (state on the device), single updates (state there and back) and per-chunk
    accumulators merged on the host: all equal the numpy engine's fold."""
    a, b = _layers(11)
    b = None if symmetric else b
    bounds = [0, 3, 4, 9, 11]
    chunks = [([x[s:e] for x in a], None if b is None else [x[s:e] for x in b]) for s, e in zip(bounds, bounds[1:])]
    want = fold_chunks(chunks, center)
    _assert_same_moments(fold_chunks(chunks, center, device=device), want)
    updated = CoMoments([x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b], center)
    for part in chunks:
        assert updated.update(*part, device=device) is updated
    _assert_same_moments(updated, want)
    merged = CoMoments.from_chunk(*chunks[0], center, device=device)
    for part in chunks[1:]:
        merged = merged.merge(CoMoments.from_chunk(*part, center, device=device))
    _assert_same_moments(merged, want)
    np.testing.assert_allclose(updated.pearson(), want.pearson(), atol=1e-6)


@pytest.mark.parametrize("center", ["global", "position"])
def test_an_accumulator_moves_between_engines_mid_fold(center):
    """numpy, torch, numpy, torch: the running means (and global centring's running grid
    means) are handed over; a restored checkpoint continues on the device."""
    a, b = _layers(12, seed=1)
    bounds = [0, 2, 5, 9, 12]
    chunks = [([x[s:e] for x in a], [x[s:e] for x in b]) for s, e in zip(bounds, bounds[1:])]
    want = fold_chunks(chunks, center)
    mixed = CoMoments([x.shape[1:] for x in a], [x.shape[1:] for x in b], center)
    for i, part in enumerate(chunks):
        mixed.update(*part, device="cpu" if i % 2 else None)
        if i == 1:
            mixed = CoMoments.from_state_dict(mixed.state_dict())  # no running grid means known
    _assert_same_moments(mixed, want)


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_float16_and_dask_inputs(device):
    """Tensors (on the CPU or already on the device), float16 maps (converted on the device)
    and dask arrays (one task per chunk, each folded on the device) give the numpy engine's
    table of the same values."""
    a, b = _layers(10, seed=2)
    half_a, half_b = [x.astype(np.float16) for x in a], [x.astype(np.float16) for x in b]
    want = pearson_table(half_a, half_b, center="position")
    tensors = pearson_table([torch.from_numpy(x).to(device) for x in half_a],
                            [torch.from_numpy(x).to(device) for x in half_b], center="position", device=device)
    dasked = pearson_table([da.from_array(x, chunks=(4, -1, -1, -1)) for x in half_a], half_b, center="position",
                           device=device)
    for got in (tensors, dasked):
        np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(want, brute_force_table(half_a, half_b, "position"), atol=1e-4)


def test_inputs_are_not_written_and_cpu_state_is_shared():
    """The engine reads its inputs only; on the CPU the device state is the accumulator's own
    memory (no copy to write back)."""
    from rosetta_core.engine.torch_fold import DeviceMoments

    a, b = _layers(6, seed=3)
    before = [x.copy() for x in a + b]
    acc = CoMoments([x.shape[1:] for x in a], [x.shape[1:] for x in b])
    state = DeviceMoments(acc, "cpu")
    state.update(a, b)
    assert all(np.array_equal(x, y) for x, y in zip(a + b, before))
    assert acc.n_ == 0 and np.abs(acc.cross_[0, 0]).sum() > 0  # tables already hold the chunk
    assert state.write_back() is acc and acc.n_ == 6


@pytest.mark.parametrize(
    "device,match",
    [("mps", r"device='mps': the engine runs on cpu or cuda only"),
     ("gpu0", r"device='gpu0' is not a torch device; valid: None \(the numpy engine\), 'cpu', 'cuda'"),
     (3.5, r"device=3.5 is not a torch device")],
)
def test_bad_devices_are_named(device, match):
    rng = np.random.default_rng(0)
    x = [activations(rng, 4, 2, 3, 3)]
    with pytest.raises(ValueError, match=match):
        pearson_table(x, x, device=device)
    with pytest.raises(ValueError, match=match):
        CoMoments([(2, 3, 3)]).update(x, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    x = [np.ones((4, 2, 3, 3), dtype=np.float32)]
    with pytest.raises(ValueError, match=r"device='cuda': torch finds no CUDA device here"):
        self_table(x, device="cuda")


def test_float32_matmuls_run_in_ieee_precision_and_the_callers_setting_returns():
    """TF32 (CUDA) and bf16 (oneDNN) are off while the engine runs, for every thread's call,
    and the caller's setting comes back after the last one."""
    from rosetta_core.engine.devices import ieee_fp32

    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        inside, release = threading.Event(), threading.Event()
        seen = []

        def other_call():
            with ieee_fp32():
                inside.set()
                release.wait(10)
                seen.append(matmul.fp32_precision)

        thread = threading.Thread(target=other_call)
        thread.start()
        inside.wait(10)
        with ieee_fp32():
            seen.append(matmul.fp32_precision)
            seen.append(torch.backends.mkldnn.matmul.fp32_precision)
        seen.append(matmul.fp32_precision)  # the other thread's call is still running
        release.set()
        thread.join(10)
        assert seen == ["ieee", "ieee", "ieee", "ieee"]
        assert matmul.fp32_precision == "tf32"
        # the engine's own run under a caller's TF32 setting
        rng = np.random.default_rng(4)
        x = [activations(rng, 5, 2, 4, 4)]
        self_table(x, device="cpu")
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = before


@CUDA
@pytest.mark.parametrize("center", ["global", "position"])
def test_cuda_matches_the_oracle_even_when_the_caller_allows_tf32(center):
    a, b = _layers(9, seed=5)
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        got = pearson_table(a, b, center=center, device="cuda", chunk_size=4)
    finally:
        matmul.fp32_precision = before
    np.testing.assert_allclose(got, brute_force_table(a, b, center), atol=1e-4)
    np.testing.assert_allclose(got, pearson_table(a, b, center=center), atol=1e-6)
    _assert_same_moments(comoments(a, None, center=center, device="cuda"), comoments(a, None, center=center))


@pytest.mark.parametrize(
    "grid,larges",
    [((7, 7), [(7, 7), (8, 8), (16, 16), (256, 256)]), ((5, 9), [(12, 9), (5, 14), (13, 31)]),
     ((1, 6), [(1, 6), (4, 6), (3, 11)]), ((6, 1), [(9, 1), (6, 5)]), ((1, 1), [(3, 4)]), ((4, 4), [(4, 4)])],
)
def test_squared_sums_and_projections_match_the_numpy_engine(grid, larges):
    """The torch engine's squared sums (1-pixel axes, one axis unchanged, own grid only) and
    projections onto smaller grids equal the numpy engine's on the same centred maps."""
    from rosetta_core.engine.grid_sums import layer_sums
    from rosetta_core.engine.torch_sums import projections, squared_sums

    rng = np.random.default_rng(8)
    x = activations(rng, 70, 3, *grid)  # more than one block of 64 images
    center = x.mean(axis=0)
    smalls = sorted({(max(1, grid[0] // 2), grid[1]), (grid[0], max(1, grid[1] - 1)), grid})
    want_proj, want_sq = layer_sums(x, smalls, larges, center)
    d = torch.from_numpy(x - center)
    got_proj, got_sq = projections(d, smalls), squared_sums(d, larges)
    for large in larges:
        np.testing.assert_allclose(got_sq[large].numpy(), want_sq[large], rtol=1e-6)
    for small in smalls:
        np.testing.assert_allclose(got_proj[small].numpy(), want_proj[small], rtol=1e-5, atol=1e-5)

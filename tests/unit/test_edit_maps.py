"""The edits' map transforms (paper section 4.2): shift, 2x zoom, copy-paste, remove / add a
unit, and the padding of shifted maps, each against loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rosetta_core.inversion.edits import copy_paste_maps, edit_targets, shift_maps, zoom_maps
from rosetta_core.inversion.losses import normalised_targets
from rosetta_core.inversion.matches import Matches, PairGroup
from rosetta_core.engine.resize import bilinear_matrix

pytestmark = pytest.mark.unit

def _shift_loop(m: np.ndarray, sx: int, sy: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape[-2:]
    for y in range(h):
        for x in range(w):
            if 0 <= y - sy < h and 0 <= x - sx < w:
                out[..., y, x] = m[..., y - sy, x - sx]
    return out


@pytest.mark.parametrize("dx,dy", [(0.25, 0.0), (-0.25, 0.5), (0.0, -0.125), (1.0, 0.0)])
def test_shift_is_zero_padded_and_relative_to_size(dx, dy):
    for side in (4, 8):
        m = torch.rand(2, 3, side, side, dtype=torch.float64)
        got = shift_maps(m, dx, dy).numpy()
        np.testing.assert_array_equal(got, _shift_loop(m.numpy(), int(round(dx * side)), int(round(dy * side))))
    m4 = torch.zeros(1, 1, 4, 4)
    m4[0, 0, 1, 1] = 1
    assert shift_maps(m4, 0.25, 0)[0, 0, 1, 2] == 1  # 4x4 moves by 1, as in the paper


def test_zoom_and_copy_paste():
    m = torch.rand(1, 2, 8, 8, dtype=torch.float64)
    z = zoom_maps(m).numpy()
    big = np.einsum("ij,ncjk,lk->ncil", bilinear_matrix(8, 16), m.numpy(), bilinear_matrix(8, 16))
    np.testing.assert_allclose(z, big[..., 4:12, 4:12], atol=1e-12)
    cp = copy_paste_maps(m, 0.25).numpy()
    np.testing.assert_array_equal(cp[..., :4], _shift_loop(m.numpy(), -2, 0)[..., :4])
    np.testing.assert_array_equal(cp[..., 4:], _shift_loop(m.numpy(), 2, 0)[..., 4:])


def test_remove_and_add_change_only_chosen_units():
    rng = np.random.default_rng(1)
    group = PairGroup("g4", "gen", "g4", (4, 4), np.array([0, 2, 5]), np.array([0, 2, 5]), np.array([10, 12, 15]),
                      np.zeros(3), np.ones(3), np.zeros(3), np.ones(3))
    matches = Matches("gen", (group,))
    src = {"g4": torch.from_numpy(rng.uniform(size=(1, 6, 4, 4)))}
    out = edit_targets(matches, src, "remove", {12})["gen"]["g4"]
    assert torch.all(out[0, 2] == src["g4"][0, 2].min())
    assert torch.equal(out[0, [0, 1, 3, 4, 5]], src["g4"][0, [0, 1, 3, 4, 5]].float())
    added = edit_targets(matches, src, "add", {15})["gen"]["g4"]
    assert torch.all(added[0, 5, 1:3, 1:3] >= 2.0)  # raised to >= mean + 2 std inside the centre box
    assert torch.equal(added[0, 5, 0], src["g4"][0, 5, 0].float())
    with pytest.raises(ValueError, match="edit 'blur' is not supported; valid: shift, zoom"):
        edit_targets(matches, src, "blur")
    with pytest.raises(ValueError, match="needs the units"):
        edit_targets(matches, src, "remove", None)


def _padded_shift_loop(maps: np.ndarray, sx: int, fills: dict[int, np.ndarray]) -> np.ndarray:
    """Shift right by ``sx`` cells in loops; an uncovered cell of channel ``c`` takes
    ``fills[c][y, x]`` (channels not in ``fills``: 0, the paper's zero padding)."""
    out = np.zeros_like(maps)
    n, u, h, w = maps.shape
    for i in range(n):
        for c in range(u):
            for y in range(h):
                for x in range(w):
                    if 0 <= x - sx < w:
                        out[i, c, y, x] = maps[i, c, y, x - sx]
                    elif c in fills:
                        out[i, c, y, x] = fills[c][y, x]
    return out


@pytest.mark.parametrize("position", [False, True])
def test_mean_padding_fills_uncovered_cells_with_the_dataset_mean(position):
    """``pad="mean"``: each matched unit's uncovered cells hold its dataset mean (per position:
    the mean map, resized when the pair grid differs), so its normalised target is 0 there;
    unmatched units keep zeros; two groups on one layer both get theirs; ``pad="zero"`` is
    plain zero padding."""
    rng = np.random.default_rng(7)

    def group(channels, grid):
        shape = (len(channels), *grid) if position else (len(channels),)
        ch, mean, std = np.array(channels), rng.normal(size=shape), rng.uniform(0.5, 2, len(channels))
        return PairGroup("g8", "gen", "g8", grid, ch, ch, ch + 100, mean, std, mean, std)  # a self pair, as edits use

    same, other = group([0, 3], (8, 8)), group([1], (16, 16) if position else (8, 8))
    matches = Matches("gen", (same, other))
    src = {"g8": torch.from_numpy(rng.normal(size=(2, 5, 8, 8)))}
    fills = {}
    for g in (same, other):
        for p, c in enumerate(g.gen_channels):
            mean = np.broadcast_to(g.gen_mean[p], g.grid) if not position else g.gen_mean[p]
            if mean.shape != (8, 8):
                mean = bilinear_matrix(mean.shape[0], 8) @ mean @ bilinear_matrix(mean.shape[1], 8).T
            fills[int(c)] = mean
    for dx, sx in ((0.25, 2), (-0.5, -4)):
        got = edit_targets(matches, src, "shift", None, dx, 0.0, "mean")["gen"]["g8"].double().numpy()
        np.testing.assert_allclose(got, _padded_shift_loop(src["g8"].numpy(), sx, fills), atol=1e-5)
        zero = edit_targets(matches, src, "shift", None, dx, 0.0, "zero")["gen"]["g8"].double().numpy()
        np.testing.assert_allclose(zero, _padded_shift_loop(src["g8"].numpy(), sx, {}), atol=1e-6)
    normalised = normalised_targets(Matches("gen", (same,)), edit_targets(matches, src, "shift", None, 0.25, 0.0))[0]
    assert float(normalised[..., :2].abs().max()) < 1e-5 and float(normalised[..., 2:].abs().min()) > 0
    with pytest.raises(ValueError, match="pad 'edge' is not supported; valid: mean, zero"):
        edit_targets(matches, src, "shift", pad="edge")

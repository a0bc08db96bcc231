"""Network Dissection scores of concepts (rosetta_core.matching.ground_truth) against float64
brute force: torch's bilinear resize, numpy's quantile, pixel-by-pixel intersection and union
summed over the image set; the world's factor masks (rosetta_core.data.factors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rosetta_core.data import COLOURS, KINDS, WorldConfig, render_batch, truth_masks
from rosetta_core.data.factors import factor_masks, factor_names
from rosetta_core.matching.ground_truth import (_top_quantile, draw_groups, group_scores, label, summarise,
                                                unit_ious)
from oracles import dissection_ious as oracle_ious

pytestmark = pytest.mark.unit


def _blobs(rng, n, factors, H, W, p=0.2) -> np.ndarray:
    """Random masks with some spatial structure: thresholded smooth noise."""
    low = rng.standard_normal((n, factors, max(H // 4, 1), max(W // 4, 1)))
    smooth = F.interpolate(torch.from_numpy(low), size=(H, W), mode="bilinear", align_corners=False).numpy()
    return smooth > np.quantile(smooth, 1 - p)


@pytest.mark.parametrize("shape,size,quantile", [
    ((6, 5, 4, 4), (16, 16), 0.995), ((5, 3, 2, 8), (16, 16), 0.9), ((4, 4, 16, 16), (16, 16), 0.95),
    ((3, 2, 8, 4), (16, 32), 0.8),
])
def test_unit_ious_equal_the_brute_force_on_exact_values(shape, size, quantile):
    # integer maps resized by powers of two: every resized value is exact in float32, so the
    # float32 path and the float64 oracle must agree exactly (ties at the threshold included)
    rng = np.random.default_rng(sum(shape))
    maps = rng.integers(0, 200, size=shape).astype(np.float16)  # exact in float16
    maps[:, 1] = rng.integers(0, 3, size=maps[:, 1].shape)  # ties at the threshold
    maps[:, 0] = 0  # a silent unit: threshold 0, empty mask, IoU 0
    masks = _blobs(rng, shape[0], 5, *size)
    got, thresholds = unit_ious(maps, masks, quantile)
    want, want_t = oracle_ious(maps, masks, quantile)
    np.testing.assert_array_equal(thresholds, want_t)
    np.testing.assert_array_equal(got, want)
    assert (got[0] == 0).all() and got.max() > 0


def test_unit_ious_equal_the_brute_force_on_random_maps():
    rng = np.random.default_rng(7)
    maps = np.maximum(rng.standard_normal((8, 6, 5, 7)), 0).astype(np.float32)  # ReLU-like, odd grids
    masks = _blobs(rng, 8, 4, 20, 24, p=0.1)
    for quantile in (0.995, 0.9, 0.5):
        got, thresholds = unit_ious(maps, masks, quantile, batch_bytes=1)  # one unit per batch
        want, want_t = oracle_ious(maps, masks, quantile)
        np.testing.assert_allclose(thresholds, want_t, rtol=1e-5)
        np.testing.assert_allclose(got, want, atol=2e-3)  # float32 resizing may move a pixel at the threshold


def test_a_unit_that_is_its_factor_scores_one():
    rng = np.random.default_rng(3)
    masks = _blobs(rng, 10, 3, 8, 8, p=0.1)
    maps = masks[:, [1]].astype(np.float32) + 0.01 * rng.random((10, 1, 8, 8)).astype(np.float32) * masks[:, [1]]
    ious, _ = unit_ious(maps, masks, quantile=1 - masks[:, 1].mean() + 1e-9)
    assert ious[0, 1] == pytest.approx(1.0, abs=0.02) and ious[0, 1] > ious[0, 0] and ious[0, 1] > ious[0, 2]


@pytest.mark.parametrize("values", [
    np.arange(1000.0), np.repeat([0.0, 1.0, 2.0], [990, 7, 3]), np.zeros(50), np.random.default_rng(1).random(9999),
    np.r_[np.zeros(100_000), np.random.default_rng(2).random(5)],
])
@pytest.mark.parametrize("quantile", [0.995, 0.9, 0.5, 0.01])
def test_top_quantile_is_numpys(values, quantile):
    assert _top_quantile(values, quantile) == pytest.approx(np.quantile(values, quantile), rel=1e-12, abs=1e-300)


def test_group_scores_weigh_every_model_the_same():
    a = np.array([[0.1, 0.3], [0.3, 0.1], [0.2, 0.2]])  # 3 units of one model
    b = np.array([[0.0, 0.6]])  # 1 unit of another
    np.testing.assert_allclose(group_scores({"g": a, "e": b, "empty": np.zeros((0, 2))}),
                               [(0.2 + 0.0) / 2, (0.2 + 0.6) / 2])
    with pytest.raises(ValueError, match="no units"):
        group_scores({"g": np.zeros((0, 2))})


def test_label_names_the_best_and_the_runner_up():
    got = label(np.array([0.02, 0.09, 0.05, 0.09]), ["a", "b", "c", "d"])
    assert got == {"factor": "b", "iou": 0.09, "runner_up": {"factor": "d", "iou": 0.09}}
    assert label(np.array([0.3]), ["only"])["runner_up"] is None
    with pytest.raises(ValueError):
        label(np.array([0.1, 0.2]), ["a"])


def test_draw_groups_keep_the_composition_and_draw_from_the_pools():
    rng = np.random.default_rng(0)
    pools = {("g", "block1"): np.array([3, 5, 9]), ("e", "layer2"): np.arange(100, 140)}
    groups = draw_groups({("g", "block1"): 2, ("e", "layer2"): 5}, pools, 50, rng)
    assert len(groups) == 50
    for g in groups:
        assert len(g[("g", "block1")]) == 2 and len(set(g[("g", "block1")])) == 2  # without replacement
        assert set(g[("g", "block1")]) <= {3, 5, 9} and set(g[("e", "layer2")]) <= set(range(100, 140))
        assert len(set(g[("e", "layer2")])) == 5
    seen = {int(u) for g in groups for u in g[("e", "layer2")]}
    assert len(seen) > 30  # the whole pool is used
    big = draw_groups({("g", "block1"): 5}, pools, 3, rng)  # more than the pool: with replacement
    assert all(len(g[("g", "block1")]) == 5 for g in big)
    with pytest.raises(ValueError, match="empty"):
        draw_groups({("x", "y"): 1}, {("x", "y"): np.array([], dtype=int)}, 1, rng)


def test_summarise_counts_shares_per_factor_and_the_ceiling():
    names = ["object", "colour:red", "contour"]
    concepts = np.array([[0.01, 0.08, 0.02],   # aligned, red
                         [0.03, 0.01, 0.05],   # aligned, contour
                         [0.02, 0.01, 0.03]])  # not aligned (best: contour 0.03)
    random = np.array([[[0.05, 0, 0], [0, 0, 0]],       # concept 0's draws: 1 of 2 aligned (object)
                       [[0, 0, 0], [0, 0, 0]],          # none
                       [[0, 0.04, 0], [0, 0.1, 0.2]]])  # both aligned: red, contour
    out = summarise(concepts, random, names, threshold=0.04, quantile=0.99, coverage=np.array([0.2, 0.01, 0.005]))
    assert out["aligned"] == pytest.approx(2 / 3)
    assert out["random_baseline"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert out["difference"]["value"] == pytest.approx(2 / 3 - 0.5)
    lo, hi = out["difference"]["ci95"]
    assert lo <= out["difference"]["value"] <= hi
    per = out["per_factor"]
    assert per["colour:red"] == {"concepts": 1, "labelled": 1, "random_baseline": 0.5, "coverage": 0.01,
                                 "ceiling": pytest.approx(1.0)}
    assert per["contour"]["concepts"] == 1 and per["contour"]["labelled"] == 2
    assert per["contour"]["random_baseline"] == pytest.approx(0.5)
    assert per["object"]["random_baseline"] == pytest.approx(0.5) and per["object"]["concepts"] == 0
    assert per["object"]["ceiling"] == pytest.approx(0.01 / 0.2) and per["contour"]["ceiling"] == pytest.approx(0.5)
    assert out["threshold"] == 0.04 and out["quantile"] == 0.99 and out["concepts"] == 3
    # paired: each concept against its own random groups; equal pairs leave no spread at all
    same = summarise(concepts, np.repeat(concepts[:, None], 2, axis=1), names, threshold=0.04, quantile=0.99)
    assert same["difference"] == {"value": 0.0, "ci95": [0.0, 0.0]}
    empty = summarise(np.zeros((0, 3)), np.zeros((0, 4, 3)), names, 0.04, 0.99)
    assert empty["aligned"] is None and empty["random_baseline"] is None
    with pytest.raises(ValueError, match="scores of shapes"):
        summarise(concepts, random[:2], names, 0.04, 0.99)


def test_bad_inputs_are_one_clear_error():
    masks = np.zeros((2, 3, 8, 8), dtype=bool)
    with pytest.raises(ValueError, match="quantile"):
        unit_ious(np.zeros((2, 1, 4, 4)), masks, 1.0)
    with pytest.raises(ValueError, match="masks"):
        unit_ious(np.zeros((2, 1, 4, 4)), masks.astype(np.uint8))
    with pytest.raises(ValueError, match="maps"):
        unit_ious(np.zeros((3, 1, 4, 4)), masks)


def test_factor_masks_are_the_worlds_truth():
    world = WorldConfig.simple()
    scenes = render_batch(5, np.arange(12), world)
    names, masks = factor_masks(scenes)
    assert names == factor_names(world) and masks.shape == (12, len(names), 64, 64) and masks.dtype == bool
    kinds, colours = truth_masks(scenes)
    plane = dict(zip(names, np.moveaxis(masks, 1, 0)))
    np.testing.assert_array_equal(plane["object"], ~scenes.background)
    np.testing.assert_array_equal(plane["background"], scenes.background)
    np.testing.assert_array_equal(plane["contour"], scenes.contour)
    np.testing.assert_array_equal(plane["shadow"], scenes.shadow)
    for k in world.kinds:
        np.testing.assert_array_equal(plane[f"kind:{k}"], kinds[:, KINDS.index(k)])
    for c in world.colours:
        np.testing.assert_array_equal(plane[f"colour:{c}"], colours[:, COLOURS.index(c)])
    for j in range(world.max_objects):
        np.testing.assert_array_equal(plane[f"slot:{j}"], scenes.object_masks[:, j])
    assert "kind:star" not in names and "colour:orange" not in names  # the simple world draws neither
    assert plane["slot:0"].any() and plane["slot:1"].any()

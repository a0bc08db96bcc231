"""Planted Rosetta pairs (a unit of B is a noisy resized copy of a unit of A) are found."""

from __future__ import annotations

import numpy as np
import pytest

from rosetta_core import best_buddies, pearson_table
from rosetta_core.demo import run_demo

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("center", ["global", "position"])
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_pairs_are_best_buddies(seed, center):
    result = run_demo(n=120, seed=seed, planted=6, center=center)
    assert len(result.planted) == 6
    assert result.recovered == 6


def test_planted_copy_across_non_integer_grids():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    a = rng.random((60, 5, 7, 7)).astype(np.float32)
    b = rng.random((60, 6, 16, 16)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(a[:, 2:3]), size=(16, 16), mode="bilinear", align_corners=False).numpy()
    b[:, 4:5] = up + 0.05 * rng.random(up.shape)
    table = pearson_table([a], [b])
    assert table[2, 4] > 0.95
    assert [2, 4] in best_buddies(table, k_a=1, k_b=1).tolist()
    assert np.abs(np.delete(table, 2, axis=0)).max() < 0.5

"""The concept checks (issue 21, item 5) against float64 loop oracles and hand-worked boundaries."""

import math

import numpy as np
import pytest

from rosetta_core.matching.concept_checks import (
    chance_level,
    null_check,
    random_init_check,
    random_init_matched,
)
from rosetta_core.run import MineConfig


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), written out."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _chance_oracle(table: np.ndarray, q: float) -> float:
    best = []
    for row in table.tolist():
        finite = [v for v in row if math.isfinite(v)]
        if finite:
            best.append(max(finite))
    return _quantile(best, q)


def _best_buddies_oracle(table: np.ndarray, k: int) -> set[tuple[int, int]]:
    rows, cols = table.shape
    out = set()
    for g in range(rows):
        row_top = sorted(range(cols), key=lambda e: -table[g, e])[:k]
        for e in row_top:
            col_top = sorted(range(rows), key=lambda h: -table[h, e])[:k]
            if g in col_top:
                out.add((g, e))
    return out


def test_chance_level_is_the_quantile_of_each_rows_best_correlation():
    rng = np.random.default_rng(0)
    table = rng.uniform(-1, 1, (37, 23))
    table[5] = np.nan  # a constant anchor unit: left out
    table[7, :20] = np.nan  # a row with a few finite values keeps them
    for q in (0.5, 0.9, 0.95):
        assert chance_level(table, q) == pytest.approx(_chance_oracle(table, q), abs=1e-12)
    assert chance_level(np.full((3, 4), np.nan)) is None
    # rows are anchor units: the transpose is another null
    assert chance_level(table[:, :5]) != chance_level(table[:5, :].T)


def test_chance_level_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        chance_level(np.zeros(4))
    with pytest.raises(ValueError, match="quantile=1"):
        chance_level(np.zeros((2, 2)), 1)


def test_a_concept_beats_the_null_only_when_every_model_link_is_above_chance():
    members = {"a": [{"correlation": 0.3}, {"correlation": 0.5}], "b": [{"correlation": 0.4}]}
    got = null_check(members, {"a": 0.45, "b": 0.4})
    assert got["models"]["a"] == {"r": 0.5, "chance": 0.45, "beats": True}
    assert got["models"]["b"]["beats"] is False  # equal to chance is not above it
    assert got["beats"] is False
    assert null_check(members, {"a": 0.45, "b": 0.39})["beats"] is True
    # a model without a null level (not computed) is not checked; nothing checkable -> None
    assert set(null_check(members, {"a": 0.1})["models"]) == {"a"}
    assert null_check(members, {"a": None}) is None
    assert null_check({"a": [{"correlation": None}]}, {"a": 0.1}) is None


def test_random_init_matches_are_the_anchor_units_with_a_best_buddy():
    rng = np.random.default_rng(3)
    for shape, k in (((30, 40), 3), ((25, 6), 2), ((8, 50), 5)):
        table = rng.standard_normal(shape)
        want = sorted({g for g, _ in _best_buddies_oracle(table, min(k, shape[1]))})
        assert random_init_matched(table, k).tolist() == want


def test_random_init_check_counts_each_models_matched_anchor_units():
    members = {"a": [{"correlation": 0.5}], "b": [{"correlation": 0.5}], "c": [{"correlation": 0.5}]}
    matched = {"a": np.array([1, 4, 9]), "b": np.array([2])}  # c was not mined at random init
    got = random_init_check([1, 2, 3, 4], members, matched)
    assert got["models"] == {"a": {"matched": 2, "of": 4}, "b": {"matched": 1, "of": 4}}
    assert got["also_random"] is True  # exactly half of the anchor units for a
    assert random_init_check([1, 2, 3, 5, 6], members, matched)["also_random"] is False  # 1 of 5, 1 of 5
    assert random_init_check([1, 2], {"c": []}, matched) is None
    with pytest.raises(ValueError, match="no anchor units"):
        random_init_check([], members, matched)


def test_the_companion_keeps_the_anchors_weights_and_randomises_the_others():
    config = MineConfig(encoders=("mini-resnet.sup", "mini-vit.mae"), n=40)
    companion = config.random_init_companion()
    assert companion.weights == "random,mini-gen=trained" and companion.random_init is False
    assert (companion.n, companion.seed, companion.encoders) == (config.n, config.seed, config.encoders)
    assert companion.random_init_companion() is None  # no companion of its own
    assert MineConfig(weights="random").random_init_companion() is None  # the run is its own control
    assert MineConfig(random_init=False).random_init_companion() is None
    image = MineConfig(images="x", encoders=("mini-resnet.sup", "mini-vit.mae"), anchor="mini-vit.mae",
                       weights="random,mini-vit.mae=trained,mini-resnet.sup=trained")
    assert image.random_init_companion().weights == "random,mini-vit.mae=trained"
    with pytest.raises(ValueError, match="random_init='yes'"):
        MineConfig(random_init="yes").validate()

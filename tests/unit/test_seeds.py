"""The scene-seed splits every ground-truth bench checks its seeds against."""

import pytest

from rosetta_core.evidence.seeds import SCENE_SPLITS, SPENT_TEST_SEEDS, check_scene_seeds


def test_the_splits_do_not_overlap_and_spent_seeds_are_test_seeds():
    assert not set(SCENE_SPLITS["validation"]) & set(SCENE_SPLITS["test"])
    assert SPENT_TEST_SEEDS <= set(SCENE_SPLITS["test"])


def test_seeds_are_checked_against_their_split():
    check_scene_seeds("validation", [10000, 10999])
    check_scene_seeds("test", [20000])  # spent, but allowed unless fresh seeds are asked for
    with pytest.raises(ValueError, match=r"seeds \[20000\] are not validation seeds \(10000-10999\)"):
        check_scene_seeds("validation", [10000, 20000])
    with pytest.raises(ValueError, match=r"test seeds \[20003\] were already used .* \(from 20006\)"):
        check_scene_seeds("test", [20003, 20006], fresh=True)
    check_scene_seeds("test", [20006], fresh=True)
    with pytest.raises(ValueError, match="split='train'"):
        check_scene_seeds("train", [1])

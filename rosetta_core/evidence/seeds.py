"""Which scene seeds of the embedded world choose settings and which report them (DESIGN §7).

The ground-truth and centring benches mine runs whose image seed is a scene seed of a split:
settings are chosen on ``validation`` seeds, and a result is reported once on ``test`` seeds no
report has looked at (:data:`SPENT_TEST_SEEDS` lists those already used).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SCENE_SPLITS", "SPENT_TEST_SEEDS", "check_scene_seeds"]

#: split -> its scene seeds (docs/ground-truth.md)
SCENE_SPLITS = {"validation": range(10000, 11000), "test": range(20000, 21000)}
#: test seeds a reported result has used: bench/ground_truth.py (20000-20002) and
#: bench/centring.py (20003-20005)
SPENT_TEST_SEEDS = frozenset(range(20000, 20006))


def check_scene_seeds(split: str, seeds: Iterable[int], fresh: bool = False) -> None:
    """A ValueError naming the seeds that are not of ``split`` (or, with ``fresh``, test seeds
    already spent)."""
    if split not in SCENE_SPLITS:
        raise ValueError(f"split={split!r}; valid: {', '.join(sorted(SCENE_SPLITS))}")
    seeds = list(seeds)
    span = SCENE_SPLITS[split]
    bad = [s for s in seeds if s not in span]
    if bad:
        raise ValueError(f"seeds {bad} are not {split} seeds ({span.start}-{span.stop - 1})")
    spent = sorted(set(seeds) & SPENT_TEST_SEEDS) if fresh and split == "test" else []
    if spent:
        raise ValueError(f"test seeds {spent} were already used by a reported result; take fresh ones "
                         f"(from {max(SPENT_TEST_SEEDS) + 1})")

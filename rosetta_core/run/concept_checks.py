"""The checks of every concept of a run (:mod:`rosetta_core.matching.concept_checks`), read from
the run's shuffled-null tables and its random-init companion, written into the dictionary.

The companion is a run of its own at ``<run>/random-init`` (:data:`COMPANION`), mined by the
flow before the run's dictionary (:meth:`MineConfig.random_init_companion`): its tables of the
anchor against each random-init model give the anchor units those models match.
"""

from __future__ import annotations

from typing import Any

from ..matching.concept_checks import (
    NULL_QUANTILE,
    RANDOM_INIT_SHARE,
    chance_level,
    null_check,
    random_init_check,
    random_init_matched,
)
from . import location
from .run import Run

__all__ = ["COMPANION", "check_concepts", "companion_location", "finished_companion"]

#: the folder of a run's random-init companion, inside the run
COMPANION = "random-init"


def companion_location(where: str) -> str:
    return location.join(where, COMPANION)


def finished_companion(run: Run) -> Run | None:
    """The run's random-init companion when it is complete with the expected configuration."""
    config = run.config.random_init_companion()
    if config is None:
        return None
    companion = Run(companion_location(run.location), config, mode="r")
    return companion if companion.finished() is not None else None


def check_concepts(run: Run, content: dict[str, Any]) -> None:
    """Add each concept's ``checks`` (``shuffled_null`` and ``random_init``; None where not
    measured) and the dictionary's ``checks`` summary to ``content``."""
    cfg = run.config
    anchor = cfg.anchor_model
    levels = {}
    for m in cfg.others:
        table = run.table(anchor, m, True)
        levels[m] = None if table is None else chance_level(table)
    companion = finished_companion(run)
    matched = {}
    if companion is not None:
        matched = {m: random_init_matched(companion.table(anchor, m), cfg.k) for m in cfg.others}
    beat, also, nulls, randoms = 0, 0, 0, 0
    for concept in content["concepts"]:
        null = null_check(concept["members"], levels)
        random = random_init_check([u["unit"] for u in concept["anchor_units"]], concept["members"], matched)
        concept["checks"] = {"shuffled_null": null, "random_init": random}
        nulls += null is not None
        beat += bool(null and null["beats"])
        randoms += random is not None
        also += bool(random and random["also_random"])
    content["checks"] = {
        "shuffled_null": {"quantile": NULL_QUANTILE, "chance": levels, "checked": nulls, "beat": beat},
        "random_init": {
            "companion": COMPANION if companion is not None else None,
            "weights": None if companion is None else companion.config.weights,
            "share": RANDOM_INIT_SHARE,
            "matched_anchor_units": {m: len(v) for m, v in matched.items()},
            "checked": randoms,
            "also_random": also,
        },
    }

"""Two checks of every concept (issue 21, item 5): does it beat chance, and is it learned?

**The shuffled null.** For each model ``m`` paired with the anchor, the run also correlates the
anchor's image ``i`` with ``m``'s image ``perm[i]``: images that have nothing to do with each
other, so whatever the two models still share (layout priors, architecture, chance over many
unit pairs) is all that links them. The null's *chance level* for ``m`` is the
:data:`NULL_QUANTILE` quantile, over the anchor's units, of each unit's strongest correlation
with any unit of ``m`` in that null table: how strongly an anchor unit finds a best match in
``m`` when nothing links the images. A concept **beats the null** for ``m`` when its strongest
member of ``m`` correlates with one of its anchor units above that level, and beats the null
when it does so for every model among its members. Fixed before the first measurement:
a concept is only as trustworthy as its weakest link.

**The random-init companion.** The same run with every model but the anchor at seeded random
initialisation (``rosetta_core.run.companion``). An anchor unit is *matched at random init* for
``m`` when it has a best buddy in random-init ``m`` (same K). A concept is **also matched at
random init** when at least :data:`RANDOM_INIT_SHARE` of its anchor units are matched in the
random-init version of at least one model among its members: then architecture and layout
explain it as well as learning does.

Pure numpy over tables (no run, no files): :mod:`rosetta_core.run.concept_checks` reads the
run's tables and writes the results into ``dictionary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .buddies import best_buddies

__all__ = ["NULL_QUANTILE", "RANDOM_INIT_SHARE", "chance_level", "null_check", "random_init_check",
           "random_init_matched"]

#: the quantile of the null's per-unit best correlations that a concept's link must exceed
NULL_QUANTILE = 0.95
#: the share of a concept's anchor units matched at random init that marks it as not learned
RANDOM_INIT_SHARE = 0.5


def chance_level(null_table: np.ndarray, quantile: float = NULL_QUANTILE) -> float | None:
    """The ``quantile`` of each anchor unit's (row's) highest correlation in the shuffled null's
    table ``(anchor units, model units)``; rows without a finite value (constant units) are left
    out. None when no row has one."""
    table = np.asarray(null_table, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"null table must be 2-D (anchor units, model units); got shape {table.shape}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile={quantile} must be in (0, 1)")
    finite = np.isfinite(table)
    rows = finite.any(axis=1)
    if not rows.any():
        return None
    best = np.where(finite, table, -np.inf)[rows].max(axis=1)
    return float(np.quantile(best, quantile))


def null_check(members: Mapping[str, list[dict]], levels: Mapping[str, float | None]) -> dict | None:
    """A concept's shuffled-null check from its ``members`` (model -> units, each with the
    ``correlation`` of its strongest link to the concept's anchor units, as in
    ``dictionary.json``) and each model's chance ``levels`` (:func:`chance_level`; None or
    missing: that model's null was not computed). Returns ``{"beats": bool, "models": {m:
    {"r", "chance", "beats"}}}`` over the models that have members and a level, or None when
    no model can be checked."""
    models = {}
    for m, units in members.items():
        level = levels.get(m)
        corr = [u["correlation"] for u in units if u.get("correlation") is not None and np.isfinite(u["correlation"])]
        if level is None or not corr:
            continue
        r = float(max(corr))
        models[m] = {"r": r, "chance": float(level), "beats": bool(r > level)}
    if not models:
        return None
    return {"beats": all(v["beats"] for v in models.values()), "models": models}


def random_init_matched(table: np.ndarray, k: int) -> np.ndarray:
    """Sorted anchor units that have a best buddy (K = ``k``) in a random-init model's table
    ``(anchor units, model units)``."""
    pairs = best_buddies(table, min(k, table.shape[1]), min(k, table.shape[0]))
    return np.unique(pairs[:, 0]).astype(np.int64) if len(pairs) else np.empty(0, dtype=np.int64)


def random_init_check(anchor_units: list[int], members: Mapping[str, list[dict]],
                      matched: Mapping[str, np.ndarray], share: float = RANDOM_INIT_SHARE) -> dict | None:
    """A concept's random-init check: for each model among its ``members`` whose random-init
    version was mined (``matched``: model -> anchor units with a best buddy there,
    :func:`random_init_matched`), how many of the concept's ``anchor_units`` are matched.
    ``also_random`` when, for at least one model, that is at least ``share`` of them. Returns
    ``{"also_random": bool, "models": {m: {"matched": count, "of": total}}}``, or None when no
    model of the concept was mined at random init."""
    units = np.asarray(sorted({int(u) for u in anchor_units}), dtype=np.int64)
    if len(units) == 0:
        raise ValueError("a concept has no anchor units")
    models = {}
    for m in members:
        if m not in matched:
            continue
        count = int(np.isin(units, matched[m]).sum())
        models[m] = {"matched": count, "of": len(units)}
    if not models:
        return None
    also = any(v["matched"] >= share * v["of"] for v in models.values())
    return {"also_random": bool(also), "models": models}

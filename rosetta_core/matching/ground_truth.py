"""Concepts scored against ground truth: Network Dissection's IoU (Bau et al., CVPR 2017).

Definitions (the run's ``dictionary.json`` and ``manifest.json`` use exactly these):

- **Unit IoU.** A unit's maps ``(n, h, w)`` over the run's images are resized bilinearly
  (``align_corners=False``, as ``torch.nn.functional.interpolate``) to the masks' grid
  ``(H, W)`` (the image). Its threshold ``T`` is the ``quantile`` (default 0.995: the top 0.5%)
  of all ``n * H * W`` resized values (``numpy.quantile``'s linear rule); its mask is
  ``resized > T``. The IoU with a factor is taken over the whole image set, not per image:
  ``sum_i |M_i & F_i| / sum_i |M_i | F_i|`` (0 when the union is empty).
- **Concept score.** A concept has units in several models (its generator units and its member
  units in every encoder). Its score for a factor is the mean over *models* of the mean unit
  IoU of that model's units: every model weighs the same, however many units it contributes.
  Its label is the factor with the highest score, with the runner-up beside it; it is
  *aligned* when the label's score is at least ``threshold`` (default 0.04, Network
  Dissection's).
- **Random baseline.** For every concept, ``draws`` groups of units drawn from the units in no
  concept, from the same (model, layer) in the same numbers, scored the same way. Its share
  aligned is what the choice of layers alone gives; the concept selection means something only
  where concepts beat it.

The ceiling: a mask covers about ``1 - quantile`` of the pixels, so its IoU with a factor that
covers a share ``c`` of the pixels is at most ``min(1 - q, c) / max(1 - q, c)``; a factor much
larger than ``1 - q`` (the background, all objects together) cannot reach a high IoU at
``q = 0.995``. :func:`summarise` records every factor's coverage and ceiling.

Pure numpy over arrays given to it; the run's glue (which images, which masks) is
:mod:`rosetta_core.run.ground_truth`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Hashable

import numpy as np

from ..engine import bilinear_matrix

__all__ = ["DEFAULT_QUANTILE", "DEFAULT_THRESHOLD", "draw_groups", "group_scores", "label", "summarise",
           "unit_ious"]

DEFAULT_QUANTILE = 0.995
DEFAULT_THRESHOLD = 0.04
#: bytes of resized float32 maps held at once by :func:`unit_ious` (units are taken in batches)
BATCH_BYTES = 256 * 2**20


def _check_masks(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.dtype != bool:
        raise ValueError(f"masks of shape {masks.shape} and dtype {masks.dtype} are invalid: "
                         "expected bool (n, factors, H, W)")
    return masks


def _check_quantile(quantile: float) -> float:
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile < 1:
        raise ValueError(f"quantile={quantile!r} is invalid: expected a number in (0, 1), e.g. 0.995")
    return float(quantile)


def _top_quantile(values: np.ndarray, quantile: float) -> float:
    """``numpy.quantile(values, quantile)`` (linear rule) of a 1-d array, computed on the values
    above a cut found from a subsample (all of them when the cut keeps too few)."""
    size = len(values)
    pos = quantile * (size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, size - 1)
    keep = size - lo  # ranks lo .. size - 1
    sample = values[:: max(1, size // 4096)]
    cut = np.quantile(sample, max(0.0, 1.0 - 4 * (1.0 - quantile)))
    top = values[values >= cut]
    if len(top) < keep:
        top, skip = values, lo
    else:
        skip = len(top) - keep  # every value below the cut ranks below lo
    part = np.partition(top, [skip, skip + hi - lo])
    a, b = float(part[skip]), float(part[skip + hi - lo])
    return a + (b - a) * (pos - lo)


def unit_ious(maps, masks: np.ndarray, quantile: float = DEFAULT_QUANTILE,
              batch_bytes: int = BATCH_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Network Dissection IoU of every unit of one layer with every factor.

    ``maps``: ``(n, units, h, w)`` (any float dtype; one layer's units, or a selection of them);
    ``masks``: bool ``(n, factors, H, W)`` of the same ``n`` images. Returns ``(ious (units,
    factors) float64, thresholds (units,) float64)`` (definitions in the module docstring). The
    resized maps are float32 (the store's maps are float16 or float32).
    """
    masks = _check_masks(masks)
    quantile = _check_quantile(quantile)
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps of shape {maps.shape} are invalid: expected (n={masks.shape[0]}, units, h, w)")
    n, units, h, w = maps.shape
    _, factors, H, W = masks.shape
    flat = np.ascontiguousarray(masks.transpose(0, 2, 3, 1)).reshape(n * H * W, factors)  # pixel (i, y, x) -> factors
    sizes = flat.sum(axis=0, dtype=np.int64)
    r_h, r_w = bilinear_matrix(h, H).astype(np.float32), bilinear_matrix(w, W).astype(np.float32)
    ious, thresholds = np.zeros((units, factors)), np.zeros(units)
    step = max(1, int(batch_bytes // (4 * n * H * W)))
    for start in range(0, units, step):
        part = np.ascontiguousarray(np.asarray(maps[:, start:start + step]).transpose(1, 0, 2, 3), dtype=np.float32)
        up = np.matmul(r_h, np.matmul(part, r_w.T)).reshape(len(part), -1)  # (units, n * H * W)
        for j, values in enumerate(up):
            t = thresholds[start + j] = _top_quantile(values, quantile)
            on = np.flatnonzero(values > t)
            inter = np.count_nonzero(flat[on], axis=0)
            union = len(on) + sizes - inter
            ious[start + j] = np.divide(inter, union, out=np.zeros(factors), where=union > 0)
    return ious, thresholds


def group_scores(ious_by_model: Mapping[str, np.ndarray]) -> np.ndarray:
    """A group's score per factor ``(factors,)``: the mean over models of the mean IoU of each
    model's units. ``ious_by_model``: model -> ``(units, factors)``; models without units skip."""
    means = [np.asarray(v, dtype=np.float64).mean(axis=0) for v in ious_by_model.values() if len(v)]
    if not means:
        raise ValueError("the group has no units: give at least one model with one unit")
    return np.mean(means, axis=0)


def label(scores: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """``{"factor", "iou", "runner_up": {"factor", "iou"}}`` of a group's ``scores`` ``(factors,)``
    (ties go to the earlier factor; ``runner_up`` is None with one factor)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) != len(names) or not len(names):
        raise ValueError(f"scores of shape {scores.shape} do not match {len(names)} factor names")
    order = np.argsort(-scores, kind="stable")
    second = ({"factor": names[order[1]], "iou": float(scores[order[1]])} if len(order) > 1 else None)
    return {"factor": names[order[0]], "iou": float(scores[order[0]]), "runner_up": second}


def draw_groups(composition: Mapping[Hashable, int], pools: Mapping[Hashable, np.ndarray], draws: int,
                rng: np.random.Generator) -> list[dict[Hashable, np.ndarray]]:
    """``draws`` random groups with ``composition[key]`` units from ``pools[key]`` for every key
    (e.g. ``(model, layer)``): without replacement where the pool is large enough, with
    replacement where it is not. An empty pool is a ValueError."""
    groups = []
    for _ in range(int(draws)):
        group = {}
        for key, count in composition.items():
            pool = np.asarray(pools[key])
            if count and not len(pool):
                raise ValueError(f"no units to draw for {key!r}: its pool is empty")
            group[key] = rng.choice(pool, size=int(count), replace=int(count) > len(pool))
        groups.append(group)
    return groups


def summarise(concept_scores: np.ndarray, random_scores: np.ndarray, names: Sequence[str], threshold: float,
              quantile: float, coverage: np.ndarray | None = None, bootstrap: int = 2000,
              seed: int = 0) -> dict[str, Any]:
    """The manifest's ``ground_truth`` summary.

    ``concept_scores`` ``(C, factors)``; ``random_scores`` ``(C, draws, factors)``: each concept's
    layer-matched random groups; ``coverage`` ``(factors,)``: each factor's share of pixels.
    ``aligned`` and ``random_baseline`` are shares (None without concepts); ``difference`` is
    ``aligned - random_baseline`` with a paired bootstrap 95% interval over concepts (each
    concept against its own random groups). ``per_factor[f]``: ``concepts`` aligned and labelled
    f, ``labelled`` (aligned or not), ``random_baseline`` (expected number of the C random groups
    aligned and labelled f), and with ``coverage`` its ``coverage`` and IoU ``ceiling``.
    """
    concept_scores = np.asarray(concept_scores, dtype=np.float64)
    random_scores = np.asarray(random_scores, dtype=np.float64)
    if concept_scores.ndim != 2 or concept_scores.shape[1] != len(names) or random_scores.ndim != 3 \
            or random_scores.shape[::2] != concept_scores.shape:
        raise ValueError(f"scores of shapes {concept_scores.shape} and {random_scores.shape} are invalid: expected "
                         f"(concepts, {len(names)}) and (concepts, draws, {len(names)})")
    c = len(concept_scores)
    best, top = concept_scores.max(axis=1, initial=-np.inf), concept_scores.argmax(axis=1)
    r_best, r_top = random_scores.max(axis=2, initial=-np.inf), random_scores.argmax(axis=2)
    hit, r_hit = best >= threshold, r_best >= threshold  # (C,), (C, draws)
    r_share = r_hit.mean(axis=1) if r_hit.shape[1] else np.full(c, np.nan)
    out: dict[str, Any] = {
        "aligned": float(hit.mean()) if c else None,
        "random_baseline": float(r_share.mean()) if c and r_hit.shape[1] else None,
        "threshold": float(threshold), "quantile": float(quantile), "concepts": c,
        "random_draws_per_concept": int(r_hit.shape[1]),
    }
    if c and r_hit.shape[1]:
        diff = hit.astype(float) - r_share
        rng = np.random.default_rng(seed)
        boots = diff[rng.integers(0, c, size=(int(bootstrap), c))].mean(axis=1)
        out["difference"] = {"value": float(diff.mean()), "ci95": [float(np.quantile(boots, 0.025)),
                                                                   float(np.quantile(boots, 0.975))]}
    per = {}
    for f, name in enumerate(names):
        entry = {"concepts": int((hit & (top == f)).sum()), "labelled": int((top == f).sum()),
                 "random_baseline": float((r_hit & (r_top == f)).mean(axis=1).sum()) if r_hit.shape[1] else None}
        if coverage is not None:
            cov, share = float(coverage[f]), 1.0 - float(quantile)
            entry["coverage"] = cov
            entry["ceiling"] = min(cov, share) / max(cov, share) if cov > 0 else 0.0
        per[name] = entry
    out["per_factor"] = per
    return out

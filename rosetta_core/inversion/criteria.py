"""Success criteria of the edit and OOD benchmarks, fixed before measuring (docs/success-criteria.md).

Each criterion compares foreground masks (:func:`.metrics.foreground`, boolean ``(n, H, W)``)
of the source and of the result of one trial, and returns an :class:`Outcome`: per trial,
whether it is a trial at all (``eligible``, decided from the source alone, before any edit runs)
and whether it succeeded (``success``, never true where not eligible). A rate is the share of
eligible trials that succeeded; a result with an empty foreground fails (it has no centroid and
no area), it is never dropped from the count.

- :func:`shift_outcome`: the centroid moves at least half and at most one and a half times the
  requested distance along the requested direction, drifts less than half of it across, and the
  foreground area stays within 25% of the source's;
- :func:`zoom_outcome`: the foreground grows by at least half and at most one and a half times
  the extra area that the requested transform itself gives the source image (a trial where that
  transform grows the area less than x1.5 does not test zooming and is not a trial);
- :func:`remove_outcome`: at most half of the source's foreground pixels are still foreground;
- :func:`layout_outcome` (OOD inversion): IoU of the true object masks and the result's
  foreground at least 0.5.

A source with fewer than :data:`MIN_AREA` foreground pixels is not a trial of any edit: its
centroid and area are a handful of noisy pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .metrics import area, as_masks, centroid, iou

__all__ = [
    "CRITERIA",
    "LAYOUT_IOU",
    "MIN_AREA",
    "REMOVE_KEEP",
    "SHIFT_ACROSS",
    "SHIFT_ALONG",
    "SHIFT_AREA",
    "ZOOM_EXTRA",
    "ZOOM_MIN_REQUEST",
    "Outcome",
    "layout_outcome",
    "measurable",
    "remove_outcome",
    "shift_outcome",
    "zoom_outcome",
]

MIN_AREA = 20  # pixels of foreground a source needs to be a trial
SHIFT_ALONG = (0.5, 1.5)  # the centroid's move along the request, in units of the requested distance
SHIFT_ACROSS = 0.5  # the largest move across the request, in units of the requested distance
SHIFT_AREA = 0.25  # the largest relative change of the foreground area during a shift
ZOOM_MIN_REQUEST = 1.5  # the smallest area growth of the requested transform that makes a zoom trial
ZOOM_EXTRA = (0.5, 1.5)  # the extra area reached, in units of the extra area the transform gives
REMOVE_KEEP = 0.5  # the largest share of the source's foreground that may remain foreground
LAYOUT_IOU = 0.5  # the smallest IoU of true object masks and the inverted image's foreground

#: each criterion in words, as result files record it beside its rate
CRITERIA = {
    "shift": (f"source foreground >= {MIN_AREA} px; the centroid moves {SHIFT_ALONG[0]:g}-{SHIFT_ALONG[1]:g}x the "
              f"requested distance along the requested direction, at most {SHIFT_ACROSS:g}x it across, and the "
              f"foreground area stays within {SHIFT_AREA:.0%} of the source's"),
    "zoom": (f"source foreground >= {MIN_AREA} px and the requested transform applied to the source image grows its "
             f"foreground at least x{ZOOM_MIN_REQUEST:g} (growth r); the result's growth g satisfies "
             f"{ZOOM_EXTRA[0]:g}(r - 1) <= g - 1 <= {ZOOM_EXTRA[1]:g}(r - 1)"),
    "remove": (f"source foreground >= {MIN_AREA} px; at most {REMOVE_KEEP:.0%} of the source's foreground pixels are "
               f"still foreground in the result"),
    "layout": f"IoU of the true object masks and the result's foreground >= {LAYOUT_IOU:g}",
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Per-trial ``eligible`` and ``success`` ``(n,)`` booleans of one criterion (``success``
    implies ``eligible``)."""

    eligible: np.ndarray
    success: np.ndarray

    @property
    def trials(self) -> int:
        """The number of eligible trials."""
        return int(self.eligible.sum())

    @property
    def rate(self) -> float:
        """Successes over eligible trials; NaN when there is no trial."""
        return float(self.success.sum() / self.trials) if self.trials else float("nan")

    def record(self, criterion: str) -> dict:
        """The JSON fields of a result file: rate, counts and the criterion ``CRITERIA[criterion]``."""
        return {"success_rate": self.rate, "successes": int(self.success.sum()), "success_trials": self.trials,
                "criterion": CRITERIA[criterion]}


def _outcome(eligible: np.ndarray, success: np.ndarray) -> Outcome:
    return Outcome(eligible=eligible.copy(), success=success & eligible)


def _same_shape(source, result, name: str) -> None:
    """Both are boolean masks ``(n, H, W)`` of one shape."""
    as_masks(source, f"{name}'s source masks"), as_masks(result, f"{name}'s result masks")
    if np.shape(source) != np.shape(result):
        raise ValueError(f"{name} compares masks of one shape; got source {np.shape(source)} and result {np.shape(result)}")


def _band(value: tuple[float, float], name: str) -> tuple[float, float]:
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{name}={value} must be (low, high) with 0 <= low <= high")
    return float(low), float(high)


def measurable(source, min_area: int = MIN_AREA) -> np.ndarray:
    """``(n,)`` whether each source mask ``(n, H, W)`` has at least ``min_area`` foreground pixels."""
    if not min_area >= 1:
        raise ValueError(f"min_area={min_area} must be >= 1 (pixels)")
    return area(source) >= min_area


def shift_outcome(source, result, dx, dy=0.0, along: tuple[float, float] = SHIFT_ALONG, across: float = SHIFT_ACROSS,
                  area_change: float = SHIFT_AREA, min_area: int = MIN_AREA) -> Outcome:
    """A shift by ``(dx, dy)`` pixels (right, down; numbers or ``(n,)`` arrays, one per trial)
    of the source masks ``(n, H, W)``; ``result`` the result's masks. Succeeds where the
    centroid's move projected on the request lies in ``along`` times the requested distance,
    its move across is at most ``across`` times it, and ``|area(result) / area(source) - 1| <=
    area_change``."""
    _same_shape(source, result, "shift_outcome")
    n = np.shape(source)[0]
    dx, dy = np.broadcast_to(np.asarray(dx, dtype=np.float64), (n,)), np.broadcast_to(np.asarray(dy, dtype=np.float64), (n,))
    dist = np.hypot(dx, dy)
    if not (np.isfinite(dist).all() and (dist > 0).all()):
        raise ValueError(f"shift_outcome needs a requested move (dx, dy) of nonzero, finite length for every trial; got dx={dx}, dy={dy}")
    low, high = _band(along, "along")
    if not (across >= 0 and area_change >= 0):
        raise ValueError(f"across={across} and area_change={area_change} must be >= 0")
    eligible = measurable(source, min_area)
    move = centroid(result) - centroid(source)  # (n, 2) (x, y); NaN where either is empty
    ux, uy = dx / dist, dy / dist
    par = move[:, 0] * ux + move[:, 1] * uy
    perp = np.abs(move[:, 1] * ux - move[:, 0] * uy)
    a_src, a_res = area(source).astype(np.float64), area(result).astype(np.float64)
    with np.errstate(invalid="ignore"):
        success = ((par >= low * dist) & (par <= high * dist) & (perp <= across * dist)
                   & (np.abs(a_res - a_src) <= area_change * a_src) & np.isfinite(par))
    return _outcome(eligible, success)


def zoom_outcome(source, result, requested, extra: tuple[float, float] = ZOOM_EXTRA,
                 min_request: float = ZOOM_MIN_REQUEST, min_area: int = MIN_AREA) -> Outcome:
    """A zoom of the source masks ``(n, H, W)``; ``result`` the result's masks, ``requested`` the
    masks of the requested transform applied to the source image. With ``r = area(requested) /
    area(source)`` and ``g = area(result) / area(source)``: a trial where the source is
    measurable and ``r >= min_request``; a success where ``extra[0] (r - 1) <= g - 1 <=
    extra[1] (r - 1)``."""
    _same_shape(source, result, "zoom_outcome")
    as_masks(requested, "zoom_outcome's requested masks")
    if np.shape(requested) != np.shape(source):
        raise ValueError(f"zoom_outcome compares masks of one shape; got source {np.shape(source)} and requested {np.shape(requested)}")
    low, high = _band(extra, "extra")
    if not min_request > 1:
        raise ValueError(f"min_request={min_request} must be > 1 (a zoom trial asks for growth)")
    a_src = area(source).astype(np.float64)
    safe = np.maximum(a_src, 1)
    r, g = area(requested) / safe, area(result) / safe
    eligible = measurable(source, min_area) & (r >= min_request)
    success = (g - 1 >= low * (r - 1)) & (g - 1 <= high * (r - 1))
    return _outcome(eligible, success)


def remove_outcome(source, result, keep: float = REMOVE_KEEP, min_area: int = MIN_AREA) -> Outcome:
    """A removal from the source masks ``(n, H, W)``; ``result`` the result's masks. Succeeds
    where ``area(source & result) <= keep * area(source)``: at least ``1 - keep`` of the object's
    pixels are gone (new foreground elsewhere is not counted against it)."""
    _same_shape(source, result, "remove_outcome")
    if not 0 <= keep < 1:
        raise ValueError(f"keep={keep} must be in [0, 1) (the share of the source's foreground that may remain)")
    eligible = measurable(source, min_area)
    source, result = np.asarray(source), np.asarray(result)
    success = area(source & result) <= keep * area(source)
    return _outcome(eligible, success)


def layout_outcome(truth, result, threshold: float = LAYOUT_IOU) -> Outcome:
    """An inversion's layout: true object masks ``(n, H, W)`` against the result's foreground.
    Every scene is a trial; succeeds where their IoU (:func:`.metrics.iou`) is at least
    ``threshold``."""
    _same_shape(truth, result, "layout_outcome")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold} must be in (0, 1] (an IoU)")
    n = np.shape(truth)[0]
    return _outcome(np.ones(n, dtype=bool), iou(truth, result) >= threshold)

"""Statistics of reported differences (DESIGN §7: a difference is reported with its paired
bootstrap 95% interval).

:func:`paired_bootstrap_ci` resamples the units measured under both conditions (scenes, trials)
with replacement, keeping each unit's two values together, and takes the percentile interval of
the resampled mean differences. The draw is fixed by ``seed``: resample ``r`` uses the indices
``np.random.default_rng(seed).integers(0, n, size=(n_boot, n))[r]``, so a result file's interval
can be recomputed from its per-unit values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "paired_bootstrap_ci"]


@dataclass(frozen=True)
class Interval:
    """The mean of ``a - b`` over the units (``diff``) and its bootstrap interval
    ``(lo, hi)`` at ``level``; ``n`` units, ``n_boot`` resamples, ``seed`` of the draw."""

    diff: float
    lo: float
    hi: float
    level: float
    n: int
    n_boot: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of 0 (a difference the data support)."""
        return self.lo > 0 or self.hi < 0

    def record(self) -> dict:
        """The JSON fields of a result file."""
        return {"diff": self.diff, "ci_lo": self.lo, "ci_hi": self.hi, "level": self.level, "n": self.n,
                "n_boot": self.n_boot, "seed": self.seed, "method": "paired bootstrap, percentile interval"}


def paired_bootstrap_ci(a, b, n_boot: int = 10000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of ``a - b`` (``a``, ``b``: one value per unit, same order) and its paired bootstrap
    percentile interval at ``level``. Units whose ``a`` or ``b`` is not finite are an error, not
    dropped: the caller decides what a failed unit scores."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_bootstrap_ci needs two 1-D arrays of one length (one value per unit); got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"paired_bootstrap_ci needs at least 2 units; got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_bootstrap_ci: every value must be finite (score a failed unit, do not drop it)")
    if not (isinstance(n_boot, int) and n_boot >= 1):
        raise ValueError(f"n_boot={n_boot!r} must be an integer >= 1")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1)")
    d, n = a - b, len(a)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = np.empty(n_boot, dtype=np.float64)
    step = max(1, 2_000_000 // n)  # bound the memory of the gathered resamples
    for s in range(0, n_boot, step):
        means[s : s + step] = d[idx[s : s + step]].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return Interval(diff=float(d.mean()), lo=float(lo), hi=float(hi), level=float(level), n=n, n_boot=n_boot, seed=seed)

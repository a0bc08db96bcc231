"""Streaming, mergeable co-moments of every unit pair of two models (DESIGN §3.1-3.2).

A :class:`CoMoments` holds, for one set of images, the per-position mean map of every layer
and, for every layer pair, the centred second moments of both sides and the centred cross
moment of all unit pairs, all in float64 and all on the pair's common (elementwise-larger)
grid. Chunks of images are turned into accumulators with :meth:`CoMoments.from_chunk` and
combined with :meth:`CoMoments.merge` (Chan, Golub and LeVeque's pairwise update), in any order
and any tree; :meth:`CoMoments.pearson` gives the correlation table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg.blas import dger

from ._grids import Grid, PairSums, parallel, pair_grids, resized_sum, resized_sumsq
from .resize import bilinear_matrix

__all__ = ["CENTERS", "CoMoments"]

CENTERS = ("global", "position")
Shape = tuple[int, int, int]
#: a unit counts as constant when its centred sum of squares is below this fraction of its raw one
CONSTANT_RTOL = 1e-9


def _add_outer(table: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``table += alpha * outer(x, y)`` in place, in one pass (BLAS rank-1 update) for a
    C-contiguous float64 ``table``."""
    if table.flags.c_contiguous and table.dtype == np.float64 and table.size:
        dger(alpha, np.ascontiguousarray(y, dtype=np.float64), np.ascontiguousarray(x, dtype=np.float64),
             a=table.T, overwrite_a=1)
    else:
        table += alpha * np.outer(x, y)


def _check_center(center: str) -> None:
    if center not in CENTERS:
        raise ValueError(f"center={center!r} is not supported; valid: {', '.join(CENTERS)}")


class CoMoments:
    """Co-moments of the units of model A (layers ``shapes_a``) against model B.

    Parameters
    ----------
    shapes_a, shapes_b:
        ``(units, h, w)`` of each layer. ``shapes_b=None`` accumulates A against itself and
        stores only the layer pairs ``l <= m`` (the symmetric half).
    center:
        ``"global"``: one mean per unit over images and positions (paper Eq. 1).
        ``"position"``: each position's mean over images is subtracted first.

    Attributes
    ----------
    n_ : number of images seen.
    mean_a_, mean_b_ : per layer, the mean map over images ``(units, h, w)`` (float64).
    m2_a_, m2_b_, cross_ : per layer pair ``(l, m)``, centred sums of squares ``(units_l,)``,
        ``(units_m,)`` and cross moments ``(units_l, units_m)`` over images and positions of
        the maps resized to the pair's common grid.
    """

    def __init__(
        self,
        shapes_a: Sequence[Shape],
        shapes_b: Sequence[Shape] | None = None,
        center: str = "global",
    ) -> None:
        _check_center(center)
        self.center = center
        self.shapes_a = [tuple(int(v) for v in s) for s in shapes_a]
        self.symmetric = shapes_b is None
        self.shapes_b = self.shapes_a if shapes_b is None else [tuple(int(v) for v in s) for s in shapes_b]
        self.n_ = 0
        self.mean_a_ = [np.zeros(s) for s in self.shapes_a]
        self.mean_b_ = self.mean_a_ if self.symmetric else [np.zeros(s) for s in self.shapes_b]
        self.m2_a_: dict[tuple[int, int], np.ndarray] = {}
        self.m2_b_: dict[tuple[int, int], np.ndarray] = {}
        self.cross_: dict[tuple[int, int], np.ndarray] = {}
        for l, m in self.pairs():
            self.m2_a_[l, m] = np.zeros(self.shapes_a[l][0])
            self.m2_b_[l, m] = np.zeros(self.shapes_b[m][0])
            self.cross_[l, m] = np.zeros((self.shapes_a[l][0], self.shapes_b[m][0]))

    # -- structure -------------------------------------------------------------------------
    def pairs(self) -> list[tuple[int, int]]:
        """Layer pairs ``(l, m)`` held: all of them, or ``l <= m`` when symmetric."""
        return [
            (l, m)
            for l in range(len(self.shapes_a))
            for m in range(len(self.shapes_b))
            if not (self.symmetric and m < l)
        ]

    def grids(self, l: int, m: int) -> tuple[Grid, Grid]:
        """``(large, small)`` grids of layer pair ``(l, m)``."""
        return pair_grids(self.shapes_a[l], self.shapes_b[m])

    def _pair_grids(self) -> list[tuple[int, int, Grid, Grid]]:
        return [(l, m, *self.grids(l, m)) for l, m in self.pairs()]

    # -- building --------------------------------------------------------------------------
    @classmethod
    def _blank(cls, center: str, shapes_a: list, shapes_b: list | None) -> "CoMoments":
        """A layout with no arrays allocated (filled by the caller); ``shapes_b=None``: self."""
        out = cls.__new__(cls)
        out.center, out.symmetric = center, shapes_b is None
        out.shapes_a = [tuple(int(v) for v in s) for s in shapes_a]
        out.shapes_b = out.shapes_a if shapes_b is None else [tuple(int(v) for v in s) for s in shapes_b]
        out.n_, out.mean_a_, out.mean_b_ = 0, [], []
        out.m2_a_, out.m2_b_, out.cross_ = {}, {}, {}
        return out

    @classmethod
    def from_chunk(
        cls,
        a: Sequence[np.ndarray],
        b: Sequence[np.ndarray] | None = None,
        center: str = "global",
    ) -> "CoMoments":
        """Accumulator of one chunk of images; ``a``, ``b``: per layer ``(n, units, h, w)``.

        Inputs are validated by the callers in :mod:`rosetta_core.correlation`; here they
        are taken as finite float arrays with one ``n``.
        """
        _check_center(center)
        a = [np.asarray(x, dtype=np.float32) for x in a]
        b = None if b is None else [np.asarray(x, dtype=np.float32) for x in b]
        acc = cls._blank(center, [x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b])
        acc.n_ = a[0].shape[0]
        # Means are summed in float32 over a chunk's images; centring by them (or by any value
        # near them) only adds n * eps^2 terms to the moments.
        mean_a = [x.mean(axis=0) for x in a]
        mean_b = mean_a if b is None else [x.mean(axis=0) for x in b]
        acc.mean_a_ = [mu.astype(np.float64) for mu in mean_a]
        acc.mean_b_ = acc.mean_a_ if b is None else [mu.astype(np.float64) for mu in mean_b]
        if center == "position":
            within = PairSums(a, b, acc._pair_grids(), mean_a, mean_b)
        else:
            # One value per unit (the chunk's plain mean over images and positions); the sums
            # are then moved to each pair grid's own grand mean by a rank-1 correction below.
            shift_a = [mu.mean(axis=(1, 2), keepdims=True) for mu in mean_a]
            shift_b = shift_a if b is None else [mu.mean(axis=(1, 2), keepdims=True) for mu in mean_b]
            within = PairSums(a, b, acc._pair_grids(), shift_a, shift_b)
        within.prepare()

        def pair_moments(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            l, m = pair
            large, small = acc.grids(l, m)
            cross = within.cross(l, m, small).astype(np.float64)
            sq_a, sq_b = within.sumsq("a", l, large), within.sumsq("b", m, large)
            if center == "global":
                size = large[0] * large[1]
                count = acc.n_ * size
                da = resized_sum(acc.mean_a_[l][None], large) / size - shift_a[l].ravel()
                db = resized_sum(acc.mean_b_[m][None], large) / size - shift_b[m].ravel()
                _add_outer(cross, -float(count), da, db)
                sq_a, sq_b = sq_a - count * da**2, sq_b - count * db**2
            return cross, sq_a.copy(), sq_b.copy()

        pairs = acc.pairs()
        for (l, m), (cross, sq_a, sq_b) in zip(pairs, parallel(pair_moments, pairs)):
            acc.cross_[l, m], acc.m2_a_[l, m], acc.m2_b_[l, m] = cross, sq_a, sq_b
        return acc

    def _add_mean_terms(self, da, db, weight: float, between_positions: bool) -> None:
        """Add ``weight`` times a mean-map term to every pair's moments, in place (callers
        own the arrays: a merge's fresh sums).

        ``da``/``db``: per layer ``(units, h, w)`` float64 maps (their products are taken in
        float32; sums stay float64). ``between_positions=True``: ``sum_p resize(da) resize(db)``
        over the pair's grid (position centring's mean shift); ``False``: ``P * mean_a *
        mean_b`` with per-unit means over the pair's grid (global centring's mean shift).
        """
        maps_a = [d[None].astype(np.float32) for d in da]
        maps_b = None if self.symmetric else [d[None].astype(np.float32) for d in db]
        sums = PairSums(maps_a, maps_b, self._pair_grids())
        means: dict[tuple[str, int, Grid], np.ndarray] = {}

        def mean(side: str, maps, idx: int, large: Grid) -> np.ndarray:
            key = (side, idx, large)
            if key not in means:
                means[key] = resized_sum(maps[idx][None], large) / (large[0] * large[1])
            return means[key]

        if between_positions:
            sums.prepare()

        def add(pair: tuple[int, int]) -> None:
            l, m = pair
            large, small = self.grids(l, m)
            size = large[0] * large[1]
            if between_positions:
                self.cross_[l, m] += weight * sums.cross(l, m, small)
                sq_a, sq_b = sums.sumsq("a", l, large), sums.sumsq("b", m, large)
            else:
                mean_a, mean_b = mean("a", da, l, large), mean("b" if not self.symmetric else "a", db, m, large)
                _add_outer(self.cross_[l, m], weight * size, mean_a, mean_b)
                sq_a, sq_b = size * mean_a**2, size * mean_b**2
            self.m2_a_[l, m] += weight * sq_a
            self.m2_b_[l, m] += weight * sq_b

        parallel(add, self.pairs())

    def merge(self, other: "CoMoments") -> "CoMoments":
        """A new accumulator over the images of both (order-independent, exact in float64)."""
        return self._merge(other, in_place=False)

    def _merge(self, other: "CoMoments", in_place: bool) -> "CoMoments":
        """:meth:`merge`; ``in_place=True`` reuses this accumulator's arrays for the result
        (for a caller that owns it and drops the old state, like a running fold)."""
        if not isinstance(other, CoMoments):
            raise TypeError(f"can only merge CoMoments, got {type(other).__name__}")
        if (self.shapes_a, self.shapes_b, self.symmetric, self.center) != (
            other.shapes_a, other.shapes_b, other.symmetric, other.center
        ):
            raise ValueError(
                "cannot merge co-moments of different layouts: "
                f"{self.describe()} vs {other.describe()}"
            )
        if other.n_ == 0 or self.n_ == 0:
            return (self if other.n_ == 0 else other).copy()
        n1, n2 = self.n_, other.n_
        n = n1 + n2
        out = self if in_place else CoMoments._blank(
            self.center, self.shapes_a, None if self.symmetric else self.shapes_b)
        da = [m2 - m1 for m1, m2 in zip(self.mean_a_, other.mean_a_)]
        db = da if self.symmetric else [m2 - m1 for m1, m2 in zip(self.mean_b_, other.mean_b_)]
        out.mean_a_ = [m1 + d * (n2 / n) for m1, d in zip(self.mean_a_, da)]
        out.mean_b_ = out.mean_a_ if self.symmetric else [m1 + d * (n2 / n) for m1, d in zip(self.mean_b_, db)]
        out.n_ = n

        def add(key: tuple[int, int]) -> None:
            for mine, theirs, dest in ((self.cross_, other.cross_, out.cross_), (self.m2_a_, other.m2_a_, out.m2_a_),
                                       (self.m2_b_, other.m2_b_, out.m2_b_)):
                if in_place:
                    mine[key] += theirs[key]
                else:
                    dest[key] = mine[key] + theirs[key]

        parallel(add, list(self.cross_))
        # Chan, Golub and LeVeque: correct for the shift between the two sets' means.
        out._add_mean_terms(da, db, n1 * n2 / n, between_positions=self.center == "position")
        return out

    def copy(self) -> "CoMoments":
        return CoMoments.from_state_dict(self.state_dict())

    def describe(self) -> str:
        side_b = "itself" if self.symmetric else f"{len(self.shapes_b)} layers {self.shapes_b}"
        return f"{len(self.shapes_a)} layers {self.shapes_a} against {side_b}, center={self.center!r}"

    # -- results ---------------------------------------------------------------------------
    def _raw_sumsq(self, l: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Uncentred sums of squares of both sides of a pair (to judge constancy)."""
        large, _ = self.grids(l, m)
        if self.center == "position":
            ra = self.n_ * resized_sumsq(self.mean_a_[l][None], large)
            rb = self.n_ * resized_sumsq(self.mean_b_[m][None], large)
        else:
            size = large[0] * large[1]
            ra = self.n_ * size * (resized_sum(self.mean_a_[l][None], large) / size) ** 2
            rb = self.n_ * size * (resized_sum(self.mean_b_[m][None], large) / size) ** 2
        return ra + self.m2_a_[l, m], rb + self.m2_b_[l, m]

    def _live(self, l: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        ra, rb = self._raw_sumsq(l, m)
        live_a = self.m2_a_[l, m] > CONSTANT_RTOL * ra
        live_b = self.m2_b_[l, m] > CONSTANT_RTOL * rb
        return live_a, live_b

    def constant_units(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks ``(units of A,)``, ``(units of B,)``: units with zero variance."""
        dead_a = np.zeros(sum(s[0] for s in self.shapes_a), dtype=bool)
        dead_b = np.zeros(sum(s[0] for s in self.shapes_b), dtype=bool)
        off_a, off_b = _offsets(self.shapes_a), _offsets(self.shapes_b)
        for l, m in self.pairs():
            live_a, live_b = self._live(l, m)
            dead_a[off_a[l] : off_a[l + 1]] |= ~live_a
            dead_b[off_b[m] : off_b[m + 1]] |= ~live_b
        if self.symmetric:
            dead_a |= dead_b
            dead_b = dead_a
        return dead_a, dead_b.copy()

    def pearson(self) -> np.ndarray:
        """Correlation table ``(units of A, units of B)`` float32; constant units give 0."""
        if self.n_ < 2:
            raise ValueError(f"Pearson correlation needs at least 2 images, got n={self.n_}")
        off_a, off_b = _offsets(self.shapes_a), _offsets(self.shapes_b)
        table = np.zeros((off_a[-1], off_b[-1]), dtype=np.float32)
        for l, m in self.pairs():
            live_a, live_b = self._live(l, m)
            sa = np.where(live_a, np.sqrt(np.where(live_a, self.m2_a_[l, m], 1.0)), np.inf)
            sb = np.where(live_b, np.sqrt(np.where(live_b, self.m2_b_[l, m], 1.0)), np.inf)
            block = np.clip(self.cross_[l, m] / sa[:, None] / sb[None, :], -1.0, 1.0)
            if self.symmetric and l == m:
                block = (block + block.T) / 2
                np.fill_diagonal(block, live_a.astype(np.float64))
            table[off_a[l] : off_a[l + 1], off_b[m] : off_b[m + 1]] = block
            if self.symmetric and l != m:
                table[off_b[m] : off_b[m + 1], off_a[l] : off_a[l + 1]] = block.T
        return table

    def unit_stats(self, l: int, m: int) -> dict[str, np.ndarray]:
        """Eq. 1 statistics of both sides of pair ``(l, m)`` on its common grid.

        ``mean_a``/``mean_b``: ``(units,)`` grand means (global) or ``(units, H, W)`` resized
        mean maps (position); ``var_a``/``var_b``: ``(units,)`` variances with ``N - 1``.
        """
        large, _ = self.grids(l, m)
        size = large[0] * large[1]
        count = self.n_ * size
        if self.center == "global":
            mean_a = resized_sum(self.mean_a_[l][None], large) / size
            mean_b = resized_sum(self.mean_b_[m][None], large) / size
        else:
            mean_a, mean_b = _resize(self.mean_a_[l], large), _resize(self.mean_b_[m], large)
        return {
            "mean_a": mean_a,
            "mean_b": mean_b,
            "var_a": self.m2_a_[l, m] / max(count - 1, 1),
            "var_b": self.m2_b_[l, m] / max(count - 1, 1),
        }

    # -- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays (for Zarr/npz checkpoints); inverse of ``from_state_dict``."""
        state = {
            "n": np.asarray(self.n_, dtype=np.int64),
            "center": np.asarray(self.center),
            "symmetric": np.asarray(self.symmetric),
            "shapes_a": np.asarray(self.shapes_a, dtype=np.int64).reshape(-1, 3),
            "shapes_b": np.asarray(self.shapes_b, dtype=np.int64).reshape(-1, 3),
        }
        for i, mean in enumerate(self.mean_a_):
            state[f"mean_a/{i}"] = mean.copy()
        if not self.symmetric:
            for i, mean in enumerate(self.mean_b_):
                state[f"mean_b/{i}"] = mean.copy()
        for l, m in self.pairs():
            state[f"m2_a/{l}_{m}"] = self.m2_a_[l, m].copy()
            state[f"m2_b/{l}_{m}"] = self.m2_b_[l, m].copy()
            state[f"cross/{l}_{m}"] = self.cross_[l, m].copy()
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> "CoMoments":
        symmetric = bool(state["symmetric"])
        shapes_a = [tuple(s) for s in np.asarray(state["shapes_a"]).tolist()]
        shapes_b = None if symmetric else [tuple(s) for s in np.asarray(state["shapes_b"]).tolist()]
        acc = cls(shapes_a, shapes_b, str(state["center"]))
        acc.n_ = int(state["n"])
        acc.mean_a_ = [np.array(state[f"mean_a/{i}"], dtype=np.float64) for i in range(len(shapes_a))]
        acc.mean_b_ = acc.mean_a_ if symmetric else [
            np.array(state[f"mean_b/{i}"], dtype=np.float64) for i in range(len(acc.shapes_b))
        ]
        for l, m in acc.pairs():
            acc.m2_a_[l, m] = np.array(state[f"m2_a/{l}_{m}"], dtype=np.float64)
            acc.m2_b_[l, m] = np.array(state[f"m2_b/{l}_{m}"], dtype=np.float64)
            acc.cross_[l, m] = np.array(state[f"cross/{l}_{m}"], dtype=np.float64)
        return acc


def _offsets(shapes: Sequence[Shape]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([s[0] for s in shapes])]).astype(np.int64)


def _resize(maps: np.ndarray, large: Grid) -> np.ndarray:
    _, h, w = maps.shape
    return bilinear_matrix(h, large[0]) @ maps @ bilinear_matrix(w, large[1]).T

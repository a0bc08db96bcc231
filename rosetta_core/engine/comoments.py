"""Streaming, mergeable co-moments of every unit pair of two models (DESIGN §3.1-3.2).

A :class:`CoMoments` holds, for one set of images, the per-position mean map of every layer
and, for every layer pair, the centred second moments of both sides and the centred cross
moment of all unit pairs, all in float64 and all on the pair's common (elementwise-larger)
grid. Chunks of images are added in place with :meth:`CoMoments.update` (a running fold), or
turned into accumulators with :meth:`CoMoments.from_chunk` and combined with
:meth:`CoMoments.merge` (Chan, Golub and LeVeque's pairwise update), in any order and any tree;
:meth:`CoMoments.pearson` gives the correlation table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .centring import CENTERS, Centring, get_centring
from .chunk_fold import NonFiniteChunk, fold_chunk
from .grid_sums import Grid, Workspace, grid_means, pair_grids
from .threads import parallel

__all__ = ["CENTERS", "CoMoments", "NonFiniteChunk"]

Shape = tuple[int, int, int]
#: a unit counts as constant when its centred sum of squares is below this fraction of its raw one
CONSTANT_RTOL = 1e-9


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
        (One of :data:`CENTERS`; the operations that differ live in its
        :class:`~rosetta_core.engine.centring.Centring`, attribute ``centring``.)

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
        self.centring: Centring = get_centring(center)
        self.shapes_a = [tuple(int(v) for v in s) for s in shapes_a]
        self.symmetric = shapes_b is None
        self.shapes_b = self.shapes_a if shapes_b is None else [tuple(int(v) for v in s) for s in shapes_b]
        self.n_ = 0
        self._running_grid_means: dict | None = None  # see _grid_means_of_running
        self.mean_a_ = [np.zeros(s) for s in self.shapes_a]
        self.mean_b_ = self.mean_a_ if self.symmetric else [np.zeros(s) for s in self.shapes_b]
        self.m2_a_: dict[tuple[int, int], np.ndarray] = {}
        self.m2_b_: dict[tuple[int, int], np.ndarray] = {}
        self.cross_: dict[tuple[int, int], np.ndarray] = {}
        # One zeroed buffer for all tables: a large allocation gets huge pages (numpy advises
        # them), where many small tables would each fault in page after page on first use.
        sizes = [self.shapes_a[l][0] * self.shapes_b[m][0] for l, m in self.pairs()]
        flat, offset = np.zeros(sum(sizes)), 0
        for (l, m), size in zip(self.pairs(), sizes):
            self.m2_a_[l, m] = np.zeros(self.shapes_a[l][0])
            self.m2_b_[l, m] = np.zeros(self.shapes_b[m][0])
            self.cross_[l, m] = flat[offset : offset + size].reshape(self.shapes_a[l][0], self.shapes_b[m][0])
            offset += size

    @property
    def center(self) -> str:
        """The centring's name (``"global"`` or ``"position"``)."""
        return self.centring.name

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

    def _largest_first(self) -> list[tuple[int, int]]:
        """The pairs by the work of their cross product, largest first: run side by side,
        the small ones then fill the gaps at the end (no thread waits on one big product)."""
        def work(pair: tuple[int, int]) -> int:
            small = self.grids(*pair)[1]
            return self.shapes_a[pair[0]][0] * self.shapes_b[pair[1]][0] * small[0] * small[1]

        return sorted(self.pairs(), key=work, reverse=True)

    def _pair_grids(self) -> list[tuple[int, int, Grid, Grid]]:
        return [(l, m, *self.grids(l, m)) for l, m in self.pairs()]

    # -- building --------------------------------------------------------------------------
    @classmethod
    def _blank(cls, center: str, shapes_a: list, shapes_b: list | None) -> "CoMoments":
        """A layout with no arrays allocated (filled by the caller); ``shapes_b=None``: self."""
        out = cls.__new__(cls)
        out.centring, out.symmetric = get_centring(center), shapes_b is None
        out.shapes_a = [tuple(int(v) for v in s) for s in shapes_a]
        out.shapes_b = out.shapes_a if shapes_b is None else [tuple(int(v) for v in s) for s in shapes_b]
        out.n_, out.mean_a_, out.mean_b_ = 0, [], []
        out._running_grid_means = None
        out.m2_a_, out.m2_b_, out.cross_ = {}, {}, {}
        return out

    @classmethod
    def from_chunk(
        cls,
        a: Sequence[np.ndarray],
        b: Sequence[np.ndarray] | None = None,
        center: str = "global",
        device=None,
    ) -> "CoMoments":
        """Accumulator of one chunk of images; ``a``, ``b``: per layer ``(n, units, h, w)``.

        Inputs are validated by the callers in :mod:`rosetta_core.engine.correlation`; here they
        are taken as float arrays with one ``n``. NaN or inf values raise
        :class:`NonFiniteChunk` (found by the means, taken piece by piece right before the products).
        ``device``: as in :meth:`update`.
        """
        shapes_a = [_shape(x)[1:] for x in a]
        shapes_b = None if b is None else [_shape(x)[1:] for x in b]
        return cls(shapes_a, shapes_b, center).update(a, b, device=device)

    def update(
        self,
        a: Sequence[np.ndarray],
        b: Sequence[np.ndarray] | None = None,
        workspace: Workspace | None = None,
        device=None,
    ) -> "CoMoments":
        """Add one chunk of images in place and return ``self``: the same result as
        ``self.merge(CoMoments.from_chunk(a, b, self.center))`` without building the chunk's
        own tables (a running fold over chunks touches each table once per chunk).

        ``a``, ``b``: per layer ``(n, units, h, w)``, ``b=None`` for a self accumulator.
        Inputs are validated by the callers in :mod:`rosetta_core.engine.correlation`; here they are
        taken as float arrays of this accumulator's shapes with one ``n``. NaN or inf values
        raise :class:`NonFiniteChunk` (found by the means, taken piece by piece right before the products)
        and leave the accumulator unchanged. ``workspace``: scratch memory for the chunk's
        projections, reused across the chunks of a fold (:class:`rosetta_core.engine.Workspace`);
        optional.

        ``device``: None (the numpy engine), or a torch device (``"cpu"``, ``"cuda"``,
        ``"cuda:N"``) that runs the torch engine there (:mod:`rosetta_core.engine.torch_fold`;
        same algorithm and precision; ``a``, ``b`` may then be tensors on any device, and
        ``workspace`` is not used). The state moves to the device and back for this chunk:
        to fold many chunks on a GPU, use :func:`~rosetta_core.engine.reduction.fold_chunks`
        (or ``comoments``) with ``device``, which keeps it there between chunks.
        """
        if device is not None:
            from .torch_fold import update_on_device

            return update_on_device(self, a, b, device)
        return fold_chunk(self, a, b, workspace)

    def _grid_means_of_running(self) -> dict[tuple[str, int, Grid], np.ndarray]:
        """:meth:`_grid_means` of the running mean maps, kept up to date by :meth:`update`
        (a pass over the float64 maps saved per chunk) and computed when not known."""
        if self._running_grid_means is None:
            self._running_grid_means = self._grid_means(self.mean_a_, self.mean_b_)
        return self._running_grid_means

    def _grid_means_needed(self) -> set[tuple[str, int, Grid]]:
        """``(side, layer, large grid)`` of every layer and grid its pairs use (side ``"a"``
        only when symmetric)."""
        side_b = "a" if self.symmetric else "b"
        need = set()
        for l, m in self.pairs():
            large = self.grids(l, m)[0]
            need |= {("a", l, large), (side_b, m, large)}
        return need

    def _grid_means(self, maps_a, maps_b) -> dict[tuple[str, int, Grid], np.ndarray]:
        """``{(side, layer, large grid): (units,)}`` float64 means of ``maps`` resized to every
        large grid that a pair of theirs uses."""
        need = {"a": [set() for _ in self.shapes_a], "b": [set() for _ in self.shapes_b]}
        for side, idx, large in self._grid_means_needed():
            need[side][idx].add(large)
        out = {}
        for side, maps in (("a", maps_a),) + (() if self.symmetric else (("b", maps_b),)):
            for idx, means in enumerate(grid_means(maps, [sorted(g) for g in need[side]])):
                out.update({(side, idx, g): v for g, v in means.items()})
        return out

    def merge(self, other: "CoMoments") -> "CoMoments":
        """A new accumulator over the images of both (order-independent, exact in float64)."""
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
        out = CoMoments._blank(self.center, self.shapes_a, None if self.symmetric else self.shapes_b)
        da = [m2 - m1 for m1, m2 in zip(self.mean_a_, other.mean_a_)]
        db = da if self.symmetric else [m2 - m1 for m1, m2 in zip(self.mean_b_, other.mean_b_)]
        out.mean_a_ = [m1 + d * (n2 / n) for m1, d in zip(self.mean_a_, da)]
        out.mean_b_ = out.mean_a_ if self.symmetric else [m1 + d * (n2 / n) for m1, d in zip(self.mean_b_, db)]
        out.n_ = n

        def add(key: tuple[int, int]) -> None:
            for mine, theirs, dest in ((self.cross_, other.cross_, out.cross_), (self.m2_a_, other.m2_a_, out.m2_a_),
                                       (self.m2_b_, other.m2_b_, out.m2_b_)):
                dest[key] = mine[key] + theirs[key]

        parallel(add, list(self.cross_))
        # Chan, Golub and LeVeque: correct for the shift between the two sets' means.
        self.centring.merge_terms(out, n1 * n2 / n, da, db)
        return out

    def copy(self) -> "CoMoments":
        return CoMoments.from_state_dict(self.state_dict())

    def describe(self) -> str:
        side_b = "itself" if self.symmetric else f"{len(self.shapes_b)} layers {self.shapes_b}"
        return f"{len(self.shapes_a)} layers {self.shapes_a} against {side_b}, center={self.center!r}"

    # -- results ---------------------------------------------------------------------------
    def _raw_sumsq(self) -> dict[tuple[str, int, Grid], np.ndarray]:
        """``{(side, layer, large grid): (units,)}`` uncentred sums of squares of the maps
        on each grid their pairs use (to judge constancy), each computed once."""
        return self.centring.raw_sumsq(self)

    def _live(self, l: int, m: int, raw: dict) -> tuple[np.ndarray, np.ndarray]:
        large, _ = self.grids(l, m)
        live_a = self.m2_a_[l, m] > CONSTANT_RTOL * (raw["a", l, large] + self.m2_a_[l, m])
        side_b = "a" if self.symmetric else "b"
        live_b = self.m2_b_[l, m] > CONSTANT_RTOL * (raw[side_b, m, large] + self.m2_b_[l, m])
        return live_a, live_b

    def constant_units(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks ``(units of A,)``, ``(units of B,)``: units with zero variance."""
        dead_a = np.zeros(sum(s[0] for s in self.shapes_a), dtype=bool)
        dead_b = np.zeros(sum(s[0] for s in self.shapes_b), dtype=bool)
        off_a, off_b = _offsets(self.shapes_a), _offsets(self.shapes_b)
        raw = self._raw_sumsq()
        for l, m in self.pairs():
            live_a, live_b = self._live(l, m, raw)
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
        raw = self._raw_sumsq()

        def fill(pair: tuple[int, int]) -> None:
            l, m = pair
            live_a, live_b = self._live(l, m, raw)
            sa = np.where(live_a, np.sqrt(np.where(live_a, self.m2_a_[l, m], 1.0)), np.inf)
            sb = np.where(live_b, np.sqrt(np.where(live_b, self.m2_b_[l, m], 1.0)), np.inf)
            block = self.cross_[l, m] / sa[:, None]
            block /= sb[None, :]
            np.clip(block, -1.0, 1.0, out=block)
            if self.symmetric and l == m:
                block = (block + block.T) / 2
                np.fill_diagonal(block, live_a.astype(np.float64))
            table[off_a[l] : off_a[l + 1], off_b[m] : off_b[m + 1]] = block
            if self.symmetric and l != m:
                table[off_b[m] : off_b[m + 1], off_a[l] : off_a[l + 1]] = block.T

        parallel(fill, self.pairs())  # disjoint blocks of one table
        return table

    def unit_stats(self, l: int, m: int) -> dict[str, np.ndarray]:
        """Eq. 1 statistics of both sides of pair ``(l, m)`` on its common grid.

        ``mean_a``/``mean_b``: ``(units,)`` grand means (global) or ``(units, H, W)`` resized
        mean maps (position); ``var_a``/``var_b``: ``(units,)`` variances with ``N - 1``.
        """
        large, _ = self.grids(l, m)
        size = large[0] * large[1]
        count = self.n_ * size
        return {
            "mean_a": self.centring.mean_on_grid(self.mean_a_[l], large),
            "mean_b": self.centring.mean_on_grid(self.mean_b_[m], large),
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


def _shape(x) -> tuple[int, ...]:
    """The shape of an array or tensor (a CUDA tensor has no numpy view)."""
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else np.shape(x)


def _offsets(shapes: Sequence[Shape]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([s[0] for s in shapes])]).astype(np.int64)

"""Centrings: what is subtracted from the maps before their products (DESIGN §3.1-3.2).

``"global"`` (:class:`GlobalCentring`): one mean per unit over images and positions (paper
Eq. 1). ``"position"`` (:class:`PositionCentring`): each position's mean over images. The
names are the public API (``center=`` arguments, the ``"center"`` field of a stored
:meth:`CoMoments.state_dict <rosetta_core.engine.comoments.CoMoments.state_dict>`);
:func:`get_centring` turns a name into its object once, and the engine then asks that object
for the few operations that differ between the two:

- :meth:`Centring.shift_buffers` and :meth:`Centring.piece_shift`: what a chunk's maps are
  centred on while their sums are taken (:class:`rosetta_core.engine.grid_sums.PairSums`);
- :meth:`Centring.chunk_merge`: the mean terms that add a chunk, summed around its own means,
  to an accumulator in place (:func:`rosetta_core.engine.chunk_fold.fold_chunk`);
- :meth:`Centring.merge_terms`: the mean term of merging two accumulators (Chan, Golub and
  LeVeque; :meth:`CoMoments.merge`);
- :meth:`Centring.raw_sumsq` and :meth:`Centring.mean_on_grid`: the uncentred sums of squares
  that judge constancy, and the means that :meth:`CoMoments.unit_stats` reports.

``acc`` below is a :class:`rosetta_core.engine.comoments.CoMoments`; ``Grid`` is ``(h, w)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from .grid_sums import Grid, PairSums, fold_means, resized_mean, resized_sumsq
from .mean_terms import add_global_terms, add_position_term, global_terms, shift_of
from .resize import bilinear_matrix
from .threads import parallel

__all__ = ["CENTERS", "Centring", "ChunkMerge", "GlobalCentring", "PositionCentring", "get_centring"]

PairTerms = Callable[[tuple[int, int]], None]


class ChunkMerge(ABC):
    """The mean terms that add one chunk, whose sums were taken around the chunk's own means,
    to an accumulator in place (made by :meth:`Centring.chunk_merge` for one chunk).

    ``pair_terms``: None, or a function of a layer pair ``(l, m)`` that adds the terms of that
    pair's tables (called right after the chunk's own sums of the pair, while they are in cache).
    :meth:`finish`: after every pair, moves the running mean maps to include the chunk (and
    adds the terms that need the old ones).
    """

    pair_terms: PairTerms | None = None

    def __init__(self, acc, n2: int) -> None:
        self.acc, self.n1, self.n2 = acc, acc.n_, n2
        self.share = n2 / (self.n1 + n2)  # the chunk's share of the images after it
        self.weight = self.n1 * n2 / (self.n1 + n2)  # Chan, Golub and LeVeque's merge weight

    def _fold_means(self, means_a: list[np.ndarray], means_b: list[np.ndarray]) -> None:
        """Running float64 mean maps ``+= share * (chunk's - running)``, in place."""
        fold_means(self.acc.mean_a_, means_a, self.share)
        if not self.acc.symmetric:
            fold_means(self.acc.mean_b_, means_b, self.share)

    @abstractmethod
    def finish(self, means_a: list[np.ndarray], means_b: list[np.ndarray]) -> None:
        """``means_a``/``means_b``: the chunk's float32 mean maps ``(units, h, w)`` per layer."""


class Centring(ABC):
    """The operations that differ between centrings; one stateless instance per centring
    (:func:`get_centring`; a pickled one comes back as that same instance)."""

    #: the public name (``center=...``)
    name = ""

    @abstractmethod
    def shift_buffers(self, means: np.ndarray, larges: list[Grid]) -> tuple[np.ndarray, dict[Grid, np.ndarray]]:
        """Buffers for one layer of a chunk, given its mean-map buffer ``means`` ``(units, h, w)``
        float32: what the maps are centred on (``(units, 1, 1)`` or ``means`` itself), and
        ``{large: (units,) float64}`` for the means resized to the large grids (or ``{}``)."""

    @abstractmethod
    def piece_shift(self, mean: np.ndarray, shift: np.ndarray, grid_means: dict[Grid, np.ndarray]) -> np.ndarray:
        """Given a piece's mean map ``mean`` ``(units, h, w)`` (float32), fill its views of the
        buffers of :meth:`shift_buffers` and return what its maps are centred on."""

    @abstractmethod
    def chunk_merge(self, acc, within: PairSums, n2: int) -> ChunkMerge:
        """The mean terms of adding a chunk of ``n2`` images to ``acc``; ``within``: the
        chunk's :class:`PairSums`, prepared with this centring."""

    @abstractmethod
    def merge_terms(self, out, weight: float, da: list[np.ndarray], db: list[np.ndarray]) -> None:
        """Add to ``out`` (holding the summed moments of two accumulators) the mean term of
        their merge: ``weight * sum resize(da) * resize(db)`` centred as this centring does.
        ``da``/``db``: per layer ``(units, h, w)`` float64 differences of the two mean maps."""

    @abstractmethod
    def raw_sumsq(self, acc) -> dict[tuple[str, int, Grid], np.ndarray]:
        """``{(side, layer, large): (units,)}``: what the centred sums of squares of ``acc`` are
        judged against (the part that centring removed), on each grid its pairs use."""

    @abstractmethod
    def mean_on_grid(self, maps: np.ndarray, large: Grid) -> np.ndarray:
        """The mean that a unit's maps ``(units, h, w)`` are centred on, on grid ``large``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce__(self):
        return get_centring, (self.name,)


class _GlobalChunk(ChunkMerge):
    """Global centring: the chunk's sums are taken around one value per unit (its mean map's
    mean on the unit's own grid); one mean term, weight ``-n2``, moves them to each pair grid's
    grand mean, and a second, weight ``n1 * n2 / n``, merges them with the images seen so far.
    Only per-unit means over each pair grid enter (resizing keeps a constant map constant, so
    the grid mean of ``mean - shift`` is the grid mean minus the shift)."""

    def __init__(self, acc, within: PairSums, n2: int) -> None:
        super().__init__(acc, n2)
        shift_a = within.shifts("a")
        shift_b = shift_a if acc.symmetric else within.shifts("b")
        self.chunk = within.grid_means()
        terms = [(-float(n2), {k: g - shift_of(k, shift_a, shift_b) for k, g in self.chunk.items()})]
        if self.n1:
            self.old = acc._grid_means_of_running()
            terms.append((self.weight, {k: self.chunk[k] - self.old[k] for k in self.chunk}))
        self.pair_terms = global_terms(acc, terms)

    def finish(self, means_a, means_b) -> None:
        self._fold_means(means_a, means_b)
        # the grid means are linear in the maps: they follow the same fold
        chunk, share = self.chunk, self.share
        self.acc._running_grid_means = (
            chunk if not self.n1 else {k: self.old[k] + share * (chunk[k] - self.old[k]) for k in chunk}
        )


class _PositionChunk(ChunkMerge):
    """Position centring: the chunk's sums are taken around its mean maps; one mean term,
    ``n1 * n2 / n * sum resize(old - chunk's) * resize(old - chunk's)``, merges them with the
    images seen so far."""

    def finish(self, means_a, means_b) -> None:
        acc = self.acc
        if self.n1:
            da = parallel(lambda pair: pair[1] - pair[0], list(zip(acc.mean_a_, means_a)))
            db = da if acc.symmetric else parallel(lambda pair: pair[1] - pair[0], list(zip(acc.mean_b_, means_b)))
        self._fold_means(means_a, means_b)
        if self.n1:
            add_position_term(acc, self.weight, da, db)


class GlobalCentring(Centring):
    """``"global"``: one mean per unit over images and positions of its maps resized to the
    pair's grid (paper Eq. 1)."""

    name = "global"

    def shift_buffers(self, means, larges):
        u = means.shape[0]
        return np.empty((u, 1, 1), dtype=np.float32), {g: np.empty(u) for g in larges}

    def piece_shift(self, mean, shift, grid_means):
        np.mean(mean, axis=(1, 2), keepdims=True, out=shift)
        for g, out in grid_means.items():
            out[...] = resized_mean(mean, g)
        return shift

    def chunk_merge(self, acc, within, n2):
        return _GlobalChunk(acc, within, n2)

    def merge_terms(self, out, weight, da, db):
        add_global_terms(out, [(weight, out._grid_means(da, db))])

    def raw_sumsq(self, acc):
        means = acc._grid_means_of_running()
        return {key: acc.n_ * key[2][0] * key[2][1] * mean**2 for key, mean in means.items()}

    def mean_on_grid(self, maps, large):
        """``(units,)`` float64 grand means of ``maps`` resized to ``large``."""
        return resized_mean(maps, large)


class PositionCentring(Centring):
    """``"position"``: each position's mean over images (of the maps resized to the pair's
    grid) is subtracted first."""

    name = "position"

    def shift_buffers(self, means, larges):
        return means, {}

    def piece_shift(self, mean, shift, grid_means):
        return mean

    def chunk_merge(self, acc, within, n2):
        return _PositionChunk(acc, n2)

    def merge_terms(self, out, weight, da, db):
        add_position_term(out, weight, da, db)

    def raw_sumsq(self, acc):
        keys = sorted(acc._grid_means_needed())
        maps = {"a": acc.mean_a_, "b": acc.mean_b_}
        sums = parallel(lambda key: acc.n_ * resized_sumsq(maps[key[0]][key[1]][None], key[2]), keys)
        return dict(zip(keys, sums))

    def mean_on_grid(self, maps, large):
        """``(units, H, W)`` float64: ``maps`` resized to ``large``."""
        _, h, w = maps.shape
        return bilinear_matrix(h, large[0]) @ maps @ bilinear_matrix(w, large[1]).T


CENTRINGS: dict[str, Centring] = {c.name: c for c in (GlobalCentring(), PositionCentring())}
#: the centring names, as ``center=`` takes them
CENTERS = tuple(CENTRINGS)


def get_centring(center: str) -> Centring:
    """The centring object of name ``center`` (one of :data:`CENTERS`)."""
    try:
        return CENTRINGS[center]
    except (KeyError, TypeError):
        raise ValueError(f"center={center!r} is not supported; valid: {', '.join(CENTERS)}") from None

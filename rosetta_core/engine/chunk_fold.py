"""Adding one chunk of images to a :class:`rosetta_core.engine.comoments.CoMoments` in place
(:meth:`CoMoments.update`): the chunk's sums around its own means, then the mean terms
(Chan, Golub and LeVeque) that merge them with the images seen so far; and the error for a
chunk with NaN or inf (:class:`NonFiniteChunk`)."""

from __future__ import annotations

import threading

import numpy as np

from .grid_sums import PairSums
from .threads import parallel


class NonFiniteChunk(ValueError):
    """A chunk given to :meth:`CoMoments.update` (or ``from_chunk``) holds NaN or inf values.

    ``side`` (``"a"`` or ``"b"``), ``layer`` (index) and ``images`` (indices within the chunk,
    at most five) say where; callers re-raise it with their own names for the layer."""

    def __init__(self, side: str, layer: int, images: list[int]) -> None:
        self.side, self.layer, self.images = side, layer, images
        super().__init__(f"layer {layer} of {side} has non-finite values (NaN or inf) in images {images} of the chunk")


def fold_chunk(acc, a, b, workspace):
    """The work of ``acc.update(a, b, workspace)`` (see there); returns ``acc``.

    ``a``, ``b``: per layer ``(n, units, h, w)`` (``b=None`` for a self accumulator);
    ``workspace``: a :class:`rosetta_core.engine.grid_sums.Workspace` or None."""
    a = [np.asarray(x, dtype=np.float32) for x in a]
    b = None if b is None else [np.asarray(x, dtype=np.float32) for x in b]
    got_a, got_b = [x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b]
    if got_a != acc.shapes_a or (got_b is None) != acc.symmetric or (b is not None and got_b != acc.shapes_b):
        raise ValueError(f"a chunk of layers {got_a} against {got_b} does not fit {acc.describe()}")
    n2 = a[0].shape[0]
    if n2 == 0:  # an empty chunk (e.g. a zero-length dask chunk) adds nothing
        return acc
    # Sums over the chunk are taken around its means (what exactly: the centring's), then
    # the centring's mean terms (Chan, Golub and LeVeque) merge them with the images seen so
    # far. The means (float32 sums over the chunk's images) are taken piece by piece right
    # before each piece's products (same task), and also find NaN or inf: any makes its mean
    # map non-finite.
    within = PairSums(a, b, acc._pair_grids(), centring=acc.centring)
    within.prepare(workspace=workspace)
    means_a = within.means("a")
    means_b = means_a if b is None else within.means("b")
    for side, means, maps in (("a", means_a, a), ("b", [] if b is None else means_b, b)):
        for i, mu in enumerate(means):
            if not np.isfinite(mu).all():
                bad = np.flatnonzero(~np.isfinite(maps[i]).reshape(n2, -1).all(axis=1))
                if bad.size:  # else huge finite values overflowed the sum: let them through
                    raise NonFiniteChunk(side, i, [int(k) for k in bad[:5]])
    merge = acc.centring.chunk_merge(acc, within, n2)
    add_terms = merge.pair_terms

    # Each thread's float32 products go into one buffer of its own, then into the float64
    # tables (fresh arrays per pair would fault in new pages every chunk); the mean terms
    # follow while the table is still in cache.
    largest = max(table.size for table in acc.cross_.values())
    buffers: dict[int, np.ndarray] = {}

    def add_sums(pair: tuple[int, int]) -> None:
        l, m = pair
        large, small = acc.grids(l, m)
        table = acc.cross_[l, m]
        buf = buffers.get(threading.get_ident())
        if buf is None:
            buf = buffers[threading.get_ident()] = np.empty(largest, dtype=np.float32)
        np.add(table, within.cross(l, m, small, out=buf[: table.size].reshape(table.shape)), out=table)
        acc.m2_a_[l, m] += within.sumsq("a", l, large)
        acc.m2_b_[l, m] += within.sumsq("b", m, large)
        if add_terms is not None:
            add_terms(pair)

    parallel(add_sums, acc._largest_first())
    within = None  # the chunk's sums are done with
    merge.finish(means_a, means_b)  # running means move to the chunk's, in place
    acc.n_ += n2
    return acc

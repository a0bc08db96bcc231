"""Sums over resized maps, computed on the original (small) grids.

All functions take maps ``x`` of shape ``(n, units, h, w)`` and a target grid ``(H, W)`` with
``H >= h`` and ``W >= w`` (the elementwise-larger grid of a layer pair), and return sums over
images and target positions of the bilinearly resized maps (DESIGN §3.1) without building them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .resize import bilinear_matrix, column_sums
from .resized_squares import NeighbourProducts
from .threads import parallel

if TYPE_CHECKING:
    from .centring import Centring

Grid = tuple[int, int]


def pair_grids(shape_a: tuple[int, int, int], shape_b: tuple[int, int, int]) -> tuple[Grid, Grid]:
    """``(large, small)`` grids of a layer pair from their ``(units, h, w)`` shapes."""
    (_, ha, wa), (_, hb, wb) = shape_a, shape_b
    return (max(ha, hb), max(wa, wb)), (min(ha, hb), min(wa, wb))


#: images are processed in blocks of about this many bytes, so temporaries stay small and reused
BLOCK_BYTES = 2**20
#: at most this many images per block: float32 sums over images within a block stay short
MAX_BLOCK_IMAGES = 64
#: :meth:`PairSums.prepare` hands out layers in pieces of units of about this many input bytes
TASK_BYTES = 2**23


def _as(mat: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mat.astype(like.dtype, copy=False)


def _blocks(x: np.ndarray):
    """``(images, units)`` slices of ``x`` ``(n, u, h, w)`` holding about ``BLOCK_BYTES`` each.

    Small blocks keep each one in cache while it goes through all of its products. A block
    takes as many images as fit first: sums over images then happen inside the block.
    """
    n, u = x.shape[:2]
    per_map = max(x[:1, :1].nbytes, 1)
    images = min(n, MAX_BLOCK_IMAGES, max(1, BLOCK_BYTES // per_map))
    units = max(1, BLOCK_BYTES // (per_map * images))
    for t in range(0, u, units):
        for s in range(0, n, images):
            yield slice(s, min(s + images, n)), slice(t, min(t + units, u))


def _stacked(mats: list[np.ndarray], like: np.ndarray) -> np.ndarray | None:
    return np.hstack(mats).astype(like.dtype) if mats else None


def _split_w(d: np.ndarray, stacked: np.ndarray | None, widths: list[int | None]) -> list[np.ndarray]:
    """Per grid, ``d`` ``(b, u, h, w)`` multiplied along ``w`` by that grid's matrix.

    ``stacked`` holds, side by side, the matrices of the grids whose ``widths`` entry is not
    None (that entry is the matrix's width); a grid whose entry is None gets ``d`` itself.
    """
    b, u, h, w = d.shape
    prod = None if stacked is None else (d.reshape(-1, w) @ stacked).reshape(b, u, h, -1)
    out, offset = [], 0
    for width in widths:
        if width is None:
            out.append(d)
        else:
            out.append(prod[..., offset : offset + width])
            offset += width
    return out


def layer_sums(
    x: np.ndarray,
    smalls: list[Grid],
    larges: list[Grid],
    center: np.ndarray | None = None,
) -> tuple[dict[Grid, np.ndarray], dict[Grid, np.ndarray]]:
    """Projections and squared sums of one layer for several grids, in one pass over ``x``.

    ``x`` ``(n, u, h, w)``; ``center`` ``(u, h, w)`` is subtracted from every image first.
    Returns ``({small: (u, n * hs * ws)}, {large: (u,) float64})``:

    - the projection onto each small grid: along an axis where ``x`` is the larger map,
      multiply by the transpose of the small map's resize matrix, else keep the axis. For
      two layers of a pair, ``proj_a @ proj_b.T`` sums ``resize(A) * resize(B)`` over images
      and the pair's common grid, for every unit pair;
    - the sum of squares of the maps resized to each large grid, from products of neighbouring
      values (see :class:`rosetta_core.engine.resized_squares.NeighbourProducts`), accumulated in float64.

    Images go through in blocks of about ``BLOCK_BYTES``, so each block is read from memory
    once for all grids.
    """
    projections, sumsq = _layer_outputs(x, smalls, larges)
    _fill_layer(x, smalls, larges, center, projections, sumsq)
    return _finished(projections), sumsq


def _projection_size(x: np.ndarray, smalls: list[Grid]) -> int:
    n, u = x.shape[:2]
    return sum(u * n * hs * ws for hs, ws in smalls)


def _layer_outputs(x: np.ndarray, smalls: list[Grid], larges: list[Grid], flat: np.ndarray | None = None) -> tuple[dict, dict]:
    """Empty projections ``{small: (u, n, hs, ws)}`` (views into ``flat`` when given, which
    holds :func:`_projection_size` values of ``x``'s dtype) and zero squared sums."""
    n, u = x.shape[:2]
    if flat is None:
        flat = np.empty(_projection_size(x, smalls), dtype=x.dtype)
    projections, offset = {}, 0
    for hs, ws in smalls:
        size = u * n * hs * ws
        projections[hs, ws] = flat[offset : offset + size].reshape(u, n, hs, ws)
        offset += size
    return projections, {g: np.zeros(u) for g in larges}


def _finished(projections: dict) -> dict:
    return {g: p.reshape(p.shape[0], -1) for g, p in projections.items()}


def _fill_layer(x, smalls, larges, center, projections, sumsq) -> None:
    """The work of :func:`layer_sums` into given outputs (all of ``x``'s units, or views of
    the rows of a slice of units)."""
    h, w = x.shape[2:]
    # Along w, the matrices of every grid are stacked side by side: one product per block.
    w_proj = _stacked([bilinear_matrix(ws, w) for _, ws in smalls if ws != w], x)
    h_proj = {hs: _as(bilinear_matrix(hs, h).T, x) for hs, _ in smalls if hs != h}
    squares = NeighbourProducts(x.shape[1:], larges)
    for images, units in _blocks(x):
        d = x[images, units] if center is None else x[images, units] - center[units]
        by_w = _split_w(d, w_proj, [None if ws == w else ws for _, ws in smalls])
        for (hs, ws), y in zip(smalls, by_w):
            if hs != h:
                y = np.matmul(h_proj[hs], y)  # (hs, h) @ (h, ws) per map
            projections[hs, ws][units, images] = y.transpose(1, 0, 2, 3)
        squares.add(d, units)
    squares.finish(sumsq)


def resized_sum(x: np.ndarray, large: Grid) -> np.ndarray:
    """``(u,)`` float64: sum over images and target positions of the resized maps."""
    n, u, h, w = x.shape
    weights = np.outer(column_sums(h, large[0]), column_sums(w, large[1])).ravel()
    # a matrix-vector product (BLAS): about twice as fast as the same einsum
    return (x.astype(np.float64, copy=False).reshape(n * u, h * w) @ weights).reshape(n, u).sum(axis=0)


def resized_mean(maps: np.ndarray, large: Grid) -> np.ndarray:
    """``(u,)`` float64: the mean over ``large`` of each map ``(u, h, w)`` resized to it."""
    return resized_sum(maps[None], large) / (large[0] * large[1])


def _unit_pieces(layers: list[np.ndarray], piece_bytes: int) -> list[tuple[int, slice]]:
    """``(layer, units)`` pieces of about ``piece_bytes`` of each layer (units on axis 1)."""
    pieces = []
    for i, x in enumerate(layers):
        step = max(1, x.shape[1] * piece_bytes // max(x.nbytes, 1))
        pieces += [(i, slice(s, s + step)) for s in range(0, x.shape[1], step)]
    return pieces


def grid_means(maps: list[np.ndarray], larges: list[list[Grid]]) -> list[dict[Grid, np.ndarray]]:
    """Per layer's maps ``(u, h, w)`` (any float dtype), ``{large: (u,) float64}``: the mean
    of each map resized to each of ``larges[layer]``, in float64, in small pieces of units
    (so no full float64 copy of a large map is made) run several at a time."""
    out = [{g: np.empty(x.shape[0]) for g in grids} for x, grids in zip(maps, larges)]

    def run(piece) -> None:
        i, units = piece
        for g in larges[i]:
            out[i][g][units] = resized_mean(maps[i][units], g)

    parallel(run, _unit_pieces([x[None] for x in maps], BLOCK_BYTES))
    return out


def fold_means(running: list[np.ndarray], chunk: list[np.ndarray], share: float) -> None:
    """``running += share * (chunk - running)`` in place for float64 ``running`` maps and
    float32 ``chunk`` maps, in small pieces of units run several at a time."""

    def run(piece) -> None:
        i, units = piece
        target = running[i][units]
        if share == 1.0:
            target[...] = chunk[i][units]
        else:
            target *= 1.0 - share
            target += share * chunk[i][units].astype(np.float64)

    parallel(run, _unit_pieces([x[None] for x in running], BLOCK_BYTES))


class Workspace:
    """Scratch memory reused by the chunks of one fold: one flat buffer, handed out again and
    again, that holds a chunk's projections onto the small grids (``(units, n, hs, ws)`` per
    layer and grid, in the maps' dtype, float32 from :class:`CoMoments`). Fresh arrays would
    fault in new pages for every chunk.

    Give one to :meth:`CoMoments.update <rosetta_core.engine.comoments.CoMoments.update>` for
    every chunk of a running fold (it grows to the largest chunk and stays); it is optional
    (without one, each chunk takes fresh memory), and one workspace serves one fold at a time
    (not thread-safe).
    """

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def take(self, size: int, dtype=np.float32) -> np.ndarray:
        """An array of ``size`` values of ``dtype`` (old contents, if any, are overwritten)."""
        dtype = np.dtype(dtype)
        if self._buf is None or self._buf.dtype != dtype or self._buf.size < size:
            self._buf = None  # release the old one first
            self._buf = np.empty(size, dtype=dtype)
        return self._buf[:size]


class PairSums:
    """Sums over resized maps for every layer pair of two sets of layers.

    ``a``, ``b``: per layer ``(n, units, h, w)`` maps; ``b=None`` reuses ``a`` (self pairs).
    ``pairs``: the ``(l, m, large, small)`` layer pairs that will be asked for.
    ``centring``: None (the maps as they are), or a
    :class:`~rosetta_core.engine.centring.Centring`: each layer is centred on its own mean over
    images first (one value per unit, or per unit and position: see
    :meth:`~rosetta_core.engine.centring.Centring.piece_shift`), found by :meth:`prepare` piece
    by piece (see :meth:`means`). Each layer is
    read once for all the grids its pairs need; layers of the other model on the same grid
    share them.
    """

    def __init__(self, a, b, pairs, centring: "Centring | None" = None) -> None:
        self._same = b is None
        self._maps = {"a": a, "b": a if b is None else b}
        self._centring = centring
        self._needs: dict[tuple[str, int], tuple[set, set]] = {}
        for l, m, large, small in pairs:
            for side, idx in (("a", l), ("b", m)):
                smalls, larges = self._needs.setdefault(self._key(side, idx), (set(), set()))
                smalls.add(small)
                larges.add(large)
        self._done: dict[tuple[str, int], tuple[dict, dict]] = {}
        self._means: dict[tuple[str, int], np.ndarray] = {}
        self._shifts: dict[tuple[str, int], np.ndarray] = {}
        self._grid_means: dict[tuple[str, int], dict[Grid, np.ndarray]] = {}

    def _key(self, side: str, idx: int) -> tuple[str, int]:
        return ("a" if self._same else side, idx)

    def _layer(self, side: str, idx: int) -> tuple[dict, dict]:
        key = self._key(side, idx)
        if key not in self._done:
            self.prepare(keys=[key])
        return self._done[key]

    def prepare(self, workers: int | None = None, workspace: "Workspace | None" = None, keys=None) -> None:
        """Compute every needed layer now (or those of ``keys``), in pieces of units run
        several at a time (see :func:`~rosetta_core.engine.threads.parallel`); a large layer is split so that no one piece
        holds up the rest. With ``centring``, a piece's mean over images is taken right
        before its products, which then read its maps from cache (and threads at different
        stages overlap memory-bound means with compute-bound products). The projections of all layers
        go into one buffer, taken from ``workspace`` when given (a caller reducing chunk after
        chunk then reuses the same memory)."""
        todo = [key for key in (self._needs if keys is None else keys) if key not in self._done]
        sizes = [_projection_size(self._maps[key[0]][key[1]], self._needs[key][0]) for key in todo]
        dtypes = {self._maps[key[0]][key[1]].dtype for key in todo}
        # one buffer when the layers share a dtype (always, from CoMoments); else one per layer
        flat = (workspace or Workspace()).take(sum(sizes), dtypes.pop()) if len(dtypes) == 1 else None
        outputs, pieces, offset = {}, [], 0
        for key, size in zip(todo, sizes):
            x = self._maps[key[0]][key[1]]
            smalls, larges = (sorted(v) for v in self._needs[key])
            outputs[key] = _layer_outputs(x, smalls, larges, None if flat is None else flat[offset : offset + size])
            offset += size
            if self._centring is not None:
                self._start_means(key, x, larges)
            pieces += [(key, units) for _, units in _unit_pieces([x], TASK_BYTES)]
        pieces.sort(key=lambda piece: -self._maps[piece[0][0]][piece[0][1]][:, piece[1]].nbytes)

        def run(piece) -> None:
            key, units = piece
            x = self._maps[key[0]][key[1]][:, units]
            smalls, larges = (sorted(v) for v in self._needs[key])
            center = None if self._centring is None else self._piece_means(key, units, x)
            projections, sumsq = outputs[key]
            outs = {g: p[units] for g, p in projections.items()}, {g: q[units] for g, q in sumsq.items()}
            if self._centring is None:
                _fill_layer(x, smalls, larges, center, *outs)
                return
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf: the caller checks the means
                _fill_layer(x, smalls, larges, center, *outs)

        parallel(run, pieces, workers)
        for key, (projections, sumsq) in outputs.items():
            self._done[key] = (_finished(projections), sumsq)

    def _start_means(self, key, x: np.ndarray, larges: list[Grid]) -> None:
        self._means[key] = np.empty(x.shape[1:], dtype=np.float32)
        self._shifts[key], self._grid_means[key] = self._centring.shift_buffers(self._means[key], larges)

    def _piece_means(self, key, units: slice, x: np.ndarray) -> np.ndarray:
        """Mean map of a piece (float32 sums over images) and what the centring centres the
        piece on (under global centring also its means resized to each large grid, float64)."""
        mean = self._means[key][units]
        with np.errstate(invalid="ignore", over="ignore"):
            np.mean(x, axis=0, out=mean)
            grid_means = {g: v[units] for g, v in self._grid_means[key].items()}
            return self._centring.piece_shift(mean, self._shifts[key][units], grid_means)

    def means(self, side: str) -> list[np.ndarray]:
        """After :meth:`prepare` with a ``centring``: per layer of ``side``, the mean map over
        images ``(units, h, w)`` (float32 sums; NaN or inf where the maps hold any)."""
        return [self._means[self._key(side, i)] for i in range(len(self._maps[side]))]

    def shifts(self, side: str) -> list[np.ndarray]:
        """What each layer of ``side`` was centred on: ``(units, 1, 1)`` per-unit means of the
        mean maps (global) or the mean maps themselves (position)."""
        return [self._shifts[self._key(side, i)] for i in range(len(self._maps[side]))]

    def grid_means(self) -> dict[tuple[str, int, Grid], np.ndarray]:
        """Under global centring: ``{(side, layer, large): (units,)}`` float64 means of the mean
        maps resized to each large grid the layer's pairs use (side ``"a"`` only for self pairs);
        ``{}`` under position centring."""
        return {(key[0], key[1], g): v for key, grids in self._grid_means.items() for g, v in grids.items()}

    def cross(self, l: int, m: int, small: Grid, out: np.ndarray | None = None) -> np.ndarray:
        """``(units_l, units_m)``: sums of products of resized maps of layers ``l`` and ``m``."""
        return np.matmul(self._layer("a", l)[0][small], self._layer("b", m)[0][small].T, out=out)

    def sumsq(self, side: str, idx: int, large: Grid) -> np.ndarray:
        return self._layer(side, idx)[1][large]


def resized_sumsq(x: np.ndarray, large: Grid) -> np.ndarray:
    """``(u,)`` float64: sum over images and target positions of the squared resized maps."""
    return layer_sums(x, [], [large])[1][large]

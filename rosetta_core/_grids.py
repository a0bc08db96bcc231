"""Sums over resized maps, computed on the original (small) grids.

All functions take maps ``x`` of shape ``(n, units, h, w)`` and a target grid ``(H, W)`` with
``H >= h`` and ``W >= w`` (the elementwise-larger grid of a layer pair), and return sums over
images and target positions of the bilinearly resized maps (DESIGN §3.1) without building them.
"""

from __future__ import annotations

import numpy as np

from .resize import bilinear_matrix, column_sums, gram

Grid = tuple[int, int]


def pair_grids(shape_a: tuple[int, int, int], shape_b: tuple[int, int, int]) -> tuple[Grid, Grid]:
    """``(large, small)`` grids of a layer pair from their ``(units, h, w)`` shapes."""
    (_, ha, wa), (_, hb, wb) = shape_a, shape_b
    return (max(ha, hb), max(wa, wb)), (min(ha, hb), min(wa, wb))


def _as(mat: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mat.astype(like.dtype, copy=False)


def project(x: np.ndarray, small: Grid) -> np.ndarray:
    """Project maps onto the pair's small grid; ``(n, u, h, w) -> (u, n * hs * ws)``.

    Along an axis where ``x`` is the larger map, multiply by the transpose of the small map's
    resize matrix; along an axis where it is already the small one, keep it. For two maps
    ``A``, ``B`` of a pair, ``project(A) @ project(B).T`` is the sum over images and target
    positions of ``resize(A) * resize(B)`` for every unit pair.
    """
    n, u, h, w = x.shape
    hs, ws = small
    if w != ws:
        x = (x.reshape(-1, w) @ _as(bilinear_matrix(ws, w), x)).reshape(n, u, h, ws)
    if h != hs:
        x = np.matmul(_as(bilinear_matrix(hs, h).T, x), x)
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(u, -1)


def resized_sum(x: np.ndarray, large: Grid) -> np.ndarray:
    """``(u,)`` float64: sum over images and target positions of the resized maps."""
    _, _, h, w = x.shape
    weights = np.outer(column_sums(h, large[0]), column_sums(w, large[1]))
    return np.einsum("nuhw,hw->u", x.astype(np.float64, copy=False), weights)


def resized_sumsq(x: np.ndarray, large: Grid) -> np.ndarray:
    """``(u,)`` float64: sum over images and target positions of the squared resized maps."""
    _, _, h, w = x.shape
    y = x
    if w != large[1]:
        y = y @ _as(gram(w, large[1]), x)
    if h != large[0]:
        y = np.matmul(_as(gram(h, large[0]), x), y)
    return np.multiply(x, y).sum(axis=(0, 2, 3), dtype=np.float64)

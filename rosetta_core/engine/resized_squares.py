"""Sums of squares of maps resized to larger grids, from products of neighbouring values.

Used by :mod:`rosetta_core.engine.grid_sums` for every layer whose pairs compare it on a larger grid.
"""

from __future__ import annotations

import numpy as np

from .resize import gram_bands

#: maps with at least this many positions get their sums of squares from BLAS dot products
DOT_POSITIONS = 2**14


class NeighbourProducts:
    """Sums of squares of one layer's maps resized to several larger grids.

    ``sum(resize(d)**2) = sum(d * (G_h @ d @ G_w))`` with the Gram matrices ``G = R.T @ R`` of
    the resize matrices, which are tridiagonal (:func:`gram_bands`). So every grid's sum is a
    weighted sum of four maps that do not depend on the grid: ``d * d`` and the products of
    each value with its right, lower and diagonal neighbours, summed over images (float32
    within a block, float64 across blocks). The products are taken on the flattened map, with
    the next value, the one ``w`` later and those ``w + 1`` and ``w - 1`` later (contiguous,
    so fast); the pairs that wrap around a row get weight 0. A grid equal to the layer's own
    needs ``d * d`` only, summed straight to one value per unit.
    """

    def __init__(self, shape: tuple[int, int, int], larges: list[tuple[int, int]]) -> None:
        u, h, w = shape
        self.shape = (h, w)
        self.own = [g for g in larges if g == (h, w)]
        self.resized = [g for g in larges if g != (h, w)]
        self.plain = np.zeros(u)
        size = h * w
        self.maps = {}
        if self.resized:
            self.maps["same"] = np.zeros((u, size))
        if any(big_w != w for _, big_w in self.resized):
            self.maps["right"] = np.zeros((u, size - 1))
        if any(big_h != h for big_h, _ in self.resized):
            self.maps["down"] = np.zeros((u, size - w))
        if any(big_h != h and big_w != w for big_h, big_w in self.resized):
            self.maps["diagonal"] = np.zeros((u, max(size - w - 1, 0)))

    def add(self, d: np.ndarray, units: slice) -> None:
        """Accumulate one block ``d`` ``(images, units, h, w)`` (already centred)."""
        h, w = self.shape
        flat = d.reshape(d.shape[0], d.shape[1], h * w)
        size = h * w

        def products(first: slice, second: slice) -> np.ndarray:
            return np.einsum("bux,bux->ux", flat[..., first], flat[..., second])

        if "same" in self.maps:
            self.maps["same"][units] += products(slice(None), slice(None))
        elif self.own:
            self.plain[units] += _sums_of_squares(flat)
        if "right" in self.maps:
            self.maps["right"][units] += products(slice(0, size - 1), slice(1, size))
        if "down" in self.maps:
            self.maps["down"][units] += products(slice(0, size - w), slice(w, size))
        if "diagonal" in self.maps and size - w - 1 > 0:
            self.maps["diagonal"][units] += products(slice(0, size - w - 1), slice(w + 1, size))
            self.maps["diagonal"][units] += products(slice(1, size - w), slice(w, size - 1))

    def finish(self, sumsq: dict) -> None:
        """Add each grid's sums ``(units,)`` into ``sumsq[grid]``."""
        if "same" in self.maps:
            self.plain = self.maps["same"].sum(axis=1)
        for grid in self.own:
            sumsq[grid] += self.plain
        h, w = self.shape
        for big_h, big_w in self.resized:
            diag_h, off_h = gram_bands(h, big_h)
            diag_w, off_w = gram_bands(w, big_w)
            # off-diagonals padded with a 0 at the end: that weight masks the pairs that wrap
            off_h, off_w = np.append(off_h, 0.0), np.append(off_w, 0.0)
            total = _weighted(self.maps["same"], diag_h, diag_w)
            if big_w != w:
                total += 2 * _weighted(self.maps["right"], diag_h, off_w)
            if big_h != h:
                total += 2 * _weighted(self.maps["down"], off_h, diag_w)
            if big_h != h and big_w != w:
                total += 2 * _weighted(self.maps["diagonal"], off_h, off_w)
            sumsq[big_h, big_w] += total


def _sums_of_squares(flat: np.ndarray) -> np.ndarray:
    """``(u,)`` sums over images and positions of ``flat`` ``(b, u, x)`` squared. Long maps go
    through BLAS dot products (in cache, about 2.5x faster than ``einsum`` here)."""
    if flat.shape[2] < DOT_POSITIONS:
        return np.einsum("bux,bux->u", flat, flat)
    out = np.zeros(flat.shape[1])
    for k in range(flat.shape[1]):
        out[k] = sum(float(np.dot(row, row)) for row in flat[:, k])
    return out


def _weighted(maps: np.ndarray, along_h: np.ndarray, along_w: np.ndarray) -> np.ndarray:
    """``(u,)``: ``sum_x maps[u, x] * weight[x]`` in float64 with the flattened weights
    ``outer(along_h, along_w)`` cut to the ``x`` that ``maps`` holds."""
    weights = np.outer(along_h, along_w).ravel()[: maps.shape[1]]
    return maps @ weights

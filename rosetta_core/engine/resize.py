"""Bilinear resizing as small matrices.

``torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)``
is linear and separable: for a map ``A`` of shape ``(h, w)`` it equals ``R_h @ A @ R_w.T`` with
``R_h = bilinear_matrix(h, H)`` of shape ``(H, h)`` and ``R_w = bilinear_matrix(w, W)``.
Everything the correlation engine needs (projections, column sums, Gram matrices) is derived
from these matrices, so resized maps are never built.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["bilinear_matrix", "column_sums", "gram", "gram_bands"]


def _readonly(x: np.ndarray) -> np.ndarray:
    x.setflags(write=False)
    return x


@lru_cache(maxsize=512)
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``(n_out, n_in)`` of 1-d bilinear interpolation, ``align_corners=False``.

    Reproduces PyTorch's source-index rule: ``src = (dst + 0.5) * n_in / n_out - 0.5``, clamped
    at 0 below, neighbours ``floor(src)`` and ``min(floor(src) + 1, n_in - 1)``. Rows sum to 1.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"grid sizes must be >= 1, got n_in={n_in}, n_out={n_out}")
    if n_in == n_out:
        return _readonly(np.eye(n_in))
    scale = n_in / n_out
    dst = np.arange(n_out, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(mat, (rows, i0), 1.0 - frac)
    np.add.at(mat, (rows, i1), frac)
    return _readonly(mat)


@lru_cache(maxsize=512)
def column_sums(n_in: int, n_out: int) -> np.ndarray:
    """``(n_in,)``: how much each source row contributes to the sum of the resized axis."""
    return _readonly(bilinear_matrix(n_in, n_out).sum(axis=0))


@lru_cache(maxsize=512)
def gram(n_in: int, n_out: int) -> np.ndarray:
    """``(n_in, n_in)`` Gram matrix ``R.T @ R``: sums of squares of resized maps."""
    r = bilinear_matrix(n_in, n_out)
    return _readonly(r.T @ r)


@lru_cache(maxsize=512)
def gram_bands(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(diagonal (n_in,), off-diagonal (n_in - 1,))`` of :func:`gram`, which is tridiagonal:
    each row of the resize matrix touches two neighbouring source rows only, so
    ``(R.T @ R)[i, k] = 0`` for ``|i - k| > 1``. Sums of squares of resized maps then need only
    products of each value with its right, lower and two diagonal neighbours."""
    g = gram(n_in, n_out)
    diag, off = np.diagonal(g).copy(), np.diagonal(g, 1).copy()
    rest = g - np.diag(diag) - np.diag(off, 1) - np.diag(off, -1)
    if np.any(rest != 0):  # cannot happen for bilinear matrices; guards a change of the rule
        raise ValueError(f"gram({n_in}, {n_out}) is not tridiagonal")
    return _readonly(diag), _readonly(off)

"""Sums over resized maps on a torch device: the torch engine's counterpart of
:mod:`rosetta_core.engine.grid_sums` and :mod:`rosetta_core.engine.resized_squares`, with the
same maths (DESIGN §3.1) and the same grids, written for large batched kernels instead of
cache-sized blocks.

Maps are float32 tensors ``(n, units, h, w)``; a target grid ``(H, W)`` has ``H >= h`` and
``W >= w``. Precision (see :mod:`rosetta_core.engine.torch_fold`), as in the numpy engine:
float32 products (matrix products in IEEE float32, never TF32); squared maps summed in float32
over at most ``MAX_BLOCK_IMAGES`` images and in float64 beyond; the projections' sums over
images and positions happen in the float32 matrix product of the cross moments.
"""

from __future__ import annotations

from typing import Any

from .devices import device_matrix
from .grid_sums import MAX_BLOCK_IMAGES

Grid = tuple[int, int]


def projections(d, smalls: list[Grid]) -> dict[Grid, Any]:
    """``{small: (u, n * hs * ws) float32}``: ``d`` ``(n, u, h, w)`` projected onto each small
    grid (along an axis where ``d`` is larger, multiplied by the transpose of the small map's
    resize matrix; else kept), laid out so that ``proj_a @ proj_b.T`` sums
    ``resize(A) * resize(B)`` over images and the pair's grid for every unit pair."""
    n, u, h, w = d.shape
    by_width = {}
    for ws in sorted({ws for _, ws in smalls}):
        by_width[ws] = d if ws == w else d @ device_matrix("resize", ws, w, d.device, d.dtype)
    out = {}
    for hs, ws in smalls:
        y = by_width[ws]
        if hs != h:  # (hs, h) @ (h, ws) per map
            y = device_matrix("resize", hs, h, d.device, d.dtype).T @ y
        out[hs, ws] = y.transpose(0, 1).reshape(u, n * hs * ws)
    return out


def _image_sums(first, second, dims=(0,)):
    """``first * second`` (float32 products, ``(n, u, ...)``) summed over ``dims`` (images
    first) in float32 within blocks of at most ``MAX_BLOCK_IMAGES`` images and in float64
    across blocks, as the numpy engine sums them; a block's product is the only temporary."""
    import torch

    total = None
    for s in range(0, first.shape[0], MAX_BLOCK_IMAGES):
        part = torch.sum(first[s : s + MAX_BLOCK_IMAGES] * second[s : s + MAX_BLOCK_IMAGES], dim=dims)
        total = part.to(torch.float64) if total is None else total.add_(part)
    return total


def squared_sums(d, larges: list[Grid]) -> dict[Grid, Any]:
    """``{large: (u,) float64}``: sums over images and positions of ``d`` ``(n, u, h, w)``
    resized to each large grid, squared.

    As :class:`rosetta_core.engine.resized_squares.NeighbourProducts`: the Gram matrix of a
    bilinear resize matrix is tridiagonal, so each grid's sum is a weighted sum of four maps
    that do not depend on the grid: each value times itself and its right, lower and two
    diagonal neighbours, summed over images (the pairs that wrap around a row get weight 0).
    """
    import torch

    n, u, h, w = d.shape
    size = h * w
    flat = d.reshape(n, u, size)
    resized = [g for g in larges if g != (h, w)]
    out = {}
    if (h, w) in larges and not resized:
        out[h, w] = _image_sums(d, d, dims=(0, 2, 3))
        return out
    same = _image_sums(flat, flat)
    if (h, w) in larges:
        out[h, w] = same.sum(dim=1)
    right = down = diagonal = None
    if any(big_w != w for _, big_w in resized):
        right = _image_sums(flat[..., : size - 1], flat[..., 1:])
    if any(big_h != h for big_h, _ in resized):
        down = _image_sums(flat[..., : size - w], flat[..., w:])
    if any(big_h != h and big_w != w for big_h, big_w in resized) and size - w - 1 > 0:
        diagonal = _image_sums(flat[..., : size - w - 1], flat[..., w + 1 :])
        diagonal += _image_sums(flat[..., 1 : size - w], flat[..., w : size - 1])

    def weighted(maps, along_h, along_w):
        return maps @ torch.outer(along_h, along_w).reshape(-1)[: maps.shape[1]]

    f64 = torch.float64
    for big_h, big_w in resized:
        diag_h, off_h = (device_matrix(k, h, big_h, d.device, f64) for k in ("gram_diag", "gram_off"))
        diag_w, off_w = (device_matrix(k, w, big_w, d.device, f64) for k in ("gram_diag", "gram_off"))
        total = weighted(same, diag_h, diag_w)
        if big_w != w:
            total += 2 * weighted(right, diag_h, off_w)
        if big_h != h:
            total += 2 * weighted(down, off_h, diag_w)
        if big_h != h and big_w != w and diagonal is not None:
            total += 2 * weighted(diagonal, off_h, off_w)
        out[big_h, big_w] = total
    return out


def resized_means(maps, larges: list[Grid]) -> dict[Grid, Any]:
    """``{large: (u,) float64}``: the mean over each large grid of each map ``(u, h, w)``
    (any float dtype) resized to it, from the column sums of the resize matrices."""
    import torch

    u, h, w = maps.shape
    flat = maps.to(torch.float64).reshape(u, h * w)
    out = {}
    for big_h, big_w in larges:
        weights = torch.outer(device_matrix("column_sums", h, big_h, maps.device, torch.float64),
                              device_matrix("column_sums", w, big_w, maps.device, torch.float64))
        out[big_h, big_w] = flat @ weights.reshape(-1) / (big_h * big_w)
    return out

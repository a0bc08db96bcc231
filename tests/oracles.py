"""Float64 brute-force oracles: resize both maps with torch, then pooled Pearson (Eq. 1-2)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resized(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``(n, u, h, w) -> (n, u, H, W)`` float64 through torch's own bilinear interpolation."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    return F.interpolate(t, size=grid, mode="bilinear", align_corners=False).numpy()


def brute_force_table(a, b, center: str = "global") -> np.ndarray:
    """Correlation of every unit pair, building every resized map (small inputs only)."""
    rows = []
    for xa in a:
        blocks = []
        for xb in b:
            grid = (max(xa.shape[2], xb.shape[2]), max(xa.shape[3], xb.shape[3]))
            ra, rb = resized(xa, grid), resized(xb, grid)
            if center == "position":
                ra, rb = ra - ra.mean(axis=0), rb - rb.mean(axis=0)
            else:
                ra = ra - ra.mean(axis=(0, 2, 3), keepdims=True)
                rb = rb - rb.mean(axis=(0, 2, 3), keepdims=True)
            fa = ra.transpose(1, 0, 2, 3).reshape(ra.shape[1], -1)
            fb = rb.transpose(1, 0, 2, 3).reshape(rb.shape[1], -1)
            na, nb = np.sqrt((fa**2).sum(1)), np.sqrt((fb**2).sum(1))
            with np.errstate(invalid="ignore", divide="ignore"):
                block = fa @ fb.T / na[:, None] / nb[None, :]
            blocks.append(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0))
        rows.append(np.concatenate(blocks, axis=1))
    return np.concatenate(rows, axis=0)


def activations(rng: np.random.Generator, n: int, units: int, h: int, w: int, offset: float = 3.0) -> np.ndarray:
    """Post-ReLU-like maps with a per-unit offset and a spatial profile (stress the centring)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    profile = rng.normal(size=(units, 1, 1)) * (xx + yy**2)[None]
    x = rng.normal(size=(n, units, h, w)) + profile[None] + offset * rng.random((1, units, 1, 1))
    return np.maximum(x, 0).astype(np.float32)


def dissection_ious(maps: np.ndarray, masks: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Network Dissection IoU by brute force in float64: ``maps (n, units, h, w)``, bool ``masks
    (n, factors, H, W)`` -> ``(ious (units, factors), thresholds (units,))``. Each unit is resized
    with torch, thresholded at numpy's ``quantile`` of all its resized values (mask: ``> T``),
    and intersection and union are counted image by image, pixel by pixel, over the whole set."""
    n, units, _, _ = maps.shape
    _, factors, H, W = masks.shape
    up = resized(maps, (H, W))
    ious, thresholds = np.zeros((units, factors)), np.zeros(units)
    for u in range(units):
        t = np.quantile(up[:, u].ravel(), quantile)
        thresholds[u] = t
        for f in range(factors):
            inter = union = 0
            for i in range(n):
                on = up[i, u] > t
                inter += int(np.logical_and(on, masks[i, f]).sum())
                union += int(np.logical_or(on, masks[i, f]).sum())
            ious[u, f] = inter / union if union else 0.0
    return ious, thresholds

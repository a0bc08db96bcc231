"""Image quality and layout measures of the inversion benchmarks.

- :func:`psnr`: on uint8 images, peak 255, per image; ``inf`` where two images are identical.
- :func:`ssim`: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``,
  ``K2 = 0.03``, data range 1, on valid positions only (no padding), per channel, averaged.
- :func:`foreground`: object pixels of a shape-world image, from the background model of that
  world (a smooth colour gradient): a least-squares plane per channel fitted to the pixels of the
  ``border``-wide frame, a pixel is foreground when its largest difference from the plane over
  the channels is strictly greater than ``threshold`` (a difference equal to it is background).
- :func:`area`, :func:`iou`, :func:`centroid`: of boolean masks ``(n, H, W)``. Empty masks:
  two empty masks agree perfectly (IoU 1), an empty and a non-empty one not at all (IoU 0); an
  empty mask has no centroid (NaN, NaN).

The success criteria built on these measures are in :mod:`.criteria`. Every function here has a
float64 loop oracle in ``tests/unit/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["area", "as_masks", "centroid", "foreground", "iou", "psnr", "ssim"]


def _float(images) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    return t.to(torch.float64)


def _pair(a, b, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches ``(n, c, H, W)`` of the same shape, as float64 tensors."""
    x, y = _float(a), _float(b)
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"{name} compares two image batches of one shape (n, c, H, W); got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def psnr(a, b) -> np.ndarray:
    """``(n,)`` PSNR in dB of uint8 images ``(n, 3, H, W)`` (inf where identical)."""
    x, y = _pair(a, b, "psnr")
    mse = (x - y).pow(2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a, b) -> np.ndarray:
    """``(n,)`` mean SSIM of uint8 images ``(n, c, H, W)`` (H, W >= 11), computed in float64."""
    x, y = _pair(a, b, "ssim")
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels (its window); got {tuple(x.shape[-2:])}")
    x, y = x / 255, y / 255
    c = x.shape[1]
    win = _window().to(x)[None, None].repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(t, win, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def foreground(images, threshold: float = 0.12, border: int = 3) -> np.ndarray:
    """Boolean ``(n, H, W)`` foreground of uint8 images ``(n, c, H, W)`` (module docstring):
    ``threshold`` in units of the full range (1 = 255 levels), ``border`` the width in pixels
    of the frame the background plane is fitted to."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"foreground takes images (n, c, H, W); got shape {x.shape}")
    n, c, h, w = x.shape
    if not threshold >= 0:
        raise ValueError(f"threshold={threshold} must be >= 0 (a difference from the background plane, 1 = 255 levels)")
    if not (isinstance(border, (int, np.integer)) and 1 <= border and 2 * border < min(h, w)):
        raise ValueError(f"border={border!r} must be an integer >= 1 that leaves an inside to the {h}x{w} images "
                         f"(2 * border < {min(h, w)})")
    x = x / 255
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    basis = np.stack([np.ones_like(xx), xx, yy], axis=-1).reshape(-1, 3)  # (HW, 3)
    ring = np.zeros((h, w), dtype=bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    ring = ring.reshape(-1)
    out = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        pix = x[i].reshape(c, -1).T  # (HW, c)
        coef, *_ = np.linalg.lstsq(basis[ring], pix[ring], rcond=None)
        resid = np.abs(pix - basis @ coef).max(axis=1)
        out[i] = (resid > threshold).reshape(h, w)
    return out


def as_masks(mask, name: str = "mask") -> np.ndarray:
    """``mask`` as a boolean array ``(n, H, W)``; anything else is an error naming it."""
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.ndim != 3:
        raise ValueError(f"{name} must be boolean masks (n, H, W); got dtype {m.dtype}, shape {m.shape} "
                         f"(threshold a float map first, e.g. mask > 0.5)")
    return m


def area(mask) -> np.ndarray:
    """``(n,)`` number of pixels (int64) of boolean masks ``(n, H, W)``."""
    return as_masks(mask, "area's mask").sum(axis=(1, 2), dtype=np.int64)


def iou(a, b) -> np.ndarray:
    """``(n,)`` intersection over union of boolean masks ``(n, H, W)`` (1 where both are empty)."""
    a, b = as_masks(a, "iou's first mask"), as_masks(b, "iou's second mask")
    if a.shape != b.shape:
        raise ValueError(f"iou compares masks of one shape; got {a.shape} and {b.shape}")
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def centroid(mask) -> np.ndarray:
    """``(n, 2)`` (x, y) centroid in pixels of boolean masks ``(n, H, W)``: x the column, y the
    row, pixel centres at integer coordinates; (NaN, NaN) where a mask is empty."""
    mask = as_masks(mask, "centroid's mask")
    h, w = mask.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    count = mask.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xx).sum(axis=(1, 2)) / count
        cy = (mask * yy).sum(axis=(1, 2)) / count
    return np.stack([cx, cy], axis=1)

"""Image quality and layout measures of the inversion benchmarks.

- :func:`psnr`: on uint8 images, peak 255, per image.
- :func:`ssim`: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``,
  ``K2 = 0.03``, data range 1, on valid positions only (no padding), per channel, averaged.
- :func:`foreground`: object pixels of a shape-world image, from the background model of that
  world (a smooth colour gradient): a least-squares plane per channel fitted to the border
  pixels, a pixel is foreground when it differs from the plane by more than ``threshold``.
- :func:`iou`, :func:`centroid`: of boolean masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "foreground", "iou", "centroid"]


def _float(images) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    return t.to(torch.float64)


def psnr(a, b) -> np.ndarray:
    """``(n,)`` PSNR in dB of uint8 images ``(n, 3, H, W)`` (inf where identical)."""
    mse = (_float(a) - _float(b)).pow(2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a, b) -> np.ndarray:
    """``(n,)`` mean SSIM of uint8 images ``(n, c, H, W)`` (H, W >= 11), computed in float64."""
    x, y = _float(a) / 255, _float(b) / 255
    n, c = x.shape[:2]
    win = _window().to(x)[None, None].repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(t, win, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def foreground(images, threshold: float = 0.12, border: int = 3) -> np.ndarray:
    """Boolean ``(n, H, W)`` foreground of uint8 images ``(n, 3, H, W)`` (module docstring)."""
    x = np.asarray(images, dtype=np.float64) / 255
    n, c, h, w = x.shape
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


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n,)`` intersection over union of boolean masks ``(n, H, W)`` (1 where both empty)."""
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def centroid(mask: np.ndarray) -> np.ndarray:
    """``(n, 2)`` (x, y) centroid in pixels of boolean masks ``(n, H, W)`` (NaN when empty)."""
    n, h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    count = mask.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xx).sum(axis=(1, 2)) / count
        cy = (mask * yy).sum(axis=(1, 2)) / count
    return np.stack([cx, cy], axis=1)

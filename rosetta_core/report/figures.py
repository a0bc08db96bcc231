"""Pictures of the report as PNG bytes, drawn with numpy and Pillow (no plotting library).

- :func:`upsample`: a unit's activation map ``(h, w)`` resized bilinearly to an image's size,
  with the same ``align_corners=False`` rule as the correlation engine.
- :func:`normalize`: a unit's maps over the example images scaled jointly to ``[0, 1]``.
- :func:`overlay`: a normalised map blended over its image in a perceptually ordered colour
  map (dark purple -> red -> yellow), so the brightest pixel is where the unit fires most.
- :func:`histogram_png`, :func:`colorbar_png`: the summary's plots.
- :func:`png_bytes`, :func:`data_uri`: encoding for a self-contained page.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..engine.resize import bilinear_matrix

__all__ = [
    "Series",
    "colorbar_png",
    "colormap",
    "data_uri",
    "histogram_png",
    "normalize",
    "overlay",
    "png_bytes",
    "png_many",
    "tile_images",
    "upsample",
]

#: anchors of the heat colour map (value, RGB): black-purple-red-orange-yellow, luminance rising
_ANCHORS = np.array(
    [
        [0.00, 0, 0, 4],
        [0.20, 50, 10, 94],
        [0.40, 135, 33, 107],
        [0.60, 212, 72, 66],
        [0.80, 250, 150, 10],
        [1.00, 252, 255, 164],
    ],
    dtype=np.float64,
)


_LUT = np.rint(
    np.stack([np.interp(np.linspace(0, 1, 1024), _ANCHORS[:, 0], _ANCHORS[:, c]) for c in (1, 2, 3)], axis=-1)
).astype(np.uint8)


def colormap(values: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(..., 3)`` of ``values`` in ``[0, 1]`` (clipped) along the heat colour map."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return _LUT[np.rint(v * (len(_LUT) - 1)).astype(np.intp)]


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (``align_corners=False``) of maps ``(..., h, w)`` to ``(..., H, W)``.

    Same rule as ``torch.nn.functional.interpolate(mode="bilinear")`` and as the correlation
    tables, so the picture shows the map that was correlated. Returns float32.
    """
    m = np.asarray(maps, dtype=np.float32)
    if m.ndim < 2:
        raise ValueError(f"maps must have at least 2 dims (..., h, w); got shape {m.shape}")
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size={size} must be positive (height, width)")
    rows = bilinear_matrix(m.shape[-2], height).astype(np.float32)
    cols = bilinear_matrix(m.shape[-1], width).astype(np.float32)
    return np.matmul(np.matmul(rows, m.astype(np.float32)), cols.T)


def normalize(maps: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scale maps ``(k, h, w)`` of one unit jointly to ``[0, 1]``: ``(maps - lo) / (hi - lo)``.

    One scale for all of a unit's examples, so an image where the unit barely fires looks
    dark. Returns ``(scaled, lo, hi)``; a unit constant over these maps gives zeros.
    """
    m = np.asarray(maps, dtype=np.float32)
    finite = np.isfinite(m)
    if not finite.any():
        return np.zeros_like(m), 0.0, 0.0
    lo, hi = float(m[finite].min()), float(m[finite].max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros_like(m), lo, hi
    return np.clip(np.where(finite, (m - lo) / (hi - lo), 0.0), 0.0, 1.0), lo, hi


def overlay(image: np.ndarray, heat: np.ndarray, dim: float = 0.55) -> np.ndarray:
    """Blend ``heat`` ``(H, W)`` in ``[0, 1]`` over ``image`` ``(3, H, W)`` uint8 -> ``(H, W, 3)``.

    Batched too: images ``(k, 3, H, W)`` and heat ``(k, H, W)`` give ``(k, H, W, 3)``. The
    image is dimmed to ``dim`` of its brightness and the colour of ``heat`` laid over it with
    opacity ``heat``: cold pixels show the (dimmed) image, hot ones the colour map.
    """
    img = np.asarray(image)
    if img.ndim not in (3, 4) or img.shape[-3] not in (1, 3):
        raise ValueError(f"image must be ([k,] channel, y, x) with 1 or 3 channels; got shape {img.shape}")
    if img.shape[-3] == 1:
        img = np.repeat(img, 3, axis=-3)
    h = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    if h.shape != img.shape[:-3] + img.shape[-2:]:
        raise ValueError(f"heat has shape {h.shape}; it must match the image's (y, x) {img.shape[-2:]}")
    base = np.moveaxis(img, -3, -1).astype(np.float32) * dim
    alpha = h[..., None]
    out = base * (1.0 - alpha) + colormap(h).astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def tile_images(images: np.ndarray, size: int | None) -> np.ndarray:
    """Images ``(k, 3, H, W)`` uint8 resized (Pillow, bicubic) so the longer side is ``size``.

    ``size=None`` or an image already that small leaves the images unchanged.
    """
    imgs = np.asarray(images)
    height, width = imgs.shape[-2:]
    if size is None or max(height, width) <= size:
        return imgs
    scale = size / max(height, width)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    out = [np.asarray(Image.fromarray(np.moveaxis(im, 0, -1)).resize(new, Image.Resampling.BICUBIC)) for im in imgs]
    return np.moveaxis(np.stack(out), -1, 1)


def png_bytes(array: np.ndarray, compress_level: int = 4) -> bytes:
    """PNG of an ``(H, W, 3)`` / ``(H, W, 4)`` / ``(H, W)`` uint8 array, or of ``(3, H, W)``."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        raise TypeError(f"png_bytes needs uint8 pixels; got {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", optimize=False, compress_level=compress_level)
    return buf.getvalue()


def png_many(arrays: Sequence[np.ndarray], workers: int | None = None) -> list[bytes]:
    """:func:`png_bytes` of many arrays on a few threads (zlib runs without the GIL)."""
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(arrays) < 8:
        return [png_bytes(a) for a in arrays]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(png_bytes, arrays))


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- plots ------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


@dataclass(frozen=True)
class Series:
    """One distribution on a histogram: ``values``, a legend ``label`` and an RGB colour.

    ``filled=True`` draws translucent bars, else a step outline on top.
    """

    label: str
    values: np.ndarray
    color: tuple[int, int, int]
    filled: bool = True


def _nice_step(top: float) -> float:
    raw = max(top, 1.0) / 4
    mag = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return float(m * mag)
    return float(10 * mag)


def histogram_png(
    series: Sequence[Series],
    lo: float = -0.2,
    hi: float = 1.0,
    bins: int = 24,
    size: tuple[int, int] = (420, 220),
    scale: int = 2,
    xlabel: str = "Pearson correlation",
) -> bytes:
    """Histograms of several series on one axis, drawn at ``scale`` x ``size`` pixels.

    Bins are ``bins`` equal steps over ``[lo, hi]`` (values outside are clipped into the end
    bins). The y axis counts units; the legend gives each series' label and count.
    """
    width, height = size[0] * scale, size[1] * scale
    img = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    draw = ImageDraw.Draw(img, "RGBA")
    font, small = _font(12 * scale), _font(11 * scale)
    left, right, top, bottom = 44 * scale, 12 * scale, 30 * scale, 36 * scale
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(np.clip(np.asarray(s.values, dtype=np.float64), lo, hi), edges)[0] for s in series]
    peak = max([int(c.max()) for c in counts if c.size] + [1])
    step = _nice_step(peak)
    ymax = step * np.ceil(peak / step)

    def px(x: float) -> float:
        return x0 + (x - lo) / (hi - lo) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - y / ymax * (y1 - y0)

    grid, ink = (225, 225, 225, 255), (60, 60, 60, 255)
    for yv in np.arange(0, ymax + step / 2, step):
        draw.line([(x0, py(yv)), (x1, py(yv))], fill=grid, width=scale)
        label = f"{int(yv)}"
        tw = draw.textlength(label, font=small)
        draw.text((x0 - 6 * scale - tw, py(yv) - 7 * scale), label, fill=ink, font=small)
    for xv in np.arange(np.ceil(lo * 4) / 4, hi + 1e-9, 0.25):
        draw.line([(px(xv), y1), (px(xv), y1 + 4 * scale)], fill=ink, width=scale)
        label = f"{xv:g}"
        tw = draw.textlength(label, font=small)
        draw.text((px(xv) - tw / 2, y1 + 6 * scale), label, fill=ink, font=small)
    if lo < 0 < hi:
        draw.line([(px(0), y0), (px(0), y1)], fill=(150, 150, 150, 255), width=scale)
    for s, c in zip(series, counts):
        rgb = tuple(int(v) for v in s.color)
        if s.filled:
            for i, n in enumerate(c):
                if n:
                    draw.rectangle([px(edges[i]) + scale, py(n), px(edges[i + 1]) - scale, y1], fill=(*rgb, 150))
        else:
            pts = [(px(edges[0]), y1)]
            for i, n in enumerate(c):
                pts += [(px(edges[i]), py(n)), (px(edges[i + 1]), py(n))]
            pts.append((px(edges[-1]), y1))
            draw.line(pts, fill=(*rgb, 255), width=2 * scale, joint="curve")
    draw.line([(x0, y1), (x1, y1)], fill=ink, width=scale)
    draw.line([(x0, y0), (x0, y1)], fill=ink, width=scale)
    tw = draw.textlength(xlabel, font=font)
    draw.text(((x0 + x1) / 2 - tw / 2, height - 17 * scale), xlabel, fill=ink, font=font)
    lx = x0 + 4 * scale
    for s in series:
        rgb = tuple(int(v) for v in s.color)
        box = [lx, 9 * scale, lx + 12 * scale, 19 * scale]
        if s.filled:
            draw.rectangle(box, fill=(*rgb, 150))
        else:
            draw.line([(box[0], 14 * scale), (box[2], 14 * scale)], fill=(*rgb, 255), width=2 * scale)
        text = f"{s.label} (n={len(s.values)})"
        draw.text((box[2] + 4 * scale, 7 * scale), text, fill=ink, font=small)
        lx = box[2] + 4 * scale + draw.textlength(text, font=small) + 14 * scale
    return png_bytes(np.asarray(img.convert("RGB")))


def colorbar_png(width: int = 240, height: int = 14) -> bytes:
    """A horizontal bar of the heat colour map from 0 (left) to 1 (right)."""
    ramp = np.linspace(0.0, 1.0, width)
    return png_bytes(np.repeat(colormap(ramp)[None], height, axis=0))

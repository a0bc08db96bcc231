"""Vectorised rasterisation of shape scenes (private to :mod:`rosetta_core.data.shapes`).

Everything here works on whole batches: the pixel grid is built once per image size, every
object of a chunk of scenes is evaluated as a signed distance field (negative inside, in pixels)
in one array per shape kind, and all later steps (coverage, shading, shadows, styles) are plain
array arithmetic on those distances. Soft edges come from the distances (``0.5 - d`` clipped),
so shapes are anti-aliased for free.

Coordinates: ``x`` to the right, ``y`` down, pixel ``(i, j)`` has its centre at
``(x, y) = (j + 0.5, i + 0.5)``. A rotation ``theta`` (radians) turns a shape clockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..engine.resize import bilinear_matrix
from ._sdf import _SDF

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
TEXTURES: tuple[str, ...] = ("plain", "noise", "stripes", "checker")
STYLES: tuple[str, ...] = ("photo", "sketch", "cartoon")

_F = np.float32
_FAR = _F(1e3)  # distance used for absent slots: never inside, never near
_BANK = 64  # number of precomputed noise tiles per image size
_SHADOW_SOFT = _F(2.0)  # penumbra half-width of cast shadows, pixels
_SHADOW_DARK = _F(0.5)  # fraction of light removed inside a full shadow
_SKETCH_HALF_WIDTH = _F(0.75)  # stroke half-width of sketch lines, pixels
_CARTOON_HALF_WIDTH = _F(1.25)  # stroke half-width of cartoon outlines, pixels



@dataclass
class Layout:
    """Parameters of ``n`` scenes with ``k`` object slots, as arrays (all float32 unless noted).

    bg0, bg1 (n, 3): background colours at the two ends of the gradient, RGB in [0, 1].
    grad (n, 2): unit gradient direction (x, y). texture (n,) int: index into ``TEXTURES``.
    tex (n, 4): texture angle (rad), frequency (rad/pixel), phase (rad), signed amplitude.
    tex_tile, grain_tile (n,) int: noise tiles. light (n, 2): unit direction towards the light.
    shadow_len (n,): shadow offset in units of object size (0 = no cast shadow).
    kind (n, k) int: index into ``KINDS``, -1 for an absent slot. rgb (n, k, 3).
    centre (n, k, 2): (x, y) in pixels. size (n, k): pixels. rot (n, k): radians.
    """

    bg0: np.ndarray
    bg1: np.ndarray
    grad: np.ndarray
    texture: np.ndarray
    tex: np.ndarray
    tex_tile: np.ndarray
    grain_tile: np.ndarray
    light: np.ndarray
    shadow_len: np.ndarray
    kind: np.ndarray
    rgb: np.ndarray
    centre: np.ndarray
    size: np.ndarray
    rot: np.ndarray


@dataclass
class Drawn:
    """Output of :func:`draw`: images ``(n, 3, h, w)`` uint8, label ``(n, h, w)`` int8 (slot of
    the visible object, -1 for background), shadow ``(n, h, w)`` bool (on visible background)."""

    images: np.ndarray
    label: np.ndarray
    shadow: np.ndarray


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``x``, ``y`` of shape ``(h, w)``, float32."""
    c = np.arange(size, dtype=_F) + _F(0.5)
    y, x = np.meshgrid(c, c, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@lru_cache(maxsize=8)
def _banks(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed noise tiles ``(_BANK, h, w)``: smooth value noise in ~[-1, 1] and per-pixel grain."""
    rng = np.random.default_rng(20261128)
    smooth = np.zeros((_BANK, size, size))
    for cells, weight in ((4, 0.6), (9, 0.3), (17, 0.1)):  # three octaves
        m = bilinear_matrix(cells, size)
        smooth += weight * np.einsum("ya,bac,xc->byx", m, rng.uniform(-1, 1, (_BANK, cells, cells)), m)
    smooth /= np.abs(smooth).max(axis=(1, 2), keepdims=True)
    grain = rng.standard_normal((_BANK, size, size)).clip(-2.5, 2.5) / 2.5
    out = smooth.astype(_F), grain.astype(_F)
    for a in out:
        a.setflags(write=False)
    return out




def _col(a: np.ndarray) -> np.ndarray:
    """``(m,)`` -> ``(m, 1, 1)`` float32 for broadcasting over the pixel grid."""
    return np.asarray(a, dtype=_F)[:, None, None]


class _Work:
    """Scratch arrays reused by every chunk of one :func:`draw` call (nothing is kept after)."""

    def __init__(self, chunk: int, k: int, size: int, objects: int, shadow: bool, light: bool):
        hw = (size, size)
        f = lambda *shape: np.empty(shape, dtype=_F)  # noqa: E731
        self.dist = f(chunk, k, *hw)
        self.sdist = f(chunk, k, *hw) if shadow else None
        self.light = f(chunk, k, *hw) if light else None
        self.obj = [f(objects, *hw) for _ in range(6)]  # dx, dy, u, w, t, v
        self.img = f(chunk, 3, *hw)
        self.img3 = f(chunk, 3, *hw)
        self.t1, self.t2, self.t3 = f(chunk, *hw), f(chunk, *hw), f(chunk, *hw)
        self.mask = np.empty((chunk, *hw), dtype=bool)


# ----------------------------------------------------------------- one chunk of scenes
def _distances(p: Layout, sl: slice, ws: _Work, size: int) -> None:
    """Fill ``ws.dist`` / ``ws.sdist`` ``(c, k, h, w)`` with the signed distances of each slot
    and of its cast shadow, and ``ws.light`` with ``(centre->pixel . light) / size`` in [-1, 1]."""
    x, y = _grid(size)
    kind = p.kind[sl]
    c = len(kind)
    dist = ws.dist[:c]
    dist.fill(_FAR)
    if ws.sdist is not None:
        ws.sdist[:c].fill(_FAR)
    if ws.light is not None:
        ws.light[:c].fill(0)
    sid, slot = np.nonzero(kind >= 0)
    kk = kind[sid, slot]
    for q in np.unique(kk):
        sel = kk == q
        si, sk = sid[sel], slot[sel]
        m = len(si)
        cx, cy = p.centre[sl][si, sk, 0], p.centre[sl][si, sk, 1]
        s = p.size[sl][si, sk]
        rot = p.rot[sl][si, sk]
        if ws.sdist is not None:  # the same shape again, moved away from the light
            off = p.light[sl][si] * (p.shadow_len[sl][si] * s)[:, None]
            cx, cy = np.concatenate([cx, cx - off[:, 0]]), np.concatenate([cy, cy - off[:, 1]])
            s, rot = np.concatenate([s, s]), np.concatenate([rot, rot])
        dx, dy, u, w, t, v = (a[: len(s)] for a in ws.obj)
        np.subtract(x, _col(cx), out=dx)
        np.subtract(y, _col(cy), out=dy)
        cos, sin = _col(np.cos(rot)), _col(np.sin(rot))
        np.multiply(dx, cos, out=u)
        np.multiply(dy, sin, out=t)
        u += t
        np.multiply(dx, sin, out=w)
        np.multiply(dy, cos, out=t)
        w -= t  # "up" in the shape's own frame
        _SDF[q](u, w, _col(s), t, v)
        dist[si, sk] = u[:m]
        if ws.sdist is not None:
            ws.sdist[si, sk] = u[m:]
        if ws.light is not None:
            g, gy = t[:m], dy[:m]
            np.multiply(dx[:m], _col(p.light[sl][si, 0]), out=g)
            gy *= _col(p.light[sl][si, 1])
            g += gy
            g /= _col(s[:m])
            ws.light[si, sk] = np.clip(g, -1, 1, out=g)


def _background(p: Layout, sl: slice, ws: _Work, size: int, strength: float) -> np.ndarray:
    """Photo background in ``ws.img`` ``(c, 3, h, w)``: two-colour gradient plus texture."""
    x, y = _grid(size)
    c = len(p.kind[sl])
    h = _F(size / 2)
    grad = p.grad[sl]
    t, t2 = ws.t1[:c], ws.t2[:c]
    np.multiply(x - h, _col(grad[:, 0] * (0.5 / h)), out=t)
    np.multiply(y - h, _col(grad[:, 1] * (0.5 / h)), out=t2)
    t += t2
    t += _F(0.5)
    b0, b1 = p.bg0[sl][:, :, None, None], p.bg1[sl][:, :, None, None]
    img = ws.img[:c]
    np.multiply(b1 - b0, t[:, None], out=img)
    img += b0
    if strength == 0:
        return img
    tex = ws.t1[:c]
    tex.fill(0)
    smooth, _ = _banks(size)
    kinds = p.texture[sl]
    for ti, name in enumerate(TEXTURES):
        ids = np.nonzero(kinds == ti)[0]
        if name == "plain" or len(ids) == 0:
            continue
        ang, freq, phase, amp = (p.tex[sl][ids, j] for j in range(4))
        amp = _col(amp * strength)
        if name == "noise":
            tex[ids] = smooth[p.tex_tile[sl][ids]] * amp
            continue
        ca, sa = _col(np.cos(ang)), _col(np.sin(ang))
        a = (ca * x + sa * y) * _col(freq) + _col(phase)
        val = np.sin(a)
        if name == "checker":  # product of two perpendicular waves
            val *= np.sin((ca * y - sa * x) * _col(freq))
        val *= _F(3)
        np.clip(val, -1, 1, out=val)
        tex[ids] = val * amp
    img += tex[:, None]
    return img


def _draw_chunk(p: Layout, sl: slice, ws: _Work, style: str, size: int, shading: float,
                texture_strength: float, grain: float, images, label, shade) -> None:
    photo, sketch = style == "photo", style == "sketch"
    _distances(p, sl, ws, size)
    c, k = len(p.kind[sl]), p.kind.shape[1]
    dist = ws.dist[:c]
    t1, t2, t3, mask = ws.t1[:c], ws.t2[:c], ws.t3[:c], ws.mask[:c]
    if photo:
        img = _background(p, sl, ws, size, texture_strength)
    elif sketch:
        img = ws.img[:c, :1]
        img.fill(1)
    else:  # cartoon: one flat background colour
        img = ws.img[:c]
        img[...] = p.bg0[sl][:, :, None, None]
    has_shadow = ws.sdist is not None
    if has_shadow:
        smin = ws.sdist[:c].min(axis=1, out=t3)
        np.less_equal(smin, 0, out=mask)
        shade[sl] = mask
        if photo:  # soft penumbra
            smin *= _F(-1) / _SHADOW_SOFT
            smin += _F(0.5)
            np.clip(smin, 0, 1, out=smin)
            smin *= -_SHADOW_DARK
            smin += _F(1)
            img *= smin[:, None]
        elif not sketch:  # hard shadow
            np.multiply(img, _F(1) - _F(0.8) * _SHADOW_DARK, out=img, where=mask[:, None])
    lab = label[sl]
    lab.fill(-1)
    sizes = np.nan_to_num(p.size[sl], nan=1.0).astype(_F)
    half = _CARTOON_HALF_WIDTH if not sketch else _SKETCH_HALF_WIDTH
    col = ws.img3[:c, : img.shape[1]]
    for j in range(k):
        d = dist[:, j]
        np.less_equal(d, 0, out=mask)
        np.copyto(lab, np.int8(j), where=mask)
        if photo:
            np.subtract(_F(0.5), d, out=t1)  # coverage
            np.clip(t1, 0, 1, out=t1)
            # Directional light plus a darker rim (an impression of a rounded body):
            # lam = 1 + shading * light - 0.6 * shading * (1 - depth), depth in [0, 1].
            np.multiply(d, _col(_F(-1) / (_F(0.35) * sizes[:, j])), out=t2)
            np.clip(t2, 0, 1, out=t2)
            t2 *= _F(0.6 * shading)
            t2 += _F(1 - 0.6 * shading)
            np.multiply(ws.light[:c, j], _F(shading), out=t3)
            t2 += t3
            np.multiply(p.rgb[sl][:, j, :, None, None], t2[:, None], out=col)
        else:
            # An outline of width 2 * half centred on the edge: coverage of shape + outline,
            # and the fill inside the outline (each anti-aliased at its own edge).
            np.subtract(half + _F(0.5), d, out=t1)
            np.clip(t1, 0, 1, out=t1)
            np.subtract(_F(0.5) - half, d, out=t2)
            np.clip(t2, 0, 1, out=t2)
            if sketch:  # white inside, dark pencil line
                np.multiply(t2, _F(0.88), out=col[:, 0])
                col += _F(0.12)
            else:  # two flat tones (lit / turned away) inside a black outline
                np.less(ws.light[:c, j], _F(-0.3), out=mask)
                np.multiply(t2, _F(0.7), out=t2, where=mask)
                np.multiply(p.rgb[sl][:, j, :, None, None], t2[:, None], out=col)
        col -= img
        col *= t1[:, None]
        img += col
    if photo and grain > 0:
        _, gbank = _banks(size)
        np.take(gbank, p.grain_tile[sl], axis=0, out=t2)
        t2 *= _F(grain)
        img += t2[:, None]
    img *= _F(255)
    img += _F(0.5)
    np.clip(img, 0, 255, out=img)
    images[sl] = img  # casts to uint8 (truncation after +0.5 rounds); sketch broadcasts grey
    if has_shadow:
        shade[sl] &= lab < 0
    else:
        shade[sl] = False


def draw(p: Layout, style: str, size: int, *, shading: float, shadow: bool,
         texture_strength: float, grain: float, chunk: int = 16) -> Drawn:
    """Rasterise all scenes of ``p`` in one ``style`` (see ``STYLES``) at ``size`` x ``size``."""
    n, k = p.kind.shape
    chunk = max(1, min(chunk, n))
    # Largest number of objects of one kind in one chunk (x2 with their shadows).
    most = 1
    for start in range(0, n, chunk):
        kinds = p.kind[start:start + chunk]
        most = max(most, int(np.bincount(kinds[kinds >= 0], minlength=1).max(initial=0)))
    ws = _Work(chunk, k, size, most * (2 if shadow else 1), shadow, style != "sketch")
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    label = np.empty((n, size, size), dtype=np.int8)
    shade = np.empty((n, size, size), dtype=bool)
    for start in range(0, n, chunk):
        _draw_chunk(p, slice(start, min(start + chunk, n)), ws, style, size, shading,
                    texture_strength, grain, images, label, shade)
    return Drawn(images, label, shade)

"""Scene parameters of the shape world: sampling, scene codes and captions (private to
:mod:`rosetta_core.data.shapes`).

A scene's parameters are drawn as one flat row of floats from ``np.random.default_rng([seed,
index])`` (so each scene depends on its own seed and index only); rows of a batch are then
turned into the arrays of a :class:`~rosetta_core.data._draw.Layout`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ._draw import KINDS, TEXTURES, Layout

if TYPE_CHECKING:
    from .shapes import WorldConfig

#: Colour names and their RGB values in [0, 1]; ``Scenes.colours`` indexes this order.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.88, 0.12, 0.12),
    "green": (0.13, 0.72, 0.20),
    "blue": (0.16, 0.32, 0.95),
    "yellow": (0.96, 0.86, 0.10),
    "magenta": (0.86, 0.14, 0.82),
    "cyan": (0.10, 0.82, 0.88),
    "orange": (1.00, 0.52, 0.05),
    "white": (0.96, 0.96, 0.96),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)
_MAX_SLOTS = 8
_TRIES = 8  # candidate positions per object (to avoid hiding one object behind another)
_SCENE_U = 19  # uniforms drawn per scene for scene-level parameters
_SLOT_U = 7 + 2 * _TRIES  # uniforms per object slot
_SCENE_CODE = 15
_SLOT_CODE = 14
_ROW_SCENE = 18  # scene-level values at the start of a row; then 9 per slot


# ----------------------------------------------------------------- sampling
def sample_row(seed: int, index: int, cfg: WorldConfig, kind_ids, colour_ids) -> list[float]:
    """One scene's parameters as a flat row: 18 scene values, then 9 per slot
    (kind, colour, r, g, b, cx, cy, size, rotation in radians); absent slots are -1 / NaN."""
    k = cfg.max_objects
    u = np.random.default_rng([seed, index]).random(_SCENE_U + _SLOT_U * k).tolist()
    lo_v, span = 0.22, 0.36  # background brightness range: objects stay visible
    base = lo_v + span * u[0]
    bg0 = [min(max(base + 0.3 * (t - 0.5), 0.0), 1.0) for t in u[1:4]]
    other = [min(max(lo_v + span * u[4] + 0.3 * (t - 0.5), 0.0), 1.0) for t in u[5:8]]
    bg1 = [a + cfg.gradient * (b - a) for a, b in zip(bg0, other)]
    ga = 2 * math.pi * u[8]
    texture = TEXTURES.index(cfg.textures[int(u[9] * len(cfg.textures))])
    tex = [math.pi * u[10], 0.25 + 0.6 * u[11], 2 * math.pi * u[12], 1.0 if u[13] < 0.5 else -1.0]
    tex_tile, grain_tile = int(u[14] * 64), int(u[15] * 64)
    la = 2 * math.pi * u[16]
    shadow_len = (0.25 + 0.35 * u[17]) if cfg.shadow else 0.0
    n_obj = cfg.min_objects + int(u[18] * (cfg.max_objects - cfg.min_objects + 1))
    row = [*bg0, *bg1, math.cos(ga), math.sin(ga), float(texture), *tex, float(tex_tile),
           float(grain_tile), math.cos(la), math.sin(la), shadow_len]
    side = cfg.image_size
    (s_lo, s_hi), (r_lo, r_hi) = cfg.size, cfg.rotation
    placed: list[tuple[float, float, float]] = []
    for i in range(k):
        if i >= n_obj:
            row += [-1.0, -1.0] + [math.nan] * 7
            continue
        v = u[_SCENE_U + _SLOT_U * i: _SCENE_U + _SLOT_U * (i + 1)]
        kind = kind_ids[int(v[0] * len(kind_ids))]
        colour = colour_ids[int(v[1] * len(colour_ids))]
        rgb = [min(max(c + cfg.colour_jitter * (2 * t - 1), 0.0), 1.0)
               for c, t in zip(_RGB[colour].tolist(), v[2:5])]
        s = side * (s_lo + (s_hi - s_lo) * v[5])
        rot = math.radians(r_lo + (r_hi - r_lo) * v[6])
        margin = 1.3 * s + 1.0  # the largest extent of any kind, plus a pixel
        best, best_score = (0.0, 0.0), -1.0
        for t in range(_TRIES):  # first candidate far enough from earlier objects, else the best
            cx = margin + (side - 2 * margin) * v[7 + 2 * t]
            cy = margin + (side - 2 * margin) * v[8 + 2 * t]
            score = min([math.hypot(cx - px, cy - py) / (0.75 * (s + ps)) for px, py, ps in placed],
                        default=math.inf)
            if score > best_score:
                best, best_score = (cx, cy), score
            if score >= 1.0:
                break
        placed.append((*best, s))
        row += [float(kind), float(colour), *rgb, *best, s, rot]
    return row


def layout(rows: np.ndarray, k: int) -> Layout:
    f = np.float32
    slots = rows[:, _ROW_SCENE:].reshape(len(rows), k, 9)
    return Layout(
        bg0=rows[:, 0:3].astype(f), bg1=rows[:, 3:6].astype(f), grad=rows[:, 6:8].astype(f),
        texture=rows[:, 8].astype(np.int64), tex=rows[:, 9:13].astype(f),
        tex_tile=rows[:, 13].astype(np.int64), grain_tile=rows[:, 14].astype(np.int64),
        light=rows[:, 15:17].astype(f), shadow_len=rows[:, 17].astype(f),
        kind=slots[:, :, 0].astype(np.int64), rgb=np.nan_to_num(slots[:, :, 2:5]).astype(f),
        centre=slots[:, :, 5:7].astype(f), size=slots[:, :, 7].astype(f), rot=slots[:, :, 8].astype(f),
    )


def codes(p: Layout, side: int) -> np.ndarray:
    """Scene codes ``(n, 15 + 14 * k)`` float32 (layout in :mod:`rosetta_core.data.shapes`)."""
    n, k = p.kind.shape
    out = np.zeros((n, _SCENE_CODE + _SLOT_CODE * k), dtype=np.float32)
    out[:, 0:3], out[:, 3:6], out[:, 6:8] = p.bg0, p.bg1, p.grad
    out[np.arange(n), 8 + p.texture] = 1
    out[:, 12:14], out[:, 14] = p.light, p.shadow_len
    slots = out[:, _SCENE_CODE:].reshape(n, k, _SLOT_CODE)
    present = p.kind >= 0
    si, sk = np.nonzero(present)
    slots[si, sk, 0] = 1
    slots[si, sk, 1 + p.kind[si, sk]] = 1
    slots[si, sk, 6:9] = p.rgb[si, sk]
    slots[si, sk, 9:11] = p.centre[si, sk] * (2 / side) - 1
    slots[si, sk, 11] = p.size[si, sk] / side
    slots[si, sk, 12] = np.cos(p.rot[si, sk])
    slots[si, sk, 13] = np.sin(p.rot[si, sk])
    return out


# ----------------------------------------------------------------- captions
def _size_word(s: float, cfg: WorldConfig) -> str:
    lo, hi = cfg.size
    if hi - lo < 1e-9:
        return ""
    t = (s / cfg.image_size - lo) / (hi - lo)
    return "small " if t < 1 / 3 else ("medium " if t < 2 / 3 else "large ")


def _relation(a, b) -> str:
    """Where object ``a`` is relative to ``b`` (both ``(x, y, ...)``), by the larger offset."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def caption(kinds, colours, centres, sizes, cfg: WorldConfig) -> str:
    objs = [(centres[i][0], centres[i][1],
             f"{_size_word(sizes[i], cfg)}{COLOURS[colours[i]]} {KINDS[kinds[i]]}")
            for i in range(len(kinds)) if kinds[i] >= 0]
    if len(objs) == 1:
        return f"a {objs[0][2]}"
    a, b = objs[0], objs[1]
    text = f"a {a[2]} {_relation(a, b)} a {b[2]}"
    for c in objs[2:]:  # further objects: placed relative to the nearer of the first two
        ref = min((a, b), key=lambda o: math.hypot(c[0] - o[0], c[1] - o[1]))
        text += f", and a {c[2]} {_relation(c, ref)} the {ref[2]}"
    return text


def sample(seed: int, indices: list[int], cfg: WorldConfig) -> tuple[Layout, np.ndarray, list[str]]:
    """Parameters of the scenes ``(seed, i)``: the layout, colour ids ``(n, k)`` (-1 absent)
    and the captions."""
    k = cfg.max_objects
    kind_ids = [KINDS.index(q) for q in cfg.kinds]
    colour_ids = [COLOURS.index(c) for c in cfg.colours]
    rows = np.array([sample_row(seed, i, cfg, kind_ids, colour_ids) for i in indices])
    slots = rows[:, _ROW_SCENE:].reshape(len(rows), k, 9)
    colour = slots[:, :, 1].astype(np.int64)
    kinds_l, colours_l = slots[:, :, 0].astype(np.int64).tolist(), colour.tolist()
    centres_l, sizes_l = slots[:, :, 5:7].tolist(), slots[:, :, 7].tolist()
    captions = [caption(kinds_l[i], colours_l[i], centres_l[i], sizes_l[i], cfg)
                for i in range(len(rows))]
    return layout(rows, k), colour, captions

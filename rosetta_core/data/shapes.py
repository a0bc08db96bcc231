"""A procedural world of shapes with pixel-level ground truth.

Every scene is a deterministic function of ``(seed, index)``: its random numbers come from
``np.random.default_rng([seed, index])`` and nothing else, so any scene can be rebuilt alone and
a batch equals the same scenes rendered one by one. A scene holds 1-3 objects (circle, square,
triangle, star, cross) in named colours, with random size, position and rotation; later objects
are drawn over earlier ones. The background is a two-colour gradient with an optional texture
(smooth noise, stripes, checker). A light direction shades the objects and casts soft shadows.

Styles: ``"photo"`` (the training distribution), and two out-of-distribution renderings of the
same scene: ``"sketch"`` (dark outlines on white) and ``"cartoon"`` (flat colours, two tones
per object, thick black outlines, flat background, hard shadows). Ground truth is a property of
the scene and is the same in every style.

Scene code (``Scenes.codes``, float32 ``(n, code_dim)``; ``code_layout`` gives the slices)::

    [0:3]    background colour at the start of the gradient, RGB in [0, 1]
    [3:6]    background colour at the end of the gradient, RGB in [0, 1]
    [6:8]    gradient direction (cos, sin), x right / y down
    [8:12]   texture one-hot over TEXTURES (plain, noise, stripes, checker)
    [12:14]  light direction (cos, sin): unit vector from an object towards the light
    [14]     shadow offset in units of object size (0 when shadows are off)
    then per object slot i (max_objects slots of 14 values, slot i at 15 + 14 * i):
    +0       present flag (0 or 1; an absent slot is all zeros)
    +1:+6    kind one-hot over KINDS (circle, square, triangle, star, cross)
    +6:+9    colour, RGB in [0, 1] (after the per-object jitter)
    +9:+11   centre x, y, scaled to [-1, 1] over the image
    +11      size: radius as a fraction of the image side
    +12:+14  rotation (cos, sin); positive angles turn the shape clockwise on screen

``code_dim = 15 + 14 * max_objects`` (57 with 3 slots); kinds and colours are indexed in the
global ``KINDS`` / ``COLOURS`` order whatever subset a ``WorldConfig`` uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ._draw import KINDS, STYLES, TEXTURES, draw
from ._scene import _MAX_SLOTS, _SCENE_CODE, _SLOT_CODE, COLOURS, PALETTE, codes, sample

__all__ = [
    "COLOURS",
    "KINDS",
    "PALETTE",
    "STYLES",
    "TEXTURES",
    "Scenes",
    "WorldConfig",
    "code_dim",
    "code_layout",
    "render",
    "render_batch",
    "truth_masks",
]


def _fail(name: str, value, valid: str) -> None:
    raise ValueError(f"WorldConfig.{name}={value!r} is invalid: expected {valid}")


def _range(name: str, value, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        _fail(name, value, f"a pair (low, high) with {lo} <= low <= high <= {hi}")
    if not (lo <= a <= b <= hi):
        _fail(name, value, f"a pair (low, high) with {lo} <= low <= high <= {hi}")
    return a, b


def _names(name: str, value, allowed: tuple[str, ...], least: int) -> tuple[str, ...]:
    valid = f"at least {least} distinct names from {allowed}"
    if isinstance(value, str) or not isinstance(value, Iterable):
        _fail(name, value, valid)
    out = tuple(value)
    if len(set(out)) != len(out) or len(out) < least or not set(out) <= set(allowed):
        _fail(name, value, valid)
    return out


def _number(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        _fail(name, value, f"a number in [{lo}, {hi}]")
    return float(value)


@dataclass(frozen=True)
class WorldConfig:
    """What the shape world may contain. Invalid values raise ``ValueError`` on construction.

    image_size: side of the square images in pixels (default 64).
    min_objects, max_objects: objects per scene, uniform in [min, max]; max <= 8 slots.
    kinds: shape kinds used (>= 4 names from ``KINDS``); colours: >= 6 names from ``COLOURS``.
    size: (low, high) object radius as a fraction of ``image_size`` (uniform).
    rotation: (low, high) rotation in degrees (uniform; clockwise on screen). (0, 0) = upright.
    shading: strength of the light's shading on objects (0 = flat colours, at most 1).
    shadow: draw cast shadows. textures: background textures used (names from ``TEXTURES``).
    texture_strength: texture amplitude (0..0.5). gradient: how much the two background
    colours may differ (0 = one flat colour, 1 = independent). colour_jitter: per-object RGB
    jitter (0..0.3). grain: per-pixel noise amplitude of photos (0..0.2).
    """

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    kinds: tuple[str, ...] = KINDS
    colours: tuple[str, ...] = COLOURS
    size: tuple[float, float] = (0.1, 0.21)
    rotation: tuple[float, float] = (-180.0, 180.0)
    shading: float = 0.45
    shadow: bool = True
    textures: tuple[str, ...] = TEXTURES
    texture_strength: float = 0.07
    gradient: float = 1.0
    colour_jitter: float = 0.06
    grain: float = 0.02

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        for name, lo, hi in (("image_size", 16, 1024), ("max_objects", 1, _MAX_SLOTS)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                _fail(name, v, f"an integer in [{lo}, {hi}]")
        m = self.min_objects
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= self.max_objects:
            _fail("min_objects", m, f"an integer in [1, max_objects={self.max_objects}]")
        set_("kinds", _names("kinds", self.kinds, KINDS, 4))
        set_("colours", _names("colours", self.colours, COLOURS, 6))
        set_("textures", _names("textures", self.textures, TEXTURES, 1))
        set_("size", _range("size", self.size, 0.03, 0.3))
        set_("rotation", _range("rotation", self.rotation, -360.0, 360.0))
        if not isinstance(self.shadow, (bool, np.bool_)):
            _fail("shadow", self.shadow, "True or False")
        for name, hi in (("shading", 1.0), ("texture_strength", 0.5), ("gradient", 1.0),
                         ("colour_jitter", 0.3), ("grain", 0.2)):
            set_(name, _number(name, getattr(self, name), 0.0, hi))

    @classmethod
    def simple(cls, **overrides) -> WorldConfig:
        """An easier world for small generators: 1-2 large upright objects of 4 kinds,
        6 flat colours, plain mild gradients, no grain (keeps shadows and 64x64)."""
        values = dict(
            min_objects=1, max_objects=2, kinds=("circle", "square", "triangle", "cross"),
            colours=("red", "green", "blue", "yellow", "magenta", "cyan"), size=(0.16, 0.25),
            rotation=(0.0, 0.0), shading=0.15, textures=("plain",), texture_strength=0.0,
            gradient=0.4, colour_jitter=0.0, grain=0.0,
        )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, eq=False)
class Scenes:
    """A batch of ``n`` rendered scenes with ground truth; ``k = config.max_objects`` slots.

    images: uint8 ``(n, 3, h, w)``. object_masks: bool ``(n, k, h, w)``, the *visible* pixels of
    each object (occlusion applied; a pixel belongs to the object when its coverage >= 1/2).
    kinds, colours: int ``(n, k)`` indices into ``KINDS`` / ``COLOURS``, -1 for an absent slot.
    sizes: float32 ``(n, k)`` radius in pixels; centres: float32 ``(n, k, 2)`` (x, y) pixels;
    rotations: float32 ``(n, k)`` degrees (NaN for absent slots).
    contour: bool ``(n, h, w)``, object pixels with a 4-neighbour of another label (another
    object or background). shadow: bool ``(n, h, w)``, cast shadow on visible background.
    background: bool ``(n, h, w)``, no object. captions: one string per scene.
    codes: float32 ``(n, code_dim)`` (layout in the module docstring). indices: int64 ``(n,)``.
    Slots are in drawing order: slot 0 is drawn first (furthest back).
    """

    images: np.ndarray
    object_masks: np.ndarray
    kinds: np.ndarray
    colours: np.ndarray
    sizes: np.ndarray
    centres: np.ndarray
    rotations: np.ndarray
    contour: np.ndarray
    shadow: np.ndarray
    background: np.ndarray
    captions: list[str]
    codes: np.ndarray
    indices: np.ndarray
    seed: int
    style: str
    config: WorldConfig = field(repr=False)

    def __len__(self) -> int:
        return len(self.images)


def code_layout(max_objects: int = 3) -> dict[str, slice]:
    """Named slices of the scene code (see the module docstring), e.g. ``"object1.kind"``."""
    if isinstance(max_objects, bool) or not isinstance(max_objects, (int, np.integer)) \
            or not 1 <= max_objects <= _MAX_SLOTS:
        raise ValueError(f"max_objects={max_objects!r} is invalid: expected an integer in [1, {_MAX_SLOTS}]")
    out = {"background0": slice(0, 3), "background1": slice(3, 6), "gradient": slice(6, 8),
           "texture": slice(8, 12), "light": slice(12, 14), "shadow_length": slice(14, 15)}
    for i in range(max_objects):
        b = _SCENE_CODE + _SLOT_CODE * i
        for name, lo, hi in (("present", 0, 1), ("kind", 1, 6), ("rgb", 6, 9),
                             ("centre", 9, 11), ("size", 11, 12), ("rotation", 12, 14)):
            out[f"object{i}.{name}"] = slice(b + lo, b + hi)
    return out


def code_dim(config: WorldConfig | None = None) -> int:
    """Length of the scene code for ``config`` (57 for the default 3 slots)."""
    k = (config or WorldConfig()).max_objects
    return _SCENE_CODE + _SLOT_CODE * k


# ----------------------------------------------------------------- public API
def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: expected a non-negative integer")
    return int(seed)


def _check_indices(indices) -> np.ndarray:
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, (bool, np.bool_)):
        raise ValueError(f"indices={indices!r} is invalid: expected a 1-d sequence of "
                         "non-negative integers (use render() for one scene)")
    arr = np.asarray(indices if not isinstance(indices, range) else list(indices))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"indices={indices!r} is invalid: expected a non-empty 1-d sequence "
                         "of non-negative integers")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"indices of dtype {arr.dtype} are invalid: expected integers >= 0")
    if (arr < 0).any():
        raise ValueError(f"index {int(arr[arr < 0][0])} is invalid: indices must be >= 0")
    return arr.astype(np.int64)


def render_batch(seed: int, indices, config: WorldConfig | None = None,
                 style: str = "photo") -> Scenes:
    """Render the scenes ``(seed, i)`` for ``i`` in ``indices`` (``(n,)`` non-negative ints).

    ``style`` is one of ``STYLES``: "photo", "sketch" or "cartoon". Returns :class:`Scenes`
    with images ``(n, 3, h, w)`` and ground truth; identical to rendering each index alone.
    """
    cfg = WorldConfig() if config is None else config
    if not isinstance(cfg, WorldConfig):
        raise TypeError(f"config must be a WorldConfig, got {type(cfg).__name__}")
    if style not in STYLES:
        raise ValueError(f"style={style!r} is invalid: expected one of {STYLES}")
    seed = _check_seed(seed)
    idx = _check_indices(indices)
    k, side = cfg.max_objects, cfg.image_size
    p, colour, captions = sample(seed, idx.tolist(), cfg)
    drawn = draw(p, style, side, shading=cfg.shading, shadow=cfg.shadow,
                 texture_strength=cfg.texture_strength, grain=cfg.grain)
    label = drawn.label
    masks = label[:, None] == np.arange(k, dtype=np.int8)[None, :, None, None]
    edge = np.zeros(label.shape, dtype=bool)
    dh = label[:, :, 1:] != label[:, :, :-1]
    dv = label[:, 1:, :] != label[:, :-1, :]
    edge[:, :, 1:] |= dh
    edge[:, :, :-1] |= dh
    edge[:, 1:, :] |= dv
    edge[:, :-1, :] |= dv
    return Scenes(
        images=drawn.images, object_masks=masks, kinds=p.kind, colours=colour,
        sizes=p.size, centres=p.centre, rotations=np.degrees(p.rot).astype(np.float32),
        contour=edge & (label >= 0), shadow=drawn.shadow, background=label < 0,
        captions=captions, codes=codes(p, side), indices=idx, seed=seed, style=style,
        config=cfg,
    )


def render(seed: int, index: int, config: WorldConfig | None = None,
           style: str = "photo") -> Scenes:
    """Render the single scene ``(seed, index)``: a :class:`Scenes` of length 1."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"index={index!r} is invalid: expected a non-negative integer")
    return render_batch(seed, [int(index)], config, style)


def truth_masks(scenes: Scenes) -> tuple[np.ndarray, np.ndarray]:
    """Per-concept truth from visible object masks: kind masks bool ``(n, len(KINDS), h, w)``
    and colour masks bool ``(n, len(COLOURS), h, w)``, in the ``KINDS`` / ``COLOURS`` order."""
    if not isinstance(scenes, Scenes):
        raise TypeError(f"scenes must be a Scenes, got {type(scenes).__name__}")
    n, k, h, w = scenes.object_masks.shape
    kind = np.zeros((n, len(KINDS), h, w), dtype=bool)
    colour = np.zeros((n, len(COLOURS), h, w), dtype=bool)
    for j in range(k):
        si = np.nonzero(scenes.kinds[:, j] >= 0)[0]
        kind[si, scenes.kinds[si, j]] |= scenes.object_masks[si, j]
        colour[si, scenes.colours[si, j]] |= scenes.object_masks[si, j]
    return kind, colour

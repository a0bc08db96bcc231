"""Scenes of the procedural world as files: PNG images with their ground-truth masks beside them
(``rosetta data render``), for trying the tools offline on images with known content.

A folder written by :func:`write_scenes` holds, for scene ``i`` of world seed ``seed`` (the
same scene as ``render(seed, i, config, style)``, so each file depends only on seed and index):

- ``scene_{i:05d}.png``: the RGB image, ``(h, w, 3)`` uint8;
- ``scene_{i:05d}.masks.npz``: boolean masks of that scene (``numpy.load``), see :data:`MASKS`;
- ``index.json`` (written last): :data:`FORMAT`, seed, style, world, the factor names
  (``factors.kinds`` = ``KINDS``, ``factors.colours`` = ``COLOURS``, the order of the mask
  planes) and one entry per scene (file names, caption, objects).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .shapes import COLOURS, KINDS, STYLES, Scenes, WorldConfig, render_batch, truth_masks

__all__ = ["FORMAT", "MASKS", "scene_name", "scene_masks", "write_scenes"]

FORMAT = "rosetta-scenes/1"
#: the arrays of each ``.masks.npz``: name -> what it holds (``h``, ``w``: the image's size)
MASKS = {
    "kinds": "bool (len(factors.kinds), h, w): pixels of a visible object of each kind (truth_masks)",
    "colours": "bool (len(factors.colours), h, w): pixels of a visible object of each colour (truth_masks)",
    "objects": "bool (max_objects, h, w): visible pixels of each object slot, in drawing order",
    "background": "bool (h, w): pixels of no object",
    "contour": "bool (h, w): object pixels next to another object or the background",
    "shadow": "bool (h, w): cast shadow on visible background",
}
#: scenes rendered at once (memory stays bounded for large n; results do not depend on it)
_BATCH = 256


def scene_name(index: int) -> str:
    """The file stem of scene ``index``: ``scene_00012``."""
    return f"scene_{index:05d}"


def scene_masks(scenes: Scenes) -> list[dict[str, np.ndarray]]:
    """The :data:`MASKS` arrays of every scene of ``scenes``, one dict per scene."""
    kinds, colours = truth_masks(scenes)
    return [{"kinds": kinds[i], "colours": colours[i], "objects": scenes.object_masks[i],
             "background": scenes.background[i], "contour": scenes.contour[i], "shadow": scenes.shadow[i]}
            for i in range(len(scenes))]


def _objects(scenes: Scenes, i: int) -> list[dict[str, Any]]:
    return [{"slot": j, "kind": KINDS[scenes.kinds[i, j]], "colour": COLOURS[scenes.colours[i, j]],
             "centre": [round(float(v), 3) for v in scenes.centres[i, j]], "size": round(float(scenes.sizes[i, j]), 3),
             "rotation": round(float(scenes.rotations[i, j]), 3)}
            for j in range(scenes.kinds.shape[1]) if scenes.kinds[i, j] >= 0]


def _check(n, seed, style, config) -> WorldConfig:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} is invalid: expected a number of scenes >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: expected a non-negative integer")
    if style not in STYLES:
        raise ValueError(f"style={style!r} is invalid: expected one of {', '.join(STYLES)}")
    config = WorldConfig() if config is None else config
    if not isinstance(config, WorldConfig):
        raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
    return config


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"out={str(out)!r} is not a writable folder: {err.strerror or err}") from None


def write_scenes(out: str | os.PathLike, n: int, seed: int = 0, style: str = "photo",
                 config: WorldConfig | None = None) -> dict[str, Any]:
    """Render scenes ``(seed, 0)`` .. ``(seed, n - 1)`` of the world ``config`` (default
    ``WorldConfig()``) in ``style`` into folder ``out``; returns the ``index.json`` content.

    Every input is checked before anything is written (one ValueError naming the bad value).
    A folder holding scenes of another seed, style or world is refused (nothing there is
    overwritten); the same settings rewrite the same files, so a rerun or a larger ``n`` is safe.
    """
    config = _check(n, seed, style, config)
    out = Path(out)
    settings = {"format": FORMAT, "seed": int(seed), "style": style, "world": json.loads(json.dumps(asdict(config)))}
    index_path = out / "index.json"
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or {k: old.get(k) for k in settings} != settings:
            raise ValueError(f"out={str(out)!r} holds other scenes (see its index.json: another seed, style or "
                             "world); choose another folder or remove it")
    _writable(out)
    from PIL import Image

    entries = []
    for start in range(0, n, _BATCH):
        scenes = render_batch(seed, np.arange(start, min(start + _BATCH, n)), config, style)
        for i, masks in enumerate(scene_masks(scenes)):
            index = int(scenes.indices[i])
            stem = scene_name(index)
            Image.fromarray(scenes.images[i].transpose(1, 2, 0)).save(out / f"{stem}.png")
            np.savez_compressed(out / f"{stem}.masks.npz", **masks)
            entries.append({"index": index, "image": f"{stem}.png", "masks": f"{stem}.masks.npz",
                            "caption": scenes.captions[i], "objects": _objects(scenes, i)})
    index = {**settings, "n": int(n), "image_shape": [3, config.image_size, config.image_size],
             "factors": {"kinds": list(KINDS), "colours": list(COLOURS)}, "masks": MASKS, "scenes": entries}
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(index_path)
    return index

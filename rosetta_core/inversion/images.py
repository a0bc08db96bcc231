"""Reading user images for inversion, with one clear error per kind of bad file, and encoding
the jobs' images as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..run import location

__all__ = ["MIN_SIDE", "load_image", "png_bytes", "side_by_side"]

#: images with a side below this many pixels carry too little to invert
MIN_SIDE = 16


def _read(path: str | Path) -> bytes:
    try:
        return location.read_bytes(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise ValueError(f"image {str(path)!r} does not exist or is not a file") from None


def load_image(path: str | Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """Read ``path`` (a file, or an fsspec URL such as ``s3://bucket/x.png``) as uint8
    ``(1, 3, size, size)``; returns (image, notes).

    Grey, grey+alpha, RGBA, palette and CMYK images are converted to RGB and non-square or
    other-sized images are resized (bicubic) to ``size``; each conversion adds a note. A
    missing, unreadable or corrupt file, or one smaller than :data:`MIN_SIDE` pixels on a side,
    raises ``ValueError`` naming the file.
    """
    data = _read(path)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, (w, h) = img.mode, img.size
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"image {str(path)!r} is unreadable or corrupt ({type(err).__name__}: {err}); give a PNG or JPEG file") from None
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"image {str(path)!r} is {w}x{h} pixels; the smallest side must be >= {MIN_SIDE}")
    notes = []
    if mode != "RGB":
        notes.append(f"converted from {mode} ({len(Image.Image.getbands(img))} channels) to RGB")
    if (w, h) != (size, size):
        notes.append(f"resized from {w}x{h} to {size}x{size}")
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())[None], notes


def side_by_side(*images: torch.Tensor, gap: int = 2) -> np.ndarray:
    """uint8 ``(3, H, W)`` images -> one ``(H, sum W + gaps, 3)`` array, white gaps."""
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((im.shape[1], gap, 3), 255, dtype=np.uint8))
        parts.append(np.asarray(im).transpose(1, 2, 0))
    return np.concatenate(parts, axis=1)


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """An ``(H, W, 3)`` uint8 array as a PNG file's content, nearest-neighbour upscaled by ``scale``."""
    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()

"""How a dataset image of any size becomes one encoder's input (mining an image folder).

Each encoder brings an image to its own input with its library's evaluation transform: timm's
data config (``resolve_model_data_config``: resize by ``crop_pct``, centre crop, interpolation)
or open_clip's eval transform (resize, centre crop). Only the geometric steps are kept here and
the result is a uint8 ``(3, S, S)`` tensor; the encoder's ``activations`` normalises it as it
does every image. So the same files give each encoder the view its library would.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["ImageTransform", "geometric_steps", "open_clip_transform", "resize_crop", "timm_transform"]

#: ``(h, w, 3)`` uint8 array -> uint8 tensor ``(3, S, S)``
ImageTransform = Callable[[np.ndarray], torch.Tensor]


def geometric_steps(transform) -> ImageTransform:
    """A torchvision ``Compose`` of a library's eval transform, without its tensor conversion and
    normalisation: an RGB array in, a uint8 ``(3, S, S)`` tensor out."""
    from PIL import Image
    from torchvision import transforms as T

    dropped = (T.ToTensor, T.Normalize)
    steps = [t for t in transform.transforms
             if not isinstance(t, dropped) and type(t).__name__ not in ("MaybeToTensor", "ToNumpy")]
    steps = [t for t in steps if getattr(t, "__name__", "") != "_convert_to_rgb"]  # images are RGB already

    def apply(rgb: np.ndarray) -> torch.Tensor:
        image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
        for step in steps:
            image = step(image)
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()

    apply.steps = steps  # for tests and descriptions
    return apply


def resize_crop(size: int, interpolation: str = "bilinear") -> ImageTransform:
    """Resize the shorter side to ``size`` and take the centre ``size x size`` (the default of an
    encoder whose library gives no transform)."""
    from torchvision import transforms as T

    mode = T.InterpolationMode(interpolation)
    return geometric_steps(T.Compose([T.Resize(size, interpolation=mode), T.CenterCrop(size)]))


def timm_transform(module, size: int | None = None) -> ImageTransform:
    """timm's eval transform of ``module`` (its data config; ``size`` overrides the input side)."""
    import timm.data

    cfg = dict(timm.data.resolve_model_data_config(module))
    if size is not None:
        cfg["input_size"] = (3, int(size), int(size))
    return geometric_steps(timm.data.create_transform(**cfg, is_training=False))


def open_clip_transform(arch: str, tag: str, size: int) -> ImageTransform:
    """open_clip's eval transform of pretrained ``arch``/``tag`` at input ``size``."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    return geometric_steps(open_clip.image_transform(
        size, is_train=False, mean=cfg.get("mean"), std=cfg.get("std"),
        interpolation=cfg.get("interpolation"), resize_mode=cfg.get("resize_mode"),
    ))

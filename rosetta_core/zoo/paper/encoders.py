"""The paper's discriminative models through timm and open_clip (Table 2 of the paper).

Hooked layers (paper's code):
- ResNet-type (``resnet50.tv_in1k``, ``dino-resnet50``, ``RN50.openai``): the outputs of the four
  stages ``layer1``..``layer4`` (post-ReLU): 256 + 512 + 1024 + 2048 = 3,840 units on grids
  56, 28, 14, 7 at 224x224 input.
- ViT-B/16 (``vit_base_patch16_224.dino``, ``vit_base_patch16_224.mae``): the GELU of every
  block's MLP, ``blocks.{i}.mlp.act``: 12 x 3,072 = 36,864 units on the 14x14 token grid, class
  token dropped.

Preprocessing: uint8 images of any size are scaled to [0, 1], resized to the model's input size
with the interpolation of the library's own data config (timm ``resolve_model_data_config``,
open_clip's eval transform) and normalised with its mean/std. The whole image is resized (no
crop), as the paper's code did.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import capture
from ..base import EncoderAdapter, LayerInfo, tokens_to_maps

__all__ = ["ImageNorm", "ResNetStagesAdapter", "ViTBlocksAdapter", "timm_norm", "open_clip_norm", "RESNET50_STAGES",
           "VIT_B16", "resnet_stage_table", "vit_block_table"]

#: units of the four stage outputs of a ResNet-50 (bottleneck widths 64..512 times expansion 4;
#: timm's ``resnet50`` and open_clip's ``ModifiedResNet`` RN50 alike)
RESNET50_STAGES = (256, 512, 1024, 2048)
#: ViT-B/16: blocks, MLP hidden width (768 x 4), patch size
VIT_B16 = dict(depth=12, mlp_hidden=3072, patch=16)


def resnet_stage_table(size: int, stages: Sequence[int] = RESNET50_STAGES) -> list[LayerInfo]:
    """``layer1`` .. ``layer4`` as :meth:`ResNetStagesAdapter.layers` reports them at input ``size``:
    stage ``i`` (from 0) has ``stages[i]`` units on the ``size / 2**(i + 2)`` grid."""
    return [LayerInfo(f"layer{i + 1}", units, (size // 2 ** (i + 2),) * 2) for i, units in enumerate(stages)]


def vit_block_table(size: int, depth: int, mlp_hidden: int, patch: int) -> list[LayerInfo]:
    """``blocks.{i}.mlp.act`` as :meth:`ViTBlocksAdapter.layers` reports them at input ``size``:
    ``mlp_hidden`` units on the ``size / patch`` token grid, for each of ``depth`` blocks."""
    return [LayerInfo(f"blocks.{i}.mlp.act", mlp_hidden, (size // patch,) * 2) for i in range(depth)]


class ImageNorm:
    """Input size, interpolation, mean and std of one model (from its library's config)."""

    def __init__(self, size: int, interpolation: str, mean: Sequence[float], std: Sequence[float], geometry=None):
        #: the library's eval transform of a dataset image, geometric steps only (``EncoderAdapter.image_transform``)
        self.geometry = geometry
        if interpolation not in ("bilinear", "bicubic"):
            interpolation = "bilinear"
        self.size, self.interpolation = int(size), interpolation
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def describe(self) -> dict:
        return {"size": self.size, "interpolation": self.interpolation,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def __call__(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """uint8 ``(n, 3, H, W)`` -> float32 ``(n, 3, size, size)`` normalised, on ``device``."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (n, 3, H, W); got {images.dtype} {tuple(images.shape)}")
        x = images.to(device, torch.float32) / 255.0
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode=self.interpolation, align_corners=False,
                              antialias=True).clamp(0.0, 1.0)
        return (x - self.mean.to(device)) / self.std.to(device)


def timm_norm(module: nn.Module, size: int) -> ImageNorm:
    """timm's own data config of ``module`` (mean, std, interpolation) at input ``size``."""
    import timm.data

    from ..transforms import timm_transform

    cfg = timm.data.resolve_model_data_config(module)
    return ImageNorm(size, cfg["interpolation"], cfg["mean"], cfg["std"], geometry=timm_transform(module, size))


def open_clip_norm(arch: str, tag: str, size: int) -> ImageNorm:
    """Mean, std and interpolation of open_clip's eval transform of pretrained ``arch``/``tag``."""
    import open_clip
    from torchvision import transforms as T

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    transform = open_clip.image_transform(
        size, is_train=False, mean=cfg.get("mean"), std=cfg.get("std"),
        interpolation=cfg.get("interpolation"), resize_mode=cfg.get("resize_mode"),
    )
    norm = next(t for t in transform.transforms if isinstance(t, T.Normalize))
    resize = next(t for t in transform.transforms if isinstance(t, T.Resize))
    from ..transforms import geometric_steps

    return ImageNorm(size, resize.interpolation.value, norm.mean, norm.std, geometry=geometric_steps(transform))


class _Stop(Exception):
    """Raised by a hook after the last requested layer: the rest of the forward is skipped."""


class _HookedEncoder(EncoderAdapter):
    """Shared capture logic: ``_hooked`` maps layer names to modules in forward order."""

    norm: ImageNorm
    _hooked: dict[str, nn.Module]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(images, self.device)

    def image_transform(self):
        """The library's own eval transform (resize, crop) at this model's input size."""
        if self.norm.geometry is None:
            from ..transforms import resize_crop

            return resize_crop(self.norm.size, self.norm.interpolation)
        return self.norm.geometry

    def _to_map(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value

    def activations(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """uint8 ``(n, 3, H, W)`` -> dict layer -> float32 ``(n, units, h, w)`` (post-nonlinearity)."""
        names = self.select_layers(layers)
        if not names:
            return {}
        x = self.preprocess(images)
        last = self._hooked[names[-1]]

        def stop(_module, _args, _output):
            raise _Stop

        with torch.no_grad(), capture({n: self._hooked[n] for n in names}, self._to_map) as store:
            handle = last.register_forward_hook(stop)
            try:
                self.module(x)
            except _Stop:
                pass
            finally:
                handle.remove()
        return {n: store[n][0].float() for n in names}


def _stage_units(stage: nn.Module) -> int:
    convs = [m for m in stage[-1].modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class ResNetStagesAdapter(_HookedEncoder):
    """A ResNet (timm ``ResNet`` or open_clip ``ModifiedResNet``): stage outputs ``layer1..4``."""

    def __init__(self, name: str, module: nn.Module, norm: ImageNorm, arch: str):
        if norm.size % 32:
            raise ValueError(f"image size {norm.size} is invalid for {name}: use a multiple of 32 (e.g. 224)")
        self.name, self.module, self.norm, self.arch = name, module, norm, arch
        self.weights = "random"
        self._hooked = {f"layer{i}": getattr(module, f"layer{i}") for i in range(1, 5)}

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(n, _stage_units(m), (self.norm.size // 2 ** (i + 2),) * 2)
                for i, (n, m) in enumerate(self._hooked.items())]


class ViTBlocksAdapter(_HookedEncoder):
    """A timm ``VisionTransformer``: the MLP GELU of every block, tokens -> maps."""

    def __init__(self, name: str, module: nn.Module, norm: ImageNorm, arch: str):
        self.name, self.module, self.norm, self.arch = name, module, norm, arch
        self.weights = "random"
        self.grid = tuple(module.patch_embed.grid_size)
        self.prefix = module.num_prefix_tokens
        self._hooked = {f"blocks.{i}.mlp.act": b.mlp.act for i, b in enumerate(module.blocks)}
        self._units = {f"blocks.{i}.mlp.act": b.mlp.fc1.out_features for i, b in enumerate(module.blocks)}

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(n, self._units[n], self.grid) for n in self._hooked]

    def _to_map(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return tokens_to_maps(value, self.grid, prefix=self.prefix)

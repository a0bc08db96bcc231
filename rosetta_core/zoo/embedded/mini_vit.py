"""``mini-vit.mae``: a small timm Vision Transformer pre-trained as a masked autoencoder.

Architecture: ``timm.models.vision_transformer.VisionTransformer`` at 64x64 with 8x8 patches
(an 8x8 token grid plus a class token), :data:`VIT_CONFIG` below. The MAE decoder is a training
device only (``vit_recipes.py``); the shipped module is the encoder.

Hooked layers: the GELU of every block's MLP, ``blocks.{i}.mlp.act``: tokens
``(n, 1 + 64, mlp_hidden)`` become maps ``(n, mlp_hidden, 8, 8)`` with the class token dropped.

timm is imported when a model is built, not with this module: registering the model (and
listing it, :func:`layer_table`) needs only :data:`VIT_CONFIG`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..hooks import capture
from ..base import EncoderAdapter, LayerInfo, tokens_to_maps
from . import register_embedded

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

__all__ = ["NAME", "VIT_CONFIG", "MiniViTAdapter", "build_vit", "build_adapter", "layer_table"]

NAME = "mini-vit.mae"
#: keyword arguments of timm's VisionTransformer (the architecture as data)
VIT_CONFIG = dict(
    img_size=64, patch_size=8, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0,
    num_classes=0, global_pool="avg", class_token=True,
)


def build_vit() -> VisionTransformer:
    """A randomly initialised encoder with the architecture of ``mini-vit.mae``."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**VIT_CONFIG)


class MiniViTAdapter(EncoderAdapter):
    """Adapter around a timm ``VisionTransformer`` whose MLP GELUs are the hooked layers.

    ``preprocess`` uses timm's own data config of the model (mean/std), at the native 64x64.
    """

    def __init__(self, module: VisionTransformer, name: str = NAME, weights: str = "random"):
        import timm.data

        self.module = module
        self.name = name
        self.weights = weights
        cfg = timm.data.resolve_data_config({}, model=module)
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.grid = tuple(module.patch_embed.grid_size)
        self.image_size = tuple(module.patch_embed.img_size)
        blocks = module.blocks
        self.arch = (
            f"timm VisionTransformer img {self.image_size[0]} patch {module.patch_embed.patch_size[0]} "
            f"dim {module.embed_dim} depth {len(blocks)} heads {blocks[0].attn.num_heads}"
        )
        self._modules_by_name = {f"blocks.{i}.mlp.act": block.mlp.act for i, block in enumerate(blocks)}
        self._units = {name: blocks[i].mlp.fc1.out_features for i, name in enumerate(self._modules_by_name)}

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(name, self._units[name], self.grid) for name in self._modules_by_name]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, 64, 64)`` -> normalised float32 ``(n, 3, 64, 64)`` on the model's device."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (n, 3, H, W); got {images.dtype} {tuple(images.shape)}"
            )
        if tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"images are {tuple(images.shape[2:])} pixels; {self.name} takes {self.image_size}"
            )
        x = images.to(self.device, torch.float32) / 255.0
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def activations(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """uint8 ``(n, 3, 64, 64)`` -> dict layer -> float32 ``(n, mlp_hidden, 8, 8)``."""
        names = self.select_layers(layers)
        prefix = self.module.num_prefix_tokens
        chosen = {name: self._modules_by_name[name] for name in names}
        with torch.no_grad(), capture(chosen, transform=lambda _n, t: tokens_to_maps(t, self.grid, prefix)) as store:
            self.module(self.preprocess(images))
        return {name: store[name][-1].float() for name in names}

    def features(self, images: torch.Tensor, pool: str = "mean") -> torch.Tensor:
        """Pooled final features ``(n, embed_dim)``: ``"mean"`` of the patch tokens or ``"cls"``."""
        if pool not in ("mean", "cls"):
            raise ValueError(f"pool={pool!r} is invalid: expected 'mean' or 'cls'")
        with torch.no_grad():
            tokens = self.module.forward_features(self.preprocess(images))
        prefix = self.module.num_prefix_tokens
        return tokens[:, prefix:].mean(1) if pool == "mean" else tokens[:, 0]


def layer_table() -> list[LayerInfo]:
    """``blocks.{i}.mlp.act`` as :meth:`MiniViTAdapter.layers` reports them, from :data:`VIT_CONFIG`:
    ``embed_dim * mlp_ratio`` units on the ``img_size / patch_size`` token grid, for each block."""
    c = VIT_CONFIG
    side = c["img_size"] // c["patch_size"]
    return [LayerInfo(f"blocks.{i}.mlp.act", int(c["embed_dim"] * c["mlp_ratio"]), (side, side)) for i in range(c["depth"])]


def build_adapter() -> MiniViTAdapter:
    """The registry's ``build``: a randomly initialised ``mini-vit.mae``."""
    return MiniViTAdapter(build_vit())


_ARCH = "timm.VisionTransformer(img {img_size}, patch {patch_size}, dim {embed_dim}, depth {depth}, heads {num_heads})"

register_embedded(NAME, _ARCH.format(**VIT_CONFIG), build_adapter, layer_table,
                  description="a small ViT pre-trained as a masked autoencoder (75% of patches masked, loss on "
                  "normalised pixels) on the procedural shapes world",
                  trained_by="MAE pre-training on rosetta_core.data shapes (bench/train_vit.py)")

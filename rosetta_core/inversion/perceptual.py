"""The perceptual reconstruction loss of in-distribution inversion (paper Eq. 7).

LPIPS needs its own trained linear heads and a pretrained backbone downloaded from the web; the
``lpips`` package and its weights are not available here (offline), so the loss uses a zoo
encoder's features instead, LPIPS-style: per layer, unit-normalise every position's
feature vector over channels, take the squared difference, average over positions and channels,
then average over layers. :attr:`Perceptual.description` says which one was used; the CLI
writes it to ``metrics.json``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..zoo.base import EncoderAdapter

__all__ = ["Perceptual"]


def _layer_modules(adapter: EncoderAdapter, layers: list[str]) -> dict[str, nn.Module]:
    out = {}
    for name in layers:
        try:
            out[name] = adapter.module.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{adapter.name} has no submodule {name!r} for perceptual features") from None
    return out


class Perceptual:
    """Feature distance of ``adapter`` (an encoder of the zoo with ``mean``/``std`` input
    statistics: ``mini-resnet.*`` or ``mini-clip.rn``) at ``layers`` (default: all of them)."""

    def __init__(self, adapter: EncoderAdapter, layers: list[str] | None = None):
        if not hasattr(adapter, "mean") or not hasattr(adapter, "std"):
            raise ValueError(f"{adapter.name} cannot serve as the perceptual encoder; use mini-resnet.sup or mini-clip.rn")
        self.adapter = adapter
        self.layers = adapter.select_layers(layers)
        self._modules = _layer_modules(adapter, self.layers)
        for p in adapter.module.parameters():
            p.requires_grad_(False)
        self.description = f"features of {adapter.name} ({', '.join(self.layers)}), LPIPS-style; LPIPS weights not available"

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Float images in [-1, 1] ``(n, 3, H, W)`` -> per layer unit-normalised ``(n, c, h, w)``."""
        x = (images + 1) / 2
        x = (x - self.adapter.mean.to(x)) / self.adapter.std.to(x)
        got: dict[str, torch.Tensor] = {}
        handles = [m.register_forward_hook(lambda _m, _a, out, n=n: got.__setitem__(n, out)) for n, m in self._modules.items()]
        module = self.adapter.module
        module.eval()
        try:
            if hasattr(module, "visual"):
                module.visual(x)
            else:
                module.forward_features(x)
        finally:
            for h in handles:
                h.remove()
        return [got[n] / (got[n].pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8) for n in self.layers]

    def loss(self, images: torch.Tensor, target: list[torch.Tensor]) -> torch.Tensor:
        """Per image ``(n,)``; ``target`` from :meth:`features` of the target images."""
        feats = self.features(images)
        return sum((f - t).pow(2).mean(dim=(1, 2, 3)) for f, t in zip(feats, target)) / len(feats)

"""The terms of the inversion objectives (paper Eq. 5-7) and the learning-rate schedule.

``L_act`` (Eq. 6) for one image is the mean over matched pairs ``(j, k)`` of

    (1 / HW) * sum_x (G_x^j - mean(G^j)) (D_x^k - mean(D^k)) / sqrt(var(G^j) var(D^k))

with both maps bilinearly resized (``align_corners=False``, as in mining) to the pair's common
grid ``H x W`` and the means/variances taken from the mining dataset (not from this image).
Eq. 6 writes the sum over positions; we divide it by ``HW`` so pairs on grids of different
sizes weigh the same (a constant factor per layer pair). With ``center="position"`` runs the
means are per-position maps. Everything is batched: one gather, one resize and one product per
layer pair, for ``n`` images at once; the result has shape ``(n,)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .matches import Matches, PairGroup

__all__ = [
    "REGS", "PIXELS", "resize_to", "normalised_targets", "act_loss", "reg_loss", "pixel_loss",
    "lr_factor", "differentiable_maps",
]

REGS = ("l2", "l1")
PIXELS = ("l2", "l1", "none")


def resize_to(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(n, P, h, w)`` -> ``(n, P, H, W)``, bilinear without corner alignment (mining's resize)."""
    if tuple(maps.shape[-2:]) == tuple(grid):
        return maps
    return F.interpolate(maps, size=tuple(grid), mode="bilinear", align_corners=False)


def _stat(values, like: torch.Tensor) -> torch.Tensor:
    """Statistics ``(P,)`` or ``(P, H, W)`` -> broadcastable against ``(n, P, H, W)``."""
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return t[None, :, None, None] if t.ndim == 1 else t[None]


def _normalise(maps: torch.Tensor, mean, std) -> torch.Tensor:
    return (maps - _stat(mean, maps)) / _stat(std, maps)


def normalised_targets(matches: Matches, target_maps: Mapping[str, Mapping[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per group, the target side ``(n, P, H, W)`` resized and normalised (fixed during the
    optimisation). ``target_maps[model][layer]``: ``(n, units, h, w)`` maps of the target."""
    out = []
    for group in matches.groups:
        maps = target_maps[group.target_model][group.target_layer].float()
        picked = maps[:, torch.as_tensor(group.target_channels, device=maps.device)]
        out.append(_normalise(resize_to(picked, group.grid), group.target_mean, group.target_std).detach())
    return out


def _pair_terms(group: PairGroup, gen_maps: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """``(n, P)``: each pair's spatial mean of the product of the two normalised maps."""
    maps = gen_maps[group.gen_layer]
    picked = maps[:, torch.as_tensor(group.gen_channels, device=maps.device)]
    gen = _normalise(resize_to(picked, group.grid), group.gen_mean, group.gen_std)
    return (gen * target).mean(dim=(2, 3))


def act_loss(matches: Matches, gen_maps: Mapping[str, torch.Tensor], targets: list[torch.Tensor],
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """``L_act`` per image ``(n,)`` (module docstring). ``gen_maps[layer]``: ``(n, units, h, w)``;
    ``targets``: :func:`normalised_targets`. ``weights`` (optional, ``(P_total,)`` in group
    order) replaces the plain mean over pairs by a weighted mean (one-hot: a single pair)."""
    terms = torch.cat([_pair_terms(g, gen_maps, t) for g, t in zip(matches.groups, targets)], dim=1)
    if weights is None:
        return terms.mean(dim=1)
    return (terms * weights.to(terms)).sum(dim=1) / weights.sum()


def reg_loss(latents: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """``L_reg`` per latent ``(n,)``: mean squared (``l2``) or mean absolute (``l1``) value."""
    if kind not in REGS:
        raise ValueError(f"reg={kind!r} is not supported; valid: {', '.join(REGS)}")
    return latents.pow(2).mean(dim=1) if kind == "l2" else latents.abs().mean(dim=1)


def pixel_loss(images: torch.Tensor, targets: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Pixel reconstruction loss per image ``(n,)`` on float images in [-1, 1] ``(n, 3, H, W)``."""
    if kind not in PIXELS:
        raise ValueError(f"pixel={kind!r} is not supported; valid: {', '.join(PIXELS)}")
    if kind == "none":
        return images.new_zeros(len(images))
    diff = images - targets
    return (diff.pow(2) if kind == "l2" else diff.abs()).mean(dim=(1, 2, 3))


def lr_factor(step: int, steps: int, warmup: float = 0.05, rampdown: float = 0.25) -> float:
    """The multiplier of the base learning rate at ``step`` of ``steps`` (0-based): linear from
    0 over the first ``warmup`` fraction, 1, then a half cosine down to 0 over the last
    ``rampdown`` fraction (the schedule the paper takes from its reference [29])."""
    t = step / steps
    up = min(1.0, t / warmup) if warmup > 0 else 1.0
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    return up * (0.5 - 0.5 * math.cos(down * math.pi))


@contextmanager
def differentiable_maps(module: nn.Module, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of a generator's activation modules *with* their graph (unlike
    :func:`rosetta_core.hooks.capture`, which detaches). Yields layer -> latest output; the
    hooks are removed on exit. The generator module must expose ``activation_modules()``."""
    if not hasattr(module, "activation_modules"):
        raise ValueError(f"{type(module).__name__} does not expose activation_modules(); guided inversion needs it")
    modules = module.activation_modules()
    unknown = [l for l in layers if l not in modules]
    if unknown:
        raise ValueError(f"generator layer(s) {unknown} unknown; valid: {', '.join(modules)}")
    out: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name):
        def record(_module, _args, output):
            out[name] = output
        return record

    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(hook(name)))
        yield out
    finally:
        for handle in handles:
            handle.remove()

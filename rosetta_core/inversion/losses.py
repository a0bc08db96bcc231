"""The terms of the inversion objectives (paper Eq. 5-7) and the learning-rate schedule.

``L_act`` (Eq. 6) for one image is the mean over matched pairs ``(j, k)`` of

    (1 / HW) * sum_x (G_x^j - mean(G^j)) (D_x^k - mean(D^k)) / sqrt(var(G^j) var(D^k))

with both maps bilinearly resized (``align_corners=False``, as in mining) to the pair's common
grid ``H x W`` and the means/variances taken from the mining dataset (not from this image).
Eq. 6 writes the sum over positions; we divide it by ``HW`` so pairs on grids of different
sizes weigh the same (a constant factor per layer pair). With ``center="position"`` runs the
means are per-position maps. Everything is batched: one gather, one resize and one product per
layer pair, for ``n`` images at once; the result has shape ``(n,)``.

During an optimisation the targets are fixed, so ``L_act`` is an affine function of the
generator's maps: :class:`LinearAct` folds each target map back onto the generator unit's own
grid (the transposed resize matrices, as in mining, DESIGN §3.1) and sums the kernels of pairs
that share a generator unit. Each step is then one product-sum per generator layer, without
gathers or resizes; :func:`act_loss` is the direct form it is tested against.

``act="image"`` (:class:`ImageCorrAct`) is an alternative to Eq. 6 for out-of-distribution
targets: each pair's Pearson correlation over the positions of *this* image, both resized maps
standardised by their own spatial mean and variance, so only the layout of a map counts, not its
level against the dataset (a flat-coloured cartoon shifts every encoder unit's level).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine.resize import bilinear_matrix
from .matches import Matches, PairGroup

__all__ = [
    "REGS", "PIXELS", "resize_to", "normalised_targets", "act_loss", "reg_loss", "pixel_loss",
    "lr_factor", "differentiable_maps", "generator_maps", "LinearAct", "MapEnergy", "ACTS", "IMAGE_EPS",
    "image_targets", "ImageCorrAct", "units_on_grid",
]

REGS = ("l2", "l1")
ACTS = ("dataset", "image")
# variance floor of a map standardised over its own positions, relative to the pair's dataset
# variance: a map (almost) constant on one image has no layout, and its term stays ~0
IMAGE_EPS = 1e-6
PIXELS = ("l2", "l1", "none")


def resize_to(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(n, P, h, w)`` -> ``(n, P, H, W)``, bilinear without corner alignment (mining's resize)."""
    if tuple(maps.shape[-2:]) == tuple(grid):
        return maps
    return F.interpolate(maps, size=tuple(grid), mode="bilinear", align_corners=False)


def units_on_grid(maps: torch.Tensor, channels: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """The ``channels`` of ``maps`` ``(n, units, h, w)``, resized to ``grid``: ``(n, P, H, W)``."""
    return resize_to(maps[:, torch.as_tensor(channels, device=maps.device)], grid)


def _stat(values, like: torch.Tensor) -> torch.Tensor:
    """Statistics ``(P,)`` or ``(P, H, W)`` -> broadcastable against ``(n, P, H, W)``."""
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return t[None, :, None, None] if t.ndim == 1 else t[None]


def _normalise(maps: torch.Tensor, mean, std) -> torch.Tensor:
    return (maps - _stat(mean, maps)) / _stat(std, maps)


def _target_units(matches: Matches, target_maps: Mapping[str, Mapping[str, torch.Tensor]]):
    """Per group: the group and its target units ``(n, P, H, W)`` on the pair's grid (float)."""
    for group in matches.groups:
        maps = target_maps[group.target_model][group.target_layer].float()
        yield group, units_on_grid(maps, group.target_channels, group.grid)


def normalised_targets(matches: Matches, target_maps: Mapping[str, Mapping[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per group, the target side ``(n, P, H, W)`` resized and normalised (fixed during the
    optimisation). ``target_maps[model][layer]``: ``(n, units, h, w)`` maps of the target."""
    return [_normalise(maps, group.target_mean, group.target_std).detach()
            for group, maps in _target_units(matches, target_maps)]


def _pair_terms(group: PairGroup, gen_maps: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """``(n, P)``: each pair's spatial mean of the product of the two normalised maps."""
    gen = _normalise(units_on_grid(gen_maps[group.gen_layer], group.gen_channels, group.grid), group.gen_mean, group.gen_std)
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


class LinearAct:
    """``L_act`` as ``sum_layer <maps_layer, kernel_layer> - offset`` per image, exactly equal
    to :func:`act_loss` with the same ``targets`` and ``weights``.

    For a pair ``p`` on common grid ``H x W`` with generator grid ``h x w`` (``R_h`` ``(H, h)``,
    ``R_w`` ``(W, w)`` the resize matrices) and normalised target ``T_p``, the term is
    ``sum_y g_y (R_h^T T_p R_w)_y / (HW s_p) - sum_x m_p(x) T_p(x) / (HW s_p)``: linear in the
    generator's map ``g`` on its own grid. The kernels are built in float64 on the first call
    (when the generator's grids are known), then kept in the maps' dtype, at least float32;
    the targets are released once folded.
    """

    def __init__(self, matches: Matches, targets: list[torch.Tensor], weights: torch.Tensor | None = None):
        if len(targets) != len(matches.groups):
            raise ValueError(f"{len(targets)} target groups for {len(matches.groups)} pair groups; build them with normalised_targets")
        self.matches, self.targets = matches, targets
        total = matches.n_pairs if weights is None else float(weights.sum())
        per_pair = np.full(matches.n_pairs, 1.0 / total) if weights is None else weights.double().cpu().numpy() / total
        self._share = np.split(per_pair, np.cumsum([len(g) for g in matches.groups])[:-1])
        self.kernels: dict[str, torch.Tensor] | None = None
        self.offset: torch.Tensor | None = None

    def _build(self, gen_maps: Mapping[str, torch.Tensor]) -> None:
        kernels: dict[str, torch.Tensor] = {}
        offset = None
        for group, target, share in zip(self.matches.groups, self.targets, self._share):
            maps = gen_maps[group.gen_layer]
            (H, W), (h, w) = group.grid, tuple(maps.shape[-2:])
            t = target.detach().double()
            scale = torch.as_tensor(share / (H * W * group.gen_std), dtype=torch.float64, device=t.device)[None, :, None, None]
            mean = torch.as_tensor(group.gen_mean, dtype=torch.float64, device=t.device)
            mean = mean[None, :, None, None] if mean.ndim == 1 else mean[None]
            t = t * scale
            term = (mean * t).sum(dim=(1, 2, 3))
            offset = term if offset is None else offset + term
            r_h = torch.tensor(bilinear_matrix(h, H), device=t.device)
            r_w = torch.tensor(bilinear_matrix(w, W), device=t.device)
            folded = torch.einsum("Hh,npHW,Ww->nphw", r_h, t, r_w)
            if group.gen_layer not in kernels:
                kernels[group.gen_layer] = torch.zeros((len(t), maps.shape[1], h, w), dtype=torch.float64, device=t.device)
            kernels[group.gen_layer].index_add_(1, torch.as_tensor(group.gen_channels, device=t.device), folded)
        # at least float32: kernel values ~1 / (pairs * HW * std) would underflow in half precision
        dtype = torch.promote_types(next(iter(gen_maps.values())).dtype, torch.float32)
        self.kernels = {k: v.to(dtype) for k, v in kernels.items()}
        self.offset = offset.to(dtype)
        self.targets = None

    def __call__(self, gen_maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.kernels is None:
            self._build(gen_maps)
        total = -self.offset
        for layer, kernel in self.kernels.items():
            total = total + (gen_maps[layer] * kernel).sum(dim=(1, 2, 3))
        return total


class MapEnergy:
    """``E`` per image ``(n,)``: the mean over matched pairs of ``(1 / HW) sum_x g_x^2``, where
    ``g`` is the generator's map normalised as in :func:`act_loss` (resized to the pair's grid,
    minus the dataset mean, over the dataset standard deviation).

    With normalised targets ``T`` as in ``L_act``, the mean over pairs of
    ``(1 / 2HW) sum_x (g_x - T_x)^2`` is ``E / 2 - L_act + C`` with ``C`` fixed by the targets,
    so ``E / 2 - L_act`` fits the targets' values, not only their correlation (edits use it,
    where the targets are the generator's own edited maps)."""

    def __init__(self, matches: Matches):
        self.matches = matches

    def __call__(self, gen_maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for group in self.matches.groups:
            picked = units_on_grid(gen_maps[group.gen_layer], group.gen_channels, group.grid)
            term = _normalise(picked, group.gen_mean, group.gen_std).pow(2).mean(dim=(2, 3)).sum(dim=1)
            total = term if total is None else total + term
        return total / self.matches.n_pairs


def _check_eps(eps: float) -> None:
    if not eps > 0:
        raise ValueError(f"eps={eps} must be > 0: a map constant over the image would divide 0 by 0")


def _spatially_standardised(maps: torch.Tensor, std, eps: float) -> torch.Tensor:
    """``(n, P, H, W)`` minus each map's spatial mean, over ``sqrt(spatial variance + eps * std^2)``
    (``std``: the pairs' dataset standard deviations ``(P,)``; ``eps > 0``)."""
    centred = maps - maps.mean(dim=(2, 3), keepdim=True)
    floor = eps * _stat(std, maps).pow(2)
    return centred / torch.sqrt(centred.pow(2).mean(dim=(2, 3), keepdim=True) + floor)


def image_targets(matches: Matches, target_maps: Mapping[str, Mapping[str, torch.Tensor]],
                  eps: float = IMAGE_EPS) -> list[torch.Tensor]:
    """Per group, the target side ``(n, P, H, W)`` resized to the pair's grid and standardised
    over its own positions (:class:`ImageCorrAct`); fixed during the optimisation."""
    _check_eps(eps)
    return [_spatially_standardised(maps, group.target_std, eps).detach()
            for group, maps in _target_units(matches, target_maps)]


class ImageCorrAct:
    """``L_act`` per image ``(n,)`` as the mean over matched pairs of the pair's Pearson
    correlation over the positions of that image (``act="image"``, module docstring):
    ``(1 / HW) sum_x g_x t_x`` with ``g``, ``t`` the two maps resized to the pair's grid, each
    minus its spatial mean over ``sqrt(its spatial variance + eps * dataset variance)``.
    Bounded in [-1, 1]; a map constant over the image contributes 0. ``targets``:
    :func:`image_targets` (with the same ``eps``)."""

    def __init__(self, matches: Matches, targets: list[torch.Tensor], eps: float = IMAGE_EPS):
        if len(targets) != len(matches.groups):
            raise ValueError(f"{len(targets)} target groups for {len(matches.groups)} pair groups; build them with image_targets")
        _check_eps(eps)
        self.matches, self.targets, self.eps = matches, targets, eps

    def __call__(self, gen_maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for group, target in zip(self.matches.groups, self.targets):
            picked = units_on_grid(gen_maps[group.gen_layer], group.gen_channels, group.grid)
            gen = _spatially_standardised(picked, group.gen_std, self.eps)
            term = (gen * target.to(gen)).mean(dim=(2, 3)).sum(dim=1)
            total = term if total is None else total + term
        return total / self.matches.n_pairs


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


class _Recorded(BaseException):
    """Raised by the last map hook to end a forward pass whose image is not needed (a
    ``BaseException``, so a generator's own ``except Exception`` cannot swallow it)."""


@contextmanager
def differentiable_maps(module: nn.Module, layers: list[str], stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of a generator's activation modules *with* their graph (unlike
    :func:`rosetta_core.zoo.hooks.capture`, which detaches). Yields layer -> latest output; the
    hooks are removed on exit. The generator module must expose ``activation_modules()``.
    ``stop=True``: the hook that records the last missing layer raises :class:`_Recorded`,
    ending the forward pass there (see :func:`generator_maps`). This assumes each activation
    module runs once per forward pass, as ``activation_modules()`` promises."""
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
            if stop and len(out) == len(layers):
                raise _Recorded
        return record

    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(hook(name)))
        yield out
    finally:
        for handle in handles:
            handle.remove()


def generator_maps(module: nn.Module, latents: torch.Tensor, layers: list[str],
                   images: bool = True) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """``(images or None, {layer: maps})`` of ``module(latents)`` with their graph.
    ``images=False`` stops the forward pass once every layer of ``layers`` is recorded (the
    layers after the deepest matched one, and the output convolution, are skipped)."""
    stop = not images and bool(layers)
    with differentiable_maps(module, layers, stop=stop) as maps:
        try:
            out = module(latents)
        except _Recorded:
            out = None
    return out, dict(maps)

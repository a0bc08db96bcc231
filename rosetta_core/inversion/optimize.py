"""Latent optimisation for guided inversion (paper Eq. 5 and 7) and single-neuron visualisation.

One loop serves every use: Adam on the latents ``(n, latent_dim)`` of a batch of independent
problems (Adam is elementwise and the loss a sum of per-image terms, so a batch gives the same
result as one problem at a time), ``steps`` steps with :func:`~.losses.lr_factor`'s warm-up and
cosine ramp-down, the base learning rate from the generator's zoo entry
(``extra["inversion_lr"]``). Deterministic given the seed: the start latents come from
``generator.sample_latents(seed, ...)`` and the loop itself draws no random numbers. The
:class:`~.config.InversionConfig` is checked once where a flow or job starts
(:meth:`~.config.InversionConfig.validate`), not here.

Eq. 6 normalises with *dataset* statistics, so it is a dot product, not a bounded
correlation: a latent far outside the prior can make activations, and ``L_act``, grow without
limit (measured here: ``L_act`` ~1800 after 100 steps with the latent drifting off). With
``project=True`` (default) every step is followed by a projection onto the box spanned by the
prior, the per-dimension min/max of :data:`BOX_SAMPLES` latents ``sample_latents(BOX_SEED, ...)``.

``L_reg`` keeps the latent where the prior puts its mass. The paper's generators draw
``z ~ N(0, I)``, so it writes ``||z||^2``; ``reg_center="zero"`` (default) is that literal
``||z||^2`` for every generator. A prior that is not centred at zero (mini-gen's latent is a
scene code: presence flags, colours and sizes in [0, 1]) is pulled by it towards "no object,
black"; ``reg_center="prior"`` takes ``L_reg`` of the latent standardised by the prior,
``(z - mean) / std`` per dimension (:func:`latent_prior`), which is again exactly ``||z||^2``
for generators that declare ``standard_normal_prior``. On mini-gen, "prior" gave better
layouts for cartoon-like OOD images but worse ones for line sketches, worse reconstructions
(Eq. 7) and slightly weaker edits (README, Results), so it is an option, not the default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..zoo import get_spec
from ..zoo.base import EncoderAdapter, GeneratorAdapter
from .config import MODES, REG_CENTERS, InversionConfig
from .losses import (ACTS, ImageCorrAct, LinearAct, generator_maps, image_targets, lr_factor, normalised_targets,
                     pixel_loss, reg_loss)
from .matches import Matches
from .perceptual import Perceptual

__all__ = ["MODES", "InversionConfig", "Result", "generator_lr", "optimise", "invert", "visualize", "target_maps",
           "guidance_objective", "latent_prior", "regulariser", "REG_CENTERS", "guidance", "ACTS"]

DEFAULT_LR = 0.05
BOX_SAMPLES, BOX_SEED = 1024, 271828


@dataclass
class Result:
    """``latents`` float32 ``(n, d)``; ``images`` uint8 ``(n, 3, H, W)``; ``strip`` uint8
    ``(k, n, 3, H, W)`` intermediate images; ``history`` per-step mean losses; ``act`` final
    ``L_act`` per image ``(n,)`` (NaN without guidance); ``seconds`` wall time."""

    latents: torch.Tensor
    images: torch.Tensor
    strip: torch.Tensor
    act: np.ndarray
    seconds: float
    steps: int
    history: list[dict] = field(default_factory=list)
    perceptual: str | None = None


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] ``(n, 3, H, W)`` -> uint8 (the zoo's generator convention)."""
    return ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def generator_lr(name: str) -> float:
    """The generator's inversion learning rate from its zoo entry (0.1 StyleGAN2 / 0.01 BigGAN
    in the paper); :data:`DEFAULT_LR` when the entry has none."""
    return float(get_spec(name).extra.get("inversion_lr", DEFAULT_LR))


def _prior_summary(gen: GeneratorAdapter) -> dict[str, torch.Tensor]:
    """Per-dimension min, max, mean and std (float64, CPU) of the :data:`BOX_SAMPLES` prior
    latents ``sample_latents(BOX_SEED, ...)``, drawn once per adapter (for mini-gen a draw
    renders the scenes) and cached on it for both the box and the prior."""
    summary = getattr(gen, "_prior_summary", None)
    if summary is None:
        sample = gen.sample_latents(BOX_SEED, np.arange(BOX_SAMPLES)).double().cpu()
        summary = {"min": sample.amin(dim=0), "max": sample.amax(dim=0), "mean": sample.mean(dim=0),
                   "std": sample.std(dim=0)}
        gen._prior_summary = summary
    return summary


def latent_box(gen: GeneratorAdapter) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (min, max) float32 ``(d,)`` of the prior's latents."""
    summary = _prior_summary(gen)
    return summary["min"].float().to(gen.device), summary["max"].float().to(gen.device)


def latent_prior(gen: GeneratorAdapter) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (mean, std) float32 ``(d,)`` that ``L_reg`` standardises latents by:
    exactly (0, 1) when ``gen.standard_normal_prior``; otherwise the mean and standard
    deviation of the :data:`BOX_SAMPLES` prior latents, with std 1 for dimensions the prior
    holds constant (the box projection fixes those anyway)."""
    summary = _prior_summary(gen)
    mean, std = summary["mean"], summary["std"]
    if gen.standard_normal_prior:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    else:
        std = torch.where(std > 1e-6 * (1 + mean.abs()), std, torch.ones_like(std))
    return mean.float().to(gen.device), std.float().to(gen.device)


def regulariser(gen: GeneratorAdapter, config: InversionConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z -> alpha * L_reg(z)`` per latent ``(n,)`` with ``config``'s kind and centring."""
    if config.reg_center == "zero":
        return lambda z: config.alpha * reg_loss(z, config.reg)
    mean, std = latent_prior(gen)
    return lambda z: config.alpha * reg_loss((z - mean.to(z)) / std.to(z), config.reg)


def target_maps(encoders: dict[str, EncoderAdapter], matches: Matches, images: torch.Tensor) -> dict:
    """Maps ``[model][layer] -> (n, units, h, w)`` of uint8 ``images`` for every matched layer."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for model in matches.models():
        layers = sorted({g.target_layer for g in matches.groups if g.target_model == model})
        out[model] = encoders[model].activations(images.to(encoders[model].device), layers)
    return out


def guidance(matches: Matches, maps: dict, act: str = "dataset", starts: int | None = None) -> Callable[[dict], torch.Tensor]:
    """``L_act`` (generator maps -> ``(n,)``) against the target maps ``maps`` (:func:`target_maps`):
    Eq. 6 (:class:`~.losses.LinearAct`) for ``act="dataset"``, :class:`~.losses.ImageCorrAct`
    for ``"image"``. ``starts``: one target image shared by that many latents."""
    if act not in ACTS:
        raise ValueError(f"act={act!r} is not supported; valid: {', '.join(ACTS)}")
    targets = normalised_targets(matches, maps) if act == "dataset" else image_targets(matches, maps)
    if starts is not None:
        targets = [t.expand(starts, *t.shape[1:]) for t in targets]
    return LinearAct(matches, targets) if act == "dataset" else ImageCorrAct(matches, targets)


Objective = Callable[[torch.Tensor, torch.Tensor, dict], tuple[torch.Tensor, torch.Tensor]]


def guidance_objective(act: Callable[[dict], torch.Tensor], reg: Callable[[torch.Tensor], torch.Tensor]) -> Objective:
    """Eq. 5 as an :data:`Objective`: ``reg(z) - act(maps)``; it reads only maps (run it with
    ``optimise(..., needs_images=False)``). ``act``: maps -> ``L_act`` ``(n,)``, e.g. a
    :class:`~.losses.LinearAct`; ``reg``: :func:`regulariser`."""

    def objective(z, _images, maps):
        value = act(maps)
        return reg(z) - value, value

    return objective


def optimise(gen: GeneratorAdapter, start: torch.Tensor, layers: list[str], objective: Objective,
             config: InversionConfig, progress: Callable[[int, int, float], None] | None = None,
             lr: float | None = None, needs_images: bool = True) -> Result:
    """Minimise ``objective(latents, images, maps) -> (loss (n,), act (n,))`` over the latents
    from ``start`` ``(n, d)``; ``images`` are float in [-1, 1], ``maps`` layer -> ``(n, u, h, w)``.
    ``needs_images=False``: the objective only reads ``maps`` (it gets ``images=None``), so each
    step's forward pass ends at the deepest layer of ``layers``; the strip's images are then
    rendered without gradients at the few steps that keep one."""
    began = time.perf_counter()
    base = lr if lr is not None else (config.lr or generator_lr(gen.name))
    module = gen.module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    z = start.detach().clone().float().to(gen.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=base)
    low, high = latent_box(gen) if config.project else (None, None)
    keep = set(np.linspace(0, config.steps - 1, max(config.snapshots, 1)).round().astype(int).tolist())
    strip, history = [], []
    for step in range(config.steps):
        for group in opt.param_groups:
            group["lr"] = base * lr_factor(step, config.steps, config.warmup, config.rampdown)
        images, maps = generator_maps(module, z, layers, images=needs_images)
        loss, act = objective(z, images, maps)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if step in keep:
            if images is None:
                with torch.no_grad():
                    images = module(z)
            strip.append(to_uint8(images))
        history.append({"loss": float(loss.detach().mean()), "act": float(act.detach().mean())})
        opt.step()
        if low is not None:
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, high.to(z)), low.to(z)))
        if progress is not None:
            progress(step + 1, config.steps, history[-1]["loss"])
    with torch.no_grad():
        images, maps = generator_maps(module, z, layers)
        _, act = objective(z, images, maps)
    return Result(z.detach(), to_uint8(images), torch.stack(strip), act.detach().cpu().numpy(),
                  time.perf_counter() - began, config.steps, history)


def _float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def invert(gen: GeneratorAdapter, encoders: dict[str, EncoderAdapter], matches: Matches | None,
           images: torch.Tensor, config: InversionConfig, perceptual: Perceptual | None = None,
           progress=None) -> Result:
    """Invert uint8 ``images`` ``(n, 3, H, W)`` into ``gen``.

    ``ood``: maximise ``L_act`` with ``alpha * L_reg`` (Eq. 5). ``rec``: pixel loss +
    perceptual (when given) + ``alpha * L_reg - beta * L_act`` (Eq. 7); ``matches=None`` or
    ``beta=0`` drops the guidance. Every image starts from ``gen.sample_latents(seed, [0])``,
    so an image's result does not depend on the rest of the batch.
    """
    if config.mode == "ood" and matches is None:
        raise ValueError("mode 'ood' needs matches: guidance is its only image term")
    n = len(images)
    guided = matches is not None and (config.mode == "ood" or config.beta > 0)
    act_of = guidance(matches, target_maps(encoders, matches, images), config.act) if guided else None
    layers = sorted({g.gen_layer for g in matches.groups}) if guided else []
    target_px = _float(images).to(gen.device)
    reg = regulariser(gen, config)
    target_feats = None
    if config.mode == "rec" and perceptual is not None and config.perceptual_weight > 0:
        with torch.no_grad():
            target_feats = [f.detach() for f in perceptual.features(target_px)]

    def objective(z, out, maps):
        act = act_of(maps) if guided else z.new_full((n,), float("nan"))
        loss = reg(z)
        if config.mode == "ood":
            return loss - act, act
        loss = loss + pixel_loss(out, target_px, config.pixel)
        if target_feats is not None:
            loss = loss + config.perceptual_weight * perceptual.loss(out, target_feats)
        return (loss - config.beta * act if guided else loss), act

    start = gen.sample_latents(config.seed, np.zeros(1, dtype=np.int64)).repeat(n, 1)
    result = optimise(gen, start, layers, objective, config, progress, needs_images=config.mode == "rec")
    result.perceptual = perceptual.description if target_feats is not None else None
    return result


def visualize(gen: GeneratorAdapter, encoders: dict[str, EncoderAdapter], matches: Matches,
              image: torch.Tensor, starts: int, config: InversionConfig, progress=None) -> Result:
    """Single-neuron visualisation: ``starts`` random latents (``sample_latents(seed, 0..starts-1)``)
    each optimised so the matched pairs of ``matches`` (one concept or one pair) correlate with
    the target maps of the one uint8 ``image`` ``(1, 3, H, W)``: a diverse set of images sharing
    that unit's map."""
    if starts < 1:
        raise ValueError(f"starts={starts} must be >= 1")
    act = guidance(matches, target_maps(encoders, matches, image), config.act, starts=starts)
    layers = sorted({g.gen_layer for g in matches.groups})
    start = gen.sample_latents(config.seed, np.arange(starts))
    return optimise(gen, start, layers, guidance_objective(act, regulariser(gen, config)), config, progress,
                    needs_images=False)

"""Edits of matched activation maps, then re-optimisation of the latent (paper section 4.2).

The generator's own maps of its Rosetta units are taken from the source image ``G(z)``,
transformed, and become the targets of Eq. 5 (each unit paired with itself, normalised by its
dataset statistics). Transforms act on ``(n, P, h, w)`` maps of one layer:

- ``shift``: move by ``(dx, dy)`` fractions of the map size (stride ``round(f * size)``, so a
  4x4 map moves by 1 and an 8x8 map by 2 for ``f = 0.25``); what enters is set by ``pad``;
- ``zoom``: 2x bilinear resize, centre crop back to the map size;
- ``copy-paste``: the left half of a left-shifted copy next to the right half of a right-shifted
  copy (the optimisation starts from a random latent, as the paper found better);
- ``remove``: the chosen units set to their minimum over the map;
- ``add``: the chosen units raised to their maximum over the map (at least their dataset mean
  plus 2 standard deviations) inside a centred box covering half of each side.

Every other matched unit keeps its source map, so the rest of the image is held in place.

``pad`` is what the cells a shift uncovers hold: ``"zero"`` (the paper's
zero padding) or ``"mean"`` (default), each unit's dataset mean there (its per-position mean
in ``center="position"`` runs). After normalisation a mean cell is 0, so with ``fit="corr"``
it adds nothing to ``L_act`` and the optimiser is free to draw there whatever fits (with
``"mse"`` it asks for the unit's typical value), instead of being asked for a raw
activation of 0, which mini-gen's units are not off at (their median raw 0 lies 0.3-1.1
standard deviations below their dataset mean, per layer, in a 256-image run). Chosen on 56
validation latents (run images 200-255 of a 256-image global-centring run, never the ones
reported), 500 steps, shift hold 10: shifts within 25% of the request 73% (zero) / 82% (mean),
right direction 98 / 100%. Copy-paste uncovers no cell for shifts up to half the map.

Eq. 5 alone lets the optimiser trade the edit for other changes: on mini-gen a shift reaches a
higher ``L_act`` than the exact translation by also changing objects' sizes and colours, which
pulls the centroid back (median 13 px of a requested 16). ``hold`` adds an L2 pull of the latent
towards the source latent, ``hold * L_reg(z - z_source)`` (of the raw difference, whatever
``config.reg_center``), on top of Eq. 5's ``alpha * L_reg(z)``; ``hold=0`` is the paper's
objective. Chosen on 32 validation latents (run images 200-231 of a 256-image mini-gen run,
never the ones reported), 500 steps, Eq. 5 with the default ``reg_center="zero"``, zero
padding, hold 0 / 1 / 3 / 10 / 30:

- shift within 25% of the request: 59 / 72 / 72 / 72 / 59%, right direction 97 / 94 / 94 / 100 / 100%;
- zoom's area growth (median): x2.67 / x2.87 / x2.86 / x1.99 / -, grew in 91 / 94 / 100 / 100% / -;
- remove (object region shrinks): 84 / - / 66 / 44% / - (removing an object is a large latent change).

So with Eq. 5 the default hold is per edit: shift 10, zoom 3, the others 0 (remove by the
numbers above; add and copy-paste untested, copy-paste starts from a random latent). With mean
padding, shift hold 3 / 10 / 30 gave 84 / 82 / 61% within 25% on the 56 latents above.

``fit`` is how the result is compared with the edited maps. Eq. 6 normalises with dataset
statistics, so ``L_act`` is a dot product: it rewards larger activations wherever the target
is positive, which is what lets the optimiser trade the edit for bigger objects. Edits pair
each unit with itself, so its map can match the target in value, not only in correlation:
``fit="mse"`` minimises half the mean squared difference of the normalised maps, which is
``E / 2 - L_act`` up to a constant, with ``E`` the mean squared normalised generator map
(:class:`~.losses.MapEnergy`); ``fit="corr"`` is Eq. 5. On the same validation latents
(500 steps, mean padding): shifts within 25% with mse and hold 0 / 3 / 10: 89 / 88 / 88% (corr,
hold 10: 82%), median move 15.7 px of 16 at hold 0; removals that shrink the object (32
latents): mse 100%, corr 84%; zoom's median area growth (32 latents): mse x2.21 at hold 0 and
x1.89 at hold 3, corr x2.86 at hold 3, all inside the prior's box (below): there an exact fit
cannot draw objects larger than the prior's largest, while the dot product grows what it can.
Hence shift and remove by mse without a hold.

``box`` is the projection of every step onto the prior's box (``InversionConfig.project``,
:mod:`.optimize`). It exists because the dot product grows without limit off the prior; the
squared difference of ``mse`` is bounded below by 0 at the target, so ``mse`` needs no box, and
the box is what kept zoom small: mini-gen's prior draws radii up to 0.25 of the image, yet its
network draws clean objects of radius 0.4-0.5 (checked by setting the size code by hand).
Zoom's median area growth on the 32 latents with mse, hold 0, no box: x3.04, within 25% of
what the 2x zoom does to the source image itself (x3.23 there) in 88% (box on, corr, hold 3:
x2.86). Shifts within 25% of the request on the 56 latents with mse, hold 0: 98% without the
box, 89% with it (median 15.8 px of 16); removals on the 32: 100% either way. Hence
:data:`EDIT_FITS`: shift, zoom and remove by mse without a hold, the others by corr
(:data:`EDIT_HOLDS` per fit, :func:`default_fit`, :func:`default_hold`), and the box per fit
(:data:`FIT_BOXES`, :func:`default_box`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..zoo.base import GeneratorAdapter
from .config import InversionConfig
from .losses import LinearAct, MapEnergy, normalised_targets, reg_loss
from .matches import Matches
from .optimize import Objective, Result, guidance_objective, optimise, regulariser

__all__ = ["EDITS", "PADS", "FITS", "EDIT_FITS", "EDIT_HOLDS", "FIT_BOXES", "SWITCHES", "switch", "default_fit", "default_hold",
           "default_box", "resolve_fit", "resolve_hold", "check_pad", "shift_maps", "zoom_maps", "copy_paste_maps",
           "edit_targets", "EditProblem", "edit_problem", "edit"]

EDITS = ("shift", "zoom", "copy-paste", "remove", "add")
PADS = ("mean", "zero")  # what a shift uncovers; the first is the default
FITS = ("mse", "corr")  # how the result is compared with the edited maps (module docstring)
EDIT_FITS = {"shift": "mse", "zoom": "mse", "remove": "mse"}  # default fit per edit; edits not listed use corr (the paper's)
EDIT_HOLDS = {"corr": {"shift": 10.0, "zoom": 3.0}, "mse": {}}  # default hold per fit and edit; 0 where not listed
FIT_BOXES = {"corr": True, "mse": False}  # whether steps are projected onto the prior's box, per fit
SWITCHES = ("on", "off")  # how a command line turns the box on or off (--box)


def default_fit(kind: str) -> str:
    """The default fit of edit ``kind``: :data:`EDIT_FITS`, else ``"corr"``."""
    return EDIT_FITS.get(kind, "corr")


def default_hold(kind: str, fit: str | None = None) -> float:
    """The default weight of the pull to the source latent for edit ``kind`` with ``fit``
    (``None``: the edit's default fit)."""
    return EDIT_HOLDS[default_fit(kind) if fit is None else fit].get(kind, 0.0)


def default_box(kind: str, fit: str | None = None) -> bool:
    """Whether edit ``kind`` with ``fit`` (``None``: the edit's default) projects its steps onto
    the prior's box by default (:data:`FIT_BOXES`)."""
    return FIT_BOXES[default_fit(kind) if fit is None else fit]


def switch(value: str | None) -> bool | None:
    """A command line's ``on`` / ``off`` (:data:`SWITCHES`) as True / False; ``None`` (not given) stays None."""
    if value is None:
        return None
    if value not in SWITCHES:
        raise ValueError(f"{value!r} is not a switch; valid: {', '.join(SWITCHES)}")
    return value == SWITCHES[0]


def check_pad(pad: str, name: str = "pad ") -> str:
    """``pad`` if it is one of :data:`PADS`; otherwise an error naming it as ``name``."""
    if pad not in PADS:
        raise ValueError(f"{name}{pad!r} is not supported; valid: {', '.join(PADS)} (zero = the paper's zero padding)")
    return pad


def resolve_fit(kind: str, fit: str | None, name: str = "fit ") -> str:
    """``fit``, or the default of edit ``kind`` when ``None``; one not in :data:`FITS` is an
    error naming it as ``name`` (``"--fit "`` for the command line)."""
    fit = default_fit(kind) if fit is None else fit
    if fit not in FITS:
        raise ValueError(f"{name}{fit!r} is not supported; valid: {', '.join(FITS)} (corr = the paper's Eq. 5)")
    return fit


def resolve_hold(kind: str, hold: float | None, name: str = "hold=", fit: str | None = None) -> float:
    """``hold``, or the default of edit ``kind`` with ``fit`` when ``None``; a negative value
    is an error naming it as ``name`` (``"--hold "`` for the command line)."""
    hold = default_hold(kind, fit) if hold is None else hold
    if not hold >= 0:
        raise ValueError(f"{name}{hold} must be >= 0 (0 = the paper's Eq. 5 without a pull to the source latent)")
    return hold


def shift_maps(maps: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Shift ``(n, P, h, w)`` right by ``dx`` and down by ``dy`` (fractions of the size); zeros enter."""
    h, w = maps.shape[-2:]
    sx, sy = int(round(dx * w)), int(round(dy * h))
    out = torch.zeros_like(maps)
    if abs(sx) >= w or abs(sy) >= h:
        return out
    src_y, dst_y = slice(max(0, -sy), h - max(0, sy)), slice(max(0, sy), h - max(0, -sy))
    src_x, dst_x = slice(max(0, -sx), w - max(0, sx)), slice(max(0, sx), w - max(0, -sx))
    out[..., dst_y, dst_x] = maps[..., src_y, src_x]
    return out


def zoom_maps(maps: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    """Resize ``(n, P, h, w)`` by ``factor`` (bilinear) and crop the centre back to ``(h, w)``."""
    h, w = maps.shape[-2:]
    big = F.interpolate(maps, scale_factor=factor, mode="bilinear", align_corners=False)
    top, left = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
    return big[..., top : top + h, left : left + w].contiguous()


def copy_paste_maps(maps: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """Left half of the maps shifted left by ``fraction``, right half of them shifted right."""
    w = maps.shape[-1]
    left, right = shift_maps(maps, -fraction, 0.0), shift_maps(maps, fraction, 0.0)
    return torch.cat([left[..., : w // 2], right[..., w // 2 :]], dim=-1)


def _mean_on_grid(group, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """The group's generator means ``(1, P, 1, 1)`` or, per position, ``(1, P, h, w)`` on the
    maps' own grid (bilinear when the pair's grid differs)."""
    mean = torch.as_tensor(np.asarray(group.gen_mean), dtype=like.dtype, device=like.device)
    if mean.ndim == 1:
        return mean[None, :, None, None]
    return F.interpolate(mean[None], size=size, mode="bilinear", align_corners=False) if tuple(mean.shape[-2:]) != size else mean[None]


def _set_units(maps: torch.Tensor, chosen: torch.Tensor, value: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    out = maps.clone()
    where = chosen.to(maps.device)[None, :, None, None]
    if region is not None:
        where = where & region.to(maps.device)[None, None]
    return torch.where(where, value.expand_as(maps), out)


def edit_targets(matches: Matches, source: dict[str, torch.Tensor], kind: str, units: set[int] | None = None,
                 dx: float = 0.25, dy: float = 0.0, pad: str = PADS[0]) -> dict[str, dict[str, torch.Tensor]]:
    """Edited target maps ``{generator: {layer: (n, units, h, w)}}`` from the source maps
    ``source[layer]``. ``units``: generator units to remove/add (required for those two);
    ``pad``: what uncovered cells hold (module docstring)."""
    if kind not in EDITS:
        raise ValueError(f"edit {kind!r} is not supported; valid: {', '.join(EDITS)}")
    check_pad(pad)
    if kind in ("remove", "add") and not units:
        raise ValueError(f"edit {kind!r} needs the units of a concept (--concept ID) or --unit")
    transform = {"shift": lambda m: shift_maps(m, dx, dy), "zoom": zoom_maps,
                 "copy-paste": lambda m: copy_paste_maps(m, abs(dx) or 0.25)}.get(kind, torch.clone)
    out: dict[str, torch.Tensor] = {}
    uncovered: dict[str, torch.Tensor] = {}  # per layer: the cells the transform leaves without a source value
    for group in matches.groups:  # groups sharing a layer edit the same output maps
        maps = source[group.gen_layer].float()
        if group.gen_layer not in out:
            out[group.gen_layer] = transform(maps)
            uncovered[group.gen_layer] = transform(maps.new_ones(1, 1, *maps.shape[-2:]))[0, 0] == 0
        edited = out[group.gen_layer]
        idx = torch.as_tensor(group.gen_channels, device=edited.device)
        if kind in ("remove", "add"):
            chosen = torch.as_tensor(np.isin(group.gen_units, sorted(units)))
            sub = maps[:, idx]
            if kind == "remove":
                value, region = sub.amin(dim=(2, 3), keepdim=True), None
            else:
                floor = torch.as_tensor(np.asarray(group.gen_mean).reshape(len(group), -1).mean(1) + 2 * group.gen_std)
                value = torch.maximum(sub.amax(dim=(2, 3), keepdim=True), floor.to(sub)[None, :, None, None])
                h, w = sub.shape[-2:]
                region = torch.zeros(h, w, dtype=torch.bool)
                region[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
            edited[:, idx] = _set_units(sub, chosen, value, region)
        empty = uncovered[group.gen_layer]
        if pad == "mean" and empty.any():
            mean = _mean_on_grid(group, tuple(maps.shape[-2:]), edited).expand(len(maps), -1, *maps.shape[-2:])
            edited[:, idx] = torch.where(empty, mean, edited[:, idx])
    return {matches.generator: out}


@dataclasses.dataclass(frozen=True)
class EditProblem:
    """What :func:`edit` optimises, without running the optimiser: ``objective`` (an
    :data:`~.optimize.Objective` that reads only maps: run it with ``needs_images=False``),
    ``start`` latents ``(n, d)``, the generator ``layers`` it reads, ``config`` with the box
    resolved (``project``), and the uint8 ``source_images`` ``(n, 3, H, W)``."""

    objective: Objective
    start: torch.Tensor
    layers: list[str]
    config: InversionConfig
    source_images: torch.Tensor


def edit_problem(gen: GeneratorAdapter, matches: Matches, latents: torch.Tensor, kind: str, config: InversionConfig,
                 units: set[int] | None = None, dx: float = 0.25, dy: float = 0.0, hold: float | None = None,
                 pad: str = PADS[0], fit: str | None = None, box: bool | None = None) -> EditProblem:
    """The objective, start, layers and config of :func:`edit` (same arguments, without
    ``progress``): the fit to the edited maps of ``G(latents)`` plus ``hold * L_reg(z - latents)``."""
    if config.act != "dataset":
        raise ValueError(f"act={config.act!r}: edits fit the generator's own edited maps with Eq. 6 "
                         "(act='dataset'); act='image' is for inverting out-of-distribution images")
    fit = resolve_fit(kind, fit)
    hold = resolve_hold(kind, hold, fit=fit)
    config = dataclasses.replace(config, project=default_box(kind, fit) if box is None else bool(box))
    layers = sorted({g.gen_layer for g in matches.groups})
    source_images, source = gen.generate(latents, layers)
    guidance = LinearAct(matches, normalised_targets(matches, edit_targets(matches, source, kind, units, dx, dy, pad)))
    start = latents if kind != "copy-paste" else gen.sample_latents(config.seed, np.arange(len(latents)))
    eq5 = guidance_objective(guidance, regulariser(gen, config))
    anchor = latents.detach().float().to(gen.device)
    energy = MapEnergy(matches) if fit == "mse" else None

    def objective(z, images, maps):
        loss, act = eq5(z, images, maps)
        if energy is not None:
            loss = loss + 0.5 * energy(maps)
        return (loss + hold * reg_loss(z - anchor, config.reg) if hold else loss), act

    return EditProblem(objective, start, layers, config, source_images)


def edit(gen: GeneratorAdapter, matches: Matches, latents: torch.Tensor, kind: str, config: InversionConfig,
         units: set[int] | None = None, dx: float = 0.25, dy: float = 0.0, progress=None,
         hold: float | None = None, pad: str = PADS[0], fit: str | None = None,
         box: bool | None = None) -> tuple[Result, torch.Tensor]:
    """Apply edit ``kind`` to the matched maps of ``G(latents)`` and re-optimise the fit to them
    plus ``hold * L_reg(z - latents)``. ``fit="corr"``: Eq. 5; ``"mse"``: Eq. 5 plus half the
    maps' energy (:class:`~.losses.MapEnergy`), i.e. half the mean squared difference of the
    normalised maps up to a constant. ``None`` takes the edit's default fit
    (:func:`default_fit`), hold (:func:`default_hold`) and box (:func:`default_box`);
    ``hold=0``: no pull; ``box``: project each step onto the prior's box (replaces
    ``config.project``). ``pad``: what the cells a shift uncovers hold (module docstring).
    The objective is :func:`edit_problem`'s.

    Starts from ``latents`` ``(n, d)`` (copy-paste: from ``sample_latents(seed, 0..n-1)``).
    Returns (the result, the uint8 source images ``(n, 3, H, W)``)."""
    problem = edit_problem(gen, matches, latents, kind, config, units, dx, dy, hold, pad, fit, box)
    return (optimise(gen, problem.start, problem.layers, problem.objective, problem.config, progress, needs_images=False),
            problem.source_images)

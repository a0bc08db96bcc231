"""One inversion, edit or visualisation job, from files to files (what the CLI and tasks call).

Every job reads a finished run (``--run``), writes into its own folder ``<out>/<name>/``:

- ``result.png``: input | result (4x, nearest), ``strip.png``: intermediate steps left to right;
- ``latent.npy``: the final latent(s) float32 ``(n, latent_dim)``;
- ``metrics.json``: PSNR, SSIM (vs the input; ``lpips`` null: not available offline), final
  ``L_act``, steps, seconds, the settings, which perceptual loss was used, notes on conversions.

``metrics.json`` is written last; a job whose ``metrics.json`` has the same settings is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..zoo import load
from .edits import EDITS, PADS, check_pad, default_box, edit, resolve_fit, resolve_hold
from .images import load_image, save_png, side_by_side
from .matches import RunInfo, concept_units, encoder_matches, open_run, self_matches
from .metrics import psnr, ssim
from .optimize import InversionConfig, Result, invert, visualize
from .perceptual import Perceptual

__all__ = ["JobSettings", "invert_file", "edit_job", "visualize_job", "check_job", "job_done"]


@dataclass(frozen=True)
class JobSettings:
    """What a job computes (recorded in ``metrics.json``). ``encoders``: empty = all of the run's."""

    mode: str = "ood"
    encoders: tuple[str, ...] = ()
    steps: int = 500
    seed: int = 0
    alpha: float = 0.1
    beta: float = 1.0
    pixel: str = "l2"
    reg: str = "l2"
    reg_center: str = "zero"
    act: str = "dataset"
    lr: float | None = None
    perceptual_encoder: str = "mini-resnet.sup"
    device: str = "cpu"

    def config(self) -> InversionConfig:
        cfg = InversionConfig(mode=self.mode, steps=self.steps, lr=self.lr, alpha=self.alpha, beta=self.beta,
                              pixel=self.pixel, reg=self.reg, reg_center=self.reg_center, act=self.act,
                              seed=self.seed)
        cfg.validate()
        return cfg

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["encoders"] = list(self.encoders)
        out.pop("device")
        return out


@lru_cache(maxsize=8)
def _model(name: str, weights: str, device: str):
    return load(name, weights, device=device)


def _models(run: RunInfo, names: list[str], device: str) -> dict:
    """Load the run's models with the run's weights; refuse weights that changed since mining."""
    out = {}
    for name in names:
        adapter = _model(name, run.plan.config.weights, device)
        recorded = run.plan.weights_hashes.get(name)
        if recorded is not None and recorded != adapter.weights_hash:
            raise ValueError(
                f"the weights of {name} changed since {run.path} was mined (hash {adapter.weights_hash}, "
                f"recorded {recorded}); mine the run again"
            )
        out[name] = adapter
    return out


def check_job(run_dir: str | Path, settings: JobSettings) -> RunInfo:
    """Every check that needs no model: the run is finished, the settings are valid."""
    run = open_run(run_dir)
    settings.config()
    if settings.encoders:
        bad = [e for e in settings.encoders if e not in run.plan.config.encoders]
        if bad:
            raise ValueError(f"--encoders {bad} were not mined in {run.path}; valid: {', '.join(run.plan.config.encoders)}")
    return run


def job_done(folder: Path, record: dict) -> bool:
    try:
        saved = json.loads((folder / "metrics.json").read_text()).get("settings")
    except (OSError, ValueError):
        return False
    # jobs written before settings had "act" used Eq. 6, today's default
    return isinstance(saved, dict) and {"act": "dataset"} | saved == record


def _write(folder: Path, inputs: torch.Tensor, result: Result, metrics: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [side_by_side(a, b) for a, b in zip(inputs, result.images)]
    save_png(np.concatenate(rows, axis=0), folder / "result.png", scale=4)
    strip = [side_by_side(*[frame[i] for frame in result.strip]) for i in range(result.strip.shape[1])]
    save_png(np.concatenate(strip, axis=0), folder / "strip.png", scale=2)
    np.save(folder / "latent.npy", result.latents.cpu().numpy().astype(np.float32))
    metrics = metrics | {"steps": result.steps, "seconds": round(result.seconds, 3),
                         "final_l_act": [None if not np.isfinite(v) else float(v) for v in result.act]}
    tmp = folder / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, folder / "metrics.json")
    return metrics


def _quality(inputs: torch.Tensor, images: torch.Tensor) -> dict:
    return {"psnr": [float(v) for v in psnr(inputs, images)], "ssim": [float(v) for v in ssim(inputs, images)], "lpips": None}


def invert_file(run_dir: str | Path, image: str | Path, out: str | Path, settings: JobSettings, progress=None) -> dict:
    """Invert one image file into the run's generator; returns its ``metrics.json`` content
    (``{"skipped": True, ...}`` when an identical job is already done)."""
    run = check_job(run_dir, settings)
    folder = Path(out) / Path(image).stem
    record = settings.record() | {"image": str(Path(image).resolve())}
    if job_done(folder, record):
        return {"skipped": True, "image": str(image), "out": str(folder)}
    cfg = run.plan.config
    gen = _models(run, [cfg.generator], settings.device)[cfg.generator]
    matches = encoder_matches(run, list(settings.encoders) or None) if settings.mode == "ood" or settings.beta > 0 else None
    encoders = _models(run, matches.models() if matches else [], settings.device)
    pixels, notes = load_image(image, run.plan.image_shape[-1])
    perceptual = None
    if settings.mode == "rec" and settings.perceptual_encoder:
        perceptual = Perceptual(_models(run, [settings.perceptual_encoder], settings.device)[settings.perceptual_encoder]) \
            if settings.perceptual_encoder in cfg.encoders else Perceptual(_model(settings.perceptual_encoder, "trained", settings.device))
    result = invert(gen, encoders, matches, pixels, settings.config(), perceptual, progress)
    metrics = {"kind": "invert", "image": str(image), "settings": record, "notes": notes,
               "pairs": matches.n_pairs if matches else 0, "perceptual": result.perceptual,
               **_quality(pixels, result.images)}
    return _write(folder, pixels, result, metrics)


def _concept_or_units(run: RunInfo, concept: int | None, unit: int | None) -> set[int] | None:
    if concept is not None:
        return concept_units(run, concept)[0]
    return {int(unit)} if unit is not None else None


def edit_job(run_dir: str | Path, out: str | Path, kind: str, settings: JobSettings, index: int = 0,
             concept: int | None = None, unit: int | None = None, dx: float = 0.25, dy: float = 0.0,
             progress=None, hold: float | None = None, pad: str = PADS[0], fit: str | None = None,
             box: bool | None = None) -> dict:
    """Edit the run's generated image ``index`` (its stored latent) and re-optimise; ``hold``:
    weight of the pull to the source latent, ``pad``: what the cells a shift uncovers hold,
    ``fit``: how the result is compared with the edited maps, ``box``: project the steps onto
    the prior's box (``None``: the edit's defaults; see :func:`~.edits.edit`)."""
    if kind not in EDITS:
        raise ValueError(f"edit {kind!r} is not supported; valid: {', '.join(EDITS)}")
    check_pad(pad, "--pad ")
    fit = resolve_fit(kind, fit, "--fit ")
    hold = resolve_hold(kind, hold, "--hold ", fit)  # before any model loads
    box = default_box(kind, fit) if box is None else bool(box)
    run = check_job(run_dir, settings)
    n = run.plan.config.n
    if not 0 <= index < n:
        raise ValueError(f"--index {index} is out of range; the run has images 0..{n - 1}")
    units = _concept_or_units(run, concept, unit)
    if kind in ("remove", "add") and units is None:
        raise ValueError(f"edit {kind!r} needs --concept ID or --unit N (a generator unit)")
    rosetta = {u["unit"] for c in run.dictionary["concepts"] for u in c["generator_units"]}
    matches = self_matches(run, sorted(rosetta | (units or set())))
    gen = _models(run, [run.plan.config.generator], settings.device)[run.plan.config.generator]
    latent = torch.from_numpy(np.asarray(run.store.array("latents")[index : index + 1], dtype=np.float32))
    result, source = edit(gen, matches, latent.to(gen.device), kind, settings.config(), units, dx, dy, progress, hold, pad, fit, box)
    folder = Path(out) / f"edit-{kind}-{index}"
    metrics = {"kind": "edit", "edit": kind, "index": index, "concept": concept, "unit": unit, "dx": dx, "dy": dy,
               "hold": hold, "pad": pad, "fit": fit, "box": box,
               "settings": settings.record(), "pairs": matches.n_pairs, **_quality(source, result.images)}
    return _write(folder, source, result, metrics)


def visualize_job(run_dir: str | Path, out: str | Path, concept: int, settings: JobSettings, starts: int = 4,
                  example: int | None = None, progress=None, unit: int | None = None) -> dict:
    """Single-concept (or, with ``unit``, single-neuron: that generator unit's pairs only)
    visualisation from ``starts`` random latents, targets from the concept's first example
    image of the run (or run image ``example``)."""
    run = check_job(run_dir, settings)
    matches = encoder_matches(run, list(settings.encoders) or None, concept=concept, gen_unit=unit)
    entry = next(c for c in run.dictionary["concepts"] if c["id"] == concept)
    index = example if example is not None else (entry["examples"][0] if entry["examples"] else 0)
    if not 0 <= index < run.plan.config.n:
        raise ValueError(f"--example {index} is out of range; the run has images 0..{run.plan.config.n - 1}")
    image = torch.from_numpy(np.asarray(run.store.array("images")[index : index + 1]))
    names = [run.plan.config.generator, *matches.models()]
    models = _models(run, names, settings.device)
    result = visualize(models[names[0]], models, matches, image, starts, settings.config(), progress)
    folder = Path(out) / (f"concept-{concept}" if unit is None else f"concept-{concept}-unit-{unit}")
    metrics = {"kind": "visualize", "concept": concept, "unit": unit, "example": index, "starts": starts,
               "settings": settings.record(), "pairs": matches.n_pairs}
    return _write(folder, image.expand(starts, -1, -1, -1), result, metrics)

"""One inversion, edit or visualisation job, from files to files (what the CLI and tasks call).

A job reads a finished run (``--run``: a directory or an fsspec URL such as
``s3://bucket/runs/x``) and writes into its own folder ``<out>/<name>/`` (``out`` defaults to a
folder inside the run, :func:`default_out`; on an object store the files are objects under that
prefix):

- ``result.png``: input | result (4x, nearest), ``strip.png``: intermediate steps left to right;
- ``latent.npy``: the final latent(s) float32 ``(n, latent_dim)``;
- ``metrics.json``: PSNR, SSIM (vs the input; ``lpips`` null: not available offline), final
  ``L_act``, steps, seconds, the settings (the :class:`~.config.InversionConfig`), which
  perceptual loss was used, notes on conversions. A job over one image (invert, edit) writes
  numbers; a visualisation, a batch of ``starts`` latents, writes one list entry per latent.

``metrics.json`` is written last; an inversion whose ``metrics.json`` has the same settings is
skipped. A job's configuration is checked once, by :func:`check_job`, where the flow or the
command starts; the jobs take the :class:`~rosetta_core.run.Run` it returns (a task opens it
again with :func:`~.matches.open_run`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from ..run import location
from ..run.run import Run
from ..zoo import get_spec, load
from .config import InversionConfig
from .edits import EDITS, PADS, check_pad, default_box, edit, resolve_fit, resolve_hold
from .images import load_image, png_bytes, side_by_side
from .matches import concept_units, encoder_matches, open_run, self_matches
from .metrics import psnr, ssim
from .optimize import Result, invert, visualize
from .perceptual import Perceptual

__all__ = ["OUTPUTS", "check_job", "default_out", "image_folder", "invert_record", "job_done", "outcome",
           "record_error", "step_bar", "invert_file", "edit_job", "visualize_job"]

#: job kind -> the folder inside the run its outputs go to by default
OUTPUTS = {"invert": "inversions", "edit": "edits", "visualize": "visualizations"}

#: settings that ``metrics.json`` of older jobs lacks, with the values those jobs used
_RECORDED_LATER = {"act": "dataset", "perceptual_weight": 1.0, "warmup": 0.05, "rampdown": 0.25, "snapshots": 6,
                   "project": True}


def default_out(run: str | Path, kind: str) -> str:
    """Where jobs of ``kind`` (``invert``, ``edit``, ``visualize``) write by default: a folder
    inside the run (``<run>/inversions``, also for a run at a URL)."""
    return location.join(run, OUTPUTS[kind])


def _name(image: str | Path) -> str:
    """The file name of an image path or URL without its suffix (``s3://b/x/scene0.png`` -> ``scene0``)."""
    return PurePosixPath(str(image)).stem if location.is_url(image) else Path(image).stem


def image_folder(out: str | Path, image: str | Path) -> str:
    """The folder of the inversion of ``image`` inside ``out``."""
    return location.join(out, _name(image))


def invert_record(config: InversionConfig, image: str | Path) -> dict[str, Any]:
    """The ``settings`` an inversion of ``image`` records (and is skipped by, :func:`job_done`)."""
    where = str(image) if location.is_url(image) else str(Path(image).resolve())
    return config.record() | {"image": where}


@lru_cache(maxsize=8)
def _model(name: str, weights: str, device: str):
    return load(name, weights, device=device)


def _models(run: Run, names: list[str], device: str) -> dict:
    """Load the run's models with the run's weights; refuse weights that changed since mining."""
    out = {}
    for name in names:
        adapter = _model(name, run.plan.config.weights, device)
        recorded = run.plan.weights_hashes.get(name)
        if recorded is not None and recorded != adapter.weights_hash:
            raise ValueError(
                f"the weights of {name} changed since {run.location} was mined (hash {adapter.weights_hash}, "
                f"recorded {recorded}); mine the run again"
            )
        out[name] = adapter
    return out


def check_job(where: str | Path, config: InversionConfig) -> Run:
    """Every check of a job that needs no model, once, where a flow or command starts: the run
    is finished, ``config``'s values are valid, its encoders were mined in the run, its
    perceptual encoder is a zoo model. Returns the opened run."""
    run = open_run(where)
    config.validate()
    mined = run.plan.config.encoders
    bad = [e for e in config.encoders if e not in mined]
    if bad:
        raise ValueError(f"--encoders {bad} were not mined in {run.location}; valid: {', '.join(mined)}")
    if config.mode == "rec" and config.perceptual_encoder:
        try:
            get_spec(config.perceptual_encoder)
        except ValueError as err:
            raise ValueError(f"--perceptual-encoder: {err}") from None
    return run


def job_done(folder: str | Path, record: dict) -> bool:
    """Whether ``folder`` holds a finished job with the settings ``record``."""
    try:
        saved = json.loads(location.read_text(location.join(folder, "metrics.json"))).get("settings")
    except (OSError, ValueError):
        return False
    # jobs written before these settings were recorded used the values of _RECORDED_LATER
    return isinstance(saved, dict) and _RECORDED_LATER | saved == record


def record_error(out: str | Path, image: str | Path, message: str) -> dict:
    """Leave ``error.json`` in the folder of an inversion that failed; returns its content."""
    content = {"image": str(image), "error": message}
    location.write_text(location.join(image_folder(out, image), "error.json"), json.dumps(content),
                        content_type="application/json")
    return content


def outcome(out: str | Path, image: str | Path) -> dict:
    """What the inversion of ``image`` left in its folder: its metrics, or its error."""
    folder = image_folder(out, image)
    for name in ("metrics.json", "error.json"):
        try:
            return json.loads(location.read_text(location.join(folder, name))) | {"image": str(image)}
        except (OSError, ValueError):
            continue
    return {"image": str(image), "error": "no output was written (the run failed or crashed)"}


@contextmanager
def step_bar(name: str, steps: int) -> Iterator[Callable[[int, int, float], None]]:
    """A terminal progress bar of an optimisation for the ``with`` block; yields the
    ``progress(step, total, loss)`` callback the jobs take."""
    from tqdm.auto import tqdm

    with tqdm(total=steps, desc=name, unit="step") as bar:
        def progress(step: int, total: int, loss: float) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if step == total or step % 10 == 0:
                bar.refresh()

        yield progress


def _per_latent(values: list, one: bool):
    """Per-latent values as a list, or the value itself for a job over one image."""
    return values[0] if one else values


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write(folder: str, inputs: torch.Tensor, result: Result, metrics: dict, one: bool) -> dict:
    """Write a job's files into ``folder`` (a path or URL), ``metrics.json`` last; returns its
    content with ``out``, the folder. ``one``: a job over one image (numbers, not lists)."""
    rows = [side_by_side(a, b) for a, b in zip(inputs, result.images)]
    location.write_bytes(location.join(folder, "result.png"), png_bytes(np.concatenate(rows, axis=0), scale=4), "image/png")
    strip = [side_by_side(*[frame[i] for frame in result.strip]) for i in range(result.strip.shape[1])]
    location.write_bytes(location.join(folder, "strip.png"), png_bytes(np.concatenate(strip, axis=0), scale=2), "image/png")
    latents = result.latents.cpu().numpy().astype(np.float32)
    location.write_bytes(location.join(folder, "latent.npy"), _npy(latents), "application/octet-stream")
    act = [None if not np.isfinite(v) else float(v) for v in result.act]
    metrics = metrics | {"steps": result.steps, "seconds": round(result.seconds, 3), "final_l_act": _per_latent(act, one)}
    location.write_text(location.join(folder, "metrics.json"), json.dumps(metrics, indent=1), "application/json")
    return metrics | {"out": folder}


def _quality(inputs: torch.Tensor, images: torch.Tensor, one: bool) -> dict:
    return {"psnr": _per_latent([float(v) for v in psnr(inputs, images)], one),
            "ssim": _per_latent([float(v) for v in ssim(inputs, images)], one), "lpips": None}


def invert_file(run: Run, image: str | Path, out: str | Path | None, config: InversionConfig, progress=None,
                device: str = "cpu") -> dict:
    """Invert one image file (or URL) into the run's generator (``run``: from :func:`check_job`);
    returns its ``metrics.json`` content and ``out``, its folder (``{"skipped": True, ...}``
    when an identical job is already done). ``out=None``: :func:`default_out`."""
    folder = image_folder(out or default_out(run.location, "invert"), image)
    record = invert_record(config, image)
    if job_done(folder, record):
        return {"skipped": True, "image": str(image), "out": folder}
    cfg = run.plan.config
    gen = _models(run, [cfg.generator], device)[cfg.generator]
    matches = encoder_matches(run, list(config.encoders) or None) if config.mode == "ood" or config.beta > 0 else None
    encoders = _models(run, matches.models() if matches else [], device)
    pixels, notes = load_image(image, run.plan.image_shape[-1])
    perceptual = None
    if config.mode == "rec" and config.perceptual_encoder:
        name = config.perceptual_encoder
        perceptual = Perceptual(_models(run, [name], device)[name] if name in cfg.encoders else _model(name, "trained", device))
    result = invert(gen, encoders, matches, pixels, config, perceptual, progress)
    metrics = {"kind": "invert", "image": str(image), "settings": record, "notes": notes,
               "pairs": matches.n_pairs if matches else 0, "perceptual": result.perceptual,
               **_quality(pixels, result.images, one=True)}
    return _write(folder, pixels, result, metrics, one=True)


def _concept_or_units(run: Run, concept: int | None, unit: int | None) -> set[int] | None:
    if concept is not None:
        return concept_units(run, concept)[0]
    return {int(unit)} if unit is not None else None


def edit_job(run: Run, out: str | Path | None, kind: str, config: InversionConfig, index: int = 0,
             concept: int | None = None, unit: int | None = None, dx: float = 0.25, dy: float = 0.0,
             progress=None, hold: float | None = None, pad: str = PADS[0], fit: str | None = None,
             box: bool | None = None, device: str = "cpu") -> dict:
    """Edit the run's generated image ``index`` (its stored latent) and re-optimise; ``hold``:
    weight of the pull to the source latent, ``pad``: what the cells a shift uncovers hold,
    ``fit``: how the result is compared with the edited maps, ``box``: project the steps onto
    the prior's box (``None``: the edit's defaults; see :func:`~.edits.edit`). ``run``: from
    :func:`check_job`; ``out=None``: :func:`default_out`. Returns the metrics and ``out``."""
    if kind not in EDITS:
        raise ValueError(f"edit {kind!r} is not supported; valid: {', '.join(EDITS)}")
    check_pad(pad, "--pad ")
    fit = resolve_fit(kind, fit, "--fit ")
    hold = resolve_hold(kind, hold, "--hold ", fit)  # before any model loads
    box = default_box(kind, fit) if box is None else bool(box)
    n = run.plan.config.n
    if not 0 <= index < n:
        raise ValueError(f"--index {index} is out of range; the run has images 0..{n - 1}")
    units = _concept_or_units(run, concept, unit)
    if kind in ("remove", "add") and units is None:
        raise ValueError(f"edit {kind!r} needs --concept ID or --unit N (a generator unit)")
    rosetta = {u["unit"] for c in run.dictionary["concepts"] for u in c["anchor_units"]}
    matches = self_matches(run, sorted(rosetta | (units or set())))
    gen = _models(run, [run.plan.config.generator], device)[run.plan.config.generator]
    latent = torch.from_numpy(np.asarray(run.store.array("latents")[index : index + 1], dtype=np.float32))
    result, source = edit(gen, matches, latent.to(gen.device), kind, config, units, dx, dy, progress, hold, pad, fit, box)
    folder = location.join(out or default_out(run.location, "edit"), f"edit-{kind}-{index}")
    metrics = {"kind": "edit", "edit": kind, "index": index, "concept": concept, "unit": unit, "dx": dx, "dy": dy,
               "hold": hold, "pad": pad, "fit": fit, "box": box,
               "settings": config.record(), "pairs": matches.n_pairs, **_quality(source, result.images, one=True)}
    return _write(folder, source, result, metrics, one=True)


def visualize_job(run: Run, out: str | Path | None, concept: int, config: InversionConfig, starts: int = 4,
                  example: int | None = None, progress=None, unit: int | None = None, device: str = "cpu") -> dict:
    """Single-concept (or, with ``unit``, single-neuron: that generator unit's pairs only)
    visualisation from ``starts`` random latents, targets from the concept's first example
    image of the run (or run image ``example``). ``run``: from :func:`check_job`; ``out=None``:
    :func:`default_out`. Returns the metrics (lists: one entry per start) and ``out``."""
    matches = encoder_matches(run, list(config.encoders) or None, concept=concept, gen_unit=unit)
    entry = next(c for c in run.dictionary["concepts"] if c["id"] == concept)
    index = example if example is not None else (entry["examples"][0] if entry["examples"] else 0)
    if not 0 <= index < run.plan.config.n:
        raise ValueError(f"--example {index} is out of range; the run has images 0..{run.plan.config.n - 1}")
    image = torch.from_numpy(np.asarray(run.store.array("images")[index : index + 1]))
    names = [run.plan.config.generator, *matches.models()]
    models = _models(run, names, device)
    result = visualize(models[names[0]], models, matches, image, starts, config, progress)
    name = f"concept-{concept}" if unit is None else f"concept-{concept}-unit-{unit}"
    folder = location.join(out or default_out(run.location, "visualize"), name)
    metrics = {"kind": "visualize", "concept": concept, "unit": unit, "example": index, "starts": starts,
               "settings": config.record(), "pairs": matches.n_pairs}
    return _write(folder, image.expand(starts, -1, -1, -1), result, metrics, one=False)

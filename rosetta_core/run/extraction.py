"""The first steps of a mining run: prepare the store, generate images, extract activations.

Each function takes the :class:`~.run.Run` and a chunk number and writes its own region of the
store (whole chunks along ``image``), so tasks can run them independently, retry them and skip
what is done. Nothing here imports Prefect.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.image_source import read_images

from .maps import to_store
from .models import using_model
from .plan import RunPlan
from .run import Run, run_identity

__all__ = ["extract_chunk", "generate_chunk", "prepare_store"]


def prepare_store(run: Run, plan: RunPlan, overwrite: bool = False, index=None) -> None:
    """Create every array of the run with its labels (idempotent); refuse a store of another
    configuration (``overwrite`` empties it instead). A model the store does not hold yet is an
    addition: its arrays are created beside the others, which stay as they are. ``index``: an
    image run's :class:`~rosetta_core.data.image_source.ImageIndex` (its file names become the
    ``source`` coordinate). A run that keeps no activations gets no ``maps`` arrays but its
    anchor's ``peaks`` (:mod:`.folding`)."""
    cfg, store = plan.config, run.store
    digest = plan.images["digest"] if plan.images else None
    store.check_or_set_identity(run_identity(cfg, plan.weights_hashes, digest), overwrite=overwrite)
    n, c = plan.n, cfg.chunk_size
    keys = ["images"]
    if index is None:
        store.require("latents", (n, plan.latent_dim), (c, plan.latent_dim), "float32", ["image", "latent"])
        keys.append("latents")
        store.require("images", (n, *plan.image_shape), (c, *plan.image_shape), "uint8", ["image", "rgb", "height", "width"])
    else:
        store.require("images", (n, *plan.image_shape), (c, *plan.image_shape), "uint8", ["image", "rgb", "height", "width"],
                      {"coordinates": "source"})
        if "source" not in store:
            store.write_variables("", {}, {"source": (("image",), np.asarray(index.files[:n], dtype=str))})
        store.group.attrs["skipped_images"] = [list(item) for item in index.skipped]
    for name, layers in plan.layers.items():
        coords = plan.unit_coords(name)
        for layer, (units, h, w) in layers:
            group, start = run.layer_group(name, layer), plan.offsets(name)[layer]
            own = slice(start, start + units)
            store.write_variables(group, {}, {
                "unit": coords["unit"][own], "channel": (("unit",), coords["channel"][own]),
                "layer": (("unit",), coords["layer"][own]), "model": ((), np.asarray(name)),
            }, {"model": name, "layer": layer, "units": units})
            if cfg.activations == "keep":
                store.require(run.maps_key(name, layer), (n, units, h, w), (c, units, h, w), cfg.dtype,
                              ["image", "unit", "y", "x"], {"coordinates": "channel layer model"})
                keys.append(run.maps_key(name, layer))
    if cfg.activations == "none":
        anchor = cfg.anchor_model
        units = plan.unit_coords(anchor)["unit"]
        key = run.peaks_key(anchor)
        store.require(key, (n, len(units)), (c, len(units)), "float32", ["image", "unit"], {"model": anchor})
        keys.append(key)
    store.require_flags(keys, len(plan.chunks))
    store.group.attrs.update({"plan": plan.to_json(), "config": cfg.identity()})
    store.consolidate()  # readers of a grown run (xarray) see the new arrays, not the last run's list
    run.__dict__.pop("plan", None)  # the Run reads the plan just written


def _chunk_ok(run: Run, keys: list[str], chunk: int) -> bool:
    """Done flag set for every key and the chunk's data still decodes."""
    start, stop = run.plan.chunks[chunk]
    n_chunks = len(run.plan.chunks)
    if not all(run.store.chunk_done(k, chunk, n_chunks) for k in keys):
        return False
    return all(run.store.chunk_readable(k, slice(start, stop)) is None for k in keys)


def _check_keeps(run: Run) -> None:
    if not run.keeps_maps:
        raise ValueError(f"{run.location} keeps no activations (activations='none'): its chunks are computed and "
                         "folded by rosetta_core.run.folding.fold_chunk, not generated and extracted apart")


def generate_chunk(run: Run, chunk: int, device: str = "cpu") -> str:
    """Latents, images and generator activations of one chunk of images; ``"computed"`` or
    ``"skipped"`` (already done)."""
    cfg, plan, store = run.config, run.plan, run.store
    _check_keeps(run)
    keys = ["latents", "images", *run.model_keys(cfg.generator)]
    if _chunk_ok(run, keys, chunk):
        return "skipped"
    start, stop = plan.chunks[chunk]
    with using_model(cfg, cfg.generator, device) as gen, torch.no_grad():
        latents = gen.sample_latents(cfg.seed, np.arange(start, stop))
        images, maps = gen.generate(latents, plan.layer_names(cfg.generator))
    store.array("latents")[start:stop] = latents.cpu().numpy().astype(np.float32)
    store.array("images")[start:stop] = images.cpu().numpy()
    for layer in plan.layer_names(cfg.generator):
        store.array(run.maps_key(cfg.generator, layer))[start:stop] = to_store(maps[layer], cfg.dtype)
    for key in keys:
        store.mark_done(key, chunk, len(plan.chunks))
    return "computed"


def extract_chunk(run: Run, model_name: str, chunk: int, device: str = "cpu") -> str:
    """Activations of one encoder on one chunk of the run's images: the generated images, or
    for an image run the chunk's files, read here and brought to the encoder's input by its own
    transform (the anchor also stores its view of them as the run's ``images``)."""
    cfg, plan, store = run.config, run.plan, run.store
    _check_keeps(run)
    keys = run.model_keys(model_name)
    previews = cfg.images is not None and model_name == cfg.anchor_model
    if previews:
        keys = ["images", *keys]
    if _chunk_ok(run, keys, chunk):
        return "skipped"
    start, stop = plan.chunks[chunk]
    if cfg.images is None:
        images = torch.from_numpy(np.asarray(store.array("images")[start:stop]))
    else:
        files = read_images(cfg.images, run.sources(start, stop))
    with using_model(cfg, model_name, device) as enc, torch.no_grad():
        if cfg.images is not None:
            transform = enc.image_transform()
            images = torch.stack([transform(rgb) for rgb in files])
        maps = enc.activations(images.to(enc.device), plan.layer_names(model_name))
    if previews:
        store.array("images")[start:stop] = _preview(images, plan.image_shape[-1])
    for layer in plan.layer_names(model_name):
        store.array(run.maps_key(model_name, layer))[start:stop] = to_store(maps[layer], cfg.dtype)
    for key in keys:
        store.mark_done(key, chunk, len(plan.chunks))
    return "computed"


def _preview(images: torch.Tensor, side: int) -> np.ndarray:
    """uint8 ``(n, 3, S, S)`` -> ``(n, 3, side, side)`` (area-averaged when smaller)."""
    if images.shape[-1] == side:
        return images.numpy()
    small = F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return small.round().clamp(0, 255).to(torch.uint8).numpy()

"""Running a run's models on some of its images: the activation maps of images by index, as the
run's extraction computes them.

Three sources of input, the same as in the run's own extraction:

- the generator: the latents of images ``indices`` (each from ``seed + i``, DESIGN §5.8), so any
  image can be made again alone;
- an encoder of a generator run: the run's stored images (uint8), the exact pixels it saw;
- an encoder of an image run (``--images``): the source's files, through the encoder's own
  transform.

:func:`model_maps` rounds the maps to the run's ``dtype`` as the store does (:func:`to_store`),
so what a run that keeps no activations computes again equals what a run that keeps them reads.
:func:`read_maps` reads maps from the store, or recomputes them when the run keeps none (the
report's example heatmaps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .models import using_model
from .run import Run

__all__ = ["encoder_input", "generate", "model_maps", "read_maps", "to_store"]


def to_store(maps: torch.Tensor, dtype: str) -> np.ndarray:
    """A map tensor as the store holds it: ``dtype`` (float16 saturates at its range), in C order
    as the store reads back (a ViT's maps are a transposed view of its tokens; the engine's
    float32 sums depend on the memory layout in their last bits)."""
    values = maps.detach().float().cpu().numpy()
    if dtype == "float16":
        values = np.clip(values, -65000, 65000)  # float16's range; activations beyond it saturate
    return values.astype(dtype, order="C")


def _indices(indices: Sequence[int] | np.ndarray | slice) -> np.ndarray:
    return np.asarray(indices, dtype=np.int64)


def generate(run: Run, gen, indices, layers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(latents, images, maps)`` of the run's generated images ``indices`` by the loaded
    generator ``gen`` (the caller holds it: :func:`~.models.using_model`)."""
    latents = gen.sample_latents(run.config.seed, _indices(indices))
    images, maps = gen.generate(latents, list(layers))
    return latents, images, maps


def encoder_input(run: Run, enc, indices) -> torch.Tensor:
    """uint8 ``(len(indices), 3, S, S)``: what encoder ``enc`` sees of images ``indices``: the
    stored images of a generator run, or the source's files through ``enc``'s transform."""
    from ..data.image_source import read_images

    idx = _indices(indices)
    cfg = run.config
    if cfg.images is None:
        return torch.from_numpy(_rows(run, "images", idx))
    if idx.size and np.all(np.diff(idx) == 1):
        names = run.sources(int(idx[0]), int(idx[-1]) + 1)
    else:
        names = np.asarray(run.sources())[idx].tolist()
    transform = enc.image_transform()
    return torch.stack([transform(rgb) for rgb in read_images(cfg.images, names)])


def _rows(run: Run, key: str, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a stored array (one slice when they are contiguous)."""
    arr = run.store.array(key)
    if idx.size and np.all(np.diff(idx) == 1):
        return np.asarray(arr[int(idx[0]) : int(idx[-1]) + 1])
    return np.asarray(arr.get_orthogonal_selection((idx,)))


def model_maps(run: Run, model: str, indices, layers: Sequence[str] | None = None, device: str = "cpu",
               batch: int | None = None, channels: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """layer -> float32 ``(len(indices), units, h, w)``: the maps of ``model`` on images
    ``indices`` of the run, computed again and rounded to the run's ``dtype`` as the store
    holds them; ``layers``: default every hooked layer of the model in the run; ``batch``:
    images per forward pass (default the run's chunk size); ``channels``: layer -> the units
    to keep of it (the others are dropped batch by batch: memory for those only)."""
    cfg = run.config
    idx = _indices(indices)
    layers = list(run.plan.layer_names(model) if layers is None else layers)
    batch = batch or cfg.chunk_size
    parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with using_model(cfg, model, device) as net, torch.no_grad():
        for lo in range(0, len(idx), batch):
            rows = idx[lo : lo + batch]
            if model == cfg.generator:
                _, _, maps = generate(run, net, rows, layers)
            else:
                maps = net.activations(encoder_input(run, net, rows).to(net.device), layers)
            for layer in layers:
                values = maps[layer] if channels is None or layer not in channels else \
                    maps[layer][:, torch.as_tensor(np.asarray(channels[layer], dtype=np.int64))]
                parts[layer].append(to_store(values, cfg.dtype).astype(np.float32, copy=False))
    return {layer: np.concatenate(p, axis=0) if p else np.zeros((0,), np.float32) for layer, p in parts.items()}


def read_maps(run: Run, model: str, layer: str, images, channels=None, device: str = "cpu") -> np.ndarray:
    """float32 ``(len(images), len(channels), h, w)``: maps of some units of one layer on some
    images of the run: read from the store, or computed again (:func:`model_maps`) when the
    run keeps no activations. ``channels``: default all."""
    idx = _indices(images)
    if run.keeps_maps:
        chans = slice(None) if channels is None else np.asarray(channels, dtype=np.int64)
        arr = run.store.array(run.maps_key(model, layer))
        return np.asarray(arr.oindex[idx, chans], dtype=np.float32)
    maps = model_maps(run, model, idx, [layer], device)[layer]
    return maps if channels is None else maps[:, np.asarray(channels, dtype=np.int64)]

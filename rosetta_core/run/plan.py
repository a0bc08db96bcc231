"""A run's layout, fixed before any chunk is computed: the layers of every model with their
shapes, the latent and image shapes, and the weights' hashes (:class:`RunPlan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import MineConfig, chunk_bounds

__all__ = ["PREVIEW_SIDE", "LayerShape", "RunPlan", "image_count", "plan_run"]

#: ``(units, h, w)`` of one layer's activation map
LayerShape = tuple[int, int, int]


@dataclass(frozen=True)
class RunPlan:
    """What :func:`plan_run` measured: ``layers`` model -> ``[(layer, (units, h, w)), ...]`` in
    hook order, the generator's ``latent_dim`` (0 for an image run), ``image_shape`` ``(channel,
    y, x)`` of the stored images, each model's ``weights_hashes``, the number of images ``n``
    and, for an image run, ``images``: the source's summary (``source``, ``images``, ``skipped``,
    ``digest``: :meth:`~rosetta_core.data.image_source.ImageIndex.summary`)."""

    config: MineConfig
    layers: dict[str, list[tuple[str, LayerShape]]]
    latent_dim: int
    image_shape: tuple[int, int, int]
    weights_hashes: dict[str, str]
    n: int
    images: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.identity(),
            "layers": {m: [[l, list(s)] for l, s in ls] for m, ls in self.layers.items()},
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "weights_hashes": dict(self.weights_hashes),
            "n": self.n,
            "images": self.images,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunPlan":
        layers = {m: [(l, tuple(s)) for l, s in ls] for m, ls in data["layers"].items()}
        config = MineConfig.from_identity(data["config"])
        return cls(config, layers, int(data["latent_dim"]), tuple(data["image_shape"]), dict(data["weights_hashes"]),
                   int(data.get("n") or config.n), data.get("images"))

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` image ranges of the store's chunks, one task each."""
        return chunk_bounds(self.n, self.config.chunk_size)

    def layer_names(self, model_name: str) -> list[str]:
        return [layer for layer, _ in self.layers[model_name]]

    def pairs(self) -> list[tuple[str, str | None]]:
        """Model pairs to correlate: (anchor, model) for every other model, and the anchor with
        itself as ``(anchor, None)``; the anchor is the generator, or an image run's anchor encoder."""
        a = self.config.anchor_model
        return [(a, m) for m in self.config.others] + [(a, None)]

    def offsets(self, model_name: str) -> dict[str, int]:
        """layer -> the global index of its first unit (units are numbered layer by layer)."""
        starts = np.cumsum([0] + [shape[0] for _, shape in self.layers[model_name]])
        return {layer: int(s) for (layer, _), s in zip(self.layers[model_name], starts)}

    def locate(self, model_name: str, unit: int) -> tuple[int, int]:
        """``(layer index, channel)`` of global unit index ``unit`` of ``model_name``."""
        starts = list(self.offsets(model_name).values())
        i = int(np.searchsorted(starts, unit, side="right") - 1)
        return i, int(unit - starts[i])

    def unit_coords(self, model_name: str) -> dict[str, np.ndarray]:
        """Per global unit of ``model_name``: ``unit`` (its index), ``layer`` and ``channel``."""
        layer = [l for l, (units, _, _) in self.layers[model_name] for _ in range(units)]
        channel = [c for _, (units, _, _) in self.layers[model_name] for c in range(units)]
        return {"unit": np.arange(len(layer), dtype=np.int64), "layer": np.asarray(layer, dtype=str),
                "channel": np.asarray(channel, dtype=np.int64)}


#: side of the images an image run stores for the dictionary and report (the anchor's view of
#: each file, downscaled to at most this)
PREVIEW_SIDE = 128


def plan_run(config: MineConfig, device: str = "cpu", index=None) -> RunPlan:
    """Load every model, probe its layer shapes on one image and fix the run's layout. The
    configuration is not checked again here: :meth:`Run.validate` did, where the run started.
    ``index``: the :class:`~rosetta_core.data.image_source.ImageIndex` of an image run."""
    from .models import model  # loads the model zoo (torch): only when planning

    if config.images is not None:
        return _plan_images(config, device, index)
    gen = model(config, config.generator, device)
    latents = gen.sample_latents(config.seed, np.arange(1))
    gen_layers = gen.select_layers(config.layers.get(config.generator))
    images, maps = gen.generate(latents, gen_layers)
    layers = {config.generator: [(k, tuple(maps[k].shape[1:])) for k in gen_layers]}
    hashes = {config.generator: gen.weights_hash}
    for name in config.encoders:
        enc = model(config, name, device)
        chosen = enc.select_layers(config.layers.get(name))
        got = enc.activations(images, chosen)
        layers[name] = [(k, tuple(got[k].shape[1:])) for k in chosen]
        hashes[name] = enc.weights_hash
    return RunPlan(config, layers, int(latents.shape[1]), tuple(images.shape[1:]), hashes, int(config.n))


def _plan_images(config: MineConfig, device: str, index) -> RunPlan:
    """The layout of an image run: each encoder probed on the source's first image, through its
    own transform; ``n`` is every readable image (or the first ``config.n``)."""
    from ..data.image_source import read_images
    from .models import model

    if index is None:
        raise ValueError("an --images run is planned from its image index (rosetta_core.data.image_source.index_images)")
    n = image_count(config, index)
    first = read_images(index.source, index.files[:1])[0]
    layers, hashes = {}, {}
    for name in config.encoders:
        enc = model(config, name, device)
        chosen = enc.select_layers(config.layers.get(name))
        got = enc.activations(enc.image_transform()(first)[None].to(enc.device), chosen)
        layers[name] = [(k, tuple(got[k].shape[1:])) for k in chosen]
        hashes[name] = enc.weights_hash
    view = model(config, config.anchor_model, device).image_transform()(first)
    side = min(PREVIEW_SIDE, view.shape[-1])
    return RunPlan(config, layers, 0, (3, side, side), hashes, n, index.summary())


def image_count(config: MineConfig, index) -> int:
    """How many of the source's readable images the run uses; too few is one clear error."""
    have, need = len(index.files), 2 * config.k
    skipped = f" ({len(index.skipped)} unreadable files skipped)" if index.skipped else ""
    if config.n is not None and config.n > have:
        raise ValueError(f"n={config.n}, but images={index.source!r} has only {have} readable images{skipped}; "
                         f"give n <= {have} or leave n out to use them all")
    n = have if config.n is None else config.n
    if n < need:
        raise ValueError(f"images={index.source!r} has {n} readable images{skipped}; mining needs at least "
                         f"2K = {need} (K = {config.k})")
    return n

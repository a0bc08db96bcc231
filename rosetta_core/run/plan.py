"""A run's layout, fixed before any chunk is computed: the layers of every model with their
shapes, the latent and image shapes, and the weights' hashes (:class:`RunPlan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import MineConfig

__all__ = ["LayerShape", "RunPlan", "plan_run"]

#: ``(units, h, w)`` of one layer's activation map
LayerShape = tuple[int, int, int]


@dataclass(frozen=True)
class RunPlan:
    """What :func:`plan_run` measured: ``layers`` model -> ``[(layer, (units, h, w)), ...]`` in
    hook order, the generator's ``latent_dim``, ``image_shape`` ``(channel, y, x)`` and each
    model's ``weights_hashes``."""

    config: MineConfig
    layers: dict[str, list[tuple[str, LayerShape]]]
    latent_dim: int
    image_shape: tuple[int, int, int]
    weights_hashes: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.identity(),
            "layers": {m: [[l, list(s)] for l, s in ls] for m, ls in self.layers.items()},
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "weights_hashes": dict(self.weights_hashes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunPlan":
        layers = {m: [(l, tuple(s)) for l, s in ls] for m, ls in data["layers"].items()}
        return cls(MineConfig.from_identity(data["config"]), layers, int(data["latent_dim"]),
                   tuple(data["image_shape"]), dict(data["weights_hashes"]))

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return self.config.chunks

    def layer_names(self, model_name: str) -> list[str]:
        return [layer for layer, _ in self.layers[model_name]]

    def pairs(self) -> list[tuple[str, str | None]]:
        """Model pairs to correlate: (generator, encoder) for every encoder, and (G, G) as
        ``(G, None)``."""
        g = self.config.generator
        return [(g, e) for e in self.config.encoders] + [(g, None)]

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


def plan_run(config: MineConfig, device: str = "cpu") -> RunPlan:
    """Load every model, probe its layer shapes on one image and fix the run's layout. The
    configuration is not checked again here: :meth:`Run.validate` did, where the run started."""
    from .models import model  # loads the model zoo (torch): only when planning

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
    return RunPlan(config, layers, int(latents.shape[1]), tuple(images.shape[1:]), hashes)

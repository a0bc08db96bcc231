"""CPU recipes of ``mini-resnet.ssl``: self-supervised training on a fixed, cached set of scenes.

:class:`CachedSSLRecipe` reads its batches from a memory-mapped ``uint8 (n, 3, 64, 64)`` set
(:func:`~rosetta_core.zoo.embedded.scene_cache.cached_scenes`; scene indices drawn from
``(seed, step)``, with replacement) and makes two views of each scene with the batched
augmentations :func:`~rosetta_core.zoo.embedded.augmentations.draw_views` /
:func:`~rosetta_core.zoo.embedded.augmentations.apply_views` (resized crop + flips/transposes in
one ``grid_sample``, colour jitter as one affine colour map per view, greying). No labels.

Objectives (``objective=``):

- ``"simclr"``: NT-Xent over the 2B views (projection MLP 128-256-64, temperature ``temperature``);
- ``"vicreg"``: VICReg (Bardes et al. 2022): invariance (MSE between the two views' embeddings)
  + variance (hinge on each dimension's std, per branch) + covariance (off-diagonal squared
  covariances) of an expander MLP 128-512-512-512, weights 25 / 25 / 1.

:class:`ProbeSet` is the cheap curve logged during training: the same linear probe as the gate
(:func:`~rosetta_core.zoo.embedded.mini_resnet.linear_probe` on frozen pooled ``layer4``
features) fitted on a small labelled set and scored on a validation set of other seeds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import WorldConfig, render_batch
from .augmentations import SSL_JITTER, apply_views, draw_views
from .mini_resnet import (
    SSL_NAME,
    MiniResNetAdapter,
    build_resnet,
    build_ssl,
    linear_probe,
    presence_labels,
    set_metrics,
)
from .resnet_recipes import _Recipe, nt_xent

__all__ = ["OBJECTIVES", "SHIPPED", "TRAIN_N", "TRAIN_WORLD_SEED", "VALIDATION_SEED", "CachedSSLRecipe", "ProbeSet",
           "ShippedRecipe", "shipped_training_set", "vicreg_loss"]

OBJECTIVES = ("simclr", "vicreg")
#: world seed of the validation scenes on which recipe settings are chosen (the gate's test
#: scenes are world seed ``HELD_OUT_SEED``; the probe's training scenes ``PROBE_WORLD_SEED``)
VALIDATION_SEED = 20_000_000
#: the cached training set: scenes 0 .. TRAIN_N - 1 of the simple world, world seed TRAIN_WORLD_SEED
TRAIN_N, TRAIN_WORLD_SEED = 50_000, 2


def vicreg_loss(za: torch.Tensor, zb: torch.Tensor, sim: float = 25.0, var: float = 25.0,
                cov: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """VICReg of the embeddings ``(n, d)`` of two views; returns (loss, its three terms)."""
    n, d = za.shape
    invariance = F.mse_loss(za, zb)
    za, zb = za - za.mean(0), zb - zb.mean(0)
    std_a, std_b = torch.sqrt(za.var(0) + 1e-4), torch.sqrt(zb.var(0) + 1e-4)
    variance = 0.5 * (F.relu(1 - std_a).mean() + F.relu(1 - std_b).mean())

    def off_diagonal(z):
        c = (z.T @ z) / (n - 1)
        return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / d

    covariance = off_diagonal(za) + off_diagonal(zb)
    loss = sim * invariance + var * variance + cov * covariance
    return loss, {"invariance": float(invariance.detach()), "variance": float(variance.detach()),
                  "covariance": float(covariance.detach())}


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


class CachedSSLRecipe(_Recipe):
    """Self-supervised ``mini-resnet.ssl`` on the cached scenes ``images`` (uint8 ``(n, 3, 64, 64)``,
    e.g. a memory map). ``view_size``: side of the views (the encoder is convolutional; views
    smaller than 64 make a step cheaper). ``scale``: crop area fractions. The heads are training
    devices only (not shipped)."""

    name = SSL_NAME

    def __init__(self, images, steps: int, objective: str = "simclr", batch: int = 256, lr: float = 2e-3,
                 weight_decay: float = 1e-4, temperature: float = 0.2, seed: int = 0, view_size: int = 64,
                 scale: tuple[float, float] = (0.35, 1.0), jitter=SSL_JITTER, p_grey: float = 0.2,
                 device: str | torch.device = "cpu"):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r}; valid: {', '.join(OBJECTIVES)}")
        if batch < 2:
            raise ValueError(f"batch={batch} must be >= 2 (the objectives compare views across the batch)")
        self.images = images
        self.adapter: MiniResNetAdapter = build_ssl()
        width = build_resnet(0).num_features
        self.head = _mlp((width, 256, 64) if objective == "simclr" else (width, 512, 512, 512))
        self.objective, self.batch, self.temperature = objective, batch, temperature
        self.view_size, self.scale, self.jitter, self.p_grey = view_size, tuple(scale), tuple(jitter), p_grey
        super().__init__(nn.ModuleDict({"encoder": self.adapter.module, "head": self.head}),
                         steps, lr, weight_decay, seed, device)

    def indices(self, step: int) -> np.ndarray:
        """The scene indices of ``step`` ``(batch,)`` (drawn with replacement from ``(seed, step)``)."""
        return torch.randint(0, len(self.images), (self.batch,), generator=self._generator(step)).numpy()

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views ``(batch, 3, view_size, view_size)`` of the scenes of ``step`` (pure, CPU)."""
        gen = self._generator(step)
        rows = np.sort(torch.randint(0, len(self.images), (self.batch,), generator=gen).numpy())
        x = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
        views = []
        for _ in range(2):
            params = draw_views(self.batch, gen, scale=self.scale, strength=self.jitter, p_grey=self.p_grey)
            views.append(apply_views(x, params, self.view_size))
        return views[0], views[1]

    def step(self, step: int) -> dict[str, float]:
        self.trainable.train()
        va, vb = self._batch(step)
        pooled = self.adapter.module(self._normalise(torch.cat([va, vb])))
        z = self.head(pooled)
        if self.objective == "simclr":
            loss, accuracy = nt_xent(z, self.temperature)
            out = {"accuracy": float(accuracy)}
        else:
            loss, out = vicreg_loss(z[: self.batch], z[self.batch:])
        return {"loss": float(loss.detach()), **out, "lr": self._update(loss)}


class ProbeSet:
    """A fixed labelled set for the probe curve: ``n_train`` scenes of world ``train_seed`` and
    ``n_val`` of world ``val_seed`` (``config``, default the simple world), rendered once.

    ``score(adapter)`` fits :func:`linear_probe` on the frozen pooled features of the training
    scenes and returns :func:`set_metrics` on the validation scenes (``kind_label_accuracy`` is
    the gate's metric)."""

    def __init__(self, n_train: int = 1500, n_val: int = 1000, train_seed: int = 3, val_seed: int = VALIDATION_SEED,
                 config: WorldConfig | None = None):
        config = config or WorldConfig.simple()
        train, val = (render_batch(s, range(n), config, "photo") for s, n in ((train_seed, n_train), (val_seed, n_val)))
        self.train_images, self.train_labels = torch.from_numpy(train.images), presence_labels(train)
        self.val_images, self.val_labels = torch.from_numpy(val.images), presence_labels(val)
        self.seeds = {"train": train_seed, "val": val_seed}

    @staticmethod
    def features(adapter: MiniResNetAdapter, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
        return torch.cat([adapter.features(images[i:i + batch]).cpu() for i in range(0, len(images), batch)])

    def score(self, adapter: MiniResNetAdapter) -> dict[str, float]:
        was_training = adapter.module.training
        adapter.module.eval()
        try:
            train = self.features(adapter, self.train_images)
            val = self.features(adapter, self.val_images)
        finally:
            adapter.module.train(was_training)
        return set_metrics(linear_probe(train, self.train_labels, val), self.val_labels)


@dataclasses.dataclass(frozen=True)
class ShippedRecipe:
    """The settings of the shipped ``mini-resnet.ssl`` (issue 23: chosen on the validation probe)."""

    objective: str = "simclr"
    batch: int = 256
    lr: float = 2e-3
    temperature: float = 0.2
    view_size: int = 48
    scale: tuple[float, float] = (0.35, 1.0)
    p_grey: float = 0.2
    steps: int = 3000

    def recipe(self, images, steps: int | None = None, batch: int | None = None,
               device: str | torch.device = "cpu") -> CachedSSLRecipe:
        return CachedSSLRecipe(images, steps=steps or self.steps, objective=self.objective, batch=batch or self.batch,
                               lr=self.lr, temperature=self.temperature, seed=0, view_size=self.view_size,
                               scale=self.scale, p_grey=self.p_grey, device=device)


SHIPPED = ShippedRecipe()


def shipped_training_set(folder) -> np.ndarray:
    """The shipped recipe's training set, rendered into ``folder`` once (614 MB)."""
    from .scene_cache import cached_scenes

    return cached_scenes(folder, TRAIN_N, TRAIN_WORLD_SEED, WorldConfig.simple())

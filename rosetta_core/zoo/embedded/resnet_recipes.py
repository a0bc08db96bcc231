"""Training recipes of ``mini-resnet.sup`` and ``mini-resnet.ssl``.

The label task, the evaluations and the gates live in ``mini_resnet.py`` (``presence_labels``,
``evaluate_sup``, ``evaluate_ssl``).

- :class:`SupervisedRecipe`: binary cross-entropy on the presence labels, plus a dense
  auxiliary loss (kind of every 8x8 cell of ``layer3``, from the world's masks). Batches mix photo
  scenes with the default shading, flat (``shading=0``) and strongly shaded scenes, cartoon
  renderings and the generators' simple world, then blur, 2x down-up sampling, noise, flips and
  quarter turns, so that the kind is not read from the shading style.
- :class:`SimCLRRecipe`: SimCLR without labels. Two views per scene, each rendered in a randomly
  chosen shading style and background texture of :data:`SSL_MIX` (same objects: a
  rendering-level augmentation), then randomly cropped, flipped, colour-jittered (hue over the
  whole circle, so that views are matched by shapes rather than colours), greyed, blurred and
  noised; NT-Xent loss on the output of a projection MLP, plus a dense NT-Xent between the
  ``layer3`` cells of the two views that show the same place of the scene (known from the crop
  and flips). Both projection heads are used only for training.

Batches and augmentations come from the step number alone (scene indices ``step * batch ..``
of the recipe's world seed, and ``torch.Generator`` seeded by ``(seed, step)``), so a resumed
run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import KINDS, TEXTURES, Scenes, WorldConfig, render_batch, truth_masks
from ..training import warmup_cosine_lr
from .augmentations import (  # noqa: F401  (re-exported: recipes and tests use them here)
    SSL_JITTER, _crop, _flips, augment_sup, augment_view, blur, colour_jitter, pixel_coordinates,
)
from .mini_resnet import SSL_NAME, SUP_NAME, MiniResNetAdapter, build_resnet, build_ssl, build_sup, presence_labels

__all__ = [
    "TRAIN_MIX", "SSL_MIX", "AUX_GRID", "kind_maps", "render_mix", "blur", "colour_jitter", "augment_sup", "augment_view",
    "SupervisedRecipe", "SimCLRRecipe", "nt_xent",
]

SUP_WORLD_SEED, SSL_WORLD_SEED = 1, 2
#: grid of the dense kind targets of the supervised recipe (= the ``layer3`` grid)
AUX_GRID = 8
#: (weight, world, style) of the supervised rendering mix
TRAIN_MIX = (
    (0.35, WorldConfig(), "photo"),
    (0.2, WorldConfig(shading=0.0), "photo"),
    (0.15, WorldConfig(shading=0.9), "photo"),
    (0.15, WorldConfig(), "cartoon"),
    (0.15, WorldConfig.simple(), "photo"),
)
#: SimCLR renders the two views of a scene with two options drawn from this mix: the shading
#: style and the background texture change, the objects stay (the world draws the same objects
#: whatever the shading and textures; the simple world draws other scenes, so it is left out)
def ssl_mix(**world) -> tuple:
    """The SimCLR rendering options; ``world`` overrides ``WorldConfig`` fields in all of them."""
    return tuple(
        (weight / len(TEXTURES), WorldConfig(shading=shading, textures=(texture,), **world), "photo")
        for weight, shading in ((0.35, 0.45), (0.2, 0.0), (0.15, 0.9)) for texture in TEXTURES
    ) + ((0.15, WorldConfig(**world), "cartoon"),)


SSL_MIX = ssl_mix()
#: the SimCLR mix over the world mini-gen draws (WorldConfig.simple()'s objects and background)
SSL_MIX_SIMPLE = ssl_mix(
    min_objects=1, max_objects=2, kinds=("circle", "square", "triangle", "cross"),
    colours=("red", "green", "blue", "yellow", "magenta", "cyan"), size=(0.16, 0.25),
    rotation=(0.0, 0.0), texture_strength=0.0, gradient=0.4, colour_jitter=0.0, grain=0.0,
)


def _counts(batch: int, mix) -> list[int]:
    edges = np.round(np.cumsum([0.0] + [w for w, _, _ in mix]) / sum(w for w, _, _ in mix) * batch)
    return np.diff(edges).astype(int).tolist()


def kind_maps(scenes: Scenes, grid: int) -> torch.Tensor:
    """Soft per-cell kind targets ``(n, 1 + len(KINDS), grid, grid)``: the fraction of each cell
    covered by background (channel 0) and by visible objects of each kind (channels 1..)."""
    masks = torch.from_numpy(truth_masks(scenes)[0]).float()  # (n, kinds, h, w)
    full = torch.cat([1 - masks.sum(1, keepdim=True).clamp(max=1), masks], 1)
    return F.adaptive_avg_pool2d(full, grid)


def render_mix(seed: int, start: int, batch: int, mix=TRAIN_MIX,
               grid: int = AUX_GRID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scenes ``start .. start + batch`` of world ``seed``, consecutive parts rendered per entry of
    ``mix``: float images in [0, 1] ``(batch, 3, 64, 64)``, presence labels ``(batch, 13)`` and
    soft kind maps ``(batch, 6, grid, grid)`` (see :func:`kind_maps`)."""
    images, labels, maps, at = [], [], [], start
    for count, (_, config, style) in zip(_counts(batch, mix), mix):
        if count:
            scenes = render_batch(seed, range(at, at + count), config, style)
            images.append(torch.from_numpy(scenes.images))
            labels.append(presence_labels(scenes))
            maps.append(kind_maps(scenes, grid))
            at += count
    return torch.cat(images).float() / 255.0, torch.cat(labels), torch.cat(maps)


# ------------------------------------------------------------------ augmentations
def dense_nt_xent(za: torch.Tensor, zb: torch.Tensor, where_a: torch.Tensor, where_b: torch.Tensor,
                  temperature: float, radius: float) -> torch.Tensor:
    """Dense contrastive loss between cell embeddings ``(n, d, g, g)`` of two views.

    ``where_*`` ``(n, 2, g, g)``: original-image coordinates of every cell. A cell of view a
    whose nearest cell of view b (same image) lies within ``radius`` has that cell as positive,
    against every cell of every image of view b as negatives (and symmetrically)."""
    n, d = za.shape[:2]
    flat = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731  (n, cells, c)
    ea, eb = F.normalize(flat(za), dim=2), F.normalize(flat(zb), dim=2)
    wa, wb = flat(where_a), flat(where_b)
    cells = ea.shape[1]
    distance, nearest = torch.cdist(wa, wb).min(2)  # (n, cells): nearest b cell of each a cell
    keep = distance < radius
    if not keep.any():
        return za.sum() * 0.0
    image = torch.arange(n, device=za.device).view(-1, 1).expand(n, cells)
    target = (image * cells + nearest)[keep]
    logits_ab = ea[keep] @ eb.reshape(n * cells, d).T / temperature
    source = (image * cells + torch.arange(cells, device=za.device).view(1, -1))[keep]
    logits_ba = eb.reshape(n * cells, d)[target] @ ea.reshape(n * cells, d).T / temperature
    return 0.5 * (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, source))


# ------------------------------------------------------------------ recipes
def _schedule(optimiser: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`~rosetta_core.zoo.training.warmup_cosine_lr` over ``steps`` as a factor of the optimiser's lr."""
    return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: warmup_cosine_lr(step, steps, 1.0))


class _Recipe:
    """Shared parts: AdamW + warm-up/cosine schedule, ``(seed, step)`` generators, state."""

    def __init__(self, modules: nn.Module, steps: int, lr: float, weight_decay: float, seed: int,
                 device: str | torch.device = "cpu"):
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1 (the schedule spans the planned run)")
        self.seed = seed
        self.device = torch.device(device)
        self.trainable = modules.to(self.device)
        self.batch_source = None  # set by train(workers=...) to run batch_at ahead
        self.optimiser = torch.optim.AdamW(modules.parameters(), lr=lr, weight_decay=weight_decay)
        self.scheduler = _schedule(self.optimiser, steps)

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + step)

    def _update(self, loss: torch.Tensor) -> float:
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return lr

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.adapter.mean.to(x.device)) / self.adapter.std.to(x.device)

    def _batch(self, step: int) -> tuple[torch.Tensor, ...]:
        """The batch of ``step`` (run ahead when a batch source is set), on the device."""
        batch = self.batch_source(step) if self.batch_source is not None else self.batch_at(step)
        return tuple(t.to(self.device, non_blocking=True) for t in batch)

    def state_dict(self) -> dict:
        return {"modules": self.trainable.state_dict(), "optimiser": self.optimiser.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.trainable.load_state_dict(state["modules"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])


def _forward_with_layer3(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm ResNet forward that also returns ``layer3`` ``(n, c3, 8, 8)`` (with gradients)."""
    x = module.maxpool(module.act1(module.bn1(module.conv1(x))))
    mid = module.layer3(module.layer2(module.layer1(x)))
    return module.forward_head(module.layer4(mid)), mid


class SupervisedRecipe(_Recipe):
    """Presence classification for ``mini-resnet.sup``; ``adapter`` is the model being trained.

    Loss = BCE of the 13 presence logits + ``aux_weight`` x the cross-entropy of a 1x1 conv
    ``aux`` on ``layer3`` against soft per-cell kind maps (background + 5 kinds, 8x8): dense
    shape supervision that made kind recognition learn several times faster on CPU. ``aux`` is
    a training device only (not part of the shipped module)."""

    name = SUP_NAME

    def __init__(self, steps: int, batch: int = 32, lr: float = 2e-3, weight_decay: float = 0.05,
                 seed: int = 0, world_seed: int = SUP_WORLD_SEED, aux_weight: float = 1.0,
                 device: str | torch.device = "cpu"):
        self.adapter: MiniResNetAdapter = build_sup()
        self.aux = nn.Conv2d(self.adapter.module.layer3[-1].conv2.out_channels, 1 + len(KINDS), 1)
        self.batch, self.world_seed, self.aux_weight = batch, world_seed, aux_weight
        super().__init__(nn.ModuleDict({"encoder": self.adapter.module, "aux": self.aux}),
                         steps, lr, weight_decay, seed, device)

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augmented images, presence labels and kind maps of ``step`` (pure, CPU)."""
        x, labels, maps = render_mix(self.world_seed, step * self.batch, self.batch)
        x, maps = augment_sup(x, self._generator(step), maps)
        return x, labels, maps

    def step(self, step: int) -> dict[str, float]:
        self.trainable.train()
        x, labels, maps = self._batch(step)
        logits, mid = _forward_with_layer3(self.adapter.module, self._normalise(x))
        presence = F.binary_cross_entropy_with_logits(logits, labels)
        dense = -(maps * F.log_softmax(self.aux(mid), 1)).sum(1).mean()
        loss = presence + self.aux_weight * dense
        return {"loss": float(loss.detach()), "presence": float(presence.detach()),
                "dense": float(dense.detach()), "lr": self._update(loss)}


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent of projections ``(2n, d)`` whose rows i and i + n are two views of one image.

    Returns (loss, top-1 accuracy of finding the partner among the other 2n - 1 rows)."""
    n = len(z) // 2
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()


class SimCLRRecipe(_Recipe):
    """SimCLR for ``mini-resnet.ssl``: encoder ``adapter.module`` + projection ``head``, plus a
    dense term (``dense_weight`` > 0): a 1x1-conv projection ``dense`` of ``layer3`` cells and
    :func:`dense_nt_xent` between cells that show the same place of the scene in both views.
    Both heads are training devices only. No labels are used."""

    name = SSL_NAME

    def __init__(self, steps: int, batch: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4,
                 temperature: float = 0.2, seed: int = 0, world_seed: int = SSL_WORLD_SEED, mix=SSL_MIX,
                 dense_weight: float = 1.0, dense_radius: float = 0.15, device: str | torch.device = "cpu"):
        self.adapter: MiniResNetAdapter = build_ssl()
        width = build_resnet(0).num_features
        mid = self.adapter.module.layer3[-1].conv2.out_channels
        self.head = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 64))
        self.dense = nn.Sequential(nn.Conv2d(mid, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, 32, 1))
        self.batch, self.world_seed, self.temperature, self.mix = batch, world_seed, temperature, mix
        self.dense_weight, self.dense_radius = dense_weight, dense_radius
        super().__init__(nn.ModuleDict({"encoder": self.adapter.module, "head": self.head, "dense": self.dense}),
                         steps, lr, weight_decay, seed, device)

    def _two_renderings(self, step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The same scenes rendered twice, each (scene, view) with an option drawn from ``mix``."""
        weights = torch.tensor([w for w, _, _ in self.mix])
        pick = torch.multinomial(weights, 2 * self.batch, replacement=True, generator=gen).numpy()
        scenes = np.tile(np.arange(step * self.batch, (step + 1) * self.batch), 2)
        out = torch.empty(2 * self.batch, 3, 64, 64)
        for option in np.unique(pick):
            rows = np.flatnonzero(pick == option)
            _, config, style = self.mix[option]
            out[rows] = torch.from_numpy(render_batch(self.world_seed, scenes[rows], config, style).images).float()
        out /= 255.0
        return out[: self.batch], out[self.batch:]

    def batch_at(self, step: int) -> tuple[torch.Tensor, ...]:
        """Two augmented views of the scenes of ``step`` and their source coordinates (pure, CPU)."""
        gen = self._generator(step)
        a, b = self._two_renderings(step, gen)
        (va, wa), (vb, wb) = augment_view(a, gen, True), augment_view(b, gen, True)
        return va, wa, vb, wb

    def step(self, step: int) -> dict[str, float]:
        self.trainable.train()
        va, wa, vb, wb = self._batch(step)
        pooled, mid = _forward_with_layer3(self.adapter.module, self._normalise(torch.cat([va, vb])))
        loss, accuracy = nt_xent(self.head(pooled), self.temperature)
        out = {"global": float(loss.detach()), "accuracy": float(accuracy)}
        if self.dense_weight > 0:
            cells = self.dense(mid)
            where = F.adaptive_avg_pool2d(torch.cat([wa, wb]), cells.shape[-1])
            n = self.batch
            dense = dense_nt_xent(cells[:n], cells[n:], where[:n], where[n:], self.temperature, self.dense_radius)
            loss = loss + self.dense_weight * dense
            out["dense"] = float(dense.detach())
        return {"loss": float(loss.detach()), **out, "lr": self._update(loss)}

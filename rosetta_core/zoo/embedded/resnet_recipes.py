"""Training recipes of ``mini-resnet.sup`` and ``mini-resnet.ssl``.

The label task, the evaluations and the gates live in ``mini_resnet.py`` (``presence_labels``,
``evaluate_sup``, ``evaluate_ssl``).

- :class:`SupervisedRecipe`: binary cross-entropy on the presence labels. Batches mix photo
  scenes with the default shading, flat (``shading=0``) and strongly shaded scenes, cartoon
  renderings and the generators' simple world, then blur, 2x down-up sampling, noise, flips and
  quarter turns, so that the kind is not read from the shading style.
- :class:`SimCLRRecipe`: SimCLR without labels. Two views per scene, each rendered in a randomly
  chosen style of :data:`SSL_MIX` (same scene parameters: a rendering-level augmentation), then
  randomly cropped, flipped, colour-jittered, greyed, blurred and noised; NT-Xent loss on the
  output of a projection MLP that is used only for training.

Batches and augmentations come from the step number alone (scene indices ``step * batch ..``
of the recipe's world seed, and ``torch.Generator`` seeded by ``(seed, step)``), so a resumed
run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import WorldConfig, render_batch
from .mini_resnet import SSL_NAME, SUP_NAME, MiniResNetAdapter, build_resnet, build_ssl, build_sup, presence_labels

__all__ = [
    "TRAIN_MIX", "SSL_MIX", "render_mix", "blur", "colour_jitter", "augment_sup", "augment_view",
    "SupervisedRecipe", "SimCLRRecipe", "nt_xent",
]

SUP_WORLD_SEED, SSL_WORLD_SEED = 1, 2
#: (weight, world, style) of the supervised rendering mix
TRAIN_MIX = (
    (0.35, WorldConfig(), "photo"),
    (0.2, WorldConfig(shading=0.0), "photo"),
    (0.15, WorldConfig(shading=0.9), "photo"),
    (0.15, WorldConfig(), "cartoon"),
    (0.15, WorldConfig.simple(), "photo"),
)
#: SimCLR renders both views of one scene; the simple world samples other scenes, so it is left out
SSL_MIX = TRAIN_MIX[:4]


def _counts(batch: int, mix) -> list[int]:
    edges = np.round(np.cumsum([0.0] + [w for w, _, _ in mix]) / sum(w for w, _, _ in mix) * batch)
    return np.diff(edges).astype(int).tolist()


def render_mix(seed: int, start: int, batch: int, mix=TRAIN_MIX) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes ``start .. start + batch`` of world ``seed``, consecutive parts rendered per entry of
    ``mix``: (float images in [0, 1] ``(batch, 3, 64, 64)``, presence labels ``(batch, 13)``)."""
    images, labels, at = [], [], start
    for count, (_, config, style) in zip(_counts(batch, mix), mix):
        if count:
            scenes = render_batch(seed, range(at, at + count), config, style)
            images.append(torch.from_numpy(scenes.images))
            labels.append(presence_labels(scenes))
            at += count
    return torch.cat(images).float() / 255.0, torch.cat(labels)


# ------------------------------------------------------------------ augmentations
def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chance(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of ``(n, c, h, w)`` with one sigma (pixels, ``(n,)``) per image; 0 = none."""
    n, c, h, w = x.shape
    offsets = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n * c, 7)
    flat = F.pad(x.reshape(1, n * c, h, w), (3, 3, 3, 3), mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, 7), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, 7, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _flips(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = len(x)
    x = _where(_chance(gen, n, 0.5), x.flip(3), x)
    x = _where(_chance(gen, n, 0.5), x.flip(2), x)
    return _where(_chance(gen, n, 0.5), x.transpose(2, 3), x)


def _degrade(x: torch.Tensor, gen: torch.Generator, p_blur: float, p_down: float, p_noise: float) -> torch.Tensor:
    n = len(x)
    sigma = _uniform(gen, n, 0.4, 1.5) * _chance(gen, n, p_blur)
    x = blur(x, sigma)
    down = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True),
                         size=x.shape[2:], mode="bilinear")
    x = _where(_chance(gen, n, p_down), down, x)
    noise = _uniform(gen, n, 0.0, 0.08) * _chance(gen, n, p_noise)
    x = x + noise.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return x.clamp(0.0, 1.0)


def augment_sup(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving augmentation of float images ``(n, 3, h, w)`` in [0, 1] (no colour change)."""
    return _degrade(_flips(x, gen), gen, p_blur=0.3, p_down=0.15, p_noise=0.3)


def _crop(x: torch.Tensor, gen: torch.Generator, scale=(0.35, 1.0), ratio=(0.75, 1.333)) -> torch.Tensor:
    """Random resized crop (area fraction ``scale``, aspect ``ratio``) back to the full size."""
    n = len(x)
    area = _uniform(gen, n, *scale)
    aspect = torch.exp(_uniform(gen, n, math.log(ratio[0]), math.log(ratio[1])))
    sx = torch.sqrt(area * aspect).clamp(max=1.0)
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (1 - sx) * _uniform(gen, n, -1.0, 1.0)
    ty = (1 - sy) * _uniform(gen, n, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def colour_jitter(x: torch.Tensor, gen: torch.Generator, strength=(0.4, 0.4, 0.4, 0.1), p: float = 0.8,
                  p_grey: float = 0.2) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and hue (YIQ rotation) jitter, then greying."""
    n = len(x)
    apply = _chance(gen, n, p).float()
    b, c, s = ((1 + apply * _uniform(gen, n, -v, v)).view(-1, 1, 1, 1) for v in strength[:3])
    hue = apply * _uniform(gen, n, -strength[3], strength[3]) * 2 * math.pi
    grey = lambda t: (t * _RGB_TO_YIQ[0].view(1, 3, 1, 1)).sum(1, keepdim=True)  # noqa: E731
    x = (x * b).clamp(0, 1)
    x = ((x - grey(x).mean((2, 3), keepdim=True)) * c + grey(x).mean((2, 3), keepdim=True)).clamp(0, 1)
    x = ((x - grey(x)) * s + grey(x)).clamp(0, 1)
    cos, sin = torch.cos(hue), torch.sin(hue)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, cos, -sin, sin, cos
    matrix = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ  # (n, 3, 3)
    x = torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)
    return _where(_chance(gen, n, p_grey), grey(x).expand_as(x), x)


def augment_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR view of float images ``(n, 3, h, w)`` in [0, 1]."""
    x = colour_jitter(_flips(_crop(x, gen), gen), gen)
    return _degrade(x, gen, p_blur=0.5, p_down=0.1, p_noise=0.3)


# ------------------------------------------------------------------ recipes
def _schedule(optimiser: torch.optim.Optimizer, steps: int, warmup: float = 0.05):
    """Linear warm-up over the first ``warmup`` of ``steps``, then a cosine decay to zero."""
    ramp = max(1, int(warmup * steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - ramp) / max(1, steps - ramp))))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


class _Recipe:
    """Shared parts: AdamW + warm-up/cosine schedule, ``(seed, step)`` generators, state."""

    def __init__(self, modules: nn.Module, steps: int, lr: float, weight_decay: float, seed: int):
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1 (the schedule spans the planned run)")
        self.seed = seed
        self.trainable = modules
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
        return (x - self.adapter.mean) / self.adapter.std

    def state_dict(self) -> dict:
        return {"modules": self.trainable.state_dict(), "optimiser": self.optimiser.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.trainable.load_state_dict(state["modules"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])


class SupervisedRecipe(_Recipe):
    """Presence classification for ``mini-resnet.sup``; ``adapter`` is the model being trained."""

    name = SUP_NAME

    def __init__(self, steps: int, batch: int = 128, lr: float = 2e-3, weight_decay: float = 0.05,
                 seed: int = 0, world_seed: int = SUP_WORLD_SEED):
        self.adapter: MiniResNetAdapter = build_sup()
        self.batch, self.world_seed = batch, world_seed
        super().__init__(self.adapter.module, steps, lr, weight_decay, seed)

    def step(self, step: int) -> dict[str, float]:
        self.adapter.module.train()
        x, labels = render_mix(self.world_seed, step * self.batch, self.batch)
        x = augment_sup(x, self._generator(step))
        logits = self.adapter.module(self._normalise(x))
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        return {"loss": float(loss.detach()), "lr": self._update(loss)}


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent of projections ``(2n, d)`` whose rows i and i + n are two views of one image.

    Returns (loss, top-1 accuracy of finding the partner among the other 2n - 1 rows)."""
    n = len(z) // 2
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()


class SimCLRRecipe(_Recipe):
    """SimCLR for ``mini-resnet.ssl``: encoder ``adapter.module`` + projection ``head`` (training only)."""

    name = SSL_NAME

    def __init__(self, steps: int, batch: int = 128, lr: float = 2e-3, weight_decay: float = 1e-4,
                 temperature: float = 0.2, seed: int = 0, world_seed: int = SSL_WORLD_SEED, mix=SSL_MIX):
        self.adapter: MiniResNetAdapter = build_ssl()
        width = build_resnet(0).num_features
        self.head = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 64))
        self.batch, self.world_seed, self.temperature, self.mix = batch, world_seed, temperature, mix
        super().__init__(nn.ModuleDict({"encoder": self.adapter.module, "head": self.head}),
                         steps, lr, weight_decay, seed)

    def _two_renderings(self, step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The same scenes rendered twice, each scene in a style drawn from ``mix`` per view."""
        indices = range(step * self.batch, (step + 1) * self.batch)
        styles = torch.stack([
            torch.from_numpy(render_batch(self.world_seed, indices, config, style).images)
            for _, config, style in self.mix
        ]).float() / 255.0  # (styles, n, 3, h, w)
        weights = torch.tensor([w for w, _, _ in self.mix])
        pick = torch.multinomial(weights, 2 * self.batch, replacement=True, generator=gen).view(2, -1)
        rows = torch.arange(self.batch)
        return styles[pick[0], rows], styles[pick[1], rows]

    def step(self, step: int) -> dict[str, float]:
        self.trainable.train()
        gen = self._generator(step)
        a, b = self._two_renderings(step, gen)
        views = torch.cat([augment_view(a, gen), augment_view(b, gen)])
        z = self.head(self.adapter.module(self._normalise(views)))
        loss, accuracy = nt_xent(z, self.temperature)
        return {"loss": float(loss.detach()), "accuracy": float(accuracy), "lr": self._update(loss)}

"""``mini-gen``: the embedded generator of the shape world, a conditional neural renderer.

What it is: a DCGAN-shaped convolutional decoder ``G(c, z)`` that maps a scene code ``c`` (the
world's own scene parameters, ``Scenes.codes`` of :data:`GEN_WORLD`) and a noise vector ``z``
(``Z_DIM`` values, N(0, 1)) to a 64x64 RGB image. It is trained by *regression* (L1 to the scene
rendered on the fly, see :mod:`rosetta_core.zoo.embedded.gen_recipes`), not adversarially: it is
not a GAN. Because the target is a deterministic function of ``c``, the trained model learns to
ignore ``z``; ``z`` is kept so that the latent has a free part, as the paper's latents do.

Latent: one float32 vector of ``LATENT_DIM = code_dim(GEN_WORLD) + Z_DIM`` values per image,
``[code | z]``. :meth:`MiniGenAdapter.sample_latents` draws it from the documented world: the
code of scene ``(seed, i)`` of ``render_batch(seed, indices, GEN_WORLD)`` and ``z`` from
``np.random.default_rng([seed, i, Z_STREAM])``, so any latent can be rebuilt alone.

Architecture (every block output is a post-ReLU map, hookable by name)::

    block1  Linear(latent -> 256*4*4), conditional BN, ReLU                   (n, 256,  4,  4)
    block2  up x2 (nearest), CoordConv 3x3 -> 128, conditional BN, ReLU       (n, 128,  8,  8)
    block3  up x2, CoordConv 3x3 -> 64, conditional BN, ReLU                  (n,  64, 16, 16)
    block4  up x2, CoordConv 3x3 -> 48, conditional BN, ReLU                  (n,  48, 32, 32)
    block5  up x2, CoordConv 3x3 -> 64, conditional BN, ReLU                  (n,  64, 64, 64)
    to_rgb  CoordConv 3x3 -> 3, tanh                                          (n,   3, 64, 64)

CoordConv appends the pixel coordinates (x, y in [-1, 1]) as two input channels and, per object
slot of the scene code, the coordinates relative to the slot's centre ``dx = x - cx``,
``dy = y - cy``, their length, ``|dx|`` and ``|dy|``, zero for an absent slot (``2 + 5 *
max_objects`` channels, computed from the latent, so positions stay differentiable); conditional batch norm (FiLM) is ``BN(h) * (1 + gamma(latent)) + beta(latent)`` with ``gamma``, ``beta``
linear in the latent and zero-initialised (so training starts as a plain batch-norm decoder).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import Scenes, WorldConfig, code_dim, code_layout, render_batch
from ..hooks import capture
from ..base import GeneratorAdapter, LayerInfo
from . import register_embedded

__all__ = [
    "GEN_WORLD", "Z_DIM", "Z_STREAM", "CODE_DIM", "LATENT_DIM", "IMAGE_SIZE", "WIDTHS",
    "MiniGenerator", "MiniGenAdapter", "latents_from_codes", "to_uint8", "build", "layer_table",
]

#: The world mini-gen draws: WorldConfig.simple() (1-2 large upright objects of 4 kinds,
#: 6 flat colours, plain mild-gradient background, soft shadows, 64x64).
GEN_WORLD = WorldConfig.simple()
Z_DIM = 8
Z_STREAM = 7919  # third entry of the noise seed [seed, index, Z_STREAM]: keeps z apart from scenes
CODE_DIM = code_dim(GEN_WORLD)
LATENT_DIM = CODE_DIM + Z_DIM
IMAGE_SIZE = 64
WIDTHS = (256, 128, 64, 48, 64)  # channels of block1..block5 (grids 4, 8, 16, 32, 64)
NAME = "mini-gen"


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine, then a FiLM affine from the latent.

    ``forward(h (n, c, H, W), latent (n, d)) -> (n, c, H, W)``; ``gamma`` and ``beta`` start at
    zero, so the layer starts as a plain normalisation.
    """

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.film = nn.Linear(latent_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(latent).chunk(2, dim=1)
        return self.norm(h) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


def _slot_columns(world: WorldConfig) -> tuple[tuple[int, int, int], ...]:
    """Latent columns (present flag, centre x, centre y) of every object slot of ``world``."""
    layout = code_layout(world.max_objects)
    return tuple((layout[f"object{j}.present"].start, layout[f"object{j}.centre"].start,
                  layout[f"object{j}.centre"].start + 1) for j in range(world.max_objects))


def _coords(h: torch.Tensor, latents: torch.Tensor, slots: tuple[tuple[int, int, int], ...]) -> torch.Tensor:
    """CoordConv input: ``h (n, c, H, W)`` -> ``(n, c + 2 + 5 * len(slots), H, W)``.

    Appends the pixel-centre coordinates x, y in [-1, 1]; then per object slot of the latent
    the coordinates relative to that slot's centre ``dx = x - cx``, ``dy = y - cy`` and their
    length; then per slot ``|dx|``, ``|dy|``. Slot channels are times the slot's present flag
    (zero for an absent slot). All are differentiable w.r.t. the latents.
    """
    n, _, rows, cols = h.shape
    ys = (torch.arange(rows, dtype=h.dtype, device=h.device) + 0.5) * (2 / rows) - 1
    xs = (torch.arange(cols, dtype=h.dtype, device=h.device) + 0.5) * (2 / cols) - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x then y
    extra, folded = [h, grid.expand(n, 2, rows, cols)], []
    for present, cx, cy in slots:
        flag = latents[:, present, None, None, None]
        dx = grid[0] - latents[:, cx, None, None]
        dy = grid[1] - latents[:, cy, None, None]
        radius = torch.sqrt(dx * dx + dy * dy + 1e-4)
        extra.append(torch.stack([dx, dy, radius], dim=1) * flag)
        folded.append(torch.stack([dx.abs(), dy.abs()], dim=1) * flag)
    return torch.cat(extra + folded, dim=1)


class UpBlock(nn.Module):
    """``(n, c_in, s, s)`` -> nearest x2 -> CoordConv 3x3 -> conditional BN -> ReLU ->
    ``(n, c_out, 2s, 2s)``; ``act`` is the hookable ReLU module."""

    def __init__(self, c_in: int, c_out: int, latent_dim: int, slots: tuple[tuple[int, int, int], ...]):
        super().__init__()
        self.slots = slots
        self.conv = nn.Conv2d(c_in + 2 + 5 * len(slots), c_out, 3, padding=1, bias=False)
        self.norm = ConditionalBatchNorm(c_out, latent_dim)
        self.act = nn.ReLU()

    def forward(self, h: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return self.act(self.norm(self.conv(_coords(h, latent, self.slots)), latent))


class MiniGenerator(nn.Module):
    """``forward(latents (n, LATENT_DIM)) -> images (n, 3, 64, 64)`` float in [-1, 1].

    Differentiable w.r.t. the latents (inversion optimises them). ``block1``..``block5`` are the
    ReLU modules whose outputs are the post-nonlinearity maps at 4, 8, 16, 32 and 64 pixels.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, widths: Sequence[int] = WIDTHS,
                 world: WorldConfig = GEN_WORLD):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"widths={tuple(widths)} is invalid: expected 5 channel counts (4..64 px)")
        self.latent_dim, self.widths = latent_dim, tuple(int(w) for w in widths)
        self.slots = _slot_columns(world)
        self.stem = nn.Linear(latent_dim, self.widths[0] * 16)
        self.stem_norm = ConditionalBatchNorm(self.widths[0], latent_dim)
        self.stem_act = nn.ReLU()
        self.ups = nn.ModuleList(
            UpBlock(a, b, latent_dim, self.slots) for a, b in zip(self.widths[:-1], self.widths[1:])
        )
        self.to_rgb = nn.Conv2d(self.widths[-1] + 2 + 5 * len(self.slots), 3, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def activation_modules(self) -> dict[str, nn.Module]:
        """Layer name -> the ReLU module whose output is that layer's map (each runs once per
        forward pass; guided inversion relies on it to stop after the deepest matched layer)."""
        return {"block1": self.stem_act, **{f"block{i + 2}": b.act for i, b in enumerate(self.ups)}}

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"latents of shape {tuple(latents.shape)} are invalid: expected (n, {self.latent_dim})"
            )
        h = self.stem(latents).view(len(latents), self.widths[0], 4, 4)
        h = self.stem_act(self.stem_norm(h, latents))
        for block in self.ups:
            h = block(h, latents)
        return torch.tanh(self.to_rgb(_coords(h, latents, self.slots)))


def latents_from_codes(codes: np.ndarray, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Scene codes ``(n, CODE_DIM)`` of scenes ``(seed, indices)`` -> latents ``(n, LATENT_DIM)``:
    ``[code | z]`` with ``z ~ N(0, 1)`` from ``default_rng([seed, index, Z_STREAM])``."""
    idx = np.asarray(list(indices) if isinstance(indices, range) else indices, dtype=np.int64)
    if codes.shape != (len(idx), CODE_DIM):
        raise ValueError(f"codes of shape {codes.shape} are invalid: expected ({len(idx)}, {CODE_DIM})")
    z = np.stack([np.random.default_rng([int(seed), int(i), Z_STREAM]).standard_normal(Z_DIM)
                  for i in idx]).astype(np.float32)
    return torch.from_numpy(np.concatenate([codes.astype(np.float32), z], axis=1))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] ``(n, 3, H, W)`` -> uint8 ``(n, 3, H, W)``."""
    return ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class MiniGenAdapter(GeneratorAdapter):
    """The extraction contract around :class:`MiniGenerator` (see the module docstring)."""

    name = NAME
    arch = "conditional neural renderer: DCGAN-shaped CoordConv decoder with FiLM batch norm"

    def __init__(self, module: MiniGenerator | None = None, world: WorldConfig = GEN_WORLD):
        self.module = module if module is not None else MiniGenerator()
        self.world = world
        self.weights = "random"

    def layers(self) -> list[LayerInfo]:
        return layer_table(self.module.widths)

    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Latents ``(n, LATENT_DIM)`` float32 of images ``indices``: the code of scene
        ``(seed, i)`` of the mini-gen world, then ``z`` seeded from ``(seed, i)``."""
        scenes = render_batch(seed, indices, self.world)
        return latents_from_codes(scenes.codes, seed, scenes.indices).to(self.device)

    def ground_truth(self, seed: int, indices: Sequence[int] | np.ndarray) -> Scenes:
        """The scenes behind the images of ``sample_latents(seed, indices)``, with their masks.

        The latent holds the code of scene ``(seed, i)`` and mini-gen is trained to render that
        scene, so the scene's masks are the generated image's ground truth up to the generator's
        rendering error (measure it against ``Scenes.images``; about 2/255 per pixel for the
        shipped weights, far more for random ones)."""
        return render_batch(seed, indices, self.world)

    def generate(
        self, latents: torch.Tensor, layers: Sequence[str] | None = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """latents ``(n, LATENT_DIM)`` -> (uint8 images ``(n, 3, 64, 64)``, dict layer -> float32
        post-ReLU maps ``(n, units, h, w)``); ``layers=None`` means every layer. No gradients:
        call ``adapter.module(latents)`` to optimise latents."""
        if not isinstance(latents, torch.Tensor):
            raise TypeError(f"latents must be a torch.Tensor, got {type(latents).__name__}")
        if layers is None:
            names = self.select_layers(None)
        else:
            wanted = [layers] if isinstance(layers, str) else list(layers)
            names = self.select_layers(wanted) if wanted else []
        modules = self.module.activation_modules()
        with torch.no_grad(), capture({n: modules[n] for n in names}) as store:
            images = self.module(latents.to(self.device, torch.float32))
        return to_uint8(images), {n: store[n][0].float() for n in names}


def layer_table(widths: Sequence[int] = WIDTHS) -> list[LayerInfo]:
    """``block1`` .. ``block5``: ``widths[i]`` units on the ``4 * 2**i`` grid (the registry's table)."""
    return [LayerInfo(f"block{i + 1}", int(w), (4 * 2**i, 4 * 2**i)) for i, w in enumerate(widths)]


def build() -> MiniGenAdapter:
    """A mini-gen adapter around a freshly (randomly) initialised module."""
    return MiniGenAdapter()


register_embedded(NAME, MiniGenAdapter.arch, build, layer_table, kind="generator", trained_by="bench/train_gen.py",
                  description="Conditional neural renderer of the simplified shape world (trained by L1 regression "
                  "on scene codes, not a GAN); latent = [scene code | 8-d noise]",
                  extra={"latent_dim": LATENT_DIM, "code_dim": CODE_DIM, "z_dim": Z_DIM, "world": "WorldConfig.simple()",
                         "inversion_lr": 0.05})  # Adam lr of guided inversion (paper: 0.1 StyleGAN2, 0.01 BigGAN)

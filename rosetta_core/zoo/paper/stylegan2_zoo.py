"""``stylegan2.lsun-cat``, ``stylegan2.lsun-horse`` (config-f at 256x256) and
``stylegan2.lsun-car`` (config-f at 512x512, rosinality ``Generator(512, 512, 8,
channel_multiplier=2)``; LSUN car images are 512x384, padded to the square).

Weights: a checkpoint in rosinality's ``g_ema`` format (e.g. the LSUN checkpoints converted from
NVIDIA's, ``{"g_ema": state_dict, "latent_avg": (512,)}``; a training checkpoint with ``g``, ``d``,
optimisers and ``args`` too), a torch file read with ``weights_only=True`` or a safetensors file
(keys ``g_ema.*`` and ``latent_avg``, or bare). Files converted before 2020 lack the
``noises.noise_*`` buffers: they load with the fresh buffers of the build (seeded by ``load``'s
``seed``), with a warning and a note in ``adapter.weights``. There is no library hub for them:
``pretrained`` looks for ``$ROSETTA_WEIGHTS_DIR/<name>.pt`` (default
``~/.cache/rosetta-neurons/weights``) and otherwise says where to put it.

Latent: ``z`` (512) from N(0, 1) seeded by ``(seed, i)``. Truncation (attribute ``truncation``,
default 0.7; the paper's code ran at 1) pulls ``w`` toward the mean latent: the checkpoint's
``latent_avg`` or, when absent, the mean of the mapping of 4,096 seeded ``z``. The noise inputs are
the module's fixed buffers, so an image depends on its latent only.

Hooked layers: ``conv1``, ``convs.{i}`` (every convolution's output after its LeakyReLU),
``to_rgb1``, ``to_rgbs.{i}`` (the to-RGB 1x1 modulated convolutions, 3 units each). Presets:
``@paper`` = ``convs.*`` and ``to_rgbs.*``, the paper's ``convs.*.activate`` and ``to_rgbs.*.conv``
(without ``conv1`` and ``to_rgb1``).

Differences from the paper's published code (``stylegan2/model.py`` of its repository): it called
``gan([z], 0.7, ...)``, which passes 0.7 as ``return_latents`` and so ran at truncation 1 (here:
``truncation = 1``, or ``set_truncation(adapter, "paper")``), with fresh random noise every forward
and ``z`` from a truncated normal on [-1, 1] (here: fixed noise buffers and N(0, 1), so that every
image is rebuilt from its seed alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import warnings

import numpy as np
import torch
from torch import nn

from ..hooks import capture
from ..base import LayerInfo
from ..registry import ModelSpec, load_state, register
from .stylegan2 import StyleGAN2Generator, channels_for
from .truncation import TruncatedGeneratorAdapter
from .weights import WEIGHTS_HOME, read_checkpoint, wants_hub_weights

__all__ = [
    "StyleGAN2Module", "StyleGAN2Adapter", "build", "layer_table", "load_g_ema", "g_ema_checkpoint", "MODELS",
    "PRESETS", "TRUNCATION", "PAPER_TRUNCATION",
]

MEAN_SAMPLES = 4096
#: the resolution of the LSUN cat / horse checkpoints
SIZE = 256
#: name -> (what it was trained on, image side) of the registered StyleGAN2 models
MODELS = {"stylegan2.lsun-cat": ("LSUN cat", 256), "stylegan2.lsun-horse": ("LSUN horse", 256),
          "stylegan2.lsun-car": ("LSUN car", 512)}
#: layer presets: the paper's hook points (``convs.*.activate`` and ``to_rgbs.*.conv`` of its code)
PRESETS = {"paper": ("convs.*", "to_rgbs.*")}
#: our default truncation, and the paper's code's (its calls ran at 1)
TRUNCATION, PAPER_TRUNCATION = 0.7, 1.0


class StyleGAN2Module(nn.Module):
    """``forward(z (n, 512)) -> images (n, 3, 256, 256)``: mapping, truncation toward ``w_avg``,
    synthesis. Differentiable in ``z`` (inversion optimises it)."""

    def __init__(self, generator: StyleGAN2Generator, truncation: float = TRUNCATION):
        super().__init__()
        self.generator, self.truncation = generator, truncation
        self.register_buffer("w_avg", torch.zeros(generator.style_dim))

    @torch.no_grad()
    def estimate_w_avg(self, samples: int = MEAN_SAMPLES, seed: int = 0) -> None:
        z = torch.randn(samples, self.generator.style_dim, generator=torch.Generator().manual_seed(seed))
        self.w_avg.copy_(self.generator.mapping(z.to(self.w_avg.device)).mean(0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.generator.style_dim:
            raise ValueError(f"latents of shape {tuple(z.shape)} are invalid: expected (n, {self.generator.style_dim})")
        return self.generator(z, self.truncation, self.w_avg)


class StyleGAN2Adapter(TruncatedGeneratorAdapter):
    """The extraction contract around :class:`StyleGAN2Module` (see the module docstring)."""

    standard_normal_prior = True  # L_reg is the paper's ||z||^2
    default_truncation, paper_truncation = TRUNCATION, PAPER_TRUNCATION

    def __init__(self, name: str, module: StyleGAN2Module):
        self.name, self.module, self.weights = name, module, "random"
        g = module.generator
        self.arch = f"StyleGAN2 config-f {g.size}px (own PyTorch implementation, g_ema format)"
        self._hooked: dict[str, tuple[nn.Module, int]] = {"conv1": (g.conv1, 4), "to_rgb1": (g.to_rgb1.conv, 4)}
        for i, conv in enumerate(g.convs):
            self._hooked[f"convs.{i}"] = (conv, 2 ** (3 + i // 2))
        for i, to_rgb in enumerate(g.to_rgbs):
            self._hooked[f"to_rgbs.{i}"] = (to_rgb.conv, 2 ** (3 + i))

    def layers(self) -> list[LayerInfo]:
        """Forward order: conv1, to_rgb1, then per resolution two convs and a to-RGB."""
        order = ["conv1", "to_rgb1"]
        for i in range(len(self.module.generator.to_rgbs)):
            order += [f"convs.{2 * i}", f"convs.{2 * i + 1}", f"to_rgbs.{i}"]
        out = []
        for name in order:
            module, res = self._hooked[name]
            units = module.c_out if hasattr(module, "c_out") else module.conv.c_out
            out.append(LayerInfo(name, units, (res, res)))
        return out

    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        dim = self.module.generator.style_dim
        rows = [np.random.default_rng([int(seed), int(i)]).standard_normal(dim) for i in np.asarray(list(indices))]
        return torch.from_numpy(np.stack(rows).astype(np.float32)).to(self.device)

    def generate(self, latents: torch.Tensor, layers: Sequence[str] | None = ()) -> tuple[torch.Tensor, dict]:
        """z ``(n, 512)`` -> (uint8 images ``(n, 3, size, size)``, dict layer -> ``(n, units, r, r)``)."""
        wanted = None if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        names = self.select_layers(wanted) if wanted is None or wanted else []
        with torch.no_grad(), capture({n: self._hooked[n][0] for n in names}) as store:
            images = self.module(latents.to(self.device, torch.float32))
        maps = {n: store[n][0].float() for n in names}
        return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), maps


def layer_table(size: int = SIZE) -> list[LayerInfo]:
    """The layers :meth:`StyleGAN2Adapter.layers` reports for config-f at ``size``, from
    :func:`channels_for`: ``conv1`` and ``to_rgb1`` (3 units) at 4, then per resolution
    ``r = 8 .. size`` two convs with ``channels_for(size)[r]`` units and a to-RGB."""
    ch = channels_for(size)
    out = [LayerInfo("conv1", ch[4], (4, 4)), LayerInfo("to_rgb1", 3, (4, 4))]
    for i, res in enumerate(r for r in sorted(ch) if r > 4):
        out += [LayerInfo(f"convs.{2 * i}", ch[res], (res, res)), LayerInfo(f"convs.{2 * i + 1}", ch[res], (res, res)),
                LayerInfo(f"to_rgbs.{i}", 3, (res, res))]
    return out


def build(name: str, size: int = 256) -> StyleGAN2Adapter:
    """Random (seeded by the caller) StyleGAN2 at ``size`` with the mean latent estimated."""
    module = StyleGAN2Module(StyleGAN2Generator(size))
    module.estimate_w_avg()
    return StyleGAN2Adapter(name, module)


def g_ema_checkpoint(module: StyleGAN2Module) -> dict:
    """A checkpoint of ``module`` in the ``g_ema`` format (what :func:`load_g_ema` reads)."""
    return {"g_ema": module.generator.state_dict(), "latent_avg": module.w_avg.clone()}


#: the note of a file without noise buffers
NO_NOISES = ("no noises.* buffers in the file (converted before 2020): fresh noise buffers of the build, "
             "seeded by load()'s seed")


def load_g_ema(module: StyleGAN2Module, content, source: str) -> list[str]:
    """Load a ``g_ema`` checkpoint (nested, or flat ``g_ema.*`` keys) strictly, with its mean latent.

    A file without any ``noises.*`` buffer (rosinality files converted before 2020) keeps the
    module's own buffers; the returned notes say so (empty otherwise).
    """
    if not isinstance(content, dict):
        raise ValueError(f"weights {source}: expected a dict with a 'g_ema' state dict, found {type(content).__name__}")
    if isinstance(content.get("g_ema"), dict):
        state, latent_avg = content["g_ema"], content.get("latent_avg")
    else:
        latent_avg = content.get("latent_avg")
        state = {k.removeprefix("g_ema."): v for k, v in content.items() if k != "latent_avg"}
    notes = []
    if state and not any(k.startswith("noises.") for k in state):
        state = dict(state) | {k: v for k, v in module.generator.state_dict().items() if k.startswith("noises.")}
        notes.append(NO_NOISES)
    load_state(module.generator, state, source)
    if isinstance(latent_avg, torch.Tensor):
        module.w_avg.copy_(latent_avg.reshape(-1)[: module.generator.style_dim])
    else:
        module.estimate_w_avg()
    return notes


def default_file(name: str) -> Path | None:
    for suffix in (".pt", ".safetensors"):
        if (WEIGHTS_HOME / f"{name}{suffix}").is_file():
            return WEIGHTS_HOME / f"{name}{suffix}"
    return None


def check_weights(name: str, origin: str, weights: str) -> None:
    if wants_hub_weights(name, weights) and default_file(name) is None:
        size = MODELS[name][1] if name in MODELS else SIZE
        raise ValueError(
            f"no pretrained weights for {name!r}: StyleGAN2 has no library hub, and "
            f"{WEIGHTS_HOME / (name + '.pt')} does not exist. Get the {origin} g_ema checkpoint "
            f"(the {size}px config-f checkpoint converted from NVIDIA's), put it there, or pass "
            f"--weights {name}=PATH; or use --weights random"
        )


def load_weights(adapter: StyleGAN2Adapter, weights: str, origin: str) -> str:
    check_weights(adapter.name, origin, weights)
    path = default_file(adapter.name) if weights in ("trained", "pretrained") else Path(weights)
    notes = load_g_ema(adapter.module, read_checkpoint(path), str(path))
    for note in notes:
        warnings.warn(f"{adapter.name} weights {path}: {note}", UserWarning, stacklevel=2)
    return str(Path(path).resolve()) + "".join(f" ({note})" for note in notes)


for _name, (_origin, _size) in MODELS.items():
    register(ModelSpec(
        name=_name, kind="generator", arch=f"StyleGAN2 config-f {_size}px (own PyTorch implementation)",
        description=f"StyleGAN2 trained on {_origin} {_size}x{_size} (g_ema checkpoint format); latent = z (512)",
        build=partial(build, _name, _size), layers=partial(layer_table, _size), source="local g_ema checkpoint (no hub)",
        load_weights=partial(load_weights, origin=_origin), check_weights=partial(check_weights, _name, _origin),
        layer_presets=PRESETS, extra={"latent_dim": 512, "truncation": TRUNCATION, "paper_truncation": PAPER_TRUNCATION},
    ))

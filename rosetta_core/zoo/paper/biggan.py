"""``biggan-deep-256``: BigGAN-deep at 256x256 through the ``pytorch-pretrained-biggan`` package.

Latent: one float32 vector of 128 + 1000 values per image, ``[z | class vector]``: ``z`` from
the truncated normal on [-2, 2] times ``truncation`` (seeded by ``(seed, i)``), the class
vector one-hot of ``class_index`` (``--class-index``) or, when that is None, of a class drawn
per image from ``(seed, i)``. ``truncation`` (default 0.4, in (0, 1]) is an attribute of the
adapter and of its module; the package interpolates its batch-norm statistics with it.

Hooked layers, all post-ReLU. Each GenBlock applies one ``nn.ReLU`` module four times; each
application is its own layer ``layers.{i}.relu.{j}`` (``i`` the index in the package's
``generator.layers``, which holds the self-attention at 8; ``j`` 0..3: before the 1x1 conv in,
the 3x3 conv before the upsampling, the second 3x3 conv, the 1x1 conv out), then ``relu``
before the to-RGB conv.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..hooks import capture
from ..base import LayerInfo
from ..registry import ModelSpec, register
from .truncation import TruncatedGeneratorAdapter
from .weights import missing_weights, reachable, read_checkpoint, state_from_checkpoint, wants_hub_weights

__all__ = ["NAME", "Z_DIM", "CLASSES", "BIGGAN_DEEP_256", "BigGANModule", "BigGANAdapter", "build", "layer_table"]

NAME = "biggan-deep-256"
Z_DIM, CLASSES = 128, 1000
CLASS_STREAM = 104729  # third seed entry of the class draw: keeps it apart from z
#: the package's config of biggan-deep-256 (the model hub's config.json; 55.9M parameters)
BIGGAN_DEEP_256 = dict(
    output_dim=256, z_dim=Z_DIM, class_embed_dim=128, channel_width=128, num_classes=CLASSES,
    layers=[(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
            (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    attention_layer_position=8, eps=1e-4, n_stats=51,
)


class BigGANModule(nn.Module):
    """``forward(latents (n, 1128)) -> images (n, 3, 256, 256)`` in [-1, 1]; differentiable in
    the latents (z and class vector) for inversion."""

    def __init__(self, biggan: nn.Module, truncation: float = 0.4):
        super().__init__()
        self.biggan = biggan
        self.truncation = truncation

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 2 or latents.shape[1] != Z_DIM + CLASSES:
            raise ValueError(f"latents of shape {tuple(latents.shape)} are invalid: expected (n, {Z_DIM + CLASSES})")
        return self.biggan(latents[:, :Z_DIM], latents[:, Z_DIM:], self.truncation)


class BigGANAdapter(TruncatedGeneratorAdapter):
    """The extraction contract around the package's ``BigGAN`` (see the module docstring)."""

    name = NAME
    arch = "BigGAN-deep 256 (pytorch-pretrained-biggan)"
    standard_normal_prior = True  # L_reg is the paper's ||z||^2

    def __init__(self, module: BigGANModule):
        self.module = module
        self.weights = "random"
        self.class_index: int | None = None

    def _blocks(self):
        from pytorch_pretrained_biggan.model import GenBlock

        gen = self.module.biggan.generator
        return [(i, block) for i, block in enumerate(gen.layers) if isinstance(block, GenBlock)]

    def layers(self) -> list[LayerInfo]:
        out, size = [], 4
        for i, block in self._blocks():
            after = size * 2 if block.up_sample else size
            c_in, mid = block.conv_0.in_channels, block.conv_0.out_channels
            for j, (units, grid) in enumerate(((c_in, size), (mid, size), (mid, after), (mid, after))):
                out.append(LayerInfo(f"layers.{i}.relu.{j}", units, (grid, grid)))
            size = after
        out.append(LayerInfo("relu", self.module.biggan.generator.conv_to_rgb.in_channels, (size, size)))
        return out

    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``(n, 1128)`` float32: truncated-normal ``z`` times ``truncation``, one-hot class."""
        from scipy.stats import truncnorm

        rows = []
        for i in np.asarray(list(indices), dtype=np.int64):
            z = truncnorm.rvs(-2, 2, size=Z_DIM, random_state=np.random.default_rng([int(seed), int(i)]))
            cls = self.class_index
            if cls is None:
                cls = int(np.random.default_rng([int(seed), int(i), CLASS_STREAM]).integers(CLASSES))
            onehot = np.zeros(CLASSES)
            onehot[cls] = 1.0
            rows.append(np.concatenate([z * self.truncation, onehot]))
        return torch.from_numpy(np.stack(rows).astype(np.float32)).to(self.device)

    def generate(self, latents: torch.Tensor, layers: Sequence[str] | None = ()) -> tuple[torch.Tensor, dict]:
        """latents ``(n, 1128)`` -> (uint8 images ``(n, 3, 256, 256)``, dict layer -> post-ReLU maps)."""
        wanted = None if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        names = self.select_layers(wanted) if wanted is None or wanted else []
        gen = self.module.biggan.generator
        modules = {f"layers.{i}": block.relu for i, block in self._blocks()
                   if any(n.startswith(f"layers.{i}.") for n in names)}
        if "relu" in names:
            modules["relu"] = gen.relu
        with torch.no_grad(), capture(modules) as store:
            images = self.module(latents.to(self.device, torch.float32))
        maps = {}
        for name in names:
            if name == "relu":
                maps[name] = store["relu"][0].float()
            else:
                block, _, j = name.rpartition(".relu.")
                maps[name] = store[block][int(j)].float()
        return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), maps


def layer_table(config: dict = BIGGAN_DEEP_256) -> list[LayerInfo]:
    """The layers :meth:`BigGANAdapter.layers` reports, from the package's config alone.

    Config layer ``k`` ``(up, in_mult, out_mult)`` is the GenBlock ``layers.{i}`` (``i = k``, one
    more from the self-attention's position on) with ``channel_width * in_mult`` input channels and
    a quarter of them in the middle; the grid starts at 4 and doubles at each upsampling block.
    """
    width, out, size = config["channel_width"], [], 4
    for k, (up, in_mult, _out_mult) in enumerate(config["layers"]):
        i = k + 1 if k >= config["attention_layer_position"] else k
        c_in = width * in_mult
        mid, after = c_in // 4, size * 2 if up else size
        for j, (units, grid) in enumerate(((c_in, size), (mid, size), (mid, after), (mid, after))):
            out.append(LayerInfo(f"layers.{i}.relu.{j}", units, (grid, grid)))
        size = after
    out.append(LayerInfo("relu", width, (size, size)))
    return out


def build(truncation: float = 0.4) -> BigGANAdapter:
    """BigGAN-deep-256 built from its config with random weights."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    biggan = BigGAN(BigGANConfig(**BIGGAN_DEEP_256))
    # the package leaves the final batch norm's affine uninitialised (torch.Tensor(n)): set it
    nn.init.ones_(biggan.generator.bn.weight)
    nn.init.zeros_(biggan.generator.bn.bias)
    converge_spectral_norms(biggan)
    return BigGANAdapter(BigGANModule(biggan, truncation))


@torch.no_grad()
def converge_spectral_norms(module: nn.Module, iterations: int = 30) -> None:
    """Run the power iteration of every spectral-normalised weight to convergence.

    In eval mode the package's spectral norm divides by ``u^T W v`` with the stored vectors and
    never iterates; freshly initialised (random) vectors give a tiny estimate of the largest
    singular value and activations that overflow within a few blocks. Trained checkpoints carry
    converged vectors, so this is for random weights only.
    """
    for sub in module.modules():
        if not hasattr(sub, "weight_orig") or not hasattr(sub, "weight_u"):
            continue
        w = sub.weight_orig.reshape(sub.weight_orig.shape[0], -1)
        u = sub.weight_u
        for _ in range(iterations):
            v = nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12)
            u = nn.functional.normalize(w @ v, dim=0, eps=1e-12)
        sub.weight_u.copy_(u)
        sub.weight_v.copy_(v)


def _cached_file() -> Path | None:
    """The package's cached weights file of biggan-deep-256, if it was downloaded before."""
    from pytorch_pretrained_biggan.file_utils import PYTORCH_PRETRAINED_BIGGAN_CACHE
    from pytorch_pretrained_biggan.model import PRETRAINED_MODEL_ARCHIVE_MAP

    url = PRETRAINED_MODEL_ARCHIVE_MAP[NAME]
    for meta in Path(PYTORCH_PRETRAINED_BIGGAN_CACHE).glob("*.json"):
        try:
            if json.loads(meta.read_text()).get("url") == url and meta.with_suffix("").is_file():
                return meta.with_suffix("")
        except (OSError, ValueError):
            continue
    return None


def check_weights(weights: str) -> None:
    if wants_hub_weights(NAME, weights) and _cached_file() is None and not reachable("s3.amazonaws.com"):
        from pytorch_pretrained_biggan.file_utils import PYTORCH_PRETRAINED_BIGGAN_CACHE
        from pytorch_pretrained_biggan.model import PRETRAINED_MODEL_ARCHIVE_MAP

        raise missing_weights(NAME, f"the package cache {PYTORCH_PRETRAINED_BIGGAN_CACHE}",
                              f"python -c \"from pytorch_pretrained_biggan import BigGAN; BigGAN.from_pretrained('{NAME}')\" "
                              f"or download {PRETRAINED_MODEL_ARCHIVE_MAP[NAME]}")


def load_weights(adapter: BigGANAdapter, weights: str) -> str:
    check_weights(weights)
    if weights in ("trained", "pretrained"):
        cached = _cached_file()
        if cached is None:
            from pytorch_pretrained_biggan import BigGAN

            BigGAN.from_pretrained(NAME)  # the package's own download into its cache
            cached = _cached_file()
        path, source = cached, f"pytorch-pretrained-biggan: {NAME}"
    else:
        path, source = Path(weights), str(Path(weights).resolve())
    state = state_from_checkpoint(read_checkpoint(path), ("state_dict", "model"), str(path))
    state = {k.removeprefix("biggan."): v for k, v in state.items()}
    own = adapter.module.biggan.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(("weight_u", "weight_v"))]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"weights {source} do not match {NAME}: {len(missing)} tensors missing "
                         f"(first {missing[:1]}), {len(unexpected)} unexpected (first {unexpected[:1]})")
    adapter.module.biggan.load_state_dict(state, strict=False)
    if any(k not in state for k in own if k.endswith(("weight_u", "weight_v"))):
        converge_spectral_norms(adapter.module.biggan)  # the file lacks power-iteration vectors
    return source


register(ModelSpec(
    name=NAME, kind="generator", arch=BigGANAdapter.arch,
    description="BigGAN-deep 256x256, ImageNet class-conditional; latent = [truncated z (128) | class (1000)]",
    build=build, layers=layer_table, source="pytorch-pretrained-biggan hub or a local file", load_weights=load_weights,
    check_weights=check_weights, extra={"classes": CLASSES, "latent_dim": Z_DIM + CLASSES},
))

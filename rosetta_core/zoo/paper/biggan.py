"""``biggan-deep-256``: BigGAN-deep at 256x256 through the ``pytorch-pretrained-biggan`` package.

Latent: one float32 vector of 128 + 1000 values per image, ``[z | class vector]``: ``z`` from
the truncated normal on [-2, 2] times ``truncation`` (seeded by ``(seed, i)``), the class
vector one-hot of ``class_index`` (``--class-index``) or, when that is None, of a class drawn
per image from ``(seed, i)``. ``truncation`` (default 0.4, in (0, 1]; the paper's code ran at 1)
is an attribute of the adapter and of its module; the package interpolates its batch-norm
statistics with it.

Weights: the package's hub cache (``pretrained``), a state-dict file (``pytorch_model.bin``, a
torch checkpoint or safetensors), or a folder holding ``config.json`` and ``pytorch_model.bin``
(what the package's ``BigGAN.from_pretrained(folder)`` reads): its config builds the network.

Hooked layers, in forward order. Post-ReLU (the default layers, preset ``@default``): each
GenBlock applies one ``nn.ReLU`` module four times; each application is its own layer
``layers.{i}.relu.{j}`` (``i`` the index in the package's ``generator.layers``, which holds the
self-attention at 8; ``j`` 0..3: before the 1x1 conv in, the 3x3 conv before the upsampling,
the second 3x3 conv, the 1x1 conv out), then ``relu`` before the to-RGB conv. Convolution
outputs (before batch norm and ReLU; preset ``@paper``, the modules the paper's code hooked, every
module with ``conv`` in its name): ``layers.{i}.conv_{j}`` of each GenBlock, the self-attention's
``layers.8.snconv1x1_{theta,phi,g,o_conv}`` and ``conv_to_rgb`` (all its channels, before the
first three are kept as RGB).
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

__all__ = [
    "NAME", "Z_DIM", "CLASSES", "BIGGAN_DEEP_256", "BigGANModule", "BigGANAdapter", "build", "layer_table", "PRESETS",
    "TRUNCATION", "PAPER_TRUNCATION", "CONFIG_NAME", "WEIGHTS_NAME",
]

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
#: our default truncation, and the paper's code's (``gan(z, c, 1)``)
TRUNCATION, PAPER_TRUNCATION = 0.4, 1.0
#: layer presets: the default post-ReLU maps, and the paper's hook points (conv outputs before batch norm)
PRESETS = {"default": ("layers.*.relu.*", "relu"), "paper": ("layers.*.conv_*", "layers.*.snconv1x1_*", "conv_to_rgb")}
#: the files of a ``from_pretrained`` folder
CONFIG_NAME, WEIGHTS_NAME = "config.json", "pytorch_model.bin"
#: the self-attention's convolutions in forward order, and their output channels per input channel
ATTENTION_CONVS = (("snconv1x1_theta", 1 / 8), ("snconv1x1_phi", 1 / 8), ("snconv1x1_g", 1 / 2), ("snconv1x1_o_conv", 1))


class BigGANModule(nn.Module):
    """``forward(latents (n, 1128)) -> images (n, 3, 256, 256)`` in [-1, 1]; differentiable in
    the latents (z and class vector) for inversion."""

    def __init__(self, biggan: nn.Module, truncation: float = TRUNCATION):
        super().__init__()
        self.biggan = biggan
        self.truncation = truncation
        self.z_dim, self.classes = int(biggan.config.z_dim), int(biggan.config.num_classes)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        width = self.z_dim + self.classes
        if latents.ndim != 2 or latents.shape[1] != width:
            raise ValueError(f"latents of shape {tuple(latents.shape)} are invalid: expected (n, {width})")
        return self.biggan(latents[:, :self.z_dim], latents[:, self.z_dim:], self.truncation)


class BigGANAdapter(TruncatedGeneratorAdapter):
    """The extraction contract around the package's ``BigGAN`` (see the module docstring)."""

    name = NAME
    arch = "BigGAN-deep 256 (pytorch-pretrained-biggan)"
    standard_normal_prior = True  # L_reg is the paper's ||z||^2
    default_truncation, paper_truncation = TRUNCATION, PAPER_TRUNCATION

    def __init__(self, module: BigGANModule):
        self.module = module
        self.weights = "random"
        self.class_index: int | None = None

    def _hooked_modules(self) -> dict[str, nn.Module]:
        """Hooked module per layer name, in forward order; a GenBlock's four post-ReLU layers share
        one entry ``layers.{i}`` (its ReLU module, applied four times)."""
        from pytorch_pretrained_biggan.model import GenBlock

        gen, out = self.module.biggan.generator, {}
        for i, block in enumerate(gen.layers):
            if isinstance(block, GenBlock):
                out[f"layers.{i}"] = block.relu
                out.update({f"layers.{i}.conv_{j}": getattr(block, f"conv_{j}") for j in range(4)})
            else:
                out.update({f"layers.{i}.{name}": getattr(block, name) for name, _ in ATTENTION_CONVS})
        out["relu"], out["conv_to_rgb"] = gen.relu, gen.conv_to_rgb
        return out

    def layers(self) -> list[LayerInfo]:
        """Forward order (see the module docstring): per GenBlock ``relu.j`` then ``conv_j``, j = 0..3;
        the self-attention's four convs; ``relu``, ``conv_to_rgb``."""
        from pytorch_pretrained_biggan.model import GenBlock

        gen, out, size = self.module.biggan.generator, [], 4
        for i, block in enumerate(gen.layers):
            if not isinstance(block, GenBlock):
                out += [LayerInfo(f"layers.{i}.{name}", getattr(block, name).out_channels, (size, size))
                        for name, _ in ATTENTION_CONVS]
                continue
            after = size * 2 if block.up_sample else size
            convs = [getattr(block, f"conv_{j}") for j in range(4)]
            for j, grid in enumerate((size, size, after, after)):
                out.append(LayerInfo(f"layers.{i}.relu.{j}", convs[j].in_channels, (grid, grid)))
                out.append(LayerInfo(f"layers.{i}.conv_{j}", convs[j].out_channels, (after if j else size,) * 2))
            size = after
        out.append(LayerInfo("relu", gen.conv_to_rgb.in_channels, (size, size)))
        out.append(LayerInfo("conv_to_rgb", gen.conv_to_rgb.out_channels, (size, size)))
        return out

    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``(n, 1128)`` float32: truncated-normal ``z`` times ``truncation``, one-hot class."""
        from scipy.stats import truncnorm

        z_dim, classes = self.module.z_dim, self.module.classes
        rows = []
        for i in np.asarray(list(indices), dtype=np.int64):
            z = truncnorm.rvs(-2, 2, size=z_dim, random_state=np.random.default_rng([int(seed), int(i)]))
            cls = self.class_index
            if cls is None:
                cls = int(np.random.default_rng([int(seed), int(i), CLASS_STREAM]).integers(classes))
            elif not 0 <= cls < classes:
                raise ValueError(f"class_index={cls} is out of range for {self.name}; valid: 0..{classes - 1}")
            onehot = np.zeros(classes)
            onehot[cls] = 1.0
            rows.append(np.concatenate([z * self.truncation, onehot]))
        return torch.from_numpy(np.stack(rows).astype(np.float32)).to(self.device)

    def generate(self, latents: torch.Tensor, layers: Sequence[str] | None = ()) -> tuple[torch.Tensor, dict]:
        """latents ``(n, 1128)`` -> (uint8 images ``(n, 3, 256, 256)``, dict layer -> maps
        ``(n, units, h, w)``); None: the default (post-ReLU) layers."""
        wanted = None if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        names = self.select_layers(wanted) if wanted is None or wanted else []
        hooked = self._hooked_modules()
        keys = {name: name.partition(".relu.")[0] for name in names}  # relu.j: the block's ReLU entry
        with torch.no_grad(), capture({k: hooked[k] for k in set(keys.values())}) as store:
            images = self.module(latents.to(self.device, torch.float32))
        maps = {}
        for name, key in keys.items():
            maps[name] = store[key][int(name.rpartition(".")[2]) if ".relu." in name else 0].float()
        return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), maps


def layer_table(config: dict = BIGGAN_DEEP_256) -> list[LayerInfo]:
    """The layers :meth:`BigGANAdapter.layers` reports, from the package's config alone.

    Config layer ``k`` ``(up, in_mult, out_mult)`` is the GenBlock ``layers.{i}`` (``i = k``, one
    more from the self-attention's position on) with ``channel_width * in_mult`` input channels,
    a quarter of them in the middle and ``channel_width * out_mult`` out; the grid starts at 4 and
    doubles at each upsampling block. The self-attention ``layers.{position}`` sits before config
    layer ``position``, on its input channels ``c``: convs of ``c / 8``, ``c / 8``, ``c / 2``, ``c``.
    """
    width, out, size = config["channel_width"], [], 4
    for k, (up, in_mult, out_mult) in enumerate(config["layers"]):
        i = k + 1 if k >= config["attention_layer_position"] else k
        c_in = width * in_mult
        if k == config["attention_layer_position"]:
            out += [LayerInfo(f"layers.{k}.{name}", int(c_in * share), (size, size)) for name, share in ATTENTION_CONVS]
        mid, after = c_in // 4, size * 2 if up else size
        units = ((c_in, mid), (mid, mid), (mid, mid), (mid, width * out_mult))
        for j, ((relu, conv), grid) in enumerate(zip(units, (size, size, after, after))):
            out.append(LayerInfo(f"layers.{i}.relu.{j}", relu, (grid, grid)))
            out.append(LayerInfo(f"layers.{i}.conv_{j}", conv, (after if j else size,) * 2))
        size = after
    out += [LayerInfo("relu", width, (size, size)), LayerInfo("conv_to_rgb", width, (size, size))]
    return out


def build_module(config: dict = BIGGAN_DEEP_256, truncation: float = TRUNCATION) -> BigGANModule:
    """The package's ``BigGAN`` of ``config`` (its ``BigGANConfig`` fields) with random weights."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    biggan = BigGAN(BigGANConfig.from_dict(config))
    # the package leaves the final batch norm's affine uninitialised (torch.Tensor(n)): set it
    nn.init.ones_(biggan.generator.bn.weight)
    nn.init.zeros_(biggan.generator.bn.bias)
    converge_spectral_norms(biggan)
    return BigGANModule(biggan, truncation)


def build(truncation: float = TRUNCATION) -> BigGANAdapter:
    """BigGAN-deep-256 built from its config with random weights."""
    return BigGANAdapter(build_module(BIGGAN_DEEP_256, truncation))


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


def folder_config(folder: Path) -> dict:
    """The config of a ``from_pretrained`` folder (``config.json`` next to ``pytorch_model.bin``),
    as the package reads it: its fields over the package's defaults."""
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"BigGAN weights folder {str(folder)!r} has no {' and no '.join(missing)}; pass a folder "
                         f"holding {CONFIG_NAME} and {WEIGHTS_NAME} (what BigGAN.from_pretrained(folder) reads), "
                         "a weights file, 'pretrained' or 'random'")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(folder / CONFIG_NAME)!r} is not a readable JSON config: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{str(folder / CONFIG_NAME)!r} holds a {type(config).__name__}; expected a JSON object "
                         f"with BigGANConfig fields ({', '.join(BIGGAN_DEEP_256)})")
    return config


def _use_config(adapter: BigGANAdapter, config: dict, where: Path) -> None:
    """Rebuild ``adapter``'s network from ``config`` unless it already has that config."""
    from pytorch_pretrained_biggan import BigGANConfig

    def canonical(cfg) -> dict:
        return json.loads(json.dumps(cfg.to_dict()))  # tuples and lists alike

    if canonical(BigGANConfig.from_dict(config)) == canonical(adapter.module.biggan.config):
        return
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # tensors the file may lack (power-iteration vectors) start the same every time
            adapter.module = build_module(config, adapter.truncation)
    except Exception as err:  # the package's constructor on a config it cannot build
        raise ValueError(f"{str(where)!r} does not describe a BigGAN-deep the package can build: "
                         f"{type(err).__name__}: {err}") from None
    side = adapter.module.biggan.config.output_dim
    adapter.arch = f"BigGAN-deep {side} (pytorch-pretrained-biggan, config {where})"


def check_weights(weights: str) -> None:
    if weights not in ("trained", "pretrained", "random") and Path(weights).is_dir():
        folder_config(Path(weights))
        return
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
        if path.is_dir():  # a from_pretrained folder: its config builds the network
            _use_config(adapter, folder_config(path), path / CONFIG_NAME)
            path = path / WEIGHTS_NAME
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
    build=build, layers=layer_table, source="pytorch-pretrained-biggan hub, a local file or a from_pretrained folder",
    load_weights=load_weights, check_weights=check_weights, layer_presets=PRESETS,
    extra={"classes": CLASSES, "latent_dim": Z_DIM + CLASSES, "truncation": TRUNCATION, "paper_truncation": PAPER_TRUNCATION},
))

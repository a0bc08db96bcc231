"""StyleGAN-XL and StyleGAN3 from NVIDIA-style network pickles (``{"G_ema": G, ...}``).

Unpickling runs code, so these models load only when the user says so explicitly: the
``--trust-pickle`` flag (``ROSETTA_TRUST_PICKLE=1``) and the path of the network's source tree
(``--source-tree DIR``, ``ROSETTA_PICKLE_SOURCE``: the checkout of the repository that wrote
the pickle, holding its ``dnnlib``/``torch_utils``), which is put on ``sys.path`` while
unpickling. From Python, :func:`load_network` takes both as arguments.

The network ``G`` must follow NVIDIA's interface: ``G.z_dim``, ``G.c_dim``, ``G.synthesis`` and
``G(z, c, truncation_psi=..., noise_mode="const") -> images (n, 3, H, W)`` in [-1, 1]. Hooked
layers: the synthesis layers listed in ``G.synthesis.layer_names`` (StyleGAN3/XL: every layer's
output, after its filtered LeakyReLU), else every direct child of ``G.synthesis`` (StyleGAN2-ADA:
the blocks ``b4``, ``b8``, ...); a layer that returns a tuple (StyleGAN2-ADA's blocks return
``(x, img)``) is recorded by its first element, the feature map ``x``. Units and grids are
measured with one probe image. Latent: ``[z | one-hot class]`` (no class part when
``c_dim == 0``).

Truncation (``truncation_psi``): attribute ``truncation``, in (0, 1], default 0.7; the paper's
code generated its statistics at 0.5 for StyleGAN-XL (and matched at 0.7) and at 1 for StyleGAN3.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base import GeneratorAdapter, LayerInfo
from ..hooks import capture
from ..registry import ModelSpec, register
from .truncation import check_truncation

__all__ = [
    "load_network", "PickledGeneratorAdapter", "TRUST_ENV", "SOURCE_ENV", "no_network", "layer_table",
]

TRUST_ENV, SOURCE_ENV = "ROSETTA_TRUST_PICKLE", "ROSETTA_PICKLE_SOURCE"
CLASS_STREAM = 104729
#: our default truncation_psi
TRUNCATION = 0.7


def load_network(path: str | Path, source_tree: str | Path | None, trust_pickle: bool = False, key: str = "G_ema") -> nn.Module:
    """Unpickle ``key`` of the network pickle at ``path`` with ``source_tree`` importable.

    Refuses unless ``trust_pickle`` is True: a pickle can run any code when it is loaded.
    """
    if not trust_pickle:
        raise ValueError(
            f"{str(path)!r} is a network pickle, and loading a pickle runs code from it; pass --trust-pickle "
            "(trust_pickle=True) if you trust its origin, with --source-tree DIR"
        )
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"network pickle {str(path)!r} does not exist; pass an existing .pkl file")
    if source_tree is None or not Path(source_tree).is_dir():
        raise ValueError(
            f"source tree {source_tree!r} is not a directory; pass --source-tree with the checkout of the "
            "repository that wrote the pickle (e.g. stylegan-xl or stylegan3, holding dnnlib/ and torch_utils/)"
        )
    tree = str(Path(source_tree).resolve())
    sys.path.insert(0, tree)
    try:
        with path.open("rb") as f:
            content = pickle.load(f)  # noqa: S301 - explicitly trusted by the caller
    except ModuleNotFoundError as err:
        raise ValueError(f"unpickling {str(path)!r} needs module {err.name!r}, which is not in source tree {tree}; "
                         "pass the checkout of the repository that wrote this pickle") from None
    finally:
        if tree in sys.path:
            sys.path.remove(tree)
    network = content.get(key) if isinstance(content, dict) else None
    if not isinstance(network, nn.Module):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{str(path)!r} has no network under {key!r} (found {found})")
    return network.eval().requires_grad_(False).float()


class _PickledModule(nn.Module):
    """``forward(latents (n, z_dim + c_dim)) -> images`` with the adapter's truncation."""

    def __init__(self, network: nn.Module, truncation: float):
        super().__init__()
        self.network, self.truncation = network, truncation

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        z_dim, c_dim = int(self.network.z_dim), int(self.network.c_dim)
        if latents.ndim != 2 or latents.shape[1] != z_dim + c_dim:
            raise ValueError(f"latents of shape {tuple(latents.shape)} are invalid: expected (n, {z_dim + c_dim})")
        # c is (n, 0) for an unconditional network, as NVIDIA's own samplers pass it
        return self.network(latents[:, :z_dim], latents[:, z_dim:], truncation_psi=self.truncation, noise_mode="const")


class PickledGeneratorAdapter(GeneratorAdapter):
    """A generator from a trusted network pickle (see the module docstring)."""

    standard_normal_prior = True  # L_reg is the paper's ||z||^2

    def __init__(self, name: str, truncation: float = TRUNCATION, paper_truncation: float = 1.0):
        self.name, self.weights, self.class_index = name, "none", None
        self.default_truncation, self.paper_truncation = truncation, paper_truncation
        self._truncation = check_truncation(name, truncation)
        self.arch = "NVIDIA network pickle (architecture from the pickle's source tree)"
        self._module: _PickledModule | None = None
        self._layers: list[LayerInfo] = []

    @property
    def truncation(self) -> float:
        """``truncation_psi`` of the network's calls, in (0, 1] (1: none)."""
        return self._truncation

    @truncation.setter
    def truncation(self, value: float) -> None:
        self._truncation = check_truncation(self.name, value)

    @property
    def module(self) -> nn.Module:
        if self._module is None:
            raise no_network(self.name)
        return self._module

    def attach(self, network: nn.Module) -> None:
        """Use ``network`` and measure its layers with one probe image."""
        self._module = _PickledModule(network, self.truncation)
        synthesis = network.synthesis
        names = list(getattr(synthesis, "layer_names", [])) or [n for n, _ in synthesis.named_children()]
        self._hooked = {n: getattr(synthesis, n) for n in names}
        probe = self.sample_latents(0, [0])
        with torch.no_grad(), capture(self._hooked) as store:
            self._module(probe)
        self._layers = [LayerInfo(n, int(store[n][0].shape[1]), tuple(int(s) for s in store[n][0].shape[2:]))
                        for n in names if store[n] and store[n][0].ndim == 4]

    def layers(self) -> list[LayerInfo]:
        self.module  # noqa: B018 - the clear error when nothing is loaded
        return list(self._layers)

    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        net = self.module.network
        z_dim, c_dim = int(net.z_dim), int(net.c_dim)
        rows = []
        for i in np.asarray(list(indices), dtype=np.int64):
            z = np.random.default_rng([int(seed), int(i)]).standard_normal(z_dim)
            c = np.zeros(c_dim)
            if c_dim:
                cls = self.class_index
                if cls is None:
                    cls = int(np.random.default_rng([int(seed), int(i), CLASS_STREAM]).integers(c_dim))
                c[cls] = 1.0
            rows.append(np.concatenate([z, c]))
        return torch.from_numpy(np.stack(rows).astype(np.float32)).to(self.device)

    def generate(self, latents: torch.Tensor, layers: Sequence[str] | None = ()) -> tuple[torch.Tensor, dict]:
        wanted = None if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        names = self.select_layers(wanted) if wanted is None or wanted else []
        self._module.truncation = self.truncation
        with torch.no_grad(), capture({n: self._hooked[n] for n in names}) as store:
            images = self.module(latents.to(self.device, torch.float32))
        maps = {n: store[n][0].float() for n in names}
        return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), maps


def no_network(name: str) -> ValueError:
    """The error of a pickled model asked for its network or layers before a pickle is loaded."""
    return ValueError(
        f"{name} has no network: it loads only from a network pickle; pass --weights {name}=PATH.pkl "
        "with --trust-pickle and --source-tree DIR (random init is not available: the architecture lives in the pickle)"
    )


def layer_table(name: str) -> list[LayerInfo]:
    """The registry's layer table of a pickled model: unknown until a pickle is loaded, so always
    :func:`no_network` (the layers are measured from the network, see :meth:`PickledGeneratorAdapter.attach`)."""
    raise no_network(name)


def _trust_from_env() -> tuple[bool, str | None]:
    return os.environ.get(TRUST_ENV) == "1", os.environ.get(SOURCE_ENV)


def check_weights(name: str, weights: str) -> None:
    if weights in ("random", "trained", "pretrained"):
        raise ValueError(
            f"{name} loads only from a network pickle ({weights!r} is not possible: no hub, and random init needs "
            f"the architecture from the pickle's source tree); pass --weights {name}=PATH.pkl --trust-pickle --source-tree DIR"
        )
    trust, tree = _trust_from_env()
    if not trust:
        raise ValueError(f"{name}: loading the network pickle {weights!r} runs code from it; add --trust-pickle "
                         "if you trust it, and --source-tree DIR")
    if not Path(weights).is_file():
        raise ValueError(f"network pickle {weights!r} for {name} does not exist; pass an existing .pkl file")
    if not tree or not Path(tree).is_dir():
        raise ValueError(f"{name}: --source-tree {tree!r} is not a directory; pass the checkout of the repository that wrote the pickle")


def load_weights(adapter: PickledGeneratorAdapter, weights: str) -> str:
    check_weights(adapter.name, weights)
    trust, tree = _trust_from_env()
    adapter.attach(load_network(weights, tree, trust))
    return str(Path(weights).resolve())


for _name, _classes, _paper, _what in (
    ("stylegan-xl.imagenet256", 1000, 0.5, "StyleGAN-XL 256x256, ImageNet class-conditional"),
    ("stylegan3.pickle", None, 1.0, "any StyleGAN3 (or StyleGAN2-ADA) network pickle, e.g. FFHQ 1024"),
):
    register(ModelSpec(
        name=_name, kind="generator", arch="NVIDIA network pickle", description=f"{_what}; trusted pickle only",
        build=lambda _n=_name, _p=_paper: PickledGeneratorAdapter(_n, TRUNCATION, _p),
        source="trusted network pickle + source tree",
        load_weights=load_weights, check_weights=lambda w, _n=_name: check_weights(_n, w),
        layers=lambda _n=_name: layer_table(_n),
        extra=({"classes": _classes} if _classes else {}) | {"truncation": TRUNCATION, "paper_truncation": _paper},
    ))

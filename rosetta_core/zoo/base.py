"""The one extraction contract for every model of the zoo (DESIGN §5.5).

A model is found by name in the registry and built into a :class:`ModelAdapter`, which knows
its layers, its preprocessing and how to capture post-nonlinearity activation maps
``(n, units, h, w)`` of selected layers. Generators also sample latents and make images.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "LayerInfo", "ModelAdapter", "EncoderAdapter", "GeneratorAdapter", "tokens_to_maps", "select_layer_names",
    "layer_presets", "PRESET_PREFIX",
]


@dataclass(frozen=True)
class LayerInfo:
    """One hooked layer: its name, number of units (channels) and map grid ``(h, w)``."""

    name: str
    units: int
    grid: tuple[int, int]


#: a layer pattern that starts with this names a preset of the model (``@paper``), not a glob
PRESET_PREFIX = "@"


def layer_presets(model: str, presets: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """The layer presets of ``model``: name -> glob patterns.

    ``presets``: the model's own presets; None: those of the registered model ``model`` (its spec's
    ``layer_presets``; none when it is not registered). Every model has ``all`` (every layer) and
    ``default`` (what no pattern selects: the model's own ``default`` preset, else all).
    """
    if presets is None:
        from .registry import _REGISTRY  # the registry imports this module: looked up at call time

        spec = _REGISTRY.get(model)
        presets = spec.layer_presets if spec is not None else {}
    table = {"all": ("*",), "default": ("*",)}
    table.update({str(k): tuple(v) for k, v in presets.items()})
    return table


def select_layer_names(
    model: str, names: Sequence[str], patterns: Sequence[str] | str | None = None,
    presets: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The layer ``names`` of ``model`` selected by ``patterns``, in their order.

    Each pattern is a glob (``fnmatch``, e.g. ``convs.*``) or a preset ``@NAME`` of the model
    (:func:`layer_presets`, e.g. ``@paper``: the paper's hook points), which stands for its globs;
    a layer is chosen when any pattern matches it. None: the ``@default`` preset. A glob that matches
    nothing is a ValueError listing the available layers; an unknown preset one listing the presets.
    """
    table = layer_presets(model, presets)
    if patterns is None:
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in table["default"])]
    if isinstance(patterns, str):
        patterns = [patterns]
    globs, unknown = [], []
    for pattern in patterns:
        if pattern.startswith(PRESET_PREFIX):
            key = pattern[len(PRESET_PREFIX):]
            if key not in table:
                valid = ", ".join(PRESET_PREFIX + k for k in sorted(table))
                raise ValueError(f"unknown layer preset {pattern!r} for {model}; valid presets: {valid}")
            globs += table[key]
        else:
            globs.append(pattern)
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                unknown.append(pattern)
    if unknown:
        raise ValueError(f"layer pattern(s) {unknown} match no layer of {model}; available layers: {', '.join(names)}")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in globs)]


class ModelAdapter(ABC):
    """Common part of encoders and generators: layers and activation capture.

    Attributes set by subclasses: ``name`` (registry name), ``kind`` ("generator" or
    "encoder"), ``arch`` (architecture description), ``weights`` (where the weights came
    from: "random", a file path, ...), ``module`` (the ``torch.nn.Module``).
    """

    name: str
    kind: str
    arch: str
    weights: str
    module: nn.Module

    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """Every hookable layer in forward order, with units and grid at the native input."""

    @property
    def total_units(self) -> int:
        return sum(info.units for info in self.layers())

    def select_layers(self, patterns: Sequence[str] | str | None = None) -> list[str]:
        """Layer names matching any glob pattern or ``@preset`` (the ``@default`` preset when None),
        in forward order (:func:`select_layer_names`)."""
        return select_layer_names(self.name, [info.name for info in self.layers()], patterns)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> "ModelAdapter":
        self.module.to(device)
        return self


class EncoderAdapter(ModelAdapter):
    """A discriminative model: images in, activation maps out.

    To mine image datasets (``rosetta mine --images``) an encoder also brings a file's image to
    its input: :meth:`image_transform`, by default resize-and-centre-crop to ``input_size``
    (or the adapter's ``image_size``); encoders from timm and open_clip use their library's
    eval transform (:mod:`rosetta_core.zoo.transforms`).
    """

    kind = "encoder"
    #: side of the square input a dataset image is resized and centre-cropped to; None: the
    #: adapter's ``image_size`` attribute, if it has one
    input_size: int | None = None

    def image_transform(self):
        """``(h, w, 3)`` uint8 array of any size -> uint8 ``(3, S, S)`` tensor this encoder takes
        (:mod:`rosetta_core.zoo.transforms`); :meth:`activations` then normalises it."""
        from .transforms import resize_crop

        side = self.input_size if self.input_size is not None else getattr(self, "image_size", None)
        if isinstance(side, (tuple, list)):
            side = side[0]
        if not side:
            raise ValueError(f"encoder {self.name} cannot mine image files: its adapter sets neither input_size nor "
                             "image_size and defines no image_transform() (see the adapter contract in the README)")
        return resize_crop(int(side))

    @abstractmethod
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, H, W)`` images -> the float input the model expects."""

    @abstractmethod
    def activations(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """uint8 images ``(n, 3, H, W)`` -> dict layer -> float32 ``(n, units, h, w)``."""


class GeneratorAdapter(ModelAdapter):
    """A generative model: latents in, images and its own activation maps out."""

    kind = "generator"
    #: True when ``L_reg`` should measure latents against N(0, I), i.e. the paper's plain
    #: ``||z||^2`` (StyleGAN, BigGAN). False: against the per-dimension mean and spread of
    #: ``sample_latents`` (a prior that is not centred at zero, such as mini-gen's scene codes).
    standard_normal_prior: bool = False

    @abstractmethod
    def sample_latents(self, seed: int, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Latents of images ``indices`` (each from ``seed`` and its own index only)."""

    @abstractmethod
    def generate(
        self, latents: torch.Tensor, layers: Sequence[str] | None = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """latents -> (uint8 images ``(n, 3, H, W)``, dict layer -> ``(n, units, h, w)``)."""


def tokens_to_maps(tokens: torch.Tensor, grid: tuple[int, int], prefix: int = 1) -> torch.Tensor:
    """ViT tokens ``(n, prefix + h * w, units)`` -> maps ``(n, units, h, w)``, class token dropped."""
    n, count, units = tokens.shape
    h, w = grid
    if count != prefix + h * w:
        raise ValueError(f"expected {prefix} + {h}x{w} tokens, got {count}")
    return tokens[:, prefix:].transpose(1, 2).reshape(n, units, h, w)

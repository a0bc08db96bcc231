"""The truncation setting of the paper's generators whose module samples with one (BigGAN's
truncated ``z``, StyleGAN2's pull of ``w`` toward its mean, NVIDIA pickles' ``truncation_psi``).

A run sets it per generator with ``adapter.truncation = value`` (or :func:`set_truncation`, which
also takes ``"default"`` and ``"paper"``), before sampling latents. Valid values: (0, 1]; 1 is no
truncation. Without building the model, ``get_spec(name).extra`` holds ``"truncation"`` (our
default) and ``"paper_truncation"`` (the setting of the paper's published code) for every generator
that has the setting.
"""

from __future__ import annotations

import math

from ..base import GeneratorAdapter, ModelAdapter

__all__ = ["TruncatedGeneratorAdapter", "check_truncation", "set_truncation"]


def check_truncation(name: str, value: object) -> float:
    """``value`` as a float when it is a valid truncation of generator ``name``: a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 < value <= 1:
        raise ValueError(f"truncation={value!r} is invalid for {name}: use a number in (0, 1] (1: no truncation)")
    return float(value)


class TruncatedGeneratorAdapter(GeneratorAdapter):
    """A generator adapter whose ``truncation`` is its module's ``truncation``, a value in (0, 1];
    setting another value is a ValueError naming the model. ``default_truncation``: the value it is
    built with; ``paper_truncation``: the paper's published code's setting."""

    default_truncation: float = 1.0
    paper_truncation: float = 1.0

    @property
    def truncation(self) -> float:
        return self.module.truncation

    @truncation.setter
    def truncation(self, value: float) -> None:
        self.module.truncation = check_truncation(self.name, value)


def set_truncation(adapter: ModelAdapter, value: float | str) -> float:
    """Set ``adapter``'s truncation to ``value``: a number in (0, 1], ``"default"`` (the adapter's
    default) or ``"paper"`` (the paper's setting); returns the value set. A model without the
    setting (an encoder, mini-gen) or a bad value is one ValueError naming what is valid."""
    if not hasattr(type(adapter), "truncation"):
        raise ValueError(f"{adapter.name} has no truncation setting; leave truncation unset for it (generators "
                         "with one list it in their registry entry: get_spec(name).extra['truncation'])")
    if isinstance(value, str):
        presets = {"default": adapter.default_truncation, "paper": adapter.paper_truncation}
        if value not in presets:
            raise ValueError(f"truncation={value!r} is invalid for {adapter.name}: use a number in (0, 1], "
                             "'default' or 'paper'")
        value = presets[value]
    adapter.truncation = value
    return adapter.truncation

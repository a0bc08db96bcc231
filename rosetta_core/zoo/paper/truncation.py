"""The truncation setting of the paper's generators whose module samples with one (BigGAN's
truncated ``z``, StyleGAN2's pull of ``w`` toward its mean)."""

from __future__ import annotations

from ..base import GeneratorAdapter

__all__ = ["TruncatedGeneratorAdapter"]


class TruncatedGeneratorAdapter(GeneratorAdapter):
    """A generator adapter whose ``truncation`` is its module's ``truncation``, a value in (0, 1];
    setting another value is a ValueError naming the model."""

    @property
    def truncation(self) -> float:
        return self.module.truncation

    @truncation.setter
    def truncation(self, value: float) -> None:
        if not 0 < value <= 1:
            raise ValueError(f"truncation={value} is invalid for {self.name}: use a value in (0, 1]")
        self.module.truncation = float(value)

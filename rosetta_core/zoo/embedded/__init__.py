"""The embedded zoo: small models trained from scratch on the procedural shapes world.

Importing this package registers every embedded model. Weights live in
``rosetta_core/zoo/weights/<name>.safetensors`` next to a model card ``<name>.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..base import LayerInfo, ModelAdapter
from ..registry import ModelSpec, register, register_modules

__all__ = ["WEIGHTS_DIR", "register_embedded"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def register_embedded(name: str, arch: str, build: Callable[[], ModelAdapter], layers: Callable[[], list[LayerInfo]],
                      *, description: str, trained_by: str, kind: str = "encoder", extra: dict | None = None) -> ModelSpec:
    """Register embedded model ``name``: its trained weights ship as ``WEIGHTS_DIR/<name>.safetensors``;
    ``trained_by`` says how they were made (the spec's ``source`` is ``"embedded: " + trained_by``)."""
    return register(ModelSpec(
        name=name, kind=kind, arch=arch, description=description, build=build, layers=layers,
        weights_file=WEIGHTS_DIR / f"{name}.safetensors", source=f"embedded: {trained_by}", extra=extra or {},
    ))


register_modules(__name__, ("mini_gen", "mini_resnet", "mini_vit", "mini_clip"))

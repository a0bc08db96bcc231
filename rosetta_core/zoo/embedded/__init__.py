"""The embedded zoo: small models trained from scratch on the procedural shapes world.

Importing this package registers every embedded model. Weights live in
``rosetta_core/zoo/weights/<name>.safetensors`` next to a model card ``<name>.md``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: modules that register models; each may be absent while it is being written
_MODULES = ("mini_gen", "mini_resnet", "mini_vit", "mini_clip")

for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{_name}":
            raise

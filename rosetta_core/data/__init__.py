"""Procedural datasets with pixel-level ground truth (the embedded default world)."""

from .shapes import *  # noqa: F403  (the world's public names: see shapes.__all__)
from .shapes import __all__  # noqa: F401

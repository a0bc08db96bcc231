"""Procedural datasets with pixel-level ground truth (the embedded default world)."""

from .shapes import (
    COLOURS,
    KINDS,
    PALETTE,
    STYLES,
    TEXTURES,
    Scenes,
    WorldConfig,
    code_dim,
    code_layout,
    render,
    render_batch,
    truth_masks,
)

__all__ = [
    "COLOURS",
    "KINDS",
    "PALETTE",
    "STYLES",
    "TEXTURES",
    "Scenes",
    "WorldConfig",
    "code_dim",
    "code_layout",
    "render",
    "render_batch",
    "truth_masks",
]

"""Model zoo: the registry, the extraction contract and the embedded models."""

from .base import EncoderAdapter, GeneratorAdapter, LayerInfo, ModelAdapter, tokens_to_maps
from .registry import ModelSpec, get_spec, list_models, load, load_state, register, weights_for, weights_hash

__all__ = [
    "EncoderAdapter",
    "GeneratorAdapter",
    "LayerInfo",
    "ModelAdapter",
    "ModelSpec",
    "get_spec",
    "list_models",
    "load",
    "load_state",
    "register",
    "tokens_to_maps",
    "weights_for",
    "weights_hash",
]

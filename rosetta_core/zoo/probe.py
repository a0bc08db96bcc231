"""What a registry model's hooked layers look like, without running it on data: the shapes
``rosetta plan`` (and anything else sizing a run) needs from the zoo."""

from __future__ import annotations

from ..engine.planner import LayerShape
from .base import LayerInfo, select_layer_names
from .registry import get_spec, load, weights_for

__all__ = ["layer_table", "model_layers"]


def layer_table(name: str, weights: str = "random") -> list[LayerInfo]:
    """Every hookable layer of registry model ``name``, from its spec's table when it declares
    one (nothing is built); otherwise built with random weights, or from its weights file when
    the architecture comes with its weights (network pickles)."""
    spec, choice = get_spec(name), weights_for(name, weights)
    needs_file = spec.check_weights is not None and choice not in ("trained", "pretrained", "random")
    if spec.layers is not None and not needs_file:
        return spec.layers()
    return load(name, choice if needs_file else "random").layers()


def model_layers(name: str, patterns: list[str] | None = None, weights: str = "random") -> tuple[list[LayerShape], int]:
    """Hooked layers ``(name, units, h, w)`` of registry model ``name`` (random weights unless
    its architecture comes with its weights, as for network pickles) and its finest grid side
    (a generator's image side). ``patterns``: layer patterns as the model's ``select_layers``
    takes them (None: its default layers)."""
    infos = {info.name: info for info in layer_table(name, weights)}
    chosen = select_layer_names(name, list(infos), patterns)
    finest = max(max(info.grid) for info in infos.values())
    return [(l, infos[l].units, *infos[l].grid) for l in chosen], finest

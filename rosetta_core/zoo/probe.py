"""What a registry model's hooked layers look like, without running it on data: the shapes
``rosetta plan`` (and anything else sizing a run) needs from the zoo."""

from __future__ import annotations

from ..engine.planner import LayerShape
from .registry import get_spec, load, weights_for

__all__ = ["model_layers"]


def model_layers(name: str, patterns: list[str] | None = None, weights: str = "random") -> tuple[list[LayerShape], int]:
    """Hooked layers ``(name, units, h, w)`` of registry model ``name`` (random weights unless
    its architecture comes with its weights, as for network pickles) and its finest grid side
    (a generator's image side). ``patterns``: layer patterns as the model's ``select_layers``
    takes them (None: its default layers)."""
    choice = weights_for(name, weights)
    needs_file = get_spec(name).check_weights is not None and choice not in ("trained", "pretrained", "random")
    adapter = load(name, choice if needs_file else "random")
    infos = {info.name: info for info in adapter.layers()}
    chosen = adapter.select_layers(patterns)
    finest = max(max(info.grid) for info in infos.values())
    return [(l, infos[l].units, *infos[l].grid) for l in chosen], finest

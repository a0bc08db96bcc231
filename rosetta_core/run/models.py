"""The models of a run: checking that they exist and have weights, and loading them once per
process (a worker that runs many chunk tasks of one model loads it once)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from ..zoo import get_spec, load, weights_for
from ..zoo.paper.truncation import check_truncation, set_truncation
from ..zoo.probe import model_layers
from .config import MineConfig

__all__ = ["check_models", "model", "using_model"]


def check_models(config: MineConfig) -> None:
    """Every model check that loads no weights: names and kinds, weights available, class index,
    layer patterns (from the models' layer tables; nothing is built where a spec declares one).

    Unknown names fail listing the known ones; models with outside weights (the paper's zoo)
    check their own files, offline too."""
    gen = get_spec(config.generator) if config.generator is not None else None
    if gen is not None and gen.kind != "generator":
        raise ValueError(f"generator={config.generator!r} is an encoder, not a generator")
    for name in config.encoders:
        if get_spec(name).kind != "encoder":
            raise ValueError(f"encoders: {name!r} is a generator; give encoder model names")
    for name in config.models:
        if get_spec(name).check_weights is not None:
            get_spec(name).check_weights(weights_for(name, config.weights))
    own = [n for n in config.models
           if get_spec(n).check_weights is None and weights_for(n, config.weights) in ("trained", "pretrained")]
    missing = [n for n in own if not get_spec(n).has_weights]
    if missing:
        raise ValueError(
            f"no trained weights for {', '.join(missing)}; train them (see the model zoo section of the "
            "README), choose other encoders, or run the null control with weights 'random'"
        )
    if gen is not None:
        _check_generator_settings(config, gen)
    for name, patterns in config.layers.items():
        if name not in config.models:
            raise ValueError(f"--layers names {name!r}, which is not in this run; models: {', '.join(config.models)}")
        model_layers(name, list(patterns), config.weights)  # a pattern that matches no layer fails here


def _check_generator_settings(config: MineConfig, gen) -> None:
    """Class index and truncation against what the generator has."""
    classes = gen.extra.get("classes")
    classes = len(classes) if isinstance(classes, (list, tuple)) else int(classes or 0)
    if config.class_index is not None and not classes:
        raise ValueError(
            f"class_index={config.class_index} was given but {config.generator} is unconditional; "
            "leave the class index out for this generator"
        )
    if config.class_index is not None and not 0 <= config.class_index < classes:
        raise ValueError(f"class_index={config.class_index} is out of range for {config.generator}; valid: 0..{classes - 1}")
    if config.truncation is not None and gen.extra.get("truncation") is None:
        raise ValueError(f"truncation={config.truncation!r} was given but {config.generator} has no truncation setting; "
                         "leave it out for this generator")
    if config.truncation is not None and config.truncation != "paper":
        check_truncation(config.generator, config.truncation)


@lru_cache(maxsize=16)
def _cached(name: str, weights: str, device: str):
    return load(name, weights, device=device), threading.Lock()


def _for_run(adapter, config: MineConfig, name: str):
    """The cached adapter set up for this run (a process may serve several runs)."""
    if name == config.generator and hasattr(adapter, "class_index"):
        adapter.class_index = config.class_index  # class-conditional generators sample this class
    if name == config.generator and hasattr(type(adapter), "truncation"):
        set_truncation(adapter, "default" if config.truncation is None else config.truncation)
    return adapter


def model(config: MineConfig, name: str, device: str = "cpu"):
    """The loaded adapter of ``name`` for this run (cached per process)."""
    return _for_run(_cached(name, config.weights, device)[0], config, name)


@contextmanager
def using_model(config: MineConfig, name: str, device: str = "cpu") -> Iterator:
    """The cached adapter, held exclusively: its hooks must not see another thread's calls."""
    adapter, lock = _cached(name, config.weights, device)
    with lock:
        yield _for_run(adapter, config, name)

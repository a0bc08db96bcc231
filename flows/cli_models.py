"""Command-line options that choose models' weights and layers, shared by `mine` and `plan`."""

from __future__ import annotations

import argparse
import os

from rosetta_core.zoo.paper.pickled import SOURCE_ENV, TRUST_ENV

WEIGHTS_HELP = (
    "'trained' (default; for the paper's models the same as 'pretrained': the library's hub), 'random' "
    "(seeded init: the null control), or a weights file; per model with NAME=CHOICE, comma-separated, e.g. "
    "'pretrained,stylegan2.lsun-cat=ckpt/cat.pt'"
)


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="trained", help=WEIGHTS_HELP)
    p.add_argument("--layers", action="append", default=[], metavar="MODEL=PATTERN[,PATTERN]",
                   help="hook only the layers of MODEL matching these glob patterns (repeat per model; "
                   "default: every layer; `rosetta zoo list` names them)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading NVIDIA network pickles (stylegan-xl, stylegan3): unpickling runs code from the file")
    p.add_argument("--source-tree", default=None, help="checkout of the repository that wrote the network pickle")


def layer_patterns(values: list[str]) -> dict[str, list[str]]:
    """``["model=a*,b"]`` -> ``{"model": ["a*", "b"]}``; a bad entry is a ValueError."""
    out: dict[str, list[str]] = {}
    for value in values:
        model, sep, patterns = value.partition("=")
        chosen = [p for p in patterns.split(",") if p]
        if not sep or not model or not chosen:
            raise ValueError(f"--layers {value!r} is invalid; use MODEL=PATTERN[,PATTERN], e.g. resnet50.tv_in1k=layer3,layer4")
        out.setdefault(model, []).extend(chosen)
    return out


def trust_pickle_env(args: argparse.Namespace) -> None:
    """Pass --trust-pickle/--source-tree to the model loader of this process (and its tasks)."""
    if args.trust_pickle:
        os.environ[TRUST_ENV] = "1"
    if args.source_tree:
        os.environ[SOURCE_ENV] = os.path.abspath(args.source_tree)


def check_layer_patterns(patterns: dict[str, list[str]], models: list[str], weights: str) -> None:
    """Every --layers entry names a model of the run and matches some of its layers (builds
    those models with random weights to list their layers; nothing is downloaded)."""
    from rosetta_core.engine.planner import model_layers

    for model, chosen in patterns.items():
        if model not in models:
            raise ValueError(f"--layers names {model!r}, which is not in this run; models: {', '.join(models)}")
        model_layers(model, chosen, weights)

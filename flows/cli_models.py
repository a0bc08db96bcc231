"""Command-line options that choose a run's models, size, weights and layers, shared by `mine` and `plan`."""

from __future__ import annotations

import argparse
import os

from rosetta_core.zoo.paper.pickled import SOURCE_ENV, TRUST_ENV

WEIGHTS_HELP = (
    "'trained' (default; for the paper's models the same as 'pretrained': the library's hub), 'random' "
    "(seeded init: the null control), or a weights file; per model with NAME=CHOICE, comma-separated, e.g. "
    "'pretrained,stylegan2.lsun-cat=ckpt/cat.pt'"
)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The options of a run's models and size (the MineConfig fields `mine` and `plan` share)."""
    from rosetta_core.run.config import ACTIVATIONS, DEFAULT_ENCODERS, DTYPES

    p.add_argument("--generator", default="mini-gen")
    p.add_argument("--encoders", default=",".join(DEFAULT_ENCODERS), help="comma-separated encoder names "
                   f"(default {','.join(DEFAULT_ENCODERS)}: the embedded encoders with trained weights)")
    p.add_argument("--n", type=int, default=1600, help="images (default 1600)")
    p.add_argument("--chunk-size", type=int, default=100, help="images per chunk and task (default 100)")
    p.add_argument("--dtype", choices=DTYPES, default="float16", help="activations in the store (default float16)")
    p.add_argument("--activations", choices=ACTIVATIONS, default="keep",
                   help="keep: store every activation map (default); none: fold each chunk's co-moments right after "
                   "its extraction and store no maps (same tables, a small store; the report runs the models again on "
                   "its example images)")
    add_model_options(p)


def config_from_args(args: argparse.Namespace):
    """The MineConfig the options describe (its fields are checked by the flow, not here)."""
    from rosetta_core.run.config import MineConfig

    fields = {"generator": args.generator, "encoders": tuple(e for e in args.encoders.split(",") if e), "n": args.n,
              "chunk_size": args.chunk_size, "dtype": args.dtype, "activations": args.activations, "weights": args.weights,
              "layers": layer_patterns(args.layers)}
    for name in ("k", "seed", "class_index", "center", "truncation", "images", "anchor", "random_init"):
        if hasattr(args, name):
            fields[name] = getattr(args, name)
    return MineConfig(**fields)


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

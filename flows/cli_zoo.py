"""`rosetta zoo ...`: list the registered models, retrain and judge the embedded ones."""

from __future__ import annotations

import argparse
import json

from rosetta_core.zoo import get_spec, list_models, load


#: the hash column of a model listed with random init: the init is made (and hashed) only when
#: the model is built with ``--weights random``, which listing does not do
NOT_BUILT = "computed when built"


def _weights(spec, trained: bool) -> str:
    if trained:
        return spec.source
    if spec.load_weights is None:
        return "random init (no weights file yet)"
    return f"listed with random init; real weights: {spec.source}"


def _row(spec, weights: str, weights_hash: str | None, layers) -> dict:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "arch": spec.arch,
        "weights": weights,
        "weights_hash": weights_hash,
        "layers": [{"name": l.name, "units": l.units, "grid": list(l.grid)} for l in layers],
        "total_units": sum(l.units for l in layers),
        "description": spec.description,
    }


def _describe_built(spec) -> dict:
    """A model registered without a layer table (a plugin, a test): build it and ask it."""
    trained = spec.has_weights
    try:
        model = load(spec.name, "trained" if trained else "random")
    except ValueError as err:
        return _row(spec, f"not loaded: {err}", None, [])
    return _row(spec, _weights(spec, trained), model.weights_hash, model.layers())


def _describe(spec) -> dict:
    """One model from its spec alone: the declared layer table and the shipped file's hash, no model built."""
    if spec.layers is None:
        return _describe_built(spec)
    try:
        layers = spec.layers()
    except ValueError as err:  # models whose architecture comes with their weights (network pickles)
        return _row(spec, f"not loaded: {err}", None, [])
    trained = spec.has_weights
    return _row(spec, _weights(spec, trained), spec.shipped_hash() if trained else NOT_BUILT, layers)


def zoo_list(args: argparse.Namespace) -> int:
    rows = [_describe(spec) for spec in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models registered")
        return 0
    for row in rows:
        print(f"{row['name']}  [{row['kind']}]  {row['arch']}")
        print(f"    weights: {row['weights']}  (hash {row['weights_hash']})")
        layers = ", ".join(f"{l['name']} {l['units']}@{l['grid'][0]}x{l['grid'][1]}" for l in row["layers"])
        print(f"    layers: {layers}")
        print(f"    total units: {row['total_units']}")
    return 0


def _embedded_names(names: list[str]) -> list[str]:
    from rosetta_core.zoo.embedded.catalogue import SETUPS

    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        raise ValueError(f"unknown embedded model(s) {', '.join(unknown)}; trainable: {', '.join(SETUPS)}")
    return names or list(SETUPS)


def zoo_train(args: argparse.Namespace) -> int:
    from .train_zoo import train_zoo

    names = _embedded_names(args.models)
    for value, flag in ((args.steps, "--steps"), (args.batch, "--batch")):
        if value is not None and value < (2 if flag == "--batch" else 1):
            raise ValueError(f"{flag}={value} is invalid: expected >= {2 if flag == '--batch' else 1}")
    rows = train_zoo(models=names, out=args.out, steps=args.steps, batch=args.batch, device=args.device,
                     workers=args.workers, small_gate=args.quick_gate)
    return 0 if all(r["passed"] for r in rows) else 1


def zoo_evaluate(args: argparse.Namespace) -> int:
    from rosetta_core.zoo.embedded.catalogue import evaluate

    names = _embedded_names(args.models)
    if args.weights and len(names) != 1:
        raise ValueError(f"--weights {args.weights} needs exactly one model name, got {len(names)}")
    failed = 0
    for name in names:
        spec = get_spec(name)
        if not args.weights and not spec.has_weights:
            print(f"{name}: no trained weights shipped ({spec.weights_file}); train them with `rosetta zoo train {name}`")
            failed += 1
            continue
        report = evaluate(name, load(name, args.weights or "trained"), small=args.quick)
        print(report.summary(), flush=True)
        failed += not report.passed
    return 0 if failed == 0 else 1


def add_zoo_commands(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="the model zoo: list, train and evaluate models")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    listing = zoo_sub.add_parser("list", help="every registered model: kind, architecture, weights, layers, units")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=zoo_list)

    train = zoo_sub.add_parser(
        "train", help="retrain embedded models from their seeds (resumable), then run their gates",
        description="Trains each model with the recipe and seeds of its shipped weights into --out "
        "(checkpoint OUT/MODEL/ckpt.pt; rerun to resume), runs its quality gate and, when it passes, "
        "writes OUT/MODEL.safetensors (use it with --weights MODEL=PATH). Exit 1 if a gate fails.",
    )
    train.add_argument("models", nargs="*", help="embedded model names (default: all five)")
    train.add_argument("--out", default="zoo-train", help="folder for checkpoints and weights (default zoo-train)")
    train.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the shipped run's)")
    train.add_argument("--batch", type=int, default=None, help="batch size (default: the shipped run's)")
    train.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    train.add_argument("--workers", type=int, default=0, help="processes rendering batches ahead (0: none)")
    train.add_argument("--quick-gate", action="store_true", help="judge on fewer held-out scenes")
    train.set_defaults(run=zoo_train)
    judge = zoo_sub.add_parser("evaluate", help="run the quality gates of embedded models on held-out scenes")
    judge.add_argument("models", nargs="*", help="embedded model names (default: all five)")
    judge.add_argument("--weights", default=None, help="a weights file to judge instead of the shipped one")
    judge.add_argument("--quick", action="store_true", help="fewer held-out scenes (faster, noisier)")
    judge.set_defaults(run=zoo_evaluate)

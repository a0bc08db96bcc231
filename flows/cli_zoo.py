"""`rosetta zoo ...`: list the registered models."""

from __future__ import annotations

import argparse
import json

from rosetta_core.zoo import list_models, load


def _describe(spec) -> dict:
    weights = "trained" if spec.weights_file is not None and spec.weights_file.is_file() else "random"
    try:
        model = load(spec.name, weights)
    except ValueError as err:  # models whose architecture comes with their weights (network pickles)
        return {"name": spec.name, "kind": spec.kind, "arch": spec.arch, "weights": f"not loaded: {err}",
                "weights_hash": None, "layers": [], "total_units": 0, "description": spec.description}
    layers = model.layers()
    return {
        "name": spec.name,
        "kind": spec.kind,
        "arch": spec.arch,
        "weights": spec.source if weights == "trained" else (
            "random init (no weights file yet)" if spec.load_weights is None
            else f"listed with random init; real weights: {spec.source}"
        ),
        "weights_hash": model.weights_hash,
        "layers": [{"name": l.name, "units": l.units, "grid": list(l.grid)} for l in layers],
        "total_units": sum(l.units for l in layers),
        "description": spec.description,
    }


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


def add_zoo_commands(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="the model zoo: list models")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    listing = zoo_sub.add_parser("list", help="every registered model: kind, architecture, weights, layers, units")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=zoo_list)

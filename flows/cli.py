"""The `rosetta` command line."""

from __future__ import annotations

import argparse
import os
import sys

from rosetta_core import CENTERS, __version__

from .cli_data import add_data_commands
from .cli_invert import add_invert_commands
from .cli_mine import add_mine_command
from .cli_plan import add_plan_command
from .cli_zoo import add_zoo_commands


def _demo(args: argparse.Namespace) -> int:
    from rosetta_core.demo import run_demo

    result = run_demo(n=args.n, seed=args.seed, planted=args.planted, center=args.center, k=args.k)
    rows, cols = result.table_shape
    print(f"correlated {rows} x {cols} unit pairs over {args.n} images in {result.seconds:.2f} s")
    print(f"best buddies with r > 0.5 (K={args.k}): {len(result.buddies)}")
    print(f"planted pairs recovered: {result.recovered} of {len(result.planted)}")
    for a, b in result.planted.tolist():
        mark = "found" if [a, b] in result.buddies.tolist() else "MISSED"
        print(f"  A unit {a:4d} <-> B unit {b:4d}  {mark}")
    return 0 if result.recovered == len(result.planted) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rosetta", description="Mine Rosetta Neurons across vision models.")
    parser.add_argument("--version", action="version", version=f"rosetta-neurons {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="correlate two synthetic models with planted shared units and recover them",
        description="Runs the exact correlation engine and best-buddy filter on synthetic "
        "activations with known planted pairs; exits 1 if any planted pair is missed.",
    )
    demo.add_argument("--n", type=int, default=200, help="images (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--planted", type=int, default=8, help="planted pairs (default 8)")
    demo.add_argument("--center", choices=CENTERS, default="global")
    demo.add_argument("--k", type=int, default=5, help="best-buddy K (default 5)")
    demo.set_defaults(run=_demo)
    add_mine_command(sub)
    add_plan_command(sub)
    add_zoo_commands(sub)
    add_invert_commands(sub)
    add_data_commands(sub)
    for command in _commands(parser):
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                             help="import this module first: it registers more models (repeatable; installed "
                             "plugins of the entry-point group rosetta_neurons.models load by themselves)")
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every command (``mine``, ``zoo list``, ...): the leaves of the sub-command tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for action in subs for child in dict.fromkeys(action.choices.values()) for leaf in _commands(child)]


#: Prefect settings for a temporary local API on a busy or offline machine (see the README);
#: a user's own environment wins
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the exact command, for result files' provenance
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        if args.plugin:
            from rosetta_core.zoo.plugins import load_plugins

            load_plugins(args.plugin, option="--plugin")
        return args.run(args)
    except (ValueError, RuntimeError) as err:  # RunLocked is a RuntimeError
        print(f"rosetta {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

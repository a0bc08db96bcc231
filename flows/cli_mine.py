"""`rosetta mine`: run the mining flow from the command line."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from rosetta_core.run import location
from rosetta_core.run.mining import DEFAULT_ENCODERS, MineConfig, check_config, check_existing_run

from .cli_models import add_model_options, check_layer_patterns, layer_patterns, trust_pickle_env


def _writable(out: str) -> None:
    if location.is_url(out):
        location.check_writable(out)  # writes and deletes a probe object
        return
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {out!r} is not a writable directory ({err.strerror}); choose another path") from None


def _default_encoders(args: argparse.Namespace) -> None:
    """With the default encoder list and trained weights, leave out embedded encoders whose
    weights have not shipped yet (saying so) instead of refusing the whole run."""
    if args.encoders != ",".join(DEFAULT_ENCODERS) or args.weights != "trained":
        return
    from rosetta_core.zoo import get_spec

    missing = [n for n in DEFAULT_ENCODERS if not get_spec(n).has_weights]
    if missing and len(missing) < len(DEFAULT_ENCODERS):
        print(f"note: {', '.join(missing)} ships no trained weights yet (see `rosetta zoo train`); "
              "mining the other default encoders. Pass --encoders to choose.")
        args.encoders = ",".join(n for n in DEFAULT_ENCODERS if n not in missing)


def run_mine(args: argparse.Namespace) -> int:
    _default_encoders(args)
    fields = dict(
        generator=args.generator, encoders=[e for e in args.encoders.split(",") if e], n=args.n, k=args.k,
        seed=args.seed, class_index=args.class_index, weights=args.weights, chunk_size=args.chunk_size,
        dtype=args.dtype, center=args.center, layers=layer_patterns(args.layers),
    )
    trust_pickle_env(args)
    config = MineConfig(**(fields | {"encoders": tuple(fields["encoders"]),
                                     "layers": {m: tuple(p) for m, p in fields["layers"].items()}}))
    check_config(config)  # before any model loads
    check_layer_patterns(fields["layers"], [config.generator, *config.encoders], config.weights)
    out = args.out or f"runs/{args.generator}"
    _writable(out)
    check_existing_run(out, config, args.overwrite)
    from flows.mine import MineParams, mine  # imports Prefect: only once the input is known good

    params = MineParams(**fields, out=out, dask_address=args.dask_address, device=args.device, overwrite=args.overwrite)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    mine(params)
    return 0


def add_mine_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine",
        help="mine Rosetta Neurons (default: the embedded zoo)",
        description="Generate images, extract activations of every model into a Zarr store, correlate every "
        "unit pair exactly, keep best buddies, cluster concepts, write dictionary.json and report/index.html. "
        "Rerunning resumes: finished chunks and pairs are skipped.",
    )
    p.add_argument("--generator", default="mini-gen")
    p.add_argument("--encoders", default=",".join(DEFAULT_ENCODERS), help="comma-separated encoder names")
    p.add_argument("--n", type=int, default=1600, help="images (default 1600)")
    p.add_argument("--k", type=int, default=5, help="best-buddy K (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-index", type=int, default=None, help="class of a class-conditional generator")
    p.add_argument("--out", default=None, help="run directory, or an fsspec URL shared by all workers such as "
                   "s3://bucket/runs/x (default runs/<generator>)")
    p.add_argument("--dask-address", default=None, help="use this Dask scheduler (default: a LocalCluster)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk-size", type=int, default=100, help="images per chunk (default 100)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--center", choices=["global", "position"], default="global")
    p.add_argument("--overwrite", action="store_true", help="discard a run of another configuration in --out")
    add_model_options(p)
    p.set_defaults(run=run_mine)

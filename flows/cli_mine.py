"""`rosetta mine`: parse the arguments into a MineConfig and run the mining flow.

The flow checks everything itself (the CLI only parses), so the command line, the Python API
and the deployments give the same one-line errors. The terminal shows one progress line per
stage and the summary; Prefect's and Dask's logs stay in the Prefect UI unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .cli_models import add_config_options, config_from_args, trust_pickle_env


def quiet_logs() -> None:
    """Keep Prefect's and Dask's INFO logs off the terminal, in this process and in the Dask
    workers it starts (they inherit the environment); logs still reach the Prefect API."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    if "prefect" in sys.modules:  # logging was configured at import: quiet its console handlers too
        from prefect.logging.handlers import PrefectConsoleHandler

        level = logging.getLevelName(os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"])
        for logger in [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, PrefectConsoleHandler):
                    handler.setLevel(level)


DESCRIPTION = (
    "Generate images (or read them from --images), extract activations of every model into a Zarr store, correlate "
    "every unit pair exactly, keep best buddies, cluster concepts, write dictionary.json and report/index.html. "
    "Rerunning resumes: finished chunks and pairs are skipped."
)


def _truncation(value: str) -> float | str:
    try:
        return value if value == "paper" else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number in (0, 1] or 'paper'") from None


def add_mine_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine", help="mine Rosetta Neurons (default: the embedded zoo)", description=DESCRIPTION)
    add_config_options(p)
    p.add_argument("--images", default=None, metavar="SOURCE",
                   help="mine the encoders against each other on these images instead of a generator's: a folder, "
                   "a glob ('photos/*.jpg'), an fsspec URL prefix (s3://bucket/images/) or a .tar; unreadable files "
                   "are skipped and listed in manifest.json")
    p.add_argument("--anchor", default=None, metavar="ENCODER",
                   help="with --images: the encoder every pair and Rosetta tuple is taken against, whose self best "
                   "buddies cluster the concepts (default: the first of --encoders)")
    # no --generator and no --images: the embedded generator; --n: 1600 generated images, or every readable image
    p.set_defaults(generator=None, n=None)
    p.add_argument("--k", type=int, default=5, help="best-buddy K (default 5)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default 0)")
    p.add_argument("--class-index", type=int, default=None, help="class of a class-conditional generator")
    p.add_argument("--truncation", type=_truncation, default=None, metavar="T|paper",
                   help="truncation of a generator that has one (BigGAN, StyleGAN): a number in (0, 1], or 'paper' "
                   "for the paper's published setting (default: the generator's own, see `rosetta zoo list`)")
    p.add_argument("--center", choices=["global", "position"], default="position",
                   help="centre each unit on a mean per position (default: more of its concepts beat the nulls, "
                   "docs/centring.md) or on one mean (global, the paper's Eq. 2)")
    p.add_argument("--no-random-init", dest="random_init", action="store_false",
                   help="skip the random-init companion run (RUN/random-init: every model but the anchor at random "
                   "init, about the cost of a second run) that tells which concepts random-init encoders match too")
    p.add_argument("--out", default=None, help="run directory, or an fsspec URL shared by all workers such as "
                   "s3://bucket/runs/x (default runs/<generator>)")
    p.add_argument("--dask-address", default=None, help="run the tasks on this Dask scheduler (default: a local "
                   "cluster of 2 worker processes)")
    p.add_argument("--device", default="cpu", help="where the models run: cpu, cuda, cuda:1, ...")
    p.add_argument("--stats-device", default=None, metavar="DEVICE",
                   help="reduce the pair statistics with the torch engine on this device (cuda, cuda:1; workers with "
                   "--resources GPU=1); default: the numpy engine on the CPUs, which is faster there")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory of one worker that reduces statistics, e.g. 24GB: a pair whose tasks would take more "
                   "than 80%% of it is reduced in blocks of units (same tables); without --dask-address the run also "
                   "starts 2 worker processes with this limit for the statistics. Default: the Dask workers' own "
                   "limit, else 80%% of RAM (of the GPU's memory with --stats-device cuda). `rosetta plan` shows the blocks")
    p.add_argument("--overwrite", action="store_true", help="discard a run of another configuration (or changed --images) in --out; a finished run of this "
                   "configuration is kept")
    p.add_argument("--verbose", action="store_true", help="show Prefect's and Dask's logs in the terminal")
    p.add_argument("--progress", action="store_true", help="draw progress bars even when stderr is not a terminal")
    p.set_defaults(run=run_mine)


def run_mine(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    trust_pickle_env(args)
    if not args.verbose:
        quiet_logs()
    from flows import progress
    from flows.mine import mine, summary_lines  # imports Prefect

    progress.show(sys.stderr.isatty() or args.progress)
    result = mine(config, args.out, device=args.device, dask_address=args.dask_address, overwrite=args.overwrite,
                  stats_device=args.stats_device, memory_limit=args.memory_limit,
                  plugins=args.plugin)
    if result["status"] == "complete":
        print(f"{result['location']} is already complete (manifest.json matches this configuration); nothing to do")
    print("\n".join(summary_lines(result["location"], result["report"], result["summary"])))
    return 0

"""Throughput of the procedural shape world on one thread.

Usage: ``python bench/shapes.py [--repeat R] [--target SCENES_PER_S] [--simple]``

Renders batches of 64, 256 and 1024 scenes in every style, keeps the best of ``R`` timed runs
(after one warm-up run that also builds the cached grids and noise tiles), prints scenes per
second and the ratio to the target (2,000 scenes/s on one core), and exits with status 1 when
any case is below the target.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # must happen before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rosetta_core.data.shapes import STYLES, WorldConfig, render_batch  # noqa: E402

BATCHES = (64, 256, 1024)


def measure(batch: int, style: str, config: WorldConfig, repeat: int) -> float:
    """Best scenes/s over ``repeat`` runs; each run uses fresh indices (no caching effects)."""
    render_batch(0, range(batch), config, style)  # warm-up
    best = float("inf")
    for r in range(repeat):
        start = (r + 1) * batch
        t0 = time.perf_counter()
        render_batch(0, range(start, start + batch), config, style)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    parser.add_argument("--target", type=float, default=2000.0, help="scenes/s required")
    parser.add_argument("--simple", action="store_true", help="use WorldConfig.simple()")
    args = parser.parse_args(argv)
    config = WorldConfig.simple() if args.simple else WorldConfig()
    print(f"shape world, one thread, {'simple' if args.simple else 'default'} config, "
          f"target {args.target:,.0f} scenes/s, best of {args.repeat}")
    print(f"{'style':<8} {'batch':>6} {'scenes/s':>10} {'x target':>9}")
    worst = float("inf")
    for style in STYLES:
        for batch in BATCHES:
            rate = measure(batch, style, config, args.repeat)
            worst = min(worst, rate / args.target)
            print(f"{style:<8} {batch:>6} {rate:>10,.0f} {rate / args.target:>9.2f}")
    ok = worst >= 1.0
    print(f"slowest case: {worst:.2f}x target -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`rosetta plan`: how big and how long a mining run will be, before launching it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rosetta_core.engine.planner import GPU_FP32_TFLOPS, matmul_flop_rate
from rosetta_core.evidence import start
from rosetta_core.run import disk, location

from .cli_models import add_config_options, config_from_args, trust_pickle_env


_bytes = disk.format_bytes


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run_plan(args: argparse.Namespace) -> int:
    trust_pickle_env(args)
    prov = start(getattr(args, "argv", None), program="rosetta") if args.json else None
    encoders = [e for e in args.encoders.split(",") if e]
    if args.device is not None and args.gpu is None and args.gpu_tflops is None:
        args.gpu = gpu_class(args.device)
    if args.gpu is not None and args.gpu not in GPU_FP32_TFLOPS:
        raise ValueError(f"--gpu {args.gpu!r} is not a known class; valid: {', '.join(GPU_FP32_TFLOPS)} (or give --gpu-tflops)")
    config = config_from_args(args)
    layers, image = disk.run_layers(config)
    limit, budget = memory_budget(args.memory_limit)
    # a run that keeps no activations folds whole pairs as it extracts: nothing is cut into blocks
    size = disk.run_size(config, threads=args.threads, budget=budget if config.activations == "keep" else None)
    out = args.out or f"runs/{args.generator}"
    needed = disk.needed_bytes(out, config, size)
    rate = matmul_flop_rate()
    tflops = args.gpu_tflops or (GPU_FP32_TFLOPS[args.gpu] if args.gpu else None)
    gpu_name = args.gpu or (f"{tflops} TFLOP/s" if tflops else None)
    if args.json:
        text = json.dumps({
            "layers": {m: [list(l) for l in ls] for m, ls in layers.items()}, "units": size.units,
            "activation_bytes": size.activation_bytes, "image_bytes": size.image_bytes,
            "store_bytes": size.store_bytes, "peak_task_bytes": size.peak_task_bytes, "threads": size.threads,
            "activations": size.activations, "fold_bytes": size.fold_bytes, "disk_bytes": size.disk_bytes,
            "out": out, "needed_bytes": needed,
            "free_bytes": None if location.is_url(out) else disk.free_bytes(out),
            "memory_limit": limit, "memory_limit_given": args.memory_limit, "budget": size.budget,
            "pairs": [{"a": p.a, "b": p.b, "cross_flops": p.cross_flops, "projection_flops": p.projection_flops,
                       "moments_bytes": p.moments_bytes, "table_bytes": p.table_bytes, "task_bytes": p.task_bytes,
                       "chunk_task_bytes": p.chunk_task_bytes, "merge_task_bytes": p.merge_task_bytes,
                       "table_task_bytes": p.table_task_bytes,
                       "blocks": [{"rows": list(k.rows), "cols": list(k.cols), "task_bytes": k.task_bytes}
                                  for k in p.blocks]}
                      for p in size.pairs],
            "total_flops": size.total_flops, "machine_flop_rate": rate, "seconds_here": size.seconds(rate),
            "gpu": gpu_name, "seconds_gpu": size.seconds(tflops * 1e12) if tflops else None,
            "random_init_companion": config.random_init_companion() is not None,  # the same again, not counted above
            "setup": {"generator": args.generator, "encoders": encoders, "n": args.n, "dtype": args.dtype,
                      "activations": args.activations,
                      "chunk_size": size.chunk_size, "weights": args.weights, "layers": args.layers},
            "provenance": prov.finish(),
        }, indent=2)
        if args.json == "-":
            print(text)
            disk.check_fits(out, needed, config, done=size.disk_bytes - needed)
            return 0
        Path(args.json).write_text(text + "\n")
    print(f"plan: {args.generator} vs {', '.join(encoders)}; n={args.n}, {args.dtype}, chunks of {size.chunk_size} images")
    for name, ls in layers.items():
        grids = ", ".join(f"{l}:{u}@{h}x{w}" for l, u, h, w in ls)
        print(f"  {name}: {size.units[name]} units in {len(ls)} layers, activations {_bytes(size.activation_bytes[name])}")
        print(f"      {grids}")
    print(f"  images: {_bytes(size.image_bytes)} ({image}x{image} uint8)")
    for p in size.pairs:
        print(f"  pair {p.a} x {p.b}: cross moments {p.cross_flops / 1e9:.2f} GFLOP, projections "
              f"{p.projection_flops / 1e9:.2f} GFLOP, moments+table {_bytes(p.moments_bytes + p.table_bytes)}, "
              f"Dask task peak {_bytes(p.task_bytes)}" + (f", in {len(p.blocks)} blocks of units" if p.split else ""))
        if p.split and "(shuffled null)" not in p.b:  # a null is cut as its pair
            print("      blocks (units of a x units of b: largest task): " + ", ".join(
                f"{k.rows[0]}-{k.rows[1]} x {k.cols[0]}-{k.cols[1]}: {_bytes(k.task_bytes)}" for k in p.blocks))
    print(f"  total: {size.total_flops / 1e9:.2f} GFLOP; store {_bytes(size.store_bytes)}; "
          f"peak memory per Dask task {_bytes(size.peak_task_bytes)} ({size.threads} threads each)")
    where = "given" if args.memory_limit else "80% of this machine's RAM: the default off a Dask worker"
    split = sum(p.split for p in size.pairs)
    if size.budget is not None:
        print(f"  memory limit {_bytes(limit)} per worker ({where}): tasks of at most {_bytes(size.budget)} "
              f"(80%: Dask pauses a worker there); {split} of {len(size.pairs)} pairs cut into blocks")
    else:
        print(f"  memory limit {_bytes(limit)} per worker ({where}): not applied, a run that keeps no activations "
              "folds whole pairs")
    if size.activations == "none":
        print(f"  activations none: no maps stored (they would take {_bytes(sum(size.activation_bytes.values()))}); "
              f"up to {_bytes(size.fold_bytes)} more of partial co-moments while the run folds its chunks")
    print(f"  disk: {_disk_line(out, needed, size)}")
    print(f"  statistics time here: {_duration(size.seconds(rate))} (float32 matmul measured at {rate / 1e9:.1f} GFLOP/s)")
    if tflops:
        print(f"  statistics time on {gpu_name}: {_duration(size.seconds(tflops * 1e12))} at its float32 peak ({tflops} TFLOP/s"
              f"{', vendor data sheet, no tensor cores' if args.gpu else ', as given'}; the engine's share of it on a GPU: "
              "bench/gpu.sh)")
    print("  (times are lower bounds for the correlation step: FLOPs at the measured/peak rate; model forward passes not included)")
    if config.random_init_companion() is not None:
        print("  random-init companion (RUN/random-init, `rosetta mine --no-random-init` skips it): the same again, "
              "its store included; the figures above are for the run alone")
    disk.check_fits(out, needed, config, done=size.disk_bytes - needed)  # one line and exit status 2 when it will not fit
    return 0


def memory_budget(memory_limit: str | None) -> tuple[int, int]:
    """``(limit, budget)`` in bytes: ``--memory-limit`` (or 80% of this machine's RAM) and what
    one task of one thread per worker may take of it."""
    from dask.utils import parse_bytes

    from rosetta_core.engine.planner import machine_memory_limit, task_budget

    try:
        limit = machine_memory_limit() if memory_limit is None else parse_bytes(memory_limit)
    except ValueError:
        raise ValueError(f"--memory-limit {memory_limit!r} is not a memory size; valid: e.g. 24GB, 1.5GiB") from None
    return limit, task_budget(limit)


def _disk_line(out: str, needed: int, size) -> str:
    if location.is_url(out):
        return f"{out} is an fsspec URL: no free space to compare with (not checked)"
    done = size.disk_bytes - needed
    written = f" ({_bytes(done)} of {_bytes(size.disk_bytes)} already there)" if done else ""
    return f"needs {_bytes(needed)} at {out}{written}, {_bytes(disk.free_bytes(out))} free there"


def gpu_class(device: str) -> str:
    """The :data:`GPU_FP32_TFLOPS` class of CUDA device ``device`` on this machine, from its name."""
    import torch

    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: torch finds no CUDA device here; for an estimate of another machine's "
                         f"GPU give --gpu CLASS ({', '.join(GPU_FP32_TFLOPS)}) or --gpu-tflops X")
    name = torch.cuda.get_device_name(torch.device(device)).upper().replace(" ", "")
    found = [c for c in sorted(GPU_FP32_TFLOPS, key=len, reverse=True) if c.upper() in name]
    if not found:
        raise ValueError(f"--device {device!r} is a {name}, not a known GPU class; give --gpu-tflops X "
                         "(its float32 TFLOP/s, no tensor cores)")
    return found[0]


def add_plan_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="how big and how long a mining run will be: units, store size, FLOPs, memory, time",
        description="Prints per model the units and grids, the store size at the chosen dtype, the cross-moment FLOPs "
        "of the exact formulation per pair and in total, the peak memory per Dask task, and estimated times on this "
        "machine (a short matmul measurement) and on a GPU class. Builds the models with random weights (no download).",
    )
    add_config_options(p)
    p.add_argument("--threads", type=int, default=None,
                   help="threads of one statistics task on the workers (default: ROSETTA_THREADS or this machine's CPUs)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory of one Dask worker, e.g. 24GB: pairs whose tasks would take more than 80%% of it are "
                   "cut into blocks of units, shown per pair (default: 80%% of this machine's RAM)")
    p.add_argument("--out", default=None, help="the run's directory: compare the store's size with the free space "
                   "there (default runs/<generator>; an fsspec URL is not checked)")
    p.add_argument("--gpu", default=None, help=f"GPU class for a time estimate: {', '.join(GPU_FP32_TFLOPS)}")
    p.add_argument("--gpu-tflops", type=float, default=None, help="or its float32 TFLOP/s")
    p.add_argument("--device", default=None, help="cuda[:N]: the estimate for this machine's GPU (its class from its name)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable output with its provenance (commit, command, machine, wall time): "
                   "printed instead of the table, or written to FILE (the table is printed too)")
    p.set_defaults(run=run_plan)

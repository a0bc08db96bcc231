"""Benchmark: exact streaming Pearson (ours) vs the published code's per-batch method.

Same random activations of ``n`` images with the paper's layer shapes: a StyleGAN2-256-like
generator (512@8, 512@16, 512@32, 512@64, 256@128, 128@256) against ResNet-50 stages
(256@56, 512@28, 1024@14, 2048@7) and one ViT-B MLP layer (3072@14).

(a) the published method: per batch of 2 images and per layer pair, resize *both* maps to the
    larger grid, standardise within the batch, einsum, then average the per-batch scores;
(b) ours: ``rosetta_core.pearson_table`` (projections onto the small grid, one matmul per pair).

Each method runs in its own subprocess so its peak RSS can be read. Prints the time of each,
the speed-up, our FLOP count and GFLOP/s against this machine's float32 matmul rate measured in
the same run, and the peak memory of each.

Timings on shared machines are noisy: ours runs ``--repeats`` times (default 3) with the matmul
rate measured before each run and after the last; the best time is compared with the best rate.

``--json FILE`` also writes the measurements with their provenance (commit, command, seeds,
machine, wall time; ``rosetta_core.evidence``): the source of the numbers in docs/performance.md.

``--device DEV`` (``cpu``, ``cuda``) also runs (c) ours on the torch engine on that device
(``pearson_table(..., device=DEV)``), in its own subprocess with the same repeats, and prints its
time against (b) in the same run and its rate against that device's float32 matmul rate
(IEEE float32, TF32 off), measured before each of its runs and after the last.

Usage: python bench/correlation.py [--n 20] [--small] [--repeats 3] [--device DEV] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GENERATOR = [(512, 8), (512, 16), (512, 32), (512, 64), (256, 128), (128, 256)]
ENCODERS = [(256, 56), (512, 28), (1024, 14), (2048, 7), (3072, 14)]
SMALL_GENERATOR = [(64, 8), (64, 32), (32, 64)]
SMALL_ENCODERS = [(64, 14), (128, 7)]


def make_layers(spec, n, seed):
    rng = np.random.default_rng(seed)
    return [np.maximum(rng.standard_normal((n, u, s, s), dtype=np.float32), 0) for u, s in spec]


def published_method(gen, enc, batch=2):
    """The published code's scheme (reimplemented): per-batch standardised scores, averaged."""
    import torch
    import torch.nn.functional as F

    n = gen[0].shape[0]
    rows = []
    for g in gen:
        blocks = []
        for e in enc:
            size = (max(g.shape[2], e.shape[2]), max(g.shape[3], e.shape[3]))
            score = torch.zeros(g.shape[1], e.shape[1])
            batches = 0
            for s in range(0, n, batch):
                ga = F.interpolate(torch.from_numpy(g[s : s + batch]), size=size, mode="bilinear", align_corners=False)
                ea = F.interpolate(torch.from_numpy(e[s : s + batch]), size=size, mode="bilinear", align_corners=False)
                ga = (ga - ga.mean(dim=(0, 2, 3), keepdim=True)) / (ga.std(dim=(0, 2, 3), keepdim=True) + 1e-8)
                ea = (ea - ea.mean(dim=(0, 2, 3), keepdim=True)) / (ea.std(dim=(0, 2, 3), keepdim=True) + 1e-8)
                score += torch.einsum("bchw,bdhw->cd", ga, ea) / (ga.shape[0] * size[0] * size[1])
                batches += 1
            blocks.append((score / batches).numpy())
        rows.append(np.concatenate(blocks, axis=1))
    return np.concatenate(rows, axis=0)


def our_method(gen, enc, device=None):
    from rosetta_core import pearson_table  # imported (untimed) by run_child first

    return pearson_table(gen, enc, device=device)


def our_flops(gen_spec, enc_spec, n):
    """Multiply-adds x 2 of the exact formulation: cross matmuls, projections, squared sums.

    Squared sums of the maps resized to a pair's grid come from products of each value with
    itself and, when the map is resized, its right, lower and two diagonal neighbours (the Gram
    matrices of bilinear resizing are tridiagonal), summed over images once per layer, then
    weighted once per grid."""
    cross = proj = sq = 0
    projected = set()
    larges = {("g", i): set() for i in range(len(gen_spec))} | {("e", j): set() for j in range(len(enc_spec))}
    for i, (ug, sg) in enumerate(gen_spec):
        for j, (ue, se) in enumerate(enc_spec):
            small, large = min(sg, se), max(sg, se)
            cross += 2 * n * ug * ue * small * small
            larges["g", i].add(large)
            larges["e", j].add(large)
            for side, (u, s) in (("g", (ug, sg)), ("e", (ue, se))):
                if s > small and (side, s, small) not in projected:
                    projected.add((side, s, small))
                    proj += 2 * n * u * (s * s * small + s * small * small)
    for (side, idx), grids in larges.items():
        u, s = (gen_spec if side == "g" else enc_spec)[idx]
        products = 5 if grids - {s} else 1
        sq += 2 * n * u * s * s * products + 2 * products * u * s * s * len(grids - {s})
    return cross, proj, sq


def matmul_rate(size=2048, repeats=5):
    x = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    x @ x
    t = time.perf_counter()
    for _ in range(repeats):
        x @ x
    return 2 * size**3 * repeats / (time.perf_counter() - t) / 1e9


def device_matmul_rate(device, repeats=5):
    """GFLOP/s of float32 torch matmul on ``device`` in IEEE float32 (as the torch engine runs
    them: TF32 off), 2048^3 on a CPU, 8192^3 on a GPU."""
    import torch

    from rosetta_core.engine.devices import ieee_fp32, torch_device

    dev = torch_device(device)
    size = 8192 if dev.type == "cuda" else 2048
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(dev)
    with ieee_fp32():
        x @ x
        sync()
        t = time.perf_counter()
        for _ in range(repeats):
            x @ x
        sync()
    return 2 * size**3 * repeats / (time.perf_counter() - t) / 1e9


def run_child(method, n, small, repeats, device=None, tables=Path("/tmp")):
    gen_spec, enc_spec = (SMALL_GENERATOR, SMALL_ENCODERS) if small else (GENERATOR, ENCODERS)
    gen, enc = make_layers(gen_spec, n, 0), make_layers(enc_spec, n, 1)
    import rosetta_core  # noqa: F401  (keep import time out of the measurement)
    import torch.nn.functional  # noqa: F401

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "torch":  # the torch engine on --device (warmed up once: kernels, allocator)
        our_method(gen[:1], enc[:1], device)

        def rate():
            return device_matmul_rate(device)

        def fn(g, e):
            return our_method(g, e, device)
    else:
        rate = matmul_rate
        fn = published_method if method == "published" else our_method
    rates, times = [], []
    for _ in range(1 if method == "published" else repeats):
        if method != "published":  # the matmul rate right before each run, under the same load
            rates.append(rate())
        t = time.perf_counter()
        table = fn(gen, enc)
        times.append(time.perf_counter() - t)
    if method != "published":
        rates.append(rate())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    np.save(tables / f"bench_corr_{method}.npy", table)
    out = {"seconds": min(times), "all_seconds": times, "extra_peak_mib": peak / 1024, "shape": table.shape}
    if method != "published":
        out["matmul_gflops"] = rates
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="tiny layer shapes (a quick check)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of ours (each after a matmul rate measurement); the best of each is compared")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements and their provenance here")
    parser.add_argument("--device", default=None,
                        help="also run ours on the torch engine on this torch device (cpu, cuda) and compare")
    parser.add_argument("--child", choices=["published", "ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--tables", type=Path, default=Path("/tmp"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: need at least 1 run")
    if args.child:
        run_child(args.child, args.n, args.small, args.repeats, args.device, args.tables)
        return
    gen_spec, enc_spec = (SMALL_GENERATOR, SMALL_ENCODERS) if args.small else (GENERATOR, ENCODERS)
    prov = None
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from rosetta_core.evidence import start

        prov = start(seeds={"generator_maps": 0, "encoder_maps": 1, "matmul_rate": 0})
    results = {}
    tables = Path(tempfile.mkdtemp(prefix="bench-corr-"))  # this run's own tables (others may run beside it)
    for method in ("ours", "torch", "published") if args.device else ("ours", "published"):
        cmd = [sys.executable, __file__, "--child", method, "--n", str(args.n), "--repeats", str(args.repeats),
               "--tables", str(tables)]
        cmd += ["--small"] if args.small else []
        cmd += ["--device", args.device] if method == "torch" else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    rate = max(results["ours"]["matmul_gflops"])
    cross, proj, sq = our_flops(gen_spec, enc_spec, args.n)
    ours, theirs = results["ours"], results["published"]
    achieved = (cross + proj + sq) / ours["seconds"] / 1e9
    ours_table, their_table = np.load(tables / "bench_corr_ours.npy"), np.load(tables / "bench_corr_published.npy")
    units = sum(u for u, _ in gen_spec), sum(u for u, _ in enc_spec)
    print(f"n={args.n} images, {units[0]} generator units x {units[1]} encoder units")
    print(f"{'method':<28}{'seconds':>10}{'extra peak MiB':>16}")
    print(f"{'(a) published, batch 2':<28}{theirs['seconds']:>10.2f}{theirs['extra_peak_mib']:>16.0f}")
    print(f"{'(b) ours, exact':<28}{ours['seconds']:>10.2f}{ours['extra_peak_mib']:>16.0f}")
    print(f"speed-up (a)/(b): {theirs['seconds'] / ours['seconds']:.1f}x with our best call, "
          f"{theirs['seconds'] / max(ours['all_seconds']):.1f}x with our slowest (one call of (a))   (target >= 20x)")
    print(
        f"our FLOPs: {cross / 1e9:.1f} G cross-moment matmuls + {proj / 1e9:.1f} G projections + "
        f"{sq / 1e9:.2f} G squared sums = {(cross + proj + sq) / 1e9:.1f} GFLOP"
    )
    print(f"ours, all runs: {', '.join(f'{t:.2f}' for t in ours['all_seconds'])} s (the best is compared)")
    print(
        f"achieved {achieved:.1f} GFLOP/s vs float32 matmul {rate:.1f} GFLOP/s on this machine "
        f"(best of the 2048^3 matmul rates measured before each run of ours and after the last: "
        f"{', '.join(f'{r:.1f}' for r in ours['matmul_gflops'])}): "
        f"{100 * achieved / rate:.0f}% of matmul-bound (target >= 50%)"
    )
    print(
        "max |(a) - (b)|: "
        f"{np.abs(ours_table - their_table).max():.3f} (the published per-batch average is not Eq. 2)"
    )
    device_summary = None
    if args.device:
        dev = results["torch"]
        dev_rate = max(dev["matmul_gflops"])
        dev_achieved = (cross + proj + sq) / dev["seconds"] / 1e9
        dev_diff = float(np.abs(np.load(tables / "bench_corr_torch.npy") - ours_table).max())
        device_summary = {
            "device": args.device, "torch": dev, "torch_over_numpy_best": dev["seconds"] / ours["seconds"],
            "torch_over_numpy_slowest": max(dev["all_seconds"]) / max(ours["all_seconds"]),
            "achieved_gflops": dev_achieved, "best_device_matmul_gflops": dev_rate,
            "fraction_of_device_matmul": dev_achieved / dev_rate,
            "published_over_torch": theirs["seconds"] / dev["seconds"],
            "max_abs_difference_to_numpy_engine": dev_diff,
        }
        print(f"(c) ours, torch engine on {args.device}: {dev['seconds']:.2f} s best "
              f"(all runs: {', '.join(f'{t:.2f}' for t in dev['all_seconds'])}), "
              f"extra peak {dev['extra_peak_mib']:.0f} MiB")
        print(f"(c)/(b): {device_summary['torch_over_numpy_best']:.2f} best vs best, "
              f"{device_summary['torch_over_numpy_slowest']:.2f} slowest vs slowest; (a)/(c): "
              f"{device_summary['published_over_torch']:.1f}x")
        print(f"(c) achieved {dev_achieved:.1f} GFLOP/s vs torch float32 (IEEE) matmul on {args.device} "
              f"{dev_rate:.1f} GFLOP/s (before each run and after the last: "
              f"{', '.join(f'{r:.1f}' for r in dev['matmul_gflops'])}): {100 * dev_achieved / dev_rate:.0f}%")
        print(f"max |(c) - (b)|: {dev_diff:.2e} (the same exact algorithm, float32 rounding)")
    if args.json:
        args.json.write_text(json.dumps({
            "n": args.n, "small": args.small, "repeats": args.repeats, "generator_layers": gen_spec,
            "encoder_layers": enc_spec, "units": units, "published": theirs, "ours": ours,
            "speedup_best": theirs["seconds"] / ours["seconds"], "speedup_slowest": theirs["seconds"] / max(ours["all_seconds"]),
            "gflop": {"cross": cross / 1e9, "projections": proj / 1e9, "squared_sums": sq / 1e9,
                      "total": (cross + proj + sq) / 1e9},
            "achieved_gflops": achieved, "best_matmul_gflops": rate, "fraction_of_matmul": achieved / rate,
            "max_abs_difference": float(np.abs(ours_table - their_table).max()),
            "device_engine": device_summary,
            "provenance": prov.finish(),
        }, indent=1) + "\n")
    shutil.rmtree(tables, ignore_errors=True)


if __name__ == "__main__":
    main()

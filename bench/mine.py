"""Benchmark: the default `rosetta mine` run at several n (issue 4 §7).

Runs `rosetta mine` as a subprocess, the way a user does, once per n, each in a fresh run
directory with a fresh Prefect home (so each run also starts Prefect's temporary server), and
prints per n:

- wall time of the whole command, and per stage (from the run's ``manifest.json``);
- extraction throughput: images per second through all encoders (and model-images/s);
- peak memory of the process tree (the CLI, its Dask workers and the temporary Prefect server),
  sampled every 0.5 s: summed PSS (shared pages such as torch's libraries counted once: what
  the run really occupies), summed RSS (shared pages counted in every process: an upper
  bound), and the RSS of the largest single process;
- seconds per image, as a ratio against the smallest n measured in the same run (1.00 means
  time is linear in n).

Targets on 2 CPU cores: n = 1600 within 5 minutes and 3 GB peak RSS.

``--weights default`` (the default) passes no ``--weights``: exactly the default run, i.e. the
shipped trained weights, leaving out default encoders that ship none yet. ``--weights random``
runs the same architectures with random init (same cost) for when trained weights are missing.
The output says which weights and encoders each run used (from its manifest).

``--activations keep none`` runs each n with each choice in turn (alternating, ``--repeats``
times) and prints the ratios of wall time and store size (bytes on disk of ``store.zarr``,
recorded for every run) of ``none`` to ``keep`` measured in the same session.

``--against DIR`` also runs a checkout of another commit (e.g. ``git worktree add /tmp/base
<commit>``), alternating with this one ``--repeats`` times, and prints the wall-time ratio of
this code to that baseline measured in the same session. ``--json FILE`` writes every run with
its provenance (``rosetta_core.evidence``: commit and dirty tree, the exact command, the runs'
image seed, the machine: CPU model, threads, load; wall time) and, with ``--against``, the
baseline checkout's commit.

``--memory-limit SIZE`` passes ``--memory-limit SIZE`` to `rosetta mine` (the run starts worker
processes with that limit for the statistics) and reports the peak RSS of each worker process,
each of which must stay under the limit (``MISSES TARGET`` otherwise).

Usage: python bench/mine.py [--n 400 800 1600] [--weights default|trained|random] [--keep DIR]
                            [--against DIR | --activations keep none] [--repeats R] [--json FILE]
                            [--memory-limit SIZE]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from dask.utils import parse_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rosetta_core.evidence import git_state, start  # noqa: E402

TARGET_SECONDS, TARGET_RSS = 300.0, 3 * 1024**3


def _role(proc: psutil.Process) -> str:
    line = " ".join(proc.cmdline())
    if "resource_tracker" in line:
        return "resource tracker"
    if "spawn_main" in line or "multiprocessing" in line:
        return "worker process"
    if "uvicorn" in line or "prefect" in line and "server" in line:
        return "Prefect server"
    return "rosetta mine" if "mine" in line else proc.name()


class _PeakRss:
    """Samples the RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, every: float = 0.5):
        self.root, self.every = psutil.Process(pid), every
        self.tree_peak = self.pss_peak = self.single_peak = 0
        self.by_role: dict[str, int] = {}
        self.workers: dict[int, int] = {}  # pid -> peak RSS of each worker process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss, pss = [], []
            for proc in procs:
                try:
                    info = proc.memory_full_info()  # pss: shared pages (torch, libs) counted once
                    rss.append(info.rss)
                    pss.append(getattr(info, "pss", info.rss))
                    role = _role(proc)
                    self.by_role[role] = max(self.by_role.get(role, 0), info.rss)
                    if role == "worker process":
                        self.workers[proc.pid] = max(self.workers.get(proc.pid, 0), info.rss)
                except psutil.Error:
                    pass
            if rss:
                self.tree_peak = max(self.tree_peak, sum(rss))
                self.pss_peak = max(self.pss_peak, sum(pss))
                self.single_peak = max(self.single_peak, max(rss))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


HERE = Path(__file__).resolve().parents[1]


def _command() -> list[str]:
    return [sys.executable, "-m", "flows.cli"]


def run_once(n: int, weights: str, out: Path, code: Path = HERE, extra: list[str] = ()) -> dict:
    """One `rosetta mine --n n` (plus ``--weights`` unless ``weights == "default"``, and the
    ``extra`` arguments) of the checkout ``code``."""
    home = tempfile.mkdtemp(prefix="prefect-home-")
    env = os.environ | {"PYTHONPATH": str(code),
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
    }
    env.pop("PREFECT_API_URL", None)
    cmd = [*_command(), "mine", "--n", str(n), "--out", str(out)]
    if weights != "default":
        cmd += ["--weights", weights]
    cmd += list(extra)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = _PeakRss(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    peak.stop()
    shutil.rmtree(home, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"rosetta mine --n {n} {' '.join(extra)} failed (exit {proc.returncode}):\n{output[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    stages = manifest["seconds"]
    encoders = len(manifest["config"]["encoders"])
    extract = stages.get("extract") or stages["fold"]  # --activations none: extraction and folding are one stage
    return {
        "used": f"weights {manifest['config']['weights']}, encoders {', '.join(manifest['config']['encoders'])}",
        "n": n,
        "seed": manifest["config"].get("seed"),
        "wall": wall,
        "stages": stages,
        "images_per_s": n / extract,
        "stage_images_per_s": {k: n / v for k, v in stages.items() if k in ("generate", "extract", "fold", "statistics") and v > 0},
        "command": cmd[2:],
        "activations": manifest["config"].get("activations", "keep"),
        "store_bytes": sum(f.stat().st_size for f in (out / "store.zarr").rglob("*") if f.is_file()),
        "model_images_per_s": n * encoders / extract,
        "tree_rss": peak.tree_peak,
        "tree_pss": peak.pss_peak,
        "single_rss": peak.single_peak,
        "by_role": dict(peak.by_role),
        "worker_rss": sorted(peak.workers.values(), reverse=True),
    }


def _table(rows: list[dict], weights: str) -> str:
    stages = list(rows[0]["stages"])
    base = rows[0]["wall"] / rows[0]["n"]
    head = ["n", "wall s", *[f"{s} s" for s in stages], "extract img/s", "peak RSS tree GiB", "peak PSS tree GiB",
            "largest process GiB", f"s/image vs n={rows[0]['n']}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["n"]), f"{r['wall']:.1f}", *[f"{r['stages'][s]:.1f}" for s in stages],
                 f"{r['images_per_s']:.1f} ({r['model_images_per_s']:.0f} model-img/s)",
                 f"{r['tree_rss'] / 1024**3:.2f}", f"{r['tree_pss'] / 1024**3:.2f}", f"{r['single_rss'] / 1024**3:.2f}",
                 f"{r['wall'] / r['n'] / base:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nweights option: {weights}; {rows[0]['used']}; wall includes Prefect's temporary server start and the LocalCluster start"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[400, 800, 1600])
    parser.add_argument("--weights", choices=["default", "trained", "random"], default="default")
    parser.add_argument("--keep", type=Path, default=None, help="keep run directories under this folder")
    parser.add_argument("--against", type=Path, default=None, help="a checkout of the baseline commit to run alternately")
    parser.add_argument("--repeats", type=int, default=1, help="runs per n and checkout (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the runs and their provenance here")
    parser.add_argument("--activations", nargs="+", choices=["keep", "none"], default=None,
                        help="run each n with each of these --activations, alternating (ratios none/keep printed)")
    parser.add_argument("--memory-limit", default=None, metavar="SIZE",
                        help="pass --memory-limit SIZE to rosetta mine and check each worker process's peak RSS against it")
    parser.add_argument("--mine-args", default="", help="more `rosetta mine` arguments, e.g. \"--generator "
                        "biggan-deep-256 --encoders resnet50.tv_in1k --device cuda\" (bench/gpu.sh)")
    args = parser.parse_args(argv)
    extra = shlex.split(args.mine_args) + (["--memory-limit", args.memory_limit] if args.memory_limit else [])
    limit = parse_bytes(args.memory_limit) if args.memory_limit else None
    prov = start(argv)
    if args.against is not None:
        return compare(args, prov)
    if args.activations:
        return compare_activations(args, prov, extra)
    bad = [n for n in args.n if n < 10]
    if bad:
        raise SystemExit(f"--n {bad[0]} is too small for the default K=5; give n >= 10")
    weights = args.weights
    load = os.getloadavg()
    print(f"weights option: {weights}; cores: {os.cpu_count()}; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-mine-"))
    rows = []
    for n in sorted(args.n):
        row = run_once(n, weights, root / f"n{n}", extra=extra)
        rows.append(row)
        verdict = "ok" if row["wall"] <= TARGET_SECONDS and row["tree_pss"] <= TARGET_RSS else "MISSES TARGET"
        verdict = verdict if not args.mine_args else "the embedded run's targets do not apply"
        print(f"n={n}: {row['wall']:.1f} s wall, peak memory {row['tree_pss'] / 1024**3:.2f} GiB PSS "
              f"({row['tree_rss'] / 1024**3:.2f} GiB RSS summed over the process tree), "
              f"stages {json.dumps({k: round(v, 1) for k, v in row['stages'].items()})} [{verdict}]", flush=True)
        roles = ", ".join(f"{k} {v / 1024**3:.2f}" for k, v in sorted(row["by_role"].items()))
        print(f"  used: {row['used']}")
        print(f"  peak RSS per process (GiB, the largest of each kind): {roles}", flush=True)
        if limit is not None:
            under = bool(row["worker_rss"]) and max(row["worker_rss"]) < limit
            row["memory_limit"], row["workers_under_limit"] = limit, under
            print(f"  --memory-limit {args.memory_limit}: peak RSS of each worker process (GiB): "
                  f"{', '.join(f'{v / 1024**3:.3f}' for v in row['worker_rss']) or 'none found'} "
                  f"[{'ok: all under the limit' if under else 'MISSES TARGET'}]", flush=True)
    print()
    print(_table(rows, weights))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        prov.seeds["images"] = sorted({r["seed"] for r in rows})
        args.json.write_text(json.dumps({"weights": weights, "mine_args": extra, "memory_limit": args.memory_limit,
                                         "target_seconds": TARGET_SECONDS, "target_bytes": TARGET_RSS,
                                         "runs": rows, "provenance": prov.finish()}, indent=1) + "\n")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def compare_activations(args: argparse.Namespace, prov, extra: list[str]) -> int:
    """Each n with each ``--activations`` choice, alternating, ``--repeats`` times: wall time and
    store size, and the ratios of ``none`` to ``keep`` (best of the repeats; same session)."""
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-mine-"))
    runs = []
    for n in sorted(args.n):
        for r in range(args.repeats):
            for choice in args.activations:
                row = run_once(n, args.weights, root / f"{choice}-n{n}-{r}", extra=[*extra, "--activations", choice])
                runs.append(row | {"repeat": r})
                print(f"--activations {choice} n={n} #{r}: {row['wall']:.1f} s wall, store {row['store_bytes'] / 1e6:.1f} MB, "
                      f"peak PSS {row['tree_pss'] / 1024**3:.2f} GiB, stages "
                      f"{json.dumps({k: round(v, 1) for k, v in row['stages'].items()})}", flush=True)
        best = {c: min((x for x in runs if x["n"] == n and x["activations"] == c), key=lambda x: x["wall"])
                for c in args.activations}
        if {"keep", "none"} <= set(best):
            print(f"n={n}: none / keep wall time = {best['none']['wall'] / best['keep']['wall']:.2f} (best of "
                  f"{args.repeats} each), store size = {best['none']['store_bytes'] / best['keep']['store_bytes']:.3f}")
    if args.json:
        prov.seeds["images"] = sorted({r["seed"] for r in runs})
        args.json.write_text(json.dumps({"weights": args.weights, "mine_args": extra, "activations": args.activations,
                                         "runs": runs, "provenance": prov.finish()}, indent=1) + "\n")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def compare(args: argparse.Namespace, prov) -> int:
    """This checkout against ``--against``, alternating, ``--repeats`` times per n."""
    codes = {"baseline": args.against.resolve(), "this": HERE}
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-mine-"))
    runs = []
    for n in sorted(args.n):
        for r in range(args.repeats):
            for who, code in codes.items():
                row = run_once(n, args.weights, root / f"{who}-n{n}-{r}", code)
                runs.append({"code": who, "n": n, "repeat": r, "wall": row["wall"], "stages": row["stages"],
                             "tree_pss": row["tree_pss"], "used": row["used"], "seed": row["seed"]})
                print(f"{who} n={n} #{r}: {row['wall']:.1f} s wall, stages "
                      f"{json.dumps({k: round(v, 1) for k, v in row['stages'].items()})}", flush=True)
        walls = {who: [x["wall"] for x in runs if x["code"] == who and x["n"] == n] for who in codes}
        print(f"n={n}: this / baseline wall time = {min(walls['this']) / min(walls['baseline']):.2f} "
              f"(best of {args.repeats} each; median ratio {sorted(walls['this'])[len(walls['this']) // 2] / sorted(walls['baseline'])[len(walls['baseline']) // 2]:.2f})")
    if args.json:
        prov.seeds["images"] = sorted({r["seed"] for r in runs})
        args.json.write_text(json.dumps({
            "commits": {who: git_state(code) for who, code in codes.items()}, "weights": args.weights, "runs": runs,
            "provenance": prov.finish(),
        }, indent=1) + "\n")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

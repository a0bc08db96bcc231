"""Which centring gives the more trustworthy dictionary? (issue 21, item 6)

For every seed and centring it mines the default run (``rosetta mine --n N --seed S --center C``:
the default encoders and settings, with its shuffled null per encoder and its random-init
companion; skipped when complete in ``--runs``) and counts, over the run's concepts:

- **beat the nulls**: every link of the concept beats its model's shuffled-null chance level;
- **learned**: the concept is not also matched by the random-init encoders;
- **trustworthy**: both;
- **aligned**: its ground-truth label reaches the run's IoU threshold (docs/ground-truth.md);
- **aligned and trustworthy**: all three.

The rule, fixed before the first run: on the validation seeds, pooled, the centring with the
higher share of trustworthy concepts becomes the default (the dictionary whose concepts more
often survive both controls). The aligned share is reported beside it, whatever it shows. Then
one run per centring on test seeds never used before reports the numbers.

Each difference of shares (position - global) comes with a bootstrap 95% interval that resamples
each centring's concepts (pooled over seeds) independently: the two centrings' concepts are not
the same units, so the comparison is not paired.

Seeds: validation 10000-10999, test 20000-20999 (``rosetta_core.evidence.seeds``); test seeds
20000-20002 were spent by bench/ground_truth.py, 20003-20005 by this bench.

Usage::

    python bench/centring.py --split validation --seeds 10000 10001 10002 --n 256 \\
        --runs /tmp/centring-runs --json bench/results/centring-validation.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rosetta_core.evidence import start
from rosetta_core.evidence.seeds import SCENE_SPLITS, check_scene_seeds

ROOT = Path(__file__).resolve().parents[1]
CENTERS = ("global", "position")
MEASURES = ("beat_null", "learned", "trustworthy", "aligned", "aligned_and_trustworthy")


def mine(out: Path, seed: int, n: int, center: str) -> float:
    """Mine the default run with this seed, centring and n (its companion included); seconds (0: already complete)."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        done = json.loads(manifest.read_text())
        if done.get("complete") and ((done["summary"].get("checks") or {}).get("random_init_companion")):
            return 0.0
    t0 = time.perf_counter()
    cmd = [str(ROOT / ".venv" / "bin" / "rosetta"), "mine", "--n", str(n), "--seed", str(seed), "--center", center,
           "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def concept_rows(out: Path) -> list[dict]:
    """Per concept of the run at ``out``: the five measures (booleans) and its label."""
    content = json.loads((out / "dictionary.json").read_text())
    rows = []
    for c in content["concepts"]:
        checks, truth = c.get("checks") or {}, c.get("ground_truth")
        null, random = checks.get("shuffled_null"), checks.get("random_init")
        if null is None or random is None or truth is None:
            raise ValueError(f"{out}: concept {c['id']} lacks its checks or its ground-truth label; mine it again")
        beat, learned, aligned = bool(null["beats"]), not random["also_random"], bool(truth["aligned"])
        rows.append({"id": c["id"], "factor": truth["factor"], "beat_null": beat, "learned": learned,
                     "trustworthy": beat and learned, "aligned": aligned,
                     "aligned_and_trustworthy": aligned and beat and learned})
    return rows


def shares(rows: list[dict]) -> dict:
    n = len(rows)
    return {"concepts": n} | {m: {"count": sum(r[m] for r in rows), "share": sum(r[m] for r in rows) / n if n else None}
                              for m in MEASURES}


def bootstrap_difference(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0) -> dict:
    """Mean of ``b`` minus mean of ``a`` with a percentile 95% interval, resampling each independently."""
    rng = np.random.default_rng(seed)
    diffs = (rng.choice(b, (draws, len(b))).mean(axis=1) - rng.choice(a, (draws, len(a))).mean(axis=1))
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return {"value": float(b.mean() - a.mean()), "ci95": [float(lo), float(hi)], "draws": draws, "seed": seed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SCENE_SPLITS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--runs", type=Path, required=True, help="folder of the mined runs (reused when complete)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    try:  # a rerun of the reported test (same seeds, same runs) is allowed: it recomputes nothing
        check_scene_seeds(args.split, args.seeds)
    except ValueError as err:
        parser.error(str(err))
    prov = start(seeds={"scenes": args.seeds, "bootstrap": 0})
    per_run, pooled, seconds = {}, {c: [] for c in CENTERS}, {}
    for seed in args.seeds:
        for center in CENTERS:
            out = args.runs / f"{args.split}-{center}-{seed}-n{args.n}"
            seconds[out.name] = mine(out, seed, args.n, center)
            rows = concept_rows(out)
            summary = json.loads((out / "manifest.json").read_text())["summary"]
            per_run[out.name] = {"seed": seed, "center": center, "seconds": seconds[out.name], "shares": shares(rows),
                                 "ground_truth": {k: summary["ground_truth"].get(k) for k in ("aligned", "random_baseline", "threshold")},
                                 "checks": summary["checks"], "concepts": rows}
            pooled[center] += rows
            print(f"{out.name}: {json.dumps(shares(rows))}", flush=True)
    result = {
        "split": args.split, "seeds": args.seeds, "n": args.n, "centers": list(CENTERS),
        "rule": "the centring with the higher pooled share of trustworthy concepts (beat the shuffled nulls and not "
                "also matched at random init) on the validation seeds becomes the default",
        "pooled": {c: shares(rows) for c, rows in pooled.items()},
        "difference": {m: bootstrap_difference(np.array([r[m] for r in pooled["global"]], float),
                                               np.array([r[m] for r in pooled["position"]], float))
                       for m in MEASURES},
        "runs": per_run,
    }
    result["choice"] = max(CENTERS, key=lambda c: result["pooled"][c]["trustworthy"]["share"])
    result["provenance"] = prov.finish()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({c: {m: v[m]["share"] for m in MEASURES} | {"concepts": v["concepts"]}
                      for c, v in result["pooled"].items()}, indent=1))
    print(f"choice by the rule: {result['choice']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

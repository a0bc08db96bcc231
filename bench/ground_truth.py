"""Are Rosetta concepts more interpretable than their layers? Ground-truth dissection of mined
runs of the embedded zoo, with variants of the method (issue 21, item 4).

For every seed and centring it mines ``rosetta mine --n N --seed S --center C`` (skipped when the
run is already complete in ``--runs``), then rebuilds the dictionary from the run's correlation
tables for every variant (best-buddy ``K``; every encoder layer or only each encoder's two deepest
layers; exactly what a run with those settings computes, since a unit pair's correlation does
not depend on the other layers) and dissects it (:mod:`rosetta_core.run.ground_truth`). Per
variant and concept it records three comparisons, each concept against random units in no concept
from the same layers in the same numbers (paired by concept):

- ``group``: the dictionary's definition: the concept's score (mean over models of each model's
  mean unit IoU) reaches the threshold; random groups scored the same way (``--draws`` each);
- ``unit``: how many of the concept's units are aligned on their own (best factor's IoU at least
  the threshold; mean over each model's units, then over models), against the aligned share of
  the same layers' units in no concept: are Rosetta units more interpretable than their layers?
- ``generator``: the group definition on the generator units alone.

It also records, for the default variant, the image-shuffled null (every unit's maps against the
masks of another image: what layout priors alone give; it justifies the threshold) and the
quantile's effect. Results (per concept, so seeds pool) go to ``--json``, with provenance.

Seeds: validation seeds are 10000-10999, test seeds 20000-20999 (docs/ground-truth.md). Choose
on validation; run a test seed once.

Usage::

    python bench/ground_truth.py --split validation --seeds 10000 10001 10002 --n 256 \\
        --runs /tmp/gt-runs --json bench/results/ground-truth-validation.json
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
from rosetta_core.matching.dictionary import build_dictionary
from rosetta_core.matching.ground_truth import (
    DEFAULT_QUANTILE,
    DEFAULT_THRESHOLD,
    label,
)
from rosetta_core.run import Run
from rosetta_core.run.ground_truth import dissect, run_truth

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANT = "K5-all"


def mine(out: Path, seed: int, n: int, center: str) -> float:
    """Mine the default run with this seed, centring and n (skipped when complete); seconds."""
    manifest = out / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("complete"):
        return 0.0
    t0 = time.perf_counter()
    cmd = [str(ROOT / ".venv" / "bin" / "rosetta"), "mine", "--n", str(n), "--seed", str(seed), "--center", center,
           "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def deepest(layers: list[tuple[str, tuple]], count: int = 2) -> list[tuple[str, tuple]]:
    return layers[-count:]


def variant_dictionary(run: Run, k: int, layers: str) -> dict:
    """The dictionary a run with best-buddy ``k`` and encoder ``layers`` ("all" or "deep2")
    computes, rebuilt from this run's tables."""
    cfg, plan = run.config, run.plan
    g = cfg.generator
    chosen = {g: plan.layers[g]}
    tables = {}
    for e in cfg.encoders:
        table = run.table(g, e)
        if layers == "deep2":
            keep = deepest(plan.layers[e])
            offsets = plan.offsets(e)
            cols = np.concatenate([offsets[name] + np.arange(shape[0]) for name, shape in keep])
            table = table[:, cols]
        else:
            keep = plan.layers[e]
        chosen[e], tables[e] = keep, table
    content, _ = build_dictionary(cfg.identity(), chosen, g, tables, run.table(g), k)
    return content


def _model_mean(values: dict[str, list[float]]) -> float:
    return float(np.mean([np.mean(v) for v in values.values() if len(v)]))


def concept_rows(found, threshold: float, draws: int, rng: np.random.Generator, generator: str) -> list[dict]:
    """Per concept: label, group/unit/generator comparisons (see the module docstring)."""
    best = {key: float(v.max()) for key, v in found.ious.items()}
    pool_share = {key: float(np.mean([best[(*key, int(ch))] >= threshold for ch in chans]))
                  for key, chans in found.pools.items()}
    rows = []
    for group in found.groups:
        score = found.scores(group)
        lab = label(score, found.names)
        randoms = [found.scores(g) for g in found.random_groups(group, draws, rng)]
        gen = {generator: group[generator]}
        gen_randoms = [found.scores(g) for g in found.random_groups(gen, draws, rng)]
        unit = _model_mean({m: [best[(m, l, ch)] >= threshold for l, ch in rows_] for m, rows_ in group.items()})
        unit_random = _model_mean({m: [pool_share[(m, l)] for l, _ in rows_] for m, rows_ in group.items()})
        rows.append({
            "factor": lab["factor"], "iou": lab["iou"], "runner_up": lab["runner_up"]["factor"],
            "units": int(sum(len(v) for v in group.values())), "generator_units": len(group[generator]),
            "group": [float(score.max() >= threshold), float(np.mean([r.max() >= threshold for r in randoms]))],
            "unit": [unit, unit_random],
            "generator": [float(found.scores(gen).max() >= threshold),
                          float(np.mean([r.max() >= threshold for r in gen_randoms]))],
            "score_max": float(score.max()), "random_max": [float(r.max()) for r in randoms],
        })
    return rows


def paired(rows: list[dict], key: str, boots: int = 2000, seed: int = 0) -> dict:
    """Shares and their paired bootstrap difference over concepts for comparison ``key``."""
    if not rows:
        return {"concepts": 0, "rosetta": None, "random": None, "difference": None, "ci95": None}
    pairs = np.array([r[key] for r in rows], dtype=float)
    diff = pairs[:, 0] - pairs[:, 1]
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(boots, len(diff)))
    means = diff[idx].mean(axis=1)
    return {"concepts": len(rows), "rosetta": float(pairs[:, 0].mean()), "random": float(pairs[:, 1].mean()),
            "difference": float(diff.mean()), "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]}


def summary(rows: list[dict], threshold: float) -> dict:
    aligned = [r for r in rows if r["group"][0]]
    factors: dict[str, int] = {}
    for r in aligned:
        factors[r["factor"]] = factors.get(r["factor"], 0) + 1
    return {"concepts": len(rows), **{k: paired(rows, k) for k in ("group", "unit", "generator")},
            "aligned_by_factor": dict(sorted(factors.items())),
            "shape_kind_concepts": sum(v for f, v in factors.items() if f.startswith("kind:")),
            "threshold": threshold}


def shuffled_null(run: Run, content: dict, masks: np.ndarray, names: list[str], quantile: float, seed: int) -> dict:
    """Concept and random-group scores against the masks of other images."""
    order = (np.arange(len(masks)) + 1) % len(masks)  # image i's maps against image i+1's masks (independent scenes)
    found = dissect(run, content, masks[order], names, quantile=quantile, rng=np.random.default_rng([seed, 21]))
    rng = np.random.default_rng([seed, 22])
    concept = [float(found.scores(g).max()) for g in found.groups]
    random = [float(found.scores(r).max()) for g in found.groups for r in found.random_groups(g, 20, rng)]
    return {"concept_score_max": concept, "random_score_max": random}


def evaluate(run_dir: Path, seed: int, args) -> dict:
    run = Run.open(run_dir)
    truth = run_truth(run, args.images)
    if truth is None:
        raise SystemExit(f"{run_dir} has no ground truth (its generator is not mini-gen with trained weights?)")
    names, masks, error = truth
    out = {"seed": seed, "center": run.config.center, "n": run.config.n, "images": len(masks),
           "image_error": error, "variants": {}}
    caches: dict[float, dict] = {}
    for k in args.k:
        for layers in args.layers:
            name = f"K{k}-{layers}"
            content = variant_dictionary(run, k, layers)
            rng = np.random.default_rng([seed, 21])
            found = dissect(run, content, masks, names, quantile=args.quantile, rng=rng,
                            known=caches.setdefault(args.quantile, {}))
            rows = concept_rows(found, args.threshold, args.draws, rng, run.config.generator)
            out["variants"][name] = {"rosetta_units": content["rosetta_units"], "concepts": rows}
            print(f"  {run_dir.name} {name}: {len(rows)} concepts, "
                  f"group {paired(rows, 'group')['rosetta']} vs {paired(rows, 'group')['random']}, "
                  f"unit {paired(rows, 'unit')['rosetta']} vs {paired(rows, 'unit')['random']}", flush=True)
    content = variant_dictionary(run, 5, "all")
    out["shuffled_null"] = shuffled_null(run, content, masks, names, args.quantile, seed)
    out["quantiles"] = {}
    for q in args.sensitivity:
        rng = np.random.default_rng([seed, 21])
        found = dissect(run, content, masks, names, quantile=q, rng=rng, known=caches.setdefault(q, {}))
        rows = concept_rows(found, args.threshold, args.draws, rng, run.config.generator)
        out["quantiles"][str(q)] = {"concepts": rows,
                                    "shuffled_null": shuffled_null(run, content, masks, names, q, seed)}
    return out


def pooled(runs: dict, threshold: float) -> dict:
    """Every variant's comparisons over all seeds' concepts, per centring."""
    out: dict = {}
    for r in runs.values():
        for name, v in r["variants"].items():
            out.setdefault(r["center"], {}).setdefault(name, []).extend(v["concepts"])
    return {c: {name: summary(rows, threshold) for name, rows in vs.items()} for c, vs in out.items()}


def null_percentiles(runs: dict, center: str, quantile: str | None = None) -> dict:
    concept, random = [], []
    for r in runs.values():
        if r["center"] != center:
            continue
        null = r["shuffled_null"] if quantile is None else r["quantiles"][quantile]["shuffled_null"]
        concept += null["concept_score_max"]
        random += null["random_score_max"]
    return {"concept_p95": float(np.quantile(concept, 0.95)), "concept_p99": float(np.quantile(concept, 0.99)),
            "random_p95": float(np.quantile(random, 0.95)), "random_p99": float(np.quantile(random, 0.99)),
            "concepts": len(concept), "random_groups": len(random)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SCENE_SPLITS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--centers", nargs="+", default=["global", "position"])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--layers", nargs="+", default=["all", "deep2"], choices=["all", "deep2"])
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--sensitivity", type=float, nargs="*", default=[0.99, 0.95, 0.9],
                        help="other quantiles tried on the default variant")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--runs", type=Path, required=True, help="folder of the mined runs (reused when complete)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    try:
        check_scene_seeds(args.split, args.seeds)
    except ValueError as err:
        parser.error(str(err))
    prov = start(seeds={"scenes": args.seeds, "random_groups": "numpy default_rng([seed, 21])"})
    import torch

    torch.set_num_threads(2)
    runs, mining = {}, {}
    for seed in args.seeds:
        for center in args.centers:
            out = args.runs / f"{args.split}-{center}-{seed}-n{args.n}"
            mining[out.name] = mine(out, seed, args.n, center)
            print(f"{out.name}: mined in {mining[out.name]:.0f} s; dissecting", flush=True)
            runs[out.name] = evaluate(out, seed, args)
    result = {
        "split": args.split, "seeds": args.seeds, "n": args.n, "centers": args.centers, "k": args.k,
        "layers": args.layers, "quantile": args.quantile, "threshold": args.threshold, "draws": args.draws,
        "default_variant": DEFAULT_VARIANT, "mining_seconds": mining,
        "pooled": pooled(runs, args.threshold),
        "shuffled_null": {c: null_percentiles(runs, c) for c in args.centers},
        "quantiles": {q: {c: {"summary": summary([row for r in runs.values() if r["center"] == c
                                                   for row in r["quantiles"][str(q)]["concepts"]], args.threshold),
                              "shuffled_null": null_percentiles(runs, c, str(q))} for c in args.centers}
                      for q in args.sensitivity},
        "runs": runs,
    }
    result["provenance"] = prov.finish()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({c: {k: {m: v[m] for m in ("group", "unit", "generator")} for k, v in vs.items()}
                      for c, vs in result["pooled"].items()}, indent=1))


if __name__ == "__main__":
    sys.exit(main())

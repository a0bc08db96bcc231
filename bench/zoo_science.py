"""Scientific check of the embedded zoo: do trained encoders share concepts with mini-gen?

For each encoder, mine ``mini-gen`` against it on ``n`` samples with position-centred
correlation and report, per (generator layer, encoder layer), the number of best buddies and
their mean correlation for three cases:

- trained: the shipped encoder;
- random: the same encoder architecture with random init (the random-init null);
- shuffled: the trained encoder with the image order permuted (the shuffled null).

Then the strongest pairs are scored against the world's ground truth: mini-gen is conditioned
on the scene code, so every generated image has the true masks of its scene (object, per
colour, per kind, contour, shadow, background). A generator unit's concept is the truth map
its activation correlates with best (over images and positions, at 64x64).

``--json FILE`` writes the tables and the labelled pairs with their provenance
(``rosetta_core.evidence``); docs/zoo-science.md and the totals in docs/embedded-zoo.md are
generated from that file by ``python docs/generate.py``.

Usage: python bench/zoo_science.py [--n 512] [--k 5] [--seed 0] [--json bench/results/zoo-science.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rosetta_core import best_buddies, pearson_table  # noqa: E402
from rosetta_core.data import COLOURS, KINDS, render_batch, truth_masks  # noqa: E402
from rosetta_core.evidence import start  # noqa: E402
from rosetta_core.zoo import list_models, load  # noqa: E402

CASES = ("trained", "random", "shuffled")
SHUFFLE_SEED = 1
STRONGEST = 8


def _truth(gen, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
    """Truth maps ``(n, channels, 64, 64)`` float32 of the scenes behind the samples."""
    scenes = render_batch(seed, np.arange(n), gen.world)
    kinds, colours = truth_masks(scenes)
    obj = scenes.object_masks.any(axis=1, keepdims=True)
    maps = [obj, kinds, colours, scenes.contour[:, None], scenes.shadow[:, None], scenes.background[:, None]]
    names = ["object", *[f"kind:{k}" for k in KINDS], *[f"colour:{c}" for c in COLOURS], "contour", "shadow", "background"]
    return np.concatenate(maps, axis=1).astype(np.float32), names


def _label(unit_maps: np.ndarray, truth: np.ndarray, names: list[str]) -> tuple[str, float]:
    """Best-correlated truth channel of one unit's maps ``(n, h, w)``."""
    up = F.interpolate(torch.from_numpy(unit_maps[:, None]), size=truth.shape[2:], mode="bilinear", align_corners=False)
    table = pearson_table([up.numpy()], [truth], center="global")[0]
    best = int(np.argmax(table))
    return names[best], float(table[best])


def _by_layer(pairs, table, offsets_g, offsets_e, names_g, names_e):
    counts, sums = defaultdict(int), defaultdict(float)
    for g, e in pairs.tolist():
        key = (names_g[np.searchsorted(offsets_g, g, side="right") - 1], names_e[np.searchsorted(offsets_e, e, side="right") - 1])
        counts[key] += 1
        sums[key] += float(table[g, e])
    return {k: (counts[k], sums[k] / counts[k]) for k in counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the tables, labels and provenance here")
    args = parser.parse_args()
    prov = start(seeds={"images": args.seed, "shuffle": SHUFFLE_SEED})
    torch.set_num_threads(2)
    gen = load("mini-gen")
    gen.module.eval()
    latents = gen.sample_latents(args.seed, np.arange(args.n))
    images, gmaps = gen.generate(latents, gen.select_layers(None))
    names_g = list(gmaps)
    g_layers = [gmaps[k].numpy() for k in names_g]
    offsets_g = np.cumsum([0] + [x.shape[1] for x in g_layers])
    truth, truth_names = _truth(gen, args.seed, args.n)
    perm = np.random.default_rng(SHUFFLE_SEED).permutation(args.n)
    lines = [f"# Scientific check: mini-gen vs each encoder (n={args.n}, K={args.k}, position-centred)", ""]
    embedded = [s for s in list_models() if s.kind == "encoder" and s.name.startswith("mini-")]
    report = {"n": args.n, "k": args.k, "center": "position", "gen_layers": names_g, "encoders": {}}
    for spec in embedded:
        if spec.weights_file is None or not spec.weights_file.is_file():
            lines += [f"## {spec.name}", "", "Not shipped (its recipe has not passed its gate): skipped.", ""]
            report["encoders"][spec.name] = {"shipped": False}
            continue
        lines += [f"## {spec.name}", "", "| gen layer | enc layer | trained BB | mean r | random-init BB | mean r | shuffled BB | mean r |", "|---|---|---|---|---|---|---|---|"]
        results = {}
        for case in CASES:
            enc = load(spec.name, "random" if case == "random" else "trained")
            emaps = enc.activations(images[perm] if case == "shuffled" else images)
            names_e = list(emaps)
            e_layers = [emaps[k].numpy() for k in names_e]
            table = pearson_table(g_layers, e_layers, center="position")
            pairs = best_buddies(table, args.k, args.k)
            offsets_e = np.cumsum([0] + [x.shape[1] for x in e_layers])
            results[case] = (_by_layer(pairs, table, offsets_g, offsets_e, names_g, names_e), pairs, table)
        keys = sorted({k for r in results.values() for k in r[0]})
        rows = []
        for key in keys:
            cells = []
            rows.append({"gen_layer": key[0], "enc_layer": key[1]})
            for case in CASES:
                count, mean = results[case][0].get(key, (0, float("nan")))
                cells += [str(count), f"{mean:.2f}"]
                rows[-1][case] = {"best_buddies": count, "mean_r": None if math.isnan(mean) else mean}
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
        _, pairs, table = results["trained"]
        strongest = sorted(pairs.tolist(), key=lambda p: -table[p[0], p[1]])[:STRONGEST]
        lines += ["", "Strongest trained pairs and the generator unit's best ground-truth match:", ""]
        labelled = []
        for g, e in strongest:
            layer = np.searchsorted(offsets_g, g, side="right") - 1
            label, r = _label(g_layers[layer][:, g - offsets_g[layer]], truth, truth_names)
            labelled.append({"gen_unit": g, "gen_layer": names_g[layer], "enc_unit": e, "r": float(table[g, e]),
                             "concept": label, "concept_r": r})
            lines.append(f"- G unit {g} ({names_g[layer]}) <-> {spec.name} unit {e}: r={table[g, e]:.2f}; concept {label} (r={r:.2f})")
        lines.append("")
        report["encoders"][spec.name] = {"shipped": True, "enc_layers": names_e, "pairs": rows, "strongest": labelled}
        print("\n".join(lines[-(len(keys) + 14):]), flush=True)
    if args.json:
        report["provenance"] = prov.finish()
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""The last steps of a mining run: the concept dictionary and the manifest.

Both read the run's tables through the :class:`~.run.Run` and write its files (a local path or
an fsspec URL); the manifest is written last and marks the run complete.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import __version__
from ..matching.dictionary import build_dictionary, validate_dictionary
from .concept_checks import check_concepts
from .ground_truth import label_concepts
from .run import Run

__all__ = ["unit_peaks", "write_dictionary", "write_manifest"]


def unit_peaks(run: Run, model_name: str) -> np.ndarray:
    """``(n, units)``: each unit's maximum over positions per image, read chunk by chunk (a run
    that keeps no activations stored them for its anchor while folding)."""
    if not run.keeps_maps:
        return np.asarray(run.store.array(run.peaks_key(model_name))[...], dtype=np.float32)
    parts = []
    for start, stop in run.plan.chunks:
        row = [np.asarray(run.store.array(k)[start:stop], dtype=np.float32).max(axis=(2, 3)) for k in run.model_keys(model_name)]
        parts.append(np.concatenate(row, axis=1))
    return np.concatenate(parts, axis=0)


def write_dictionary(run: Run, examples: int = 6) -> dict[str, Any]:
    """Best buddies, Rosetta tuples and concepts -> ``dictionary.json``; returns its content."""
    cfg, plan = run.config, run.plan
    anchor = cfg.anchor_model
    tables = {m: run.table(anchor, m) for m in cfg.others}
    peaks = unit_peaks(run, anchor)
    top = np.argsort(-peaks, axis=0, kind="stable")[:examples]  # (examples, units)
    content, _ = build_dictionary(
        cfg.identity(), plan.layers, anchor, tables, run.table(anchor), cfg.k,
        examples={u: top[:, u].tolist() for u in range(peaks.shape[1])},
        files=run.sources() if cfg.images is not None else None,
    )
    content["pairs"], content["null"] = {}, {}
    for a, b in plan.pairs():
        for null, target in ((False, content["pairs"]), (True, content["null"])):
            summary = run.pair_summary(a, b, null)
            if summary is not None:
                target[run.pair_name(a, b)] = summary
    label_concepts(run, content)  # "ground_truth" labels and summary, when the generator's world has a truth
    check_concepts(run, content)  # the shuffled-null and random-init checks of every concept
    validate_dictionary(content)
    run.write_json(run.dictionary_path, content)
    return content


def write_manifest(run: Run, dictionary: dict[str, Any], seconds: dict[str, float]) -> dict[str, Any]:
    """``manifest.json``, written last: what was computed from what, and the run's summary."""
    plan = run.plan
    pairs, null = dictionary["pairs"], dictionary["null"]
    manifest = {
        "complete": True,
        "code_version": __version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": plan.config.identity(),
        "weights_hashes": plan.weights_hashes,
        "layers": plan.to_json()["layers"],
        "outputs": {"store": "store.zarr", "dictionary": "dictionary.json", "report": "report/index.html"},
        "summary": {
            "best_buddies": {k: v["best_buddies"] for k, v in pairs.items()},
            "mean_best_buddy_correlation": {k: v["mean_correlation"] for k, v in pairs.items()},
            "rosetta_units": dictionary["rosetta_units"],
            "concepts": len(dictionary["concepts"]),
            "null": {k: {"best_buddies": v["best_buddies"], "mean_correlation": v["mean_correlation"]} for k, v in null.items()},
            "center": plan.config.center,
            "anchor": plan.config.anchor_model,
        },
        "seconds": seconds,
    }
    if plan.images is not None:
        skipped = run.store.attrs.get("skipped_images") or []
        manifest["images"] = plan.images | {"skipped_files": [{"file": f, "reason": r} for f, r in skipped]}
        manifest["summary"]["images"] = {"used": plan.n, "skipped": len(skipped)}
    checks = dictionary.get("checks")
    if checks is not None:
        null, random = checks["shuffled_null"], checks["random_init"]
        manifest["summary"]["checks"] = {
            "concepts": len(dictionary["concepts"]),
            "beat_null": null["beat"] if null["checked"] else None,
            "also_random": random["also_random"] if random["checked"] else None,
            "random_init_companion": random["companion"],
        }
    if "ground_truth" in dictionary:
        manifest["summary"]["ground_truth"] = dictionary["ground_truth"]
    run.store.consolidate()
    run.write_json(run.manifest_path, manifest)
    return manifest

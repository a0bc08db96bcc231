"""The later steps of a mining run: pair statistics, the dictionary and the manifest.

Each function reads and writes the run directory (``store.zarr``, ``dictionary.json``,
``manifest.json``), a local path or an fsspec URL; none of them imports Prefect.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from .. import __version__
from . import location
from ..matching.dictionary import build_dictionary, pair_summary, validate_dictionary
from ..matching.buddies import best_buddies
from .mining import RunPlan, pair_comoments, save_pair
from .store import RunStore, pair_key

__all__ = ["NULL_TAG", "pair_moments", "pair_statistics", "write_dictionary", "write_manifest", "unit_peaks"]

NULL_TAG = "__shuffled"
SHUFFLE_SEED = 12345


def pair_statistics(store: RunStore, plan: RunPlan, a: str, b: str | None, null: bool = False) -> dict[str, Any]:
    """Co-moments, table, top-K and best-buddy summary of one model pair (skipped when done).

    ``null=True`` computes the shuffled null instead: ``b``'s image order is permuted.
    """
    key = pair_key(a, b or a) + (NULL_TAG if null else "")
    done = _pair_summary(store, key)
    if done is not None:
        return done | {"status": "skipped"}
    acc = pair_comoments(store, plan, a, b, shuffle_seed=SHUFFLE_SEED if null else None)
    table = save_pair(store, plan, a, b, acc, NULL_TAG if null else "")
    k = plan.config.k
    pairs = best_buddies(table, min(k, table.shape[1]), min(k, table.shape[0]), exclude_diagonal=b is None)
    dead_a, dead_b = acc.constant_units()
    summary = pair_summary(table, pairs, dead_a, dead_b)
    store.group[f"moments/{key}"].attrs["summary"] = summary  # written last: marks the pair done
    return summary | {"status": "computed"}


def _pair_summary(store: RunStore, key: str) -> dict[str, Any] | None:
    prefix = f"moments/{key}"
    return dict(store.group[prefix].attrs["summary"]) if prefix in store and "summary" in store.group[prefix].attrs else None


def unit_peaks(store: RunStore, plan: RunPlan, model_name: str) -> np.ndarray:
    """``(n, units)``: each unit's maximum over positions per image, read chunk by chunk."""
    parts = []
    for start, stop in plan.chunks:
        row = [np.asarray(store.array(k)[start:stop], dtype=np.float32).max(axis=(2, 3)) for k in plan.keys(model_name)]
        parts.append(np.concatenate(row, axis=1))
    return np.concatenate(parts, axis=0)


def _table(store: RunStore, a: str, b: str, tag: str = "") -> np.ndarray:
    return np.asarray(store.array(f"correlation/{pair_key(a, b)}{tag}")[...])


def write_dictionary(run_dir: str | os.PathLike, store: RunStore, plan: RunPlan, examples: int = 6) -> dict[str, Any]:
    """Best buddies, Rosetta tuples and concepts -> ``dictionary.json``; returns its content."""
    cfg = plan.config
    g = cfg.generator
    tables = {e: _table(store, g, e) for e in cfg.encoders}
    peaks = unit_peaks(store, plan, g)
    top = np.argsort(-peaks, axis=0, kind="stable")[:examples]  # (examples, units)
    content, _ = build_dictionary(
        cfg.identity(), plan.layers, g, tables, _table(store, g, g), cfg.k,
        examples={u: top[:, u].tolist() for u in range(peaks.shape[1])},
    )
    content["pairs"], content["null"] = {}, {}
    for a, b in plan.pairs():
        for tag, target in (("", content["pairs"]), (NULL_TAG, content["null"])):
            summary = _pair_summary(store, pair_key(a, b or a) + tag)
            if summary is not None:
                target[pair_key(a, b or a)] = summary
    validate_dictionary(content)
    _write_json(location.join(run_dir, "dictionary.json"), content)
    return content


def write_manifest(run_dir: str | os.PathLike, store: RunStore, plan: RunPlan, dictionary: dict[str, Any], seconds: dict[str, float]) -> dict[str, Any]:
    """``manifest.json``, written last: what was computed from what, and the run's summary."""
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
        },
        "seconds": seconds,
    }
    store.consolidate()
    _write_json(location.join(run_dir, "manifest.json"), manifest)
    return manifest


def _write_json(where: str, content: dict) -> None:
    location.write_text(where, json.dumps(content, indent=1, sort_keys=False), content_type="application/json")


def pair_moments(store: RunStore, a: str, b: str | None):
    """The :class:`~rosetta_core.comoments.CoMoments` of a finished model pair, read back from
    ``moments/<A>__<B>`` (``b=None``: ``a`` against itself). Its ``unit_stats(l, m)`` gives the
    dataset mean and variance of every unit on each layer pair's common grid (paper Eq. 1),
    which guided inversion normalises with (Eq. 6)."""
    from ..engine.comoments import CoMoments

    prefix = f"moments/{pair_key(a, b or a)}"
    if prefix not in store:
        raise ValueError(f"{store.path} has no moments for {pair_key(a, b or a)}: that pair was not mined in this run")
    head = store.read_state(prefix, ["n", "center", "symmetric", "shapes_a", "shapes_b"])
    la, lb = len(np.asarray(head["shapes_a"])), len(np.asarray(head["shapes_b"]))
    symmetric = bool(head["symmetric"])
    keys = [f"mean_a/{i}" for i in range(la)] + ([] if symmetric else [f"mean_b/{i}" for i in range(lb)])
    pairs = [(l, m) for l in range(la) for m in range(lb) if not (symmetric and m < l)]
    keys += [f"{part}/{l}_{m}" for l, m in pairs for part in ("m2_a", "m2_b", "cross")]
    return CoMoments.from_state_dict(head | store.read_state(prefix, keys))

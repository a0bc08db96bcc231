"""A run's concepts labelled by the world's ground truth (Network Dissection, see
:mod:`rosetta_core.matching.ground_truth` for the definitions).

Where the truth comes from: a generator adapter that offers ``ground_truth(seed, indices)``
returns the :class:`~rosetta_core.data.Scenes` behind the images of ``sample_latents(seed,
indices)``. ``mini-gen`` does: its latent holds the scene code of scene ``(seed, i)`` of its world
and it was trained to render that scene, so the scene's masks (:mod:`rosetta_core.data.factors`)
are the image's truth up to the generator's rendering error. That error is measured on every run
(``image_error``: mean absolute difference between the run's images and the rendered scenes,
0-255) and a run whose images are further than :data:`MAX_IMAGE_ERROR` from their scenes (a
random-weights generator, say) gets no labels. Runs without such a generator (the paper's models,
image folders) get no ``ground_truth`` fields at all.

Cost: the IoUs are taken on the first :data:`IMAGES` images of the run, for every concept unit
and for a pool of at most :data:`POOL` units per (model, layer) in no concept, from which the
random groups are drawn (:data:`DRAWS` per concept).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.factors import factor_masks
from ..matching.ground_truth import (DEFAULT_QUANTILE, DEFAULT_THRESHOLD, draw_groups, group_scores, label,
                                     summarise, unit_ious)
from .run import Run

__all__ = ["DRAWS", "IMAGES", "MAX_IMAGE_ERROR", "POOL", "Dissection", "dissect", "label_concepts", "run_truth"]

#: images of the run the dissection uses (its first ones; all of them when the run has fewer). 256 images
#: give each unit about 1M pixels; 512 gave the same share aligned on a validation run (seed 10003,
#: n=512) at twice the cost (45 s against 22 s on 2 loaded cores)
IMAGES = 256
#: random groups drawn per concept for the baseline
DRAWS = 20
#: units in no concept evaluated per (model, layer), the random groups' pool (more where a
#: concept takes more units from one layer)
POOL = 64
#: largest mean absolute pixel difference (0-255) between the run's images and the scenes
#: behind them for the scenes' masks to count as the images' truth (trained mini-gen: about 2)
MAX_IMAGE_ERROR = 8.0


def _concept_units(concept: dict[str, Any], anchor: str) -> dict[str, list[dict[str, Any]]]:
    """model -> the concept's units in it: the anchor's (generator's) units, then each member model's."""
    own = concept.get("anchor_units", concept.get("generator_units", []))
    return {anchor: list(own), **{m: list(v) for m, v in concept["members"].items()}}


def run_truth(run: Run, images: int = IMAGES) -> tuple[list[str], np.ndarray, float] | None:
    """``(factor names, masks (m, factors, H, W), image_error)`` of the run's first ``m =
    min(n, images)`` images, or None when the run's generator offers no ground truth or its
    images are not its scenes' (see the module docstring)."""
    cfg = run.config
    generator = getattr(cfg, "generator", None)
    if not generator or getattr(cfg, "images", None) is not None:
        return None
    from .models import model  # loads the zoo (torch): only here

    source = getattr(model(cfg, generator), "ground_truth", None)
    if source is None:
        return None
    stored = run.store.array("images")
    m = min(int(stored.shape[0]), int(images))
    scenes = source(cfg.seed, np.arange(m))
    pixels = np.asarray(stored[:m])
    if scenes.images.shape != pixels.shape:
        return None
    error = float(np.abs(pixels.astype(np.float32) - scenes.images.astype(np.float32)).mean())
    if error > MAX_IMAGE_ERROR:
        return None
    names, masks = factor_masks(scenes)
    return names, masks, error


def _read_units(run: Run, model: str, layer: str, channels: np.ndarray, m: int) -> np.ndarray:
    """``(m, len(channels), h, w)`` maps of some channels of one layer, read chunk by chunk."""
    array = run.store.array(run.maps_key(model, layer))
    parts = []
    for start, stop in run.plan.chunks:
        if start >= m:
            break
        parts.append(np.asarray(array[start:min(stop, m)])[:, channels])
    return np.concatenate(parts, axis=0)


Group = dict  # model -> [(layer, channel), ...]: the units of a concept or of a random group


@dataclass(frozen=True)
class Dissection:
    """The unit-level part of :func:`label_concepts`: ``groups`` (one per concept: model ->
    ``[(layer, channel)]``), ``pools`` ((model, layer) -> the sampled units in no concept),
    ``ious`` ((model, layer, channel) -> IoU per factor ``(factors,)``) for every unit of both,
    and the truth's ``names``."""

    groups: list[Group]
    pools: dict[tuple[str, str], np.ndarray]
    ious: dict[tuple[str, str, int], np.ndarray]
    names: list[str]

    def scores(self, group: Group) -> np.ndarray:
        """A group's score per factor (:func:`~rosetta_core.matching.ground_truth.group_scores`)."""
        return group_scores({model: np.stack([self.ious[(model, layer, ch)] for layer, ch in rows])
                             for model, rows in group.items() if rows})

    def random_groups(self, group: Group, draws: int, rng: np.random.Generator) -> list[Group]:
        """``draws`` groups of pool units from the same (model, layer)s in the same numbers."""
        composition: dict[tuple[str, str], int] = defaultdict(int)
        for model, rows in group.items():
            for layer, _ in rows:
                composition[(model, layer)] += 1
        out = []
        for g in draw_groups(composition, self.pools, draws, rng):
            by_model: Group = defaultdict(list)
            for (model, layer), chosen in g.items():
                by_model[model] += [(layer, int(ch)) for ch in chosen]
            out.append(dict(by_model))
        return out


def dissect(run: Run, content: dict[str, Any], masks: np.ndarray, names: list[str], *,
            quantile: float = DEFAULT_QUANTILE, pool: int = POOL, rng: np.random.Generator,
            known: dict[tuple[str, str, int], np.ndarray] | None = None) -> Dissection:
    """IoUs of every concept unit of ``content`` and of a pool of at most ``pool`` units in no
    concept per (model, layer) the concepts use, on the run's first ``len(masks)`` images.
    ``known``: IoUs already computed with these masks and ``quantile`` (reused, and updated)."""
    anchor = content.get("anchor") or run.config.generator
    groups = [{model: [(u["layer"], int(u["channel"])) for u in rows]
               for model, rows in _concept_units(c, anchor).items()} for c in content["concepts"]]
    taken: dict[tuple[str, str], set[int]] = defaultdict(set)
    largest: dict[tuple[str, str], int] = defaultdict(int)
    for group in groups:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for model, rows in group.items():
            for layer, ch in rows:
                taken[(model, layer)].add(ch)
                counts[(model, layer)] += 1
        for key, count in counts.items():
            largest[key] = max(largest[key], count)
    sizes = {(model, entry["layer"]): int(entry["units"]) for model, layers in content["models"].items() for entry in layers}
    pools: dict[tuple[str, str], np.ndarray] = {}
    for key in sorted(taken):
        free = np.setdiff1d(np.arange(sizes[key]), sorted(taken[key]))
        if not len(free):  # every unit of the layer is in a concept: draw from the whole layer
            free = np.arange(sizes[key])
        pools[key] = np.sort(rng.choice(free, size=min(len(free), max(pool, largest[key])), replace=False))
    ious: dict[tuple[str, str, int], np.ndarray] = {} if known is None else known
    wanted: dict[tuple[str, str], np.ndarray] = {}
    for key in sorted(taken):
        channels = np.union1d(sorted(taken[key]), pools[key]).astype(np.int64)
        channels = np.asarray([ch for ch in channels.tolist() if (*key, ch) not in ious], dtype=np.int64)
        if len(channels):
            wanted[key] = channels
    for key, maps in _units(run, wanted, len(masks)):
        table, _ = unit_ious(maps, masks, quantile)
        ious.update({(*key, int(ch)): row for ch, row in zip(wanted[key].tolist(), table)})
    return Dissection(groups, pools, ious, list(names))


def _units(run: Run, wanted: dict[tuple[str, str], np.ndarray], m: int):
    """``((model, layer), maps (m, channels, h, w))`` in the store's dtype for every key of
    ``wanted`` (the channels of each): read layer by layer, or for a run that keeps no
    activations computed again model by model on its first ``m`` images (:mod:`.maps`)."""
    if run.keeps_maps:
        for key, channels in wanted.items():
            yield key, _read_units(run, *key, channels, m)
        return
    from .maps import model_maps

    for model in sorted({model for model, _ in wanted}):
        layers = [layer for name, layer in wanted if name == model]
        got = model_maps(run, model, np.arange(m), layers, channels={layer: wanted[model, layer] for layer in layers})
        for layer in layers:
            yield (model, layer), got.pop(layer).astype(run.config.dtype)


def label_concepts(run: Run, content: dict[str, Any], *, quantile: float = DEFAULT_QUANTILE,
                   threshold: float = DEFAULT_THRESHOLD, images: int = IMAGES, draws: int = DRAWS,
                   pool: int = POOL, truth: tuple[list[str], np.ndarray, float] | None = None) -> dict | None:
    """Label every concept of dictionary ``content`` in place and return the run's summary.

    Each concept gets ``ground_truth``: ``{"factor", "iou", "runner_up": {"factor", "iou"},
    "aligned", "models": {model: {"factor", "iou"}}}`` (``models``: the label each model's units
    alone would give); ``content["ground_truth"]`` is the summary of
    :func:`~rosetta_core.matching.ground_truth.summarise` plus ``images``, ``image_error``,
    ``pool`` and the source. Returns None (and changes nothing) when the run has no ground truth.
    ``truth``: :func:`run_truth`'s result, to reuse it.
    """
    truth = truth if truth is not None else run_truth(run, images)
    if truth is None:
        return None
    names, masks, error = truth
    rng = np.random.default_rng([int(run.config.seed), 21])
    found = dissect(run, content, masks, names, quantile=quantile, pool=pool, rng=rng)
    concept_scores, random_scores = [], []
    for concept, group in zip(content["concepts"], found.groups):
        score = found.scores(group)
        entry = label(score, names)
        entry["aligned"] = bool(entry["iou"] >= threshold)
        entry["models"] = {model: {k: v for k, v in label(found.scores({model: rows}), names).items() if k != "runner_up"}
                           for model, rows in group.items() if rows}
        concept["ground_truth"] = entry
        concept_scores.append(score)
        random_scores.append([found.scores(g) for g in found.random_groups(group, draws, rng)])
    c, m = len(found.groups), len(masks)
    summary = summarise(np.reshape(concept_scores, (c, len(names))), np.reshape(random_scores, (c, draws, len(names))),
                        names, threshold, quantile, coverage=masks.mean(axis=(0, 2, 3)), seed=int(run.config.seed))
    anchor = content.get("anchor") or run.config.generator
    summary.update({"images": m, "image_error": round(error, 3), "pool": int(pool),
                    "source": f"scenes behind {anchor}'s latents (its ground_truth), first {m} images"})
    content["ground_truth"] = summary
    return summary

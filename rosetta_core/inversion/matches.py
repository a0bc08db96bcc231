"""The matched unit pairs of a finished mining run, with the statistics that normalise them.

Guided inversion (paper Eq. 6) compares the generator's map of unit ``j`` with the target map
of its best buddy ``k``, each centred and scaled by that unit's *dataset* mean and variance from
mining. Those statistics depend on the grid the pair was correlated on (both maps are resized
to the elementwise-larger grid, DESIGN §3.1-3.2), so they are read per layer pair from the
run's co-moments (:meth:`rosetta_core.run.Run.moments`), never shared between pairs.

Pairs are grouped by (generator layer, target layer): one :class:`PairGroup` holds every pair of
one layer pair, with channel index arrays ``(P,)`` and statistics ``(P,)`` (``center="global"``)
or ``(P, H, W)`` (``center="position"``), so the loss is a handful of batched tensor ops.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..run.run import Run

__all__ = ["PairGroup", "Matches", "open_run", "encoder_matches", "self_matches", "concept_units"]


@dataclass(frozen=True)
class PairGroup:
    """Matched pairs between generator layer ``gen_layer`` and ``target_model``/``target_layer``.

    ``grid``: the common ``(H, W)`` both maps are resized to. ``gen_channels``,
    ``target_channels``: int64 ``(P,)``. ``gen_mean``/``target_mean``: ``(P,)`` or ``(P, H, W)``;
    ``gen_std``/``target_std``: ``(P,)`` (all float64, dataset statistics on ``grid``).
    ``gen_units``: the generator's global unit indices ``(P,)`` (to pick units for edits).
    """

    gen_layer: str
    target_model: str
    target_layer: str
    grid: tuple[int, int]
    gen_channels: np.ndarray
    target_channels: np.ndarray
    gen_units: np.ndarray
    gen_mean: np.ndarray
    gen_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    def __len__(self) -> int:
        return len(self.gen_channels)


@dataclass(frozen=True)
class Matches:
    """The pairs guidance uses: ``groups`` of :class:`PairGroup`; ``dropped`` counts pairs left
    out because a side had zero variance in the dataset (they cannot be normalised)."""

    generator: str
    groups: tuple[PairGroup, ...]
    dropped: int = 0

    @property
    def n_pairs(self) -> int:
        return sum(len(g) for g in self.groups)

    def models(self) -> list[str]:
        return sorted({g.target_model for g in self.groups})


def open_run(where: str | Path) -> Run:
    """A run whose mining finished (``manifest.json`` complete), at a path or an fsspec URL;
    a clear error otherwise, also for a run of an image dataset (it has no generator to invert)."""
    run = Run.open(where, finished=True)
    if run.config.generator is None:
        raise ValueError(f"{run.location} mined the image dataset {run.config.images} (no generator): inversion, "
                         "visualisation and editing need a run of a generator; mine one with --generator")
    return run


def concept_units(run: Run, concept: int) -> tuple[set[int], dict[str, set[int]]]:
    """Generator units and per-encoder member units of concept ``concept``."""
    ids = [c["id"] for c in run.dictionary["concepts"]]
    if concept not in ids:
        shown = f"{min(ids)}..{max(ids)}" if ids else "none (this run found no concepts)"
        raise ValueError(f"concept {concept} is not in {run.dictionary_path}; valid ids: {shown}")
    entry = next(c for c in run.dictionary["concepts"] if c["id"] == concept)
    return {u["unit"] for u in entry["anchor_units"]}, {m: {u["unit"] for u in us} for m, us in entry["members"].items()}


def _groups(run: Run, target: str, pairs: list[tuple[int, int]]) -> tuple[list[PairGroup], int]:
    """Group ``(generator unit, target unit)`` pairs by layer pair, with their statistics."""
    plan, gen = run.plan, run.plan.config.generator
    self_pair = target == gen
    moments = run.moments(gen, None if self_pair else target)
    by_layer: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for g, t in pairs:
        (lg, cg), (lt, ct) = plan.locate(gen, g), plan.locate(target, t)
        by_layer[lg, lt].append((cg, ct, g))
    groups, dropped = [], 0
    for (lg, lt), rows in sorted(by_layer.items()):
        if self_pair and lt < lg:  # the symmetric store keeps l <= m only
            stats = moments.unit_stats(lt, lg)
            stats = {"mean_a": stats["mean_b"], "mean_b": stats["mean_a"], "var_a": stats["var_b"], "var_b": stats["var_a"]}
        else:
            stats = moments.unit_stats(lg, lt)
        large, _ = moments.grids(lg, lt) if not (self_pair and lt < lg) else moments.grids(lt, lg)
        cg, ct, gu = (np.asarray(v, dtype=np.int64) for v in zip(*rows))
        sg, st = np.sqrt(stats["var_a"][cg]), np.sqrt(stats["var_b"][ct])
        keep = (sg > 0) & (st > 0)
        dropped += int((~keep).sum())
        if not keep.any():
            continue
        groups.append(PairGroup(
            gen_layer=plan.layers[gen][lg][0], target_model=target, target_layer=plan.layers[target][lt][0],
            grid=(int(large[0]), int(large[1])), gen_channels=cg[keep], target_channels=ct[keep], gen_units=gu[keep],
            gen_mean=np.asarray(stats["mean_a"])[cg[keep]], gen_std=sg[keep],
            target_mean=np.asarray(stats["mean_b"])[ct[keep]], target_std=st[keep],
        ))
    return groups, dropped


def encoder_matches(run: Run, encoders: list[str] | None = None, concept: int | None = None,
                    gen_unit: int | None = None) -> Matches:
    """Best-buddy pairs of the generator with each of ``encoders`` (default: every encoder of
    the run), optionally only those of concept ``concept`` and/or of generator unit ``gen_unit``
    (one Rosetta neuron: its pairs with each encoder)."""
    known = list(run.plan.config.encoders)
    chosen = known if not encoders else list(encoders)
    bad = [e for e in chosen if e not in known]
    if bad:
        raise ValueError(f"encoder(s) {bad} were not mined in {run.location}; valid: {', '.join(known)}")
    g_units, members = concept_units(run, concept) if concept is not None else (None, {})
    groups, dropped = [], 0
    for enc in chosen:
        pairs = [(int(g), int(t)) for g, t in run.dictionary["best_buddies"].get(enc, [])]
        if g_units is not None:
            pairs = [(g, t) for g, t in pairs if g in g_units and t in members.get(enc, set())]
        if gen_unit is not None:
            pairs = [(g, t) for g, t in pairs if g == gen_unit]
        if pairs:
            got, lost = _groups(run, enc, pairs)
            groups += got
            dropped += lost
    out = Matches(run.plan.config.generator, tuple(groups), dropped)
    if out.n_pairs == 0:
        what = " ".join(w for w in (f"concept {concept}" if concept is not None else "",
                                     f"generator unit {gen_unit}" if gen_unit is not None else "") if w) or "this run"
        if concept is not None and gen_unit is not None:
            what += f" (the concept's generator units: {sorted(g_units)})"
        raise ValueError(f"{what} has no usable matched pairs with {', '.join(chosen)}; choose other --encoders or another run")
    return out


def self_matches(run: Run, units: list[int] | None = None) -> Matches:
    """The generator's Rosetta units (or ``units``) paired with themselves, for edits: the
    target is the generator's own (edited) map, normalised by its self statistics."""
    gen = run.plan.config.generator
    if units is None:
        units = sorted({u["unit"] for c in run.dictionary["concepts"] for u in c["anchor_units"]})
    total = sum(s[0] for _, s in run.plan.layers[gen])
    bad = [u for u in units if not 0 <= int(u) < total]
    if bad:
        raise ValueError(f"generator unit(s) {bad} do not exist; valid: 0..{total - 1}")
    if not units:
        raise ValueError(f"{run.location} has no Rosetta units to edit (no concepts); mine more images or more encoders")
    groups, dropped = _groups(run, gen, [(int(u), int(u)) for u in units])
    return Matches(gen, tuple(groups), dropped)

"""How big and how long a mining run will be, before it runs (``rosetta plan``).

Pure arithmetic over the layers of each model (names, units, grids) and the run's size; no
model is run here (the layers of a registry model come from :func:`rosetta_core.zoo.probe.model_layers`). The counts follow the exact formulation of DESIGN §3.1 as implemented in
:mod:`rosetta_core.engine.comoments`:

- model pairs: (G, E) for every encoder, (G, G) with layer pairs ``l <= m``, and the shuffled
  null (G, E) of every encoder that the mining flow adds;
- for a layer pair ``a`` ``(ua, ha, wa)``, ``b`` ``(ub, hb, wb)``, the small grid is
  ``(hs, ws) = (min(ha, hb), min(wa, wb))``; the cross moments are one matmul of
  ``2 * ua * ub * n * hs * ws`` FLOPs; projecting a map onto the small grid costs, per image and
  unit, ``2 * h * w * ws`` along x (when ``w > ws``) plus ``2 * hs * h * ws`` along y (when
  ``h > hs``); per-unit sums are lower-order and not counted;
- store: activations ``n * units * h * w`` at the run's dtype, images ``n * 3 * S * S`` uint8,
  per pair a float32 correlation table and float64 moments (cross ``ua * ub``, two second
  moments per layer pair, mean maps); a run that keeps no activations (``activations="none"``)
  stores instead each anchor unit's peak per image (float32) and, while it runs, the co-moments
  of groups of chunks waiting to be merged (:attr:`RunSize.fold_bytes`);
- peak memory of one Dask task: the larger of a chunk task (both sides' float32 maps of one
  chunk, their float32 mean maps and projections onto every small grid, the layer's own grid
  included (a centred copy), one float32 scratch table of the largest layer pair per thread,
  the float64 moments it returns) and a merge task (three float64
  moment states: two inputs and the result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .threads import engine_threads

__all__ = ["ACTIVATIONS", "GPU_FP32_TFLOPS", "LayerShape", "PairCost", "RunSize", "matmul_flop_rate", "plan_size"]

#: peak dense float32 TFLOP/s of common GPU classes (vendor data sheets, no tensor cores)
GPU_FP32_TFLOPS = {"T4": 8.1, "V100": 15.7, "A10": 31.2, "A100": 19.5, "L4": 30.3, "L40S": 91.6,
                   "RTX4090": 82.6, "H100": 67.0, "H200": 67.0}
DTYPE_BYTES = {"float16": 2, "float32": 4}
#: what a run keeps of the activation maps (``MineConfig.activations``)
ACTIVATIONS = ("keep", "none")

LayerShape = tuple[str, int, int, int]  # (layer, units, h, w)


@dataclass(frozen=True)
class PairCost:
    """FLOPs and bytes of one model pair (``b`` is ``a`` for the self pair)."""

    a: str
    b: str
    cross_flops: int
    projection_flops: int
    moments_bytes: int
    table_bytes: int
    chunk_task_bytes: int

    @property
    def flops(self) -> int:
        return self.cross_flops + self.projection_flops

    @property
    def task_bytes(self) -> int:
        return max(self.chunk_task_bytes, 3 * self.moments_bytes)


@dataclass(frozen=True)
class RunSize:
    """Everything ``rosetta plan`` prints; counts are exact for the formulas above."""

    n: int
    chunk_size: int
    dtype: str
    units: dict[str, int]
    activation_bytes: dict[str, int]
    image_bytes: int
    pairs: list[PairCost] = field(default_factory=list)
    threads: int = 1  # threads of one statistics task (the per-thread scratch of a chunk task)
    activations: str = "keep"  # "none": no maps stored (only the anchor's peaks); see fold_bytes
    peaks_bytes: int = 0  # activations="none": (n, anchor units) float32 peaks, the dictionary's examples

    @property
    def total_flops(self) -> int:
        return sum(p.flops for p in self.pairs)

    @property
    def store_bytes(self) -> int:
        """The finished store: activations (or, keeping none, the anchor's peaks), images,
        moments and tables."""
        tables = sum(p.moments_bytes + p.table_bytes for p in self.pairs)
        maps = sum(self.activation_bytes.values()) if self.activations == "keep" else self.peaks_bytes
        return maps + self.image_bytes + tables

    @property
    def fold_bytes(self) -> int:
        """``activations="none"``: the most co-moment states of groups of chunks on disk at once
        while the run folds them (each pair's chunks merge as the balanced binary tree of
        :func:`~rosetta_core.engine.reduction.tree_reduce`, a node as soon as its two halves
        are there): one per tree level below the root, plus the two halves of the node being
        merged, when chunks finish about in order. 0 when the maps are kept, or for one chunk."""
        chunks = -(-self.n // self.chunk_size)
        if self.activations == "keep" or chunks < 2:
            return 0
        levels = int(np.ceil(np.log2(chunks)))
        return min(2 * chunks - 2, levels + 2) * sum(p.moments_bytes for p in self.pairs)

    @property
    def disk_bytes(self) -> int:
        """The most the run holds on disk at once: the store, plus :attr:`fold_bytes` while it runs."""
        return self.store_bytes + self.fold_bytes

    @property
    def peak_task_bytes(self) -> int:
        return max(p.task_bytes for p in self.pairs)

    def seconds(self, flop_rate: float) -> float:
        """Statistics time at ``flop_rate`` FLOP/s (a lower bound: memory traffic not counted)."""
        return self.total_flops / flop_rate


def _projection_flops(h: int, w: int, hs: int, ws: int) -> int:
    flops = 2 * h * w * ws if w > ws else 0
    return flops + (2 * hs * h * ws if h > hs else 0)


def _pair(a: str, la: list[LayerShape], b: str, lb: list[LayerShape], n: int, chunk: int, self_pair: bool,
          threads: int) -> PairCost:
    cross = proj = moments = chunk_maps = largest_table = 0
    projected: set[tuple[str, str, int, int]] = set()
    for i, (name_a, ua, ha, wa) in enumerate(la):
        for j, (name_b, ub, hb, wb) in enumerate(lb):
            if self_pair and j < i:
                continue
            hs, ws = min(ha, hb), min(wa, wb)
            cross += 2 * ua * ub * n * hs * ws
            moments += 8 * (ua * ub + ua + ub)
            largest_table = max(largest_table, ua * ub)
            for side, name, units, h, w in (("a", name_a, ua, ha, wa), ("b", name_b, ub, hb, wb)):
                key = (side if not self_pair else "a", name, hs, ws)
                if key not in projected:  # a layer is projected once per small grid
                    projected.add(key)
                    # a map on its own grid costs no FLOPs, but its centred copy is held too
                    proj += n * units * _projection_flops(h, w, hs, ws)
                    chunk_maps += 4 * chunk * units * hs * ws
    means = sum(8 * u * h * w for _, u, h, w in la) + (0 if self_pair else sum(8 * u * h * w for _, u, h, w in lb))
    moments += means
    maps = sum(u * h * w for _, u, h, w in la) + (0 if self_pair else sum(u * h * w for _, u, h, w in lb))
    inputs, chunk_means = 4 * chunk * maps, 4 * maps
    table = 4 * sum(l[1] for l in la) * sum(l[1] for l in lb)
    chunk_task = inputs + chunk_means + chunk_maps + threads * 4 * largest_table + moments
    return PairCost(a, b, cross, proj, moments, table, chunk_task)


def plan_size(
    generator: str,
    layers: dict[str, list[LayerShape]],
    encoders: list[str],
    n: int,
    image_size: int,
    dtype: str = "float16",
    chunk_size: int = 100,
    threads: int | None = None,
    activations: str = "keep",
) -> RunSize:
    """The size of a run of ``generator`` against ``encoders`` over ``n`` images.

    ``layers``: model -> hooked layers ``(name, units, h, w)`` in forward order (every model of
    the run); ``image_size``: the generator's image side in pixels; ``threads``: threads of one
    statistics task (default: ``ROSETTA_THREADS`` or this machine's CPUs, as the engine uses);
    ``activations``: ``"keep"`` (the maps are stored) or ``"none"`` (see :class:`RunSize`).
    An image run (``--images``) passes its anchor encoder as ``generator`` and its stored
    preview side as ``image_size``.
    """
    threads = engine_threads() if threads is None else threads
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype={dtype!r}; valid: {', '.join(DTYPE_BYTES)}")
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations={activations!r}; valid: {', '.join(ACTIVATIONS)}")
    if n < 1 or chunk_size < 1 or threads < 1:
        raise ValueError(f"n={n}, chunk_size={chunk_size} and threads={threads} must be >= 1")
    missing = [m for m in [generator, *encoders] if m not in layers]
    if missing:
        raise ValueError(f"no layers given for {missing}; layers has {sorted(layers)}")
    chunk = min(chunk_size, n)
    units = {m: sum(l[1] for l in layers[m]) for m in [generator, *encoders]}
    acts = {m: n * DTYPE_BYTES[dtype] * sum(u * h * w for _, u, h, w in layers[m]) for m in units}
    g = layers[generator]
    pairs = [_pair(generator, g, e, layers[e], n, chunk, False, threads) for e in encoders]
    pairs.append(_pair(generator, g, generator, g, n, chunk, True, threads))
    for null in pairs[:len(encoders)]:  # the mining flow's shuffled-image null of each encoder: same cost as its pair
        pairs.append(PairCost(null.a, f"{null.b} (shuffled null)", null.cross_flops, null.projection_flops,
                              null.moments_bytes, null.table_bytes, null.chunk_task_bytes))
    return RunSize(n, chunk, dtype, units, acts, n * 3 * image_size * image_size, pairs, threads, activations,
                   4 * n * units[generator] if activations == "none" else 0)


def matmul_flop_rate(size: int = 1024, seconds: float = 0.5) -> float:
    """FLOP/s of float32 numpy matmul on this machine (the engine's kernel), timed for about
    ``seconds``; the best of the repeats."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2.0 * size**3 / best


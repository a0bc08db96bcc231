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
- peak memory of one Dask task of the statistics (``PairCost.task_bytes``): the largest of a
  chunk task, a merge task (three float64 moment states: two inputs and the result, or a block's
  state being packed into the store) and the pair's table task. A chunk task reads one chunk of
  the store (every layer of the pair or block, in the run's dtype; zarr decodes one stored chunk
  of a whole layer at a time: up to three times its size are held), then reduces it in steps of at
  most :data:`REDUCE_IMAGES` images (:func:`reduce_bounds`): a float32 copy of one step (none for
  float32 stores), the step's float32 mean maps and projections onto every small grid (the
  layer's own grid included: a centred copy), per thread one float32 scratch table of the
  largest layer pair and the temporaries of one block of images (:data:`BLOCK_TEMPORARIES`),
  and the float64 moments it returns. The table task holds the moments (or, for
  a pair cut into blocks, two copies of the largest block's state and its table), the float32
  table, a float32 work copy of it and one byte per entry (the top-K lists' checks);
- memory budget (:func:`task_budget`, :func:`plan_blocks`): a pair whose tasks exceed the budget
  is cut into blocks of units: contiguous ranges of each side's units (across layers), cut where
  the maps' sizes add up to equal shares; a block's tasks are a pair of models restricted to
  those units (the self pair keeps the blocks ``i <= j`` of one cut of its units). The co-moments
  of a block are exactly the sub-blocks of the pair's (every per-unit statistic is per unit), so
  its tasks are counted by the same formulas over the layers' slices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .grid_sums import BLOCK_BYTES
from .threads import engine_threads

__all__ = ["ACTIVATIONS", "GPU_FP32_TFLOPS", "MACHINE_SHARE", "PAUSE_SHARE", "REDUCE_IMAGES", "Block", "LayerShape",
           "PairCost", "RunSize", "machine_memory_limit", "matmul_flop_rate", "plan_blocks", "plan_size", "reduce_bounds",
           "task_budget"]

#: peak dense float32 TFLOP/s of common GPU classes (vendor data sheets, no tensor cores)
GPU_FP32_TFLOPS = {"T4": 8.1, "V100": 15.7, "A10": 31.2, "A100": 19.5, "L4": 30.3, "L40S": 91.6,
                   "RTX4090": 82.6, "H100": 67.0, "H200": 67.0}
DTYPE_BYTES = {"float16": 2, "float32": 4}
#: what a run keeps of the activation maps (``MineConfig.activations``)
ACTIVATIONS = ("keep", "none")
#: images per step of the reduction inside one stored chunk (bounds a task's float32 copies)
REDUCE_IMAGES = 50
#: the share of a worker's memory limit its tasks may take: Dask pauses a worker at 80% of its
#: limit (``distributed.worker.memory.pause``); the rest is the worker's own (interpreter, libraries)
PAUSE_SHARE = 0.8
#: a memory limit's default off a Dask worker: this share of the machine's RAM (or of the GPU's
#: memory for statistics on a GPU)
MACHINE_SHARE = 0.8

#: a thread's temporaries while it projects a block of images and units (a centred copy, its
#: products along x and y, its neighbour products), in blocks of ``BLOCK_BYTES``: measured
#: (tests/unit/test_planner.py)
BLOCK_TEMPORARIES = 3

LayerShape = tuple[str, int, int, int]  # (layer, units, h, w)


def reduce_bounds(m: int, step: int = REDUCE_IMAGES) -> list[int]:
    """Bounds of the near-equal steps of at most ``step`` images that a chunk of ``m`` images
    is reduced in (``[0, ..., m]``)."""
    steps = max(1, -(-m // step))
    return [round(i * m / steps) for i in range(steps + 1)]


def task_budget(limit: int, threads_per_worker: int = 1, share: float = PAUSE_SHARE) -> int:
    """The bytes one task may take on a worker whose memory limit is ``limit`` bytes and which
    runs ``threads_per_worker`` tasks at once: ``share`` of the limit, shared by its threads."""
    if limit < 1 or threads_per_worker < 1:
        raise ValueError(f"memory limit {limit} and threads per worker {threads_per_worker} must be >= 1")
    return int(limit * share) // threads_per_worker


def machine_memory_limit(device: str | None = None) -> int:
    """The default memory limit where no Dask worker sets one: :data:`MACHINE_SHARE` of this
    machine's RAM, or for an accelerator ``device`` (``cuda[:N]``) of that GPU's memory."""
    if device is not None and str(device).split(":")[0] not in ("", "cpu"):
        import torch

        return int(MACHINE_SHARE * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    import psutil

    return int(MACHINE_SHARE * psutil.virtual_memory().total)


@dataclass(frozen=True)
class Block:
    """A block of a model pair: side a's units ``rows`` and side b's units ``cols`` (global unit
    ranges ``[start, stop)``), with the bytes of its tasks (:mod:`planner <rosetta_core.engine.planner>`)."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    chunk_task_bytes: int = 0
    moments_bytes: int = 0

    @property
    def task_bytes(self) -> int:
        """The larger of its chunk task and its merge task (three moment states)."""
        return max(self.chunk_task_bytes, 3 * self.moments_bytes)

    @property
    def table_bytes(self) -> int:
        return 4 * (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])


@dataclass(frozen=True)
class PairCost:
    """FLOPs and bytes of one model pair (``b`` is ``a`` for the self pair); ``blocks``: the
    blocks its statistics are cut into (one block: not cut)."""

    a: str
    b: str
    cross_flops: int
    projection_flops: int
    moments_bytes: int
    table_bytes: int
    chunk_task_bytes: int
    table_task_bytes: int = 0
    blocks: tuple[Block, ...] = ()

    @property
    def flops(self) -> int:
        return self.cross_flops + self.projection_flops

    @property
    def merge_task_bytes(self) -> int:
        largest = max((b.moments_bytes for b in self.blocks), default=self.moments_bytes)
        return 3 * largest

    @property
    def task_bytes(self) -> int:
        return max(self.chunk_task_bytes, self.merge_task_bytes, self.table_task_bytes)

    @property
    def split(self) -> bool:
        return len(self.blocks) > 1


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
    budget: int | None = None  # bytes one task may take (task_budget); None: no budget, no pair cut

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


#: a layer's slice in a block: (units in the block, h, w, units of the whole layer)
Slice = tuple[int, int, int, int]


def _task_bytes(la: list[Slice], lb: list[Slice] | None, chunk: int, threads: int, dtype: str) -> tuple[int, int]:
    """``(chunk task bytes, moments bytes)`` of the co-moments of the slices ``la`` against
    ``lb`` (None: ``la`` with itself, layer pairs ``l <= m``), as the module docstring counts."""
    bounds = reduce_bounds(chunk)
    step = max(hi - lo for lo, hi in zip(bounds[:-1], bounds[1:]))
    symmetric, lb = lb is None, la if lb is None else lb
    moments = proj = largest = 0
    projected: set[tuple[str, int, int, int]] = set()
    for i, (ua, ha, wa, _) in enumerate(la):
        for j, (ub, hb, wb, _) in enumerate(lb):
            if symmetric and j < i:
                continue
            hs, ws = min(ha, hb), min(wa, wb)
            moments += 8 * (ua * ub + ua + ub)
            largest = max(largest, ua * ub)
            for side, idx, units in (("a", i, ua), ("a" if symmetric else "b", j, ub)):
                if (side, idx, hs, ws) not in projected:  # a layer is projected once per small grid
                    projected.add((side, idx, hs, ws))
                    proj += 4 * step * units * hs * ws  # its own grid too: a centred copy
    read = la if symmetric else la + lb
    maps = sum(u * h * w for u, h, w, _ in read)
    moments += 8 * maps  # float64 mean maps
    size = DTYPE_BYTES[dtype]
    stored = size * chunk * maps
    # zarr decodes one stored chunk of a whole layer at a time; with its compressed bytes and the
    # buffers its threads have not freed yet, up to about three of them (measured with
    # tracemalloc: tests/unit/test_planner.py)
    decode = 3 * size * chunk * max(full * h * w for _, h, w, full in read)
    step_copy = 4 * step * maps if dtype != "float32" else 0
    scratch = threads * (4 * largest + BLOCK_TEMPORARIES * BLOCK_BYTES)
    compute = step_copy + 4 * maps + proj + scratch + moments
    return stored + max(decode, compute), moments


def _unit_slices(layers: list[LayerShape], start: int, stop: int) -> list[tuple[int, int, int]]:
    """``(layer index, first, stop)`` of each layer's units within global units ``[start, stop)``."""
    out, offset = [], 0
    for i, (_, units, _, _) in enumerate(layers):
        lo, hi = max(start, offset), min(stop, offset + units)
        if lo < hi:
            out.append((i, lo - offset, hi - offset))
        offset += units
    return out


def _slices(layers: list[LayerShape], start: int, stop: int) -> list[Slice]:
    return [(hi - lo, layers[i][2], layers[i][3], layers[i][1]) for i, lo, hi in _unit_slices(layers, start, stop)]


def _cuts(layers: list[LayerShape], parts: int) -> list[int]:
    """Unit bounds ``[0, ..., units]`` of ``parts`` contiguous ranges whose maps (``h * w`` per
    unit) add up to about equal shares (each at least one unit)."""
    weights = np.concatenate([np.full(u, h * w, dtype=np.float64) for _, u, h, w in layers])
    total = len(weights)
    parts = min(parts, total)
    ends = np.cumsum(weights)
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, parts) / parts, side="left") + 1
    bounds = sorted({0, total, *(int(c) for c in cuts if 0 < c < total)})
    return bounds


def _blocks(la: list[LayerShape], lb: list[LayerShape] | None, p: int, q: int, chunk: int, threads: int,
            dtype: str) -> list[Block]:
    rows = _cuts(la, p)
    if lb is None:  # the self pair: one cut of its units, blocks i <= j
        spans = list(zip(rows[:-1], rows[1:]))
        out = []
        for i, r in enumerate(spans):
            for c in spans[i:]:
                sa = _slices(la, *r)
                sb = None if c == r else _slices(la, *c)
                out.append(Block(r, c, *_task_bytes(sa, sb, chunk, threads, dtype)))
        return out
    cols = _cuts(lb, q)
    return [Block(r, c, *_task_bytes(_slices(la, *r), _slices(lb, *c), chunk, threads, dtype))
            for r in zip(rows[:-1], rows[1:]) for c in zip(cols[:-1], cols[1:])]


def _table_task(blocks: list[Block], whole: int) -> int:
    """The pair's table task: ``whole`` (the full table, its work copy and one byte per entry)
    plus the moments (one block) or two copies of a block's state and its table."""
    if len(blocks) == 1:
        return blocks[0].moments_bytes + whole
    return max(2 * b.moments_bytes + b.table_bytes for b in blocks) + whole


def _worst(blocks: list[Block], whole: int) -> int:
    return max(max(b.task_bytes for b in blocks), _table_task(blocks, whole))


def plan_blocks(la: list[LayerShape], lb: list[LayerShape] | None, chunk: int, threads: int, dtype: str,
                budget: int | None = None) -> list[Block]:
    """The blocks a pair's statistics are cut into so that each of its tasks (a block's chunk and
    merge tasks, the pair's table task) fits ``budget`` bytes: one block (the whole pair) when
    they fit or there is no budget; else the fewest near-equal cuts found by growing the cuts of
    the side that helps most (the self pair, ``lb=None``: one cut of its units for both sides,
    blocks ``i <= j``). A clear error when even one unit of each side does not fit."""
    p = q = 1
    units_a = sum(l[1] for l in la)
    units_b = units_a if lb is None else sum(l[1] for l in lb)
    table = 4 * units_a * units_b
    whole = 2 * table + table // 4
    if budget is not None and whole > budget:
        raise ValueError(f"the pair's table of {units_a} x {units_b} units and its top-K work need {whole} bytes, over "
                         f"the budget of {budget} per task; give a larger --memory-limit (or hook fewer --layers)")
    while True:
        blocks = _blocks(la, lb, p, q, chunk, threads, dtype)
        worst = _worst(blocks, whole)
        if budget is None or worst <= budget:
            return blocks
        grow_p, grow_q = min(units_a, p + max(1, p // 4)), min(units_b, q + max(1, q // 4))
        if lb is None:
            if grow_p == p:
                break
            p = q = grow_p
            continue
        options = [(pp, qq) for pp, qq in ((grow_p, q), (p, grow_q)) if (pp, qq) != (p, q)]
        if not options:
            break
        p, q = min(options, key=lambda o: _worst(_blocks(la, lb, *o, chunk, threads, dtype), whole))
    largest = max((l for l in la + (lb or [])), key=lambda l: l[1] * l[2] * l[3])
    raise ValueError(
        f"blocks of one unit of each side still need {worst} bytes per task, over the budget of {budget}: a stored "
        f"chunk of {chunk} images of layer {largest[0]} ({largest[1]}@{largest[2]}x{largest[3]}) is read whole; give a "
        "smaller --chunk-size or a larger --memory-limit")


def _pair(a: str, la: list[LayerShape], b: str, lb: list[LayerShape], n: int, chunk: int, self_pair: bool,
          threads: int, dtype: str = "float32", budget: int | None = None) -> PairCost:
    cross = proj = moments = 0
    projected: set[tuple[str, str, int, int]] = set()
    for i, (name_a, ua, ha, wa) in enumerate(la):
        for j, (name_b, ub, hb, wb) in enumerate(lb):
            if self_pair and j < i:
                continue
            hs, ws = min(ha, hb), min(wa, wb)
            cross += 2 * ua * ub * n * hs * ws
            moments += 8 * (ua * ub + ua + ub)
            for side, name, units, h, w in (("a", name_a, ua, ha, wa), ("b", name_b, ub, hb, wb)):
                key = (side if not self_pair else "a", name, hs, ws)
                if key not in projected:  # a layer is projected once per small grid
                    projected.add(key)
                    proj += n * units * _projection_flops(h, w, hs, ws)
    moments += sum(8 * u * h * w for _, u, h, w in la) + (0 if self_pair else sum(8 * u * h * w for _, u, h, w in lb))
    table = 4 * sum(l[1] for l in la) * sum(l[1] for l in lb)
    blocks = tuple(plan_blocks(la, None if self_pair else lb, chunk, threads, dtype, budget))
    chunk_task = max(block.chunk_task_bytes for block in blocks)
    return PairCost(a, b, cross, proj, moments, table, chunk_task, _table_task(list(blocks), 2 * table + table // 4),
                    blocks)


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
    budget: int | None = None,
) -> RunSize:
    """The size of a run of ``generator`` against ``encoders`` over ``n`` images.

    ``layers``: model -> hooked layers ``(name, units, h, w)`` in forward order (every model of
    the run); ``image_size``: the generator's image side in pixels; ``threads``: threads of one
    statistics task (default: ``ROSETTA_THREADS`` or this machine's CPUs, as the engine uses);
    ``activations``: ``"keep"`` (the maps are stored) or ``"none"`` (see :class:`RunSize`);
    ``budget``: bytes one statistics task may take (:func:`task_budget`): a pair whose tasks
    exceed it is cut into blocks (:func:`plan_blocks`); None: no pair is cut.
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
    if budget is not None and budget < 1:
        raise ValueError(f"budget={budget} must be >= 1 byte (or None: no budget)")
    pairs = [_pair(generator, g, e, layers[e], n, chunk, False, threads, dtype, budget) for e in encoders]
    pairs.append(_pair(generator, g, generator, g, n, chunk, True, threads, dtype, budget))
    for null in pairs[:len(encoders)]:  # the mining flow's shuffled-image null of each encoder: same cost as its pair
        pairs.append(replace(null, b=f"{null.b} (shuffled null)"))
    return RunSize(n, chunk, dtype, units, acts, n * 3 * image_size * image_size, pairs, threads, activations,
                   4 * n * units[generator] if activations == "none" else 0, budget)


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


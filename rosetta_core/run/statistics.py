"""The statistics step of a mining run: the exact co-moments of a model pair, reduced over the
store's image chunks with the active Dask scheduler, then the pair's correlation table, top-K
lists and best-buddy summary (paper Eq. 1-3).

With a memory ``budget`` (bytes one task may take), a pair whose tasks would exceed it is cut
into blocks of units (:func:`~rosetta_core.engine.planner.plan_blocks`): each block's co-moments
are reduced over all chunks by their own tasks, which read only the block's units, and stored
apart (``blocks/<pair>/...``, :meth:`~.run.Run.write_block`); the pair's moments and table are
then assembled from the blocks, one at a time, into the same layout as an uncut pair's. A
block's co-moments are exactly the sub-blocks of the pair's (every per-unit statistic is per
unit), so the tables equal the uncut ones up to float rounding of the products; a pair that
fits is computed exactly as without a budget, bit for bit."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np

from ..engine import CoMoments
from ..engine.planner import REDUCE_IMAGES, Block, plan_blocks, reduce_bounds
from ..engine.reduction import fold_chunks, merge_delayed, tree_reduce
from ..engine.threads import engine_threads
from ..matching import best_buddies, topk_lists
from ..matching.dictionary import pair_summary
from .run import Run

__all__ = ["REDUCE_IMAGES", "SHUFFLE_SEED", "pair_blocks", "pair_comoments", "pair_statistics"]

#: the permutation of the shuffled null
SHUFFLE_SEED = 12345


def pair_statistics(run: Run, a: str, b: str | None, null: bool = False, device: str | None = None,
                    budget: int | None = None, resources: dict[str, float] | None = None) -> dict[str, Any]:
    """Co-moments, table, top-K lists and best-buddy summary of one model pair (``b=None``:
    ``a`` with itself), skipped when done. ``null=True`` computes the shuffled null instead:
    ``b``'s image order is permuted. A run that keeps no activations folded the pair's
    co-moments while it extracted its chunks (:mod:`.folding`): they are read, not reduced.
    ``device``: None reduces with the numpy engine; a torch device (``cuda``) runs the same
    exact algorithm there (``rosetta_core.engine``'s torch engine), each chunk task asking the
    Dask cluster for a ``GPU`` resource. ``budget``: the bytes one task may take (None: no
    budget); a pair whose tasks exceed it is reduced in blocks of units (see the module's
    docstring). ``resources``: Dask resources every reduction task asks for (e.g. the workers
    set apart for statistics), on top of the ``GPU`` of an accelerator ``device``."""
    done = run.pair_summary(a, b, null)
    if done is not None:
        run.drop_folds(a, b, null)  # what a killed run left after the pair was done
        run.drop_blocks(a, b, null)
        return done | {"status": "skipped"}
    blocks = pair_blocks(run, a, b, budget) if run.keeps_maps and budget is not None else []
    if len(blocks) > 1:
        table, dead_a, dead_b = _blocked(run, a, b, null, blocks, device, resources)
    else:
        if run.keeps_maps:
            acc = pair_comoments(run, a, b, shuffle_seed=SHUFFLE_SEED if null else None, device=device,
                                 resources=resources)
            run.write_moments(a, b, acc, null)
        else:  # folded chunk by chunk as the run extracted them (rosetta_core.run.folding)
            if not run.folded(a, b, null, 0, len(run.plan.chunks)):
                raise ValueError(f"{run.location}: the co-moments of {run.pair_name(a, b, null)} are not folded over "
                                 f"all {len(run.plan.chunks)} chunks yet; run the mining again to finish them")
            acc = run.moments(a, b, null)
        table = acc.pearson()
        dead_a, dead_b = acc.constant_units()
        acc = None  # the table task holds no moments from here on
    k = run.config.k
    k_b, k_a = min(k, table.shape[1]), min(k, table.shape[0])
    top_b, top_a = topk_lists(table, k_b, k_a, exclude_diagonal=b is None)
    _write_tables(run, a, b, null, table, top_b.astype(np.int32), top_a.astype(np.int32))
    pairs = best_buddies(table, k_b, k_a, exclude_diagonal=b is None)
    summary = pair_summary(table, pairs, dead_a, dead_b)
    run.store.group[run.moments_group(a, b, null)].attrs["summary"] = summary  # written last: marks the pair done
    run.drop_folds(a, b, null)
    run.drop_blocks(a, b, null)
    return summary | {"status": "computed"}


def pair_blocks(run: Run, a: str, b: str | None, budget: int | None, threads: int | None = None) -> list[Block]:
    """The blocks of units that the pair's statistics are cut into for tasks of at most
    ``budget`` bytes (:func:`~rosetta_core.engine.planner.plan_blocks`; one block: not cut).
    ``threads``: of one task (default: the engine's, ``ROSETTA_THREADS`` or the CPUs)."""
    plan = run.plan
    la = [(name, *shape) for name, shape in plan.layers[a]]
    lb = None if b is None else [(name, *shape) for name, shape in plan.layers[b]]
    chunk = max(stop - start for start, stop in plan.chunks)
    return plan_blocks(la, lb, chunk, engine_threads() if threads is None else threads, run.config.dtype, budget)


def _annotation(device: str | None, resources: dict[str, float] | None):
    """The ``dask.annotate`` of the reduction tasks: ``GPU`` for an accelerator ``device`` and
    the given ``resources``; a null context when neither."""
    import dask

    wanted = dict(resources or {})
    if device is not None and str(device).split(":")[0] not in ("", "cpu"):
        wanted["GPU"] = 1
    return dask.annotate(resources=wanted) if wanted else nullcontext()


def _blocked(run: Run, a: str, b: str | None, null: bool, blocks: list[Block], device: str | None,
             resources: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce the pair block by block (blocks already stored by a killed run are kept), then
    assemble its moments and table from the stored blocks, one at a time. Returns the table and
    the constant units of both sides."""
    import dask

    run.start_blocks(a, b, null, blocks)
    todo = [blk for blk in blocks if not run.block_done(a, b, null, blk)]
    if todo:
        plan = run.plan
        names_a, names_b = plan.layers[a], plan.layers[b or a]
        side_a = [run.store.array(k) for k in run.model_keys(a)]
        side_b = side_a if b is None else [run.store.array(k) for k in run.model_keys(b)]
        perm = np.random.default_rng(SHUFFLE_SEED).permutation(plan.n) if null and b is not None else None
        chunk = dask.delayed(chunk_comoments, pure=True)
        merge = dask.delayed(CoMoments.merge, pure=True)
        store = dask.delayed(_store_block, pure=True)
        roots = []
        with _annotation(device, resources):
            for blk in todo:
                units_a = _slices(names_a, blk.rows)
                diagonal = b is None and blk.rows == blk.cols  # a self block on its own units: symmetric
                units_b = None if diagonal else _slices(names_b, blk.cols)
                parts = [chunk(side_a, None if diagonal else side_b, start, stop,
                               None if perm is None else perm[start:stop], run.config.center, device, units_a, units_b)
                         for start, stop in plan.chunks]
                roots.append(store(run.location, a, b, null, blk, tree_reduce(parts, merge)))
        dask.compute(*roots)
    units_a, units_b = (sum(shape[0] for _, shape in run.plan.layers[m]) for m in (a, b or a))
    table = np.zeros((units_a, units_b), dtype=np.float32)
    dead_a, dead_b = np.zeros(units_a, dtype=bool), np.zeros(units_b, dtype=bool)
    run.moments_template(a, b, null)
    for blk in blocks:
        acc = run.read_block(a, b, null, blk)
        (r0, r1), (c0, c1) = blk.rows, blk.cols
        part = acc.pearson()
        table[r0:r1, c0:c1] = part
        if b is None and blk.rows != blk.cols:
            table[c0:c1, r0:r1] = part.T
        da, db = acc.constant_units()
        dead_a[r0:r1] |= da
        dead_b[c0:c1] |= db
        run.write_moments_block(a, b, null, blk, acc)
    if b is None:  # one set of units: constant on either side is constant
        dead_a |= dead_b
        dead_b = dead_a.copy()
    return table, dead_a, dead_b


def _slices(layers, units: tuple[int, int]) -> list[tuple[int, int, int]]:
    """``(layer index, first, stop)`` of each layer's units within the global range ``units``."""
    out, offset = [], 0
    for i, (_, shape) in enumerate(layers):
        lo, hi = max(units[0], offset), min(units[1], offset + shape[0])
        if lo < hi:
            out.append((i, lo - offset, hi - offset))
        offset += shape[0]
    return out


def _store_block(where: str, a: str, b: str | None, null: bool, block: Block, acc: CoMoments) -> None:
    """A block's reduction ends here: its co-moments written to the run's store (on the worker
    that merged them; only ``None`` travels back)."""
    Run.open(where, mode="a").write_block(a, b, null, block, acc)


def _write_tables(run: Run, a: str, b: str | None, null: bool, table, top_b, top_a) -> None:
    plan = run.plan
    side_a, side_b = plan.unit_coords(a), plan.unit_coords(b or a)
    run.store.write_variables(
        run.pair_group(a, b, null),
        {"correlation": (("unit_a", "unit_b"), table),
         "top_b": (("unit_a", "rank_b"), top_b), "top_a": (("unit_b", "rank_a"), top_a)},
        {"unit_a": side_a["unit"], "layer_a": (("unit_a",), side_a["layer"]), "channel_a": (("unit_a",), side_a["channel"]),
         "unit_b": side_b["unit"], "layer_b": (("unit_b",), side_b["layer"]), "channel_b": (("unit_b",), side_b["channel"])},
        {"a": a, "b": b or a, "null": null},
    )


def pair_comoments(run: Run, a: str, b: str | None, shuffle_seed: int | None = None,
                   device: str | None = None, resources: dict[str, float] | None = None) -> CoMoments:
    """Reduce the co-moments of model ``a`` against ``b`` (or itself) with the active dask
    scheduler: one task per image chunk of the store, merged as a binary tree.
    ``shuffle_seed`` permutes ``b``'s image order first (the shuffled null).

    Each chunk task reads its own rows from the store (a local path or a URL every worker can
    reach), so only the small per-chunk moments travel between workers, never activations.
    With an accelerator ``device`` the chunk tasks are annotated with the Dask resource ``GPU``
    (workers started with ``--resources GPU=1`` run them, one at a time each); ``resources``:
    more Dask resources each chunk task asks for.
    """
    import dask

    side_a = [run.store.array(k) for k in run.model_keys(a)]
    side_b = None if b is None else [run.store.array(k) for k in run.model_keys(b)]
    perm = None
    if shuffle_seed is not None and side_b is not None:
        perm = np.random.default_rng(shuffle_seed).permutation(run.plan.n)
    chunk = dask.delayed(chunk_comoments, pure=True)
    with _annotation(device, resources):
        parts = [
            chunk(side_a, side_b, start, stop, None if perm is None else perm[start:stop], run.config.center, device)
            for start, stop in run.plan.chunks
        ]
        if resources:  # the merges go to the same workers (the statistics workers of a memory-limited cluster)
            (acc,) = dask.compute(tree_reduce(parts, dask.delayed(CoMoments.merge, pure=True)))
            return acc
    return merge_delayed(parts)


def chunk_comoments(side_a, side_b, start: int, stop: int, rows_b: np.ndarray | None, center: str,
                    device: str | None = None, units_a: list | None = None, units_b: list | None = None) -> CoMoments:
    """Co-moments of images ``start:stop`` (``b`` at ``rows_b`` instead when given) of the stored
    arrays ``(image, unit, y, x)``. ``units_a``/``units_b``: a block's units, ``(layer index,
    first, stop)`` per layer it reads (None: every unit of every layer). The chunk is read once
    in its stored dtype and reduced by :func:`fold_rows`."""
    pieces_a = [(i, 0, None) for i in range(len(side_a))] if units_a is None else units_a
    a = [side_a[i][start:stop, lo:hi] for i, lo, hi in pieces_a]
    pieces_b = None
    if side_b is None:
        b = None
    else:
        pieces_b = [(i, 0, None) for i in range(len(side_b))] if units_b is None else units_b
        if rows_b is None:
            b = [side_b[i][start:stop, lo:hi] for i, lo, hi in pieces_b]
        else:
            b = [side_b[i].get_orthogonal_selection((rows_b, slice(lo, hi))) for i, lo, hi in pieces_b]

    def where(side: str, layer: int, images: list[int]) -> str:
        arr = side_a[pieces_a[layer][0]] if side == "a" else side_b[pieces_b[layer][0]]
        return (f"{arr.path} has non-finite values (NaN or inf) in images {[start + i for i in images]} "
                "(shuffled positions for the null); the model produced them: rerun that chunk or check the model")

    return fold_rows(a, b, center, where, device)


def fold_rows(a, b, center: str, where, device: str | None = None) -> CoMoments:
    """Co-moments of one chunk's maps ``a`` (and ``b``; None: ``a`` with itself), per layer
    ``(images, unit, y, x)`` arrays in any float dtype, reduced in near-equal steps of at most
    :data:`REDUCE_IMAGES` images in float32 (:func:`~rosetta_core.engine.planner.reduce_bounds`),
    which bounds a worker's memory. ``where(side, layer, images)``: the message for maps with
    NaN or inf (``images``: within the chunk). ``device``: the engine (None: numpy; a torch
    device: the torch engine there)."""
    bounds = reduce_bounds(a[0].shape[0], REDUCE_IMAGES)

    def as_float(side, lo, hi):
        return None if side is None else [np.asarray(x[lo:hi], dtype=np.float32) for x in side]

    def named(err, i) -> str:
        return where(err.side, err.layer, [bounds[i] + k for k in err.images])

    return fold_chunks(((as_float(a, lo, hi), as_float(b, lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])), center, named,
                       device=device)

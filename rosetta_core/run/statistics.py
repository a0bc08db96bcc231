"""The statistics step of a mining run: the exact co-moments of a model pair, reduced over the
store's image chunks with the active Dask scheduler, then the pair's correlation table, top-K
lists and best-buddy summary (paper Eq. 1-3)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np

from ..engine import CoMoments
from ..engine.reduction import fold_chunks, merge_delayed
from ..matching import best_buddies, topk_lists
from ..matching.dictionary import pair_summary
from .run import Run

__all__ = ["REDUCE_IMAGES", "SHUFFLE_SEED", "pair_comoments", "pair_statistics"]

#: images per step of the reduction inside one store chunk (bounds a worker's memory)
REDUCE_IMAGES = 50
#: the permutation of the shuffled null
SHUFFLE_SEED = 12345


def pair_statistics(run: Run, a: str, b: str | None, null: bool = False, device: str | None = None) -> dict[str, Any]:
    """Co-moments, table, top-K lists and best-buddy summary of one model pair (``b=None``:
    ``a`` with itself), skipped when done. ``null=True`` computes the shuffled null instead:
    ``b``'s image order is permuted. A run that keeps no activations folded the pair's
    co-moments while it extracted its chunks (:mod:`.folding`): they are read, not reduced.
    ``device``: None reduces with the numpy engine; a torch device (``cuda``) runs the same
    exact algorithm there (``rosetta_core.engine``'s torch engine), each chunk task asking the
    Dask cluster for a ``GPU`` resource."""
    done = run.pair_summary(a, b, null)
    if done is not None:
        run.drop_folds(a, b, null)  # what a killed run left after the pair was done
        return done | {"status": "skipped"}
    if run.keeps_maps:
        acc = pair_comoments(run, a, b, shuffle_seed=SHUFFLE_SEED if null else None, device=device)
        run.write_moments(a, b, acc, null)
    else:  # folded chunk by chunk as the run extracted them (rosetta_core.run.folding)
        if not run.folded(a, b, null, 0, len(run.plan.chunks)):
            raise ValueError(f"{run.location}: the co-moments of {run.pair_name(a, b, null)} are not folded over all "
                             f"{len(run.plan.chunks)} chunks yet; run the mining again to finish them")
        acc = run.moments(a, b, null)
    table = acc.pearson()
    k = run.config.k
    k_b, k_a = min(k, table.shape[1]), min(k, table.shape[0])
    top_b, top_a = topk_lists(table, k_b, k_a, exclude_diagonal=b is None)
    _write_tables(run, a, b, null, table, top_b.astype(np.int32), top_a.astype(np.int32))
    pairs = best_buddies(table, k_b, k_a, exclude_diagonal=b is None)
    dead_a, dead_b = acc.constant_units()
    summary = pair_summary(table, pairs, dead_a, dead_b)
    run.store.group[run.moments_group(a, b, null)].attrs["summary"] = summary  # written last: marks the pair done
    run.drop_folds(a, b, null)
    return summary | {"status": "computed"}


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
                   device: str | None = None) -> CoMoments:
    """Reduce the co-moments of model ``a`` against ``b`` (or itself) with the active dask
    scheduler: one task per image chunk of the store, merged as a binary tree.
    ``shuffle_seed`` permutes ``b``'s image order first (the shuffled null).

    Each chunk task reads its own rows from the store (a local path or a URL every worker can
    reach), so only the small per-chunk moments travel between workers, never activations.
    With an accelerator ``device`` the chunk tasks are annotated with the Dask resource ``GPU``
    (workers started with ``--resources GPU=1`` run them, one at a time each).
    """
    import dask

    side_a = [run.store.array(k) for k in run.model_keys(a)]
    side_b = None if b is None else [run.store.array(k) for k in run.model_keys(b)]
    perm = None
    if shuffle_seed is not None and side_b is not None:
        perm = np.random.default_rng(shuffle_seed).permutation(run.plan.n)
    chunk = dask.delayed(chunk_comoments, pure=True)
    gpu = device is not None and str(device).split(":")[0] not in ("", "cpu")
    with dask.annotate(resources={"GPU": 1}) if gpu else nullcontext():
        parts = [
            chunk(side_a, side_b, start, stop, None if perm is None else perm[start:stop], run.config.center, device)
            for start, stop in run.plan.chunks
        ]
    return merge_delayed(parts)


def chunk_comoments(side_a, side_b, start: int, stop: int, rows_b: np.ndarray | None, center: str,
                    device: str | None = None) -> CoMoments:
    """Co-moments of images ``start:stop`` (``b`` at ``rows_b`` instead when given) of the stored
    arrays ``(image, unit, y, x)``. The chunk is read once in its stored dtype and reduced by
    :func:`fold_rows`."""
    a = [arr[start:stop] for arr in side_a]
    if side_b is None:
        b = None
    elif rows_b is None:
        b = [arr[start:stop] for arr in side_b]
    else:
        b = [arr.get_orthogonal_selection((rows_b,)) for arr in side_b]

    def where(side: str, layer: int, images: list[int]) -> str:
        arr = (side_a if side == "a" else side_b)[layer]
        return (f"{arr.path} has non-finite values (NaN or inf) in images {[start + i for i in images]} "
                "(shuffled positions for the null); the model produced them: rerun that chunk or check the model")

    return fold_rows(a, b, center, where, device)


def fold_rows(a, b, center: str, where, device: str | None = None) -> CoMoments:
    """Co-moments of one chunk's maps ``a`` (and ``b``; None: ``a`` with itself), per layer
    ``(images, unit, y, x)`` arrays in any float dtype, reduced in near-equal steps of at most
    :data:`REDUCE_IMAGES` images in float32, which bounds a worker's memory. ``where(side,
    layer, images)``: the message for maps with NaN or inf (``images``: within the chunk).
    ``device``: the engine (None: numpy; a torch device: the torch engine there)."""
    m = a[0].shape[0]
    steps = -(-m // REDUCE_IMAGES)
    bounds = [round(i * m / steps) for i in range(steps + 1)]

    def as_float(side, lo, hi):
        return None if side is None else [np.asarray(x[lo:hi], dtype=np.float32) for x in side]

    def named(err, i) -> str:
        return where(err.side, err.layer, [bounds[i] + k for k in err.images])

    return fold_chunks(((as_float(a, lo, hi), as_float(b, lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])), center, named,
                       device=device)

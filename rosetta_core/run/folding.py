"""Mining without keeping activation maps (``activations="none"``): each chunk's co-moments are
folded right after its extraction, and the maps are dropped.

One task per chunk of images (:func:`fold_chunk`) makes that chunk's images (a generator run
generates them; an image run reads its files), runs every model of the run on them and stores,
for every pair of the run, the chunk's :class:`~rosetta_core.engine.CoMoments` (packed in one
array, ``folds/<pair>/<c>-<c+1>``: :meth:`~.run.Run.write_fold`). Merge tasks (:func:`merge_folds`) combine them
as the balanced binary tree of :func:`~rosetta_core.engine.reduction.tree_reduce` (the tree a
run that keeps its maps reduces its chunks with), each node as soon as its two halves are
there, deleting the halves; the root is the pair's ``moments/<pair>``, from which
:func:`~.statistics.pair_statistics` takes the table. On disk at once: the images, latents,
moments and tables, the anchor's per-image peaks (the dictionary's example images), and a few
partial co-moments (about one per tree level, :attr:`~rosetta_core.engine.planner.RunSize.fold_bytes`).

Same numbers as keeping the maps: the maps are rounded to the run's ``dtype`` before folding, as
the store would hold them, each chunk is folded by the same function in the same steps
(:func:`~.statistics.fold_rows`), and the chunks merge in the same tree, so the true pairs' and
the self pair's co-moments are those of a ``keep`` run of the same configuration.

The shuffled null correlates the anchor's image ``i`` with the other model's image ``perm[i]``
(``perm``: the fixed permutation of :data:`~.statistics.SHUFFLE_SEED` over all images), the
same null as a run that keeps its maps. Its image pairs ``(i, perm[i])`` span every chunk, so
the chunk task of chunk ``c`` takes them from the other side: the other model's maps of the
chunk's images ``j`` (just computed) against the anchor's maps of images ``perm^-1[j]``, which
it computes again (a generator makes any image again from its seed; an image run reads those
files). That costs one more forward pass of the anchor per chunk and no other model's; pairing
chunk ``c`` with the next chunk, or permuting within a chunk, would have been another null than
the ``keep`` run's (a permutation within chunks also keeps each image's chunk neighbours). The
null's chunks group its image pairs differently from a ``keep`` run, so its co-moments equal
that run's up to float rounding (merging is exact in float64, DESIGN §3.2), not bit for bit.

Resume is per chunk and per pair: a chunk's co-moments (or a merged node holding them),
marked by its attribute ``folded`` written last, are not computed again; a run that gains an
encoder folds only the new pairs (the anchor's maps are computed again for them).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..engine import CoMoments
from ..engine.reduction import tree_reduce
from .extraction import _chunk_ok, _preview
from .maps import encoder_input, generate, model_maps, to_store
from .models import using_model
from .run import Run
from .statistics import SHUFFLE_SEED, fold_rows

__all__ = ["fold_chunk", "fold_pairs", "fold_steps", "fold_tree", "merge_folds"]

Pair = tuple[str, str | None, bool]


def fold_pairs(run: Run) -> list[Pair]:
    """``(a, b, null)`` of every pair the run folds: :attr:`MineConfig.pairs`, as the mining flow
    computes them."""
    return run.config.pairs


def fold_tree(chunks: int) -> list[tuple[int, int, int]]:
    """``(first, mid, stop)`` of every merge of ``chunks`` leaves in
    :func:`~rosetta_core.engine.reduction.tree_reduce`'s tree: chunks ``first:mid`` and
    ``mid:stop`` merge into ``first:stop``; children before parents."""
    merges: list[tuple[int, int, int]] = []

    def merge(left: tuple[int, int], right: tuple[int, int]) -> tuple[int, int]:
        merges.append((left[0], left[1], right[1]))
        return left[0], right[1]

    tree_reduce([(c, c + 1) for c in range(chunks)], merge)
    return merges


def fold_steps(chunks: int) -> Iterator[tuple]:
    """The order to submit a fold's tasks in: ``("chunk", c)`` for each chunk, each followed by
    ``("merge", first, mid, stop)`` for the merges it completes (smaller first), so a scheduler
    that runs ready tasks in submission order merges as soon as it can and keeps few partial
    co-moments on disk."""
    merges = fold_tree(chunks)
    for c in range(chunks):
        yield ("chunk", c)
        for first, mid, stop in sorted((m for m in merges if m[2] == c + 1), key=lambda m: m[2] - m[0]):
            yield ("merge", first, mid, stop)


def _covered(run: Run, pair: Pair, chunk: int) -> bool:
    """The pair is done, or a folded group of its co-moments holds ``chunk``."""
    a, b, null = pair
    if run.pair_summary(a, b, null) is not None:
        return True
    spans = [(chunk, chunk + 1)] + [(f, s) for f, _, s in fold_tree(len(run.plan.chunks)) if f <= chunk < s]
    return any(run.folded(a, b, null, f, s) for f, s in spans)


def _write(run: Run, pair: Pair, acc: CoMoments, first: int, stop: int) -> None:
    run.write_fold(*pair, first, stop, acc)


def _inverse(n: int) -> np.ndarray:
    """``perm^-1`` of the shuffled null's permutation (:data:`~.statistics.SHUFFLE_SEED`)."""
    return np.argsort(np.random.default_rng(SHUFFLE_SEED).permutation(n))


def _where(a: tuple[str, list[str], np.ndarray], b: tuple[str, list[str], np.ndarray] | None = None):
    """The message :func:`~.statistics.fold_rows` raises for NaN or inf maps, naming the model,
    the layer and the run's image indices; ``a``, ``b``: ``(model, layer names, image indices)``."""
    def message(side: str, layer: int, within: list[int]) -> str:
        model, names, rows = a if side == "a" or b is None else b
        return (f"{model} layer {names[layer]} has non-finite values (NaN or inf) in images "
                f"{[int(rows[i]) for i in within]}; the model produced them: rerun that chunk or check the model")
    return message


def fold_chunk(run: Run, chunk: int, device: str = "cpu", stats_device: str | None = None) -> str:
    """Images, anchor peaks and every pending pair's co-moments of one chunk of a run that keeps
    no activations; ``"computed"`` or ``"skipped"`` (everything already done). ``device``: where
    the models run; ``stats_device``: the engine that folds (None: numpy; a torch device: the
    torch engine there, as ``--stats-device`` for the statistics of a run that keeps its maps)."""
    cfg, plan, store = run.config, run.plan, run.store
    if run.keeps_maps:
        raise ValueError(f"{run.location} keeps its activations (activations='keep'): its chunks are generated "
                         "and extracted by rosetta_core.run.extraction, not folded")
    anchor, n_chunks = cfg.anchor_model, len(plan.chunks)
    own = (["latents"] if cfg.generator is not None else []) + ["images", run.peaks_key(anchor)]
    pending = [p for p in fold_pairs(run) if not _covered(run, p, chunk)]
    written = _chunk_ok(run, own, chunk)
    if written and not pending:
        return "skipped"
    start, stop = plan.chunks[chunk]
    rows = np.arange(start, stop)
    layers = plan.layer_names(anchor)
    with using_model(cfg, anchor, device) as net, torch.no_grad():
        if cfg.generator is not None:
            latents, images, maps = generate(run, net, rows, layers)
            arrays = {"latents": latents.cpu().numpy().astype(np.float32), "images": images.cpu().numpy()}
        else:
            images = encoder_input(run, net, rows)
            maps = net.activations(images.to(net.device), layers)
            arrays = {"images": _preview(images, plan.image_shape[-1])}
        side_a = [to_store(maps[layer], cfg.dtype) for layer in layers]  # as the store would hold them
        del maps
    if not written:
        arrays[run.peaks_key(anchor)] = np.concatenate([x.astype(np.float32).max(axis=(2, 3)) for x in side_a], axis=1)
        for key, values in arrays.items():
            store.array(key)[start:stop] = values
        for key in own:
            store.mark_done(key, chunk, n_chunks)

    own_side = (anchor, layers, rows)
    shuffled = _inverse(plan.n)[start:stop]
    side_shuffled = None  # the anchor's maps of the images its null pairs take: computed once, for every null
    for pair in pending:  # the anchor with itself first: it needs no other model
        if pair[1] is None:
            _write(run, pair, fold_rows(side_a, None, cfg.center, _where(own_side), stats_device), chunk, chunk + 1)
    for other in cfg.others:
        todo = [p for p in pending if p[1] == other]
        if not todo:
            continue
        names = plan.layer_names(other)
        got = model_maps(run, other, rows, names, device)
        side_b, other_side = [got.pop(layer) for layer in names], (other, names, rows)
        for pair in todo:
            if not pair[2]:
                acc = fold_rows(side_a, side_b, cfg.center, _where(own_side, other_side), stats_device)
            else:  # the null: this chunk's images j of `other` against the anchor's images perm^-1[j]
                if side_shuffled is None:
                    again = model_maps(run, anchor, shuffled, layers, device)
                    side_shuffled = [again.pop(layer) for layer in layers]
                acc = fold_rows(side_shuffled, side_b, cfg.center, _where((anchor, layers, shuffled), other_side),
                                stats_device)
            _write(run, pair, acc, chunk, chunk + 1)
    return "computed"


def merge_folds(run: Run, first: int, mid: int, stop: int) -> str:
    """Merge every pair's folded chunks ``first:mid`` and ``mid:stop`` into ``first:stop`` (a
    node of :func:`fold_tree`) and delete the halves; ``"computed"`` or ``"skipped"`` (every
    pair already merged there, or done)."""
    state = "skipped"
    for pair in fold_pairs(run):
        a, b, null = pair
        if run.pair_summary(a, b, null) is not None:
            continue
        halves = [(first, mid), (mid, stop)]
        if not run.folded(a, b, null, first, stop):
            missing = [run.fold_key(a, b, null, *h) for h in halves if not run.folded(a, b, null, *h)]
            if missing:
                raise ValueError(f"{run.location}: cannot merge {', '.join(missing)}: not folded yet (its chunk tasks "
                                 "have not finished); run the mining again")
            left, right = (run.read_fold(a, b, null, *h) for h in halves)
            _write(run, pair, left.merge(right), first, stop)
            state = "computed"
        for half in halves:
            run.drop_fold(a, b, null, *half)
    return state

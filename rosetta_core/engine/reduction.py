"""Reducing chunks of images to one :class:`~rosetta_core.engine.comoments.CoMoments`.

Two shapes of reduction, for every caller (:func:`rosetta_core.engine.correlation.comoments`,
the mining run's per-pair statistics):

- in one process, a running fold over chunks (:func:`fold_chunks`): memory is one chunk;
- across tasks, one accumulator per chunk merged as a balanced binary tree
  (:func:`tree_reduce`; with dask, :func:`merge_delayed` builds and computes that tree with
  the active scheduler, e.g. a ``dask.distributed`` client, without importing it).

Merging is order-independent (DESIGN §3.2), so any tree gives the same moments up to rounding;
these functions always build the same tree for the same parts, so results repeat bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from .comoments import CoMoments, NonFiniteChunk
from .grid_sums import Workspace

__all__ = ["fold_chunks", "merge_delayed", "tree_reduce"]

T = TypeVar("T")
Chunk = tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None]


def fold_chunks(
    chunks: Iterable[Chunk],
    center: str = "global",
    where: Callable[[NonFiniteChunk, int], str] | None = None,
    device=None,
) -> CoMoments:
    """One accumulator over ``chunks``, added in order with :meth:`CoMoments.update` and one
    :class:`~rosetta_core.engine.grid_sums.Workspace` (memory: one chunk; a generator of chunks
    reads each only when it is added).

    ``chunks``: ``(a, b)`` per chunk, ``a``/``b`` per layer ``(n_chunk, units, h, w)`` float
    arrays of one set of layer shapes (``b=None``: ``a`` against itself). The accumulator takes
    its shapes from the first chunk. ``where(err, i)``: the message of the ``ValueError`` raised
    when chunk ``i`` holds NaN or inf (``err``: the :class:`NonFiniteChunk`, with the layer's
    side and index and the images within the chunk), so a caller names layers and images its
    own way; without ``where`` the :class:`NonFiniteChunk` itself propagates.

    ``device``: None (the numpy engine), or a torch device that runs the torch engine there
    (:mod:`~rosetta_core.engine.torch_fold`; chunks may then hold tensors), the accumulator's
    state staying on the device from the first chunk to the last.
    """
    acc, workspace, state, i = None, Workspace(), None, -1
    for a, b in chunks:  # not enumerate(): its reused result tuple holds the last chunk while the next is read
        i += 1
        try:
            if acc is None:
                acc = CoMoments([x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b], center)
            if device is None:
                acc.update(a, b, workspace)
            else:
                if state is None:
                    from .torch_fold import DeviceMoments

                    state = DeviceMoments(acc, device)
                state.update(a, b)
        except NonFiniteChunk as err:
            if where is None:
                raise
            raise ValueError(where(err, i)) from None
        a = b = None  # this chunk's maps go before the next is read (one chunk in memory, not two)
    if acc is None:
        raise ValueError("fold_chunks got no chunks; give at least one (a, b) chunk of images")
    return acc if state is None else state.write_back()


def tree_reduce(parts: Sequence[T], merge: Callable[[T, T], T]) -> T:
    """``parts`` merged pairwise, level by level, as a balanced binary tree: neighbours
    ``(0, 1), (2, 3), ...`` first, an odd last part passed up as it is. ``merge`` may be a plain
    function or a ``dask.delayed`` one (then the result is the tree's delayed root)."""
    parts = list(parts)
    if not parts:
        raise ValueError("tree_reduce got no parts; give at least one")
    while len(parts) > 1:
        parts = [merge(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def merge_delayed(parts: Sequence[Any]) -> CoMoments:
    """Merge per-chunk accumulators given as ``dask.delayed`` objects (one task per chunk,
    each returning a :class:`CoMoments`) as a binary tree of ``CoMoments.merge`` tasks
    (:func:`tree_reduce`), computed with the active dask scheduler.

    Typical use, with ``chunk_task`` any function that returns a chunk's co-moments::

        task = dask.delayed(chunk_task, pure=True)
        acc = merge_delayed([task(start, stop) for start, stop in bounds])

    A task's exception (e.g. a ``ValueError`` naming non-finite images) propagates as raised.
    """
    import dask

    (result,) = dask.compute(tree_reduce(parts, dask.delayed(CoMoments.merge, pure=True)))
    return result

"""Exact unit-pair Pearson tables of two models (paper Eq. 1-2), streamed over image chunks.

Inputs are per-layer activations ``(n, units, h, w)`` of two models on the same ``n`` images:
numpy arrays, torch tensors, Zarr arrays (anything sliceable along ``n``) or dask arrays.
Rows and columns of a table are ordered layer by layer, channel by channel.

``device=None`` runs the numpy engine; a torch device (``"cpu"``, ``"cuda"``, ``"cuda:N"``) runs
the same algorithm in torch there (:mod:`rosetta_core.engine.torch_fold`): each chunk is moved
to the device (torch inputs already there are not copied) and the co-moments stay there until
the last chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .centring import get_centring
from .comoments import CoMoments, NonFiniteChunk
from .devices import as_device_maps, torch_device
from .reduction import fold_chunks, merge_delayed

__all__ = ["comoments", "pearson_table", "self_table", "LayerInput"]

LayerInput = Sequence[Any] | Mapping[str, Any]
#: default chunk budget: bytes of float32 activations of both models per chunk
DEFAULT_CHUNK_BYTES = 2**30


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _named_layers(layers: LayerInput, arg: str) -> list[tuple[str, Any]]:
    if isinstance(layers, Mapping):
        named = [(f"{arg}[{k!r}]", v) for k, v in layers.items()]
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        named = [(f"{arg}[{i}]", v) for i, v in enumerate(layers)]
    else:
        raise TypeError(
            f"{arg} must be a list (or dict name -> array) of per-layer activations "
            f"(n, units, h, w); got {type(layers).__name__}"
        )
    if not named:
        raise ValueError(f"{arg} is an empty layer list; give at least one (n, units, h, w) array")
    for name, x in named:
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 4:
            got = "no shape" if shape is None else f"ndim={len(shape)} shape={tuple(shape)}"
            raise ValueError(f"{name} must be a 4-d array (n, units, h, w); got {got}")
        if min(int(v) for v in shape[1:]) < 1:
            raise ValueError(f"{name} has an empty units/h/w axis: shape={tuple(shape)}")
    return named


def _check_n(named: list[tuple[str, Any]]) -> int:
    n0 = int(named[0][1].shape[0])
    for name, x in named:
        if int(x.shape[0]) != n0:
            raise ValueError(
                f"{name} has n={int(x.shape[0])} images but {named[0][0]} has n={n0}; "
                "every layer of both models must cover the same images"
            )
    if n0 < 2:
        raise ValueError(f"{named[0][0]} has n={n0} images; Pearson correlation needs n >= 2")
    return n0


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _chunk(named: list[tuple[str, Any]], start: int, stop: int, device=None) -> list[Any]:
    if device is None:
        return [_to_numpy(x[start:stop]) for _, x in named]
    return [as_device_maps(x[start:stop], device) for _, x in named]


def _chunk_moments(named_a, named_b, bounds: list[int], center: str, first_image: int = 0, device=None) -> CoMoments:
    """Co-moments of the images from ``bounds[0]`` to ``bounds[-1]``, folded chunk by chunk
    between consecutive ``bounds``. ``first_image``: the index of the arrays' first image in the
    caller's numbering (a dask chunk is passed already cut out), for error messages;
    ``device``: None (numpy engine) or the torch device of the torch engine."""

    def where(err: NonFiniteChunk, i: int) -> str:
        named = named_a if err.side == "a" else named_b
        images = [first_image + bounds[i] + k for k in err.images]
        return f"{named[err.layer][0]} has non-finite values (NaN or inf) in images {images}; activations must be finite"

    chunks = (
        (_chunk(named_a, s, e, device), None if named_b is None else _chunk(named_b, s, e, device))
        for s, e in zip(bounds[:-1], bounds[1:])
    )
    return fold_chunks(chunks, center, where, device=device)


def _default_chunk(named: list[tuple[str, Any]], n: int) -> int:
    """Images per chunk: within the byte budget, and equal-sized chunks (no small tail)."""
    per_image = sum(int(np.prod(x.shape[1:])) * 4 for _, x in named)
    most = max(2, DEFAULT_CHUNK_BYTES // max(per_image, 1))
    chunks = -(-n // most)
    return -(-n // chunks)


def comoments(
    a: LayerInput,
    b: LayerInput | None = None,
    *,
    center: str = "global",
    chunk_size: int | None = None,
    device=None,
) -> CoMoments:
    """Reduce the co-moments of ``a`` against ``b`` (or against itself when ``b`` is None).

    Memory is bounded by one chunk of images (``chunk_size``; default: equal chunks of at
    most about 1 GiB of float32 maps). With dask inputs, chunks follow the dask chunks along ``n`` (or
    ``chunk_size``) and are reduced as a tree with the active dask scheduler, e.g. a
    ``dask.distributed`` client (each task folds its chunk on ``device``; the merges are numpy).
    ``device``: None for the numpy engine, or a torch device (``"cpu"``, ``"cuda"``, ``"cuda:N"``)
    for the torch engine (same algorithm and precision: see :mod:`rosetta_core.engine.torch_fold`).
    """
    get_centring(center)  # a bad name fails here, before any input is read
    device = None if device is None else torch_device(device)  # and a bad device
    named_a = _named_layers(a, "a")
    named_b = None if b is None else _named_layers(b, "b")
    n = _check_n(named_a + (named_b or []))
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer (images per chunk)")
    everything = named_a + (named_b or [])
    if any(_is_dask(x) for _, x in everything):
        return _dask_comoments(named_a, named_b, n, center, chunk_size, device)
    step = int(chunk_size or _default_chunk(everything, n))
    # a running fold keeps memory independent of n
    return _chunk_moments(named_a, named_b, [*range(0, n, step), n], center, device=device)


def _dask_comoments(named_a, named_b, n: int, center: str, chunk_size: int | None, device=None) -> CoMoments:
    import dask
    import dask.array as da

    everything = named_a + (named_b or [])
    if chunk_size is None:
        first = next(x for _, x in everything if _is_dask(x))
        bounds = np.concatenate([[0], np.cumsum(first.chunks[0])])
    else:
        bounds = np.concatenate([np.arange(0, n, int(chunk_size)), [n]])
    bounds = [int(v) for v in bounds]

    def as_dask(named):
        out = []
        for name, x in named:
            arr = x if _is_dask(x) else da.from_array(_to_numpy(x))
            out.append((name, arr))
        return out

    dask_a = as_dask(named_a)
    dask_b = None if named_b is None else as_dask(named_b)
    chunk_task = dask.delayed(_chunk_moments, pure=True)
    return merge_delayed([
        chunk_task(
            [(name, x[s:e]) for name, x in dask_a],
            None if dask_b is None else [(name, x[s:e]) for name, x in dask_b],
            [0, e - s],
            center,
            first_image=s,
            device=device,
        )
        for s, e in zip(bounds[:-1], bounds[1:])
    ])


def pearson_table(
    a: LayerInput,
    b: LayerInput,
    *,
    center: str = "global",
    chunk_size: int | None = None,
    device=None,
) -> np.ndarray:
    """Pearson correlation of every unit of ``a`` with every unit of ``b``.

    ``a``, ``b``: per-layer activations ``(n, units, h, w)`` of two models on the same images.
    Each layer pair is compared after bilinear resizing (``align_corners=False``) to the
    elementwise-larger grid, over all images and positions (paper Eq. 1-2), without building
    the resized maps. ``center="position"`` subtracts each position's mean over images first.
    Returns float32 ``(sum units of a, sum units of b)``; constant units give 0 (their masks:
    ``comoments(a, b).constant_units()``). ``device``: None (the numpy engine) or a torch
    device (``"cpu"``, ``"cuda"``) that runs the same algorithm in torch there.
    """
    return comoments(a, b, center=center, chunk_size=chunk_size, device=device).pearson()


def self_table(a: LayerInput, *, center: str = "global", chunk_size: int | None = None, device=None) -> np.ndarray:
    """The symmetric table of ``a`` against itself (the G-G table); diagonal 1 for live units.
    ``device``: as in :func:`pearson_table`."""
    return comoments(a, None, center=center, chunk_size=chunk_size, device=device).pearson()

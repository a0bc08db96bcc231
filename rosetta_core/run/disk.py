"""Will a run fit on its disk: the store's size (the planner's estimate, :func:`run_size`)
against the free space at a local run location, checked before anything is computed
(:meth:`~.run.Run.validate` and ``rosetta plan --out``).

The estimate is the planner's (:func:`rosetta_core.engine.planner.plan_size`): uncompressed
bytes, so a store usually ends smaller (zstd compresses post-ReLU maps); with
``activations="none"`` it includes the co-moment states of chunk groups held while the run
folds them (:attr:`~rosetta_core.engine.planner.RunSize.fold_bytes`). A run that is already
partly on disk (a resumed or grown run) needs only what it has still to write: chunks marked
done and finished pairs are subtracted.

An fsspec URL (``s3://...``) has no free space to compare with: nothing is checked there.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engine.planner import LayerShape, RunSize, plan_size
from . import location
from .config import MineConfig

if TYPE_CHECKING:
    from .run import Run

__all__ = ["NotEnoughDisk", "check_fits", "format_bytes", "free_bytes", "needed_bytes", "remaining_bytes", "run_layers",
           "run_size"]


class NotEnoughDisk(ValueError):
    """The run's store will not fit in the free space at its location."""


def format_bytes(value: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (powers of 1000, as ``rosetta plan`` prints sizes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return ""


def run_layers(config: MineConfig) -> tuple[dict[str, list[LayerShape]], int]:
    """Every model's hooked layers ``(name, units, h, w)`` from its layer table (no model runs;
    :func:`rosetta_core.zoo.probe.model_layers`) and the side of the run's stored images: the
    generator's, or for an image run :data:`~.plan.PREVIEW_SIDE` (the anchor's view of each
    file is stored at most that large: the estimate takes the bound)."""
    from ..zoo.probe import model_layers  # the zoo imports torch: only when sizing
    from .plan import PREVIEW_SIDE

    layers, side = {}, PREVIEW_SIDE
    for name in config.models:
        patterns = config.layers.get(name)
        layers[name], finest = model_layers(name, list(patterns) if patterns else None, config.weights)
        if name == config.generator:
            side = finest
    return layers, side


def run_size(config: MineConfig, n: int | None = None, threads: int | None = 1, budget: int | None = None,
             **changes) -> RunSize:
    """The planner's size of ``config``'s run (:func:`run_layers`). ``n``: the image count when
    the config has none (an image run: the source's readable images); ``threads``: of one
    statistics task (only the memory estimate depends on it); ``budget``: bytes one statistics
    task may take (pairs over it are cut into blocks; None: none is cut); ``changes``: fields to
    change first (``dtype="float16"``, ``activations="none"``), for the alternatives an error offers."""
    from dataclasses import replace

    config = replace(config, **changes) if changes else config
    n = config.n if n is None else n
    if n is None:
        raise ValueError("run_size needs the image count of an image run without n (its readable images)")
    layers, side = run_layers(config)
    return plan_size(config.anchor_model, layers, list(config.others), int(n), side, config.dtype, config.chunk_size,
                     threads=threads, activations=config.activations, budget=budget)


def free_bytes(where: str) -> int:
    """Free bytes for an unprivileged writer on the filesystem that holds (or will hold) the
    local path ``where``: of its nearest existing ancestor."""
    path = Path(where).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return int(shutil.disk_usage(path).free)


def remaining_bytes(run: "Run", size: RunSize, existing: bool) -> int:
    """What the run has still to write: ``size.disk_bytes`` less what ``existing`` (a store of
    this configuration at the run's location) already holds: every model's chunks marked
    done (all its layers), the images, the anchor's peaks, and the finished pairs."""
    if not existing or "plan" not in run.store.attrs:
        return size.disk_bytes
    store, plan = run.store, run.plan
    chunks = len(plan.chunks)

    def done(keys: list[str]) -> float:
        """Fraction of chunks done for every key (0 for a key the store lacks)."""
        flags = [np.asarray(store.array(f"done/{k}")[...], dtype=bool) if f"done/{k}" in store else np.zeros(chunks, bool)
                 for k in keys]
        return float(np.logical_and.reduce(flags).mean()) if flags else 0.0

    written = size.image_bytes * done(["images"])
    if size.activations == "keep":
        for model, total in size.activation_bytes.items():
            if model in plan.layers:
                written += total * done(run.model_keys(model))
    else:
        written += size.peaks_bytes * done([run.peaks_key(run.config.anchor_model)])
    pending = False
    for pair, (a, b, null) in zip(size.pairs, _pair_names(run)):
        if run.pair_summary(a, b, null) is not None:
            written += pair.moments_bytes + pair.table_bytes
        else:
            pending = True
    return int(max(size.disk_bytes - written - (0 if pending else size.fold_bytes), 0))


def needed_bytes(where: str, config: MineConfig, size: RunSize) -> int:
    """What a run of ``config`` at ``where`` has still to write (``rosetta plan --out``): all of
    ``size.disk_bytes``, less what a store of this configuration there already holds (a store
    of another configuration would be discarded by ``--overwrite``: nothing is subtracted)."""
    from .run import Run, run_identity
    from .store import identity_conflicts

    run = Run(where, config, mode="r")
    if location.is_url(where) or not location.exists(location.join(run.store_path, "zarr.json")):
        return size.disk_bytes
    attrs = run.store.attrs
    same = attrs.get("run") is not None and not identity_conflicts(
        {"run": attrs["run"], "models": attrs.get("models")}, run_identity(config))
    return remaining_bytes(run, size, same)


def _pair_names(run: "Run") -> list[tuple[str, str | None, bool]]:
    """The run's pairs in the planner's order (:attr:`MineConfig.pairs`)."""
    return run.config.pairs


def check_fits(where: str, needed: int, config: MineConfig, n: int | None = None, *, done: int = 0) -> None:
    """Raise :class:`NotEnoughDisk` when ``needed`` bytes exceed the free space at the local
    location ``where`` (URLs: no check), naming both sizes, the path and what to do: another
    location, fewer images, and float16 or keeping no activations where they make the store
    smaller (with their sizes). ``done``:
    bytes of the run already on disk (said in the message)."""
    if location.is_url(where):
        return
    free = free_bytes(where)
    if needed <= free:
        return
    options = ["another --out on a disk with more free space", "a smaller --n"]
    for option, change in (("--dtype float16", {"dtype": "float16"}), ("--activations none", {"activations": "none"})):
        if any(getattr(config, k) != v for k, v in change.items()):
            smaller = run_size(config, n, **change).disk_bytes
            if smaller < needed + done:  # offered only where it is smaller (few images: the moments outweigh the maps)
                options.append(f"{option} (store {format_bytes(smaller)})")
    already = f", {format_bytes(done)} of it already written" if done else ""
    raise NotEnoughDisk(
        f"the run needs {format_bytes(needed)} more at {where} (store estimate, uncompressed{already}) but only "
        f"{format_bytes(free)} is free there; use {', '.join(options[:-1])} or {options[-1]}"
    )

"""A small, resumable training loop shared by every recipe of the embedded zoo.

A recipe owns its module(s), optimiser and data; :func:`train` runs its steps, writes a
checkpoint every ``every`` steps (atomically: a killed run never leaves a torn file) and, when
a checkpoint exists, resumes from it, including the RNG states, so a resumed run continues as
the uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

__all__ = ["BatchSource", "Recipe", "TrainResult", "adamw_matrix_decay", "steps_for_seconds", "train", "warmup_cosine_lr"]


class Recipe(Protocol):
    """What :func:`train` needs from a recipe."""

    name: str

    def step(self, step: int) -> dict[str, float]:
        """Run one optimisation step (the recipe draws its own batch from ``step``)."""

    def state_dict(self) -> dict:
        """Everything to resume: modules, optimisers, schedulers."""

    def load_state_dict(self, state: dict) -> None: ...


def warmup_cosine_lr(step: int, total_steps: int, base_lr: float, warmup: float = 0.05) -> float:
    """The learning rate of ``step`` (from 0): a linear warm-up to ``base_lr`` over the first
    ``warmup`` fraction of ``total_steps`` (at least one step), then a cosine decay to 0 at
    ``total_steps`` (0 after it)."""
    ramp = max(1, int(warmup * total_steps))
    if step < ramp:
        return base_lr * (step + 1) / ramp
    t = (step - ramp) / max(1, total_steps - ramp)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def adamw_matrix_decay(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                       **adamw: object) -> torch.optim.AdamW:
    """AdamW with ``weight_decay`` on the matrices and kernels (``ndim >= 2``) of ``params`` and
    none on the vectors (biases, norms, scales): two parameter groups in that order. ``adamw``:
    AdamW's other settings (``betas``, ``eps``)."""
    params = list(params)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, **adamw,
    )


class _Steps(torch.utils.data.Dataset):
    def __init__(self, batch_at: Callable[[int], object]):
        self.batch_at = batch_at

    def __getitem__(self, step: int):
        return step, self.batch_at(step)


class BatchSource:
    """A recipe's pure ``batch_at(step)`` computed ahead, in ``workers`` processes, in step order.

    Rendering the world is CPU work; on a GPU it is the bottleneck unless several processes
    prepare batches while the device trains. ``source(step)`` returns the batch of ``step``;
    steps must be asked for in order from ``start``.
    """

    def __init__(self, batch_at: Callable[[int], object], start: int, stop: int, workers: int):
        if workers < 1:
            raise ValueError(f"workers={workers} is invalid: expected >= 1 (0 means no BatchSource)")
        loader = torch.utils.data.DataLoader(
            _Steps(batch_at), batch_size=None, sampler=range(start, stop), num_workers=workers,
            prefetch_factor=4, multiprocessing_context="fork",
        )
        self._batches = iter(loader)

    def finish(self) -> None:
        """Take the remaining steps' batches, so the loader ends and stops its processes now
        (not at garbage collection, possibly inside a later fork, where its clean-up fails)."""
        for _ in self._batches:
            pass

    def __call__(self, step: int):
        got, batch = next(self._batches)
        if got != step:
            raise RuntimeError(f"batch of step {got} arrived when step {step} was asked for")
        return batch


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def mean_loss(self, key: str, first: int | None = None, last: int | None = None) -> float:
        """Mean of ``key`` over the first or last entries of the history."""
        rows = self.history[:first] if first else self.history[-last:] if last else self.history
        return float(np.mean([r[key] for r in rows if key in r]))


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(
    recipe: Recipe,
    steps: int,
    checkpoint: str | Path | None = None,
    *,
    every: int = 100,
    seed: int = 0,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    workers: int = 0,
) -> TrainResult:
    """Run ``recipe`` up to ``steps`` steps, resuming from ``checkpoint`` when it exists.

    ``progress(step, steps, losses)`` is called after every step (e.g. to drive a tqdm bar).
    Returns the loss history of *all* steps so far (resumed ones included). ``workers > 0``
    prepares the batches of a recipe with a pure ``batch_at(step)`` in that many processes
    (``recipe.batch_source`` is set to a :class:`BatchSource`; same batches, same order).
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    path = None if checkpoint is None else Path(checkpoint)
    start, history = 0, []
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if path is not None and path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=False)
        recipe.load_state_dict(payload["recipe"])
        _set_rng_state(payload["rng"])
        start, history = int(payload["step"]), list(payload["history"])
    if workers > 0 and start < steps:
        if not hasattr(recipe, "batch_at"):
            raise ValueError(f"workers={workers}: recipe {recipe.name} has no batch_at(step) to run ahead")
        recipe.batch_source = BatchSource(recipe.batch_at, start, steps, workers)
    began = time.perf_counter()
    seconds_before = sum(r.get("seconds", 0.0) for r in history[-1:])
    for step in range(start, steps):
        losses = {k: float(v) for k, v in recipe.step(step).items()}
        losses["seconds"] = seconds_before + (time.perf_counter() - began)
        history.append(losses)
        if progress is not None:
            progress(step + 1, steps, losses)
        done = step + 1
        if path is not None and (done % every == 0 or done == steps):
            _save(path, {"step": done, "recipe": recipe.state_dict(), "rng": _rng_state(), "history": history})
    return TrainResult(steps=steps, resumed_from=start, seconds=time.perf_counter() - began, history=history)


def steps_for_seconds(make_recipe: Callable[[int], Recipe], seconds: float, *, workers: int = 0,
                      probe: int = 60, warmup: int = 15, margin: float = 0.9) -> int:
    """How many steps of ``make_recipe(steps)`` fit in ``seconds`` of wall time on this machine.

    Recipes' schedules span their planned steps, so a run with a wall-time budget must know its
    step count up front: this times ``probe`` steps of a throwaway recipe (the first ``warmup``
    not counted) and returns ``margin`` times the steps that fit, at least ``probe``.
    """
    if seconds <= 0 or probe <= warmup:
        raise ValueError(f"seconds={seconds} must be > 0 and probe={probe} > warmup={warmup}")
    recipe = make_recipe(10 * probe)
    recipe.batch_source = None
    if workers > 0:
        recipe.batch_source = BatchSource(recipe.batch_at, 0, probe, workers)
    for step in range(probe):
        if step == warmup:
            began = time.perf_counter()
        recipe.step(step)
    rate = (probe - warmup) / (time.perf_counter() - began)
    if recipe.batch_source is not None:
        recipe.batch_source.finish()
    return max(probe, int(margin * rate * seconds))

"""Batches rendered ahead in worker processes, and the wall-time step budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rosetta_core.zoo.embedded.gen_recipes import GenRecipe
from rosetta_core.zoo.embedded.mini_gen import MiniGenerator
from rosetta_core.zoo.training import BatchSource, adamw_matrix_decay, steps_for_seconds, train, warmup_cosine_lr

pytestmark = pytest.mark.unit


def _batch_of(step: int) -> tuple[torch.Tensor]:
    return (torch.full((3,), float(step * step)),)


def test_batch_source_returns_each_steps_batch_in_order():
    source = BatchSource(_batch_of, 4, 9, workers=2)
    for step in range(4, 8):
        assert torch.equal(source(step)[0], _batch_of(step)[0])
    with pytest.raises(RuntimeError, match="batch of step 8 arrived when step 5 was asked for"):
        source(5)
    with pytest.raises(ValueError, match="workers=0"):
        BatchSource(_batch_of, 0, 3, workers=0)


def _small_recipe(steps: int = 6) -> GenRecipe:
    torch.manual_seed(0)
    return GenRecipe(MiniGenerator(widths=(16, 8, 8, 8, 8)), batch=4, lr=3e-3, total_steps=steps)


def test_training_with_workers_matches_training_in_process(tmp_path):
    alone = train(_small_recipe(), 6, tmp_path / "a.pt", every=3)
    ahead = train(_small_recipe(), 6, tmp_path / "b.pt", every=3, workers=2)
    assert [h["loss"] for h in ahead.history] == [h["loss"] for h in alone.history]


def test_training_with_workers_needs_a_pure_batch_function():
    class NoBatches:
        name = "no-batches"

        def step(self, step):
            return {"loss": 0.0}

    with pytest.raises(ValueError, match="no batch_at"):
        train(NoBatches(), 2, workers=1)


def test_steps_for_seconds_scales_with_the_budget():
    short = steps_for_seconds(_small_recipe, 0.01, workers=1, probe=8, warmup=2)
    assert short == 8  # never fewer than the probe
    long = steps_for_seconds(_small_recipe, 600.0, workers=1, probe=8, warmup=2)
    assert long > 10 * short  # 600 s hold far more than the 8 probe steps (which took ~1 s)
    with pytest.raises(ValueError, match="seconds=0"):
        steps_for_seconds(_small_recipe, 0)


def test_warmup_cosine_lr_matches_a_float64_oracle():
    total, base = 200, 2e-3
    ramp = 10  # 5% of 200
    for step in range(total + 3):
        if step < ramp:
            expected = base * (step + 1) / ramp
        else:
            expected = base * 0.5 * (1 + np.cos(np.pi * min(1.0, (step - ramp) / (total - ramp))))
        assert warmup_cosine_lr(step, total, base) == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert warmup_cosine_lr(ramp - 1, total, base) == warmup_cosine_lr(ramp, total, base) == base
    assert warmup_cosine_lr(total, total, base) == 0.0 == warmup_cosine_lr(total + 2, total, base)
    assert warmup_cosine_lr(0, 3, base) == base  # a run shorter than 20 steps warms up in one step


def test_adamw_matrix_decay_spares_vectors():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimiser = adamw_matrix_decay(module.parameters(), 1e-3, 0.1, betas=(0.9, 0.95))
    decay, no_decay = optimiser.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 0.1
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,), (4,)] and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95) and decay["lr"] == 1e-3

"""The statistics reduction of a run over its stored chunks, against the engine on whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from rosetta_core import pearson_table
from rosetta_core.run import MineConfig, Run, RunPlan
from rosetta_core.run import statistics
from rosetta_core.run.statistics import pair_comoments

pytestmark = pytest.mark.unit

LAYERS = {"g": [("l1", (3, 8, 8)), ("l2", (2, 4, 4))], "e": [("m1", (4, 2, 2)), ("m2", (2, 6, 6))]}


def _run(tmp_path, n: int, chunk: int, bad: tuple[str, int] | None = None):
    config = MineConfig(generator="g", encoders=("e",), n=n, k=1, chunk_size=chunk, center="position")
    plan = RunPlan(config, LAYERS, 1, (3, 8, 8), {}, config.n)
    run = Run(tmp_path, config)
    run.store.group.attrs["plan"] = plan.to_json()
    rng = np.random.default_rng(0)
    data = {}
    for name, layers in LAYERS.items():
        for layer, shape in layers:
            key = run.maps_key(name, layer)
            values = np.maximum(rng.standard_normal((n, *shape)), 0).astype(np.float16)
            if bad is not None and bad[0] == key:
                values[bad[1], 0, 0, 0] = np.nan
            run.store.require(key, (n, *shape), (chunk, *shape), "float16", ["image", "unit", "y", "x"])[...] = values
            data[key] = values.astype(np.float32)
    return run, data


@pytest.mark.parametrize(("n", "chunk", "step"), [(22, 7, 3), (15, 5, 50), (9, 4, 2)])
def test_steps_and_a_one_image_chunk_give_the_engine_table(tmp_path, monkeypatch, n, chunk, step):
    monkeypatch.setattr(statistics, "REDUCE_IMAGES", step)  # several steps per chunk, unequal ones too
    run, data = _run(tmp_path, n, chunk)  # n % chunk == 1: the last chunk has one image
    gen, enc = [data[k] for k in run.model_keys("g")], [data[k] for k in run.model_keys("e")]
    got = pair_comoments(run, "g", "e").pearson()
    np.testing.assert_allclose(got, pearson_table(gen, enc, center="position"), atol=1e-5)
    perm = np.random.default_rng(7).permutation(n)
    null = pair_comoments(run, "g", "e", shuffle_seed=7).pearson()
    np.testing.assert_allclose(null, pearson_table(gen, [x[perm] for x in enc], center="position"), atol=1e-5)


def test_non_finite_activations_are_named(tmp_path):
    run, _ = _run(tmp_path, 12, 4, bad=(Run.maps_key("e", "m2"), 9))
    with pytest.raises(ValueError, match=r"activations/e/m2/maps has non-finite values \(NaN or inf\) in images \[9\]"):
        pair_comoments(run, "g", "e")
